/* softmax, log_softmax and the softmax Jacobian against references computed
 * here in long double (or by hand), independent of src/ops/softmax.c. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* The tensor viewed as [outer, n, inner] around axis (already non-negative). */
static void split_axis(const tg_tensor *x, int axis, int64_t *outer, int64_t *n, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= tg_dim(x, d);
    *n = tg_dim(x, axis);
    for (int d = axis + 1; d < tg_ndim(x); d++)
        *inner *= tg_dim(x, d);
}

/* softmax (log_softmax when want_log) of x along axis in long double, into
 * out[numel] (caller frees): exp(x - max) / sum, or x - max - log(sum). */
static long double *softmax_lines_ld(const tg_tensor *x, int axis, bool want_log)
{
    int64_t outer, n, inner;
    split_axis(x, axis, &outer, &n, &inner);
    long double *out = calloc((size_t)tg_numel(x), sizeof *out);
    cr_assert_not_null(out);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i;
            long double max = -INFINITY, total = 0;
            for (int64_t j = 0; j < n; j++)
                max = fmaxl(max, (long double)tg_get(x, base + j * inner));
            for (int64_t j = 0; j < n; j++)
                total += expl((long double)tg_get(x, base + j * inner) - max);
            for (int64_t j = 0; j < n; j++) {
                long double shifted = (long double)tg_get(x, base + j * inner) - max;
                out[base + j * inner] = want_log ? shifted - logl(total) : expl(shifted) / total;
            }
        }
    return out;
}

static long double *softmax_ld(const tg_tensor *x, int axis) { return softmax_lines_ld(x, axis, false); }
static long double *log_softmax_ld(const tg_tensor *x, int axis) { return softmax_lines_ld(x, axis, true); }

/* |got - want| <= tol * max(1, |want|) */
static void assert_close_rel(double got, long double want, double tol, const char *what, int64_t i)
{
    long double scale = fabsl(want) > 1 ? fabsl(want) : 1;
    cr_assert(isfinite(got), "%s[%lld] = %g is not finite", what, (long long)i, got);
    cr_assert(fabsl((long double)got - want) <= tol * scale, "%s[%lld] = %.17g, expected %.17Lg (tol %g)", what,
              (long long)i, got, want, tol);
}

/* ------------------------------------------ both ops against long double */

typedef struct {
    const char *name;
    tg_tensor *(*op)(tg_tape *, tg_tensor *, int);
    bool is_log;
    tg_dtype dtype;
    int ndim;
    int64_t shape[3];
    uint64_t seed;
    double lo, hi; /* the inputs' range */
    double tol; /* relative, against the long-double value of the same inputs */
} forward_case;

static const forward_case forward_cases[] = {
    { "softmax [5, 7]", tg_softmax, false, TG_F64, 2, { 5, 7 }, 11, -6, 6, 1e-15 },
    { "softmax [2, 3, 4]", tg_softmax, false, TG_F64, 3, { 2, 3, 4 }, 13, -4, 4, 1e-15 },
    { "float32 softmax [2, 3, 4]", tg_softmax, false, TG_F32, 3, { 2, 3, 4 }, 14, -10, 10, 1e-6 },
    { "log_softmax [5, 7]", tg_log_softmax, true, TG_F64, 2, { 5, 7 }, 61, -8, 8, 1e-14 },
    { "log_softmax [2, 3, 4]", tg_log_softmax, true, TG_F64, 3, { 2, 3, 4 }, 62, -5, 5, 1e-14 },
    { "float32 log_softmax [4, 6]", tg_log_softmax, true, TG_F32, 2, { 4, 6 }, 63, -10, 10, 1e-6 },
};

/* Every case along every axis, each written both ways (0..ndim-1 and -ndim..-1):
 * shape and dtype kept, values within tol of long double. */
Test(softmax, forward_against_long_double_every_axis_both_dtypes)
{
    tg_tape *tape = tg_tape_new();
    for (size_t c = 0; c < sizeof forward_cases / sizeof *forward_cases; c++) {
        const forward_case *k = &forward_cases[c];
        tg_tensor *x = random_tensor(k->dtype, k->ndim, k->shape, k->seed, k->lo, k->hi);
        for (int axis = -k->ndim; axis < k->ndim; axis++) {
            tg_tensor *y = k->op(tape, x, axis);
            cr_assert_not_null(y, "%s axis %d: %s", k->name, axis, tg_last_error());
            cr_assert_eq(tg_ndim(y), k->ndim, "%s", k->name);
            for (int d = 0; d < k->ndim; d++)
                cr_assert_eq(tg_dim(y, d), k->shape[d], "%s dim %d", k->name, d);
            cr_assert_eq(tg_dtype_of(y), k->dtype, "%s", k->name);
            long double *want = softmax_lines_ld(x, axis < 0 ? axis + k->ndim : axis, k->is_log);
            for (int64_t i = 0; i < tg_numel(x); i++)
                assert_close_rel(tg_get(y, i), want[i], k->tol, k->name, i);
            free(want);
        }
        tg_tensor_free(x);
    }
    tg_tape_free(tape);
}

/* log_softmax is log(softmax) where both are finite: the two references agree. */
Test(log_softmax, equals_the_log_of_long_double_softmax)
{
    tg_tensor *x = random_tensor(TG_F64, 2, (int64_t[]){ 5, 7 }, 61, -8, 8);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_log_softmax(tape, x, -1);
    cr_assert_not_null(y, "%s", tg_last_error());
    long double *p = softmax_ld(x, 1);
    for (int64_t i = 0; i < tg_numel(x); i++)
        assert_close_rel(tg_get(y, i), logl(p[i]), 1e-14, "log_softmax", i);
    free(p);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(softmax, float32_large_logits_stay_finite)
{
    /* exp(1000) overflows float, so the max must be subtracted */
    tg_tape *tape = tg_tape_new();
    tg_tensor *big = tg_tensor_from(TG_F32, 1, (int64_t[]){ 2 }, (float[]){ 1000, 1001 });
    tg_tensor *yb = tg_softmax(tape, big, 0);
    cr_assert_not_null(yb, "%s", tg_last_error());
    long double e = expl(1.0L);
    assert_close_rel(tg_get(yb, 0), 1 / (1 + e), 1e-6, "float32 softmax([1000, 1001])", 0);
    assert_close_rel(tg_get(yb, 1), e / (1 + e), 1e-6, "float32 softmax([1000, 1001])", 1);
    tg_tape_free(tape);
    tg_tensor_free(big);
}

Test(log_softmax, float32_large_logits_stay_finite)
{
    /* +-1e4 in float32: still finite, [0, -2e4, -1e4] */
    tg_tape *tape = tg_tape_new();
    tg_tensor *big = tg_tensor_from(TG_F32, 1, (int64_t[]){ 3 }, (float[]){ 1e4f, -1e4f, 0 });
    tg_tensor *yb = tg_log_softmax(tape, big, 0);
    cr_assert_not_null(yb, "%s", tg_last_error());
    double by_hand[] = { 0, -2e4, -1e4 };
    for (int i = 0; i < 3; i++)
        assert_close_rel(tg_get(yb, i), by_hand[i], 1e-6, "float32 log_softmax(+-1e4)", i);
    tg_tape_free(tape);
    tg_tensor_free(big);
}

/* ---------------------------------------------------------------- softmax */

Test(softmax, known_values_by_hand)
{
    /* softmax([0, ln 2, ln 3, ln 4]) = [1, 2, 3, 4] / 10 */
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 4 }, (double[]){ 0, log(2.0), log(3.0), log(4.0) });
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_softmax(tape, x, 0);
    cr_assert_not_null(y, "%s", tg_last_error());
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(tg_get(y, i), (i + 1) / 10.0, 1e-15, "y[%d] = %.17g", i, tg_get(y, i));
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(softmax, rows_sum_to_one)
{
    int64_t shape[] = { 6, 10 };
    tg_tensor *x = random_tensor(TG_F64, 2, shape, 12, -30, 30);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_softmax(tape, x, 1);
    cr_assert_not_null(y, "%s", tg_last_error());
    for (int64_t r = 0; r < 6; r++) {
        long double total = 0;
        for (int64_t c = 0; c < 10; c++) {
            double p = tg_get(y, r * 10 + c);
            cr_assert(p >= 0 && p <= 1, "row %lld: p = %g", (long long)r, p);
            total += p;
        }
        cr_assert(fabsl(total - 1) <= 1e-14L, "row %lld sums to %.17Lg", (long long)r, total);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(softmax, large_logits_are_stable)
{
    /* softmax([1000, 1001]) must equal softmax([0, 1]) = [1/(1+e), e/(1+e)];
     * a naive exp(1000) would be inf and give inf/inf = NaN. */
    tg_tensor *big = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1000, 1001 });
    tg_tensor *small = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 0, 1 });
    tg_tape *tape = tg_tape_new();
    tg_tensor *yb = tg_softmax(tape, big, 0), *ys = tg_softmax(tape, small, 0);
    cr_assert_not_null(yb, "%s", tg_last_error());
    cr_assert_not_null(ys, "%s", tg_last_error());
    long double e = expl(1.0L);
    long double want[2] = { 1 / (1 + e), e / (1 + e) };
    for (int i = 0; i < 2; i++) {
        cr_assert(isfinite(tg_get(yb, i)), "softmax([1000, 1001])[%d] = %g", i, tg_get(yb, i));
        cr_assert(fabs(tg_get(yb, i) - tg_get(ys, i)) <= 1e-15, "[%d]: %.17g vs %.17g", i, tg_get(yb, i),
                  tg_get(ys, i));
        assert_close_rel(tg_get(yb, i), want[i], 1e-15, "softmax([1000, 1001])", i);
    }
    /* and very negative ones: softmax([-1000, -1001]) too */
    tg_tensor *neg = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ -1000, -1001 });
    tg_tensor *yn = tg_softmax(tape, neg, 0);
    cr_assert_not_null(yn, "%s", tg_last_error());
    assert_close_rel(tg_get(yn, 0), want[1], 1e-15, "softmax([-1000, -1001])", 0);
    assert_close_rel(tg_get(yn, 1), want[0], 1e-15, "softmax([-1000, -1001])", 1);
    tg_tape_free(tape);
    tg_tensor_free(big);
    tg_tensor_free(small);
    tg_tensor_free(neg);
}

Test(softmax, minus_infinity_is_a_mask)
{
    /* softmax([-inf, 0, ln 3]) = [0, 1/4, 3/4]; log_softmax gives [-inf, ln(1/4), ln(3/4)] */
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ -INFINITY, 0, log(3.0) });
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_softmax(tape, x, 0), *ly = tg_log_softmax(tape, x, 0);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_not_null(ly, "%s", tg_last_error());
    cr_assert_eq(tg_get(y, 0), 0.0, "masked entry = %g", tg_get(y, 0));
    cr_assert_float_eq(tg_get(y, 1), 0.25, 1e-15);
    cr_assert_float_eq(tg_get(y, 2), 0.75, 1e-15);
    cr_assert(isinf(tg_get(ly, 0)) && tg_get(ly, 0) < 0, "log_softmax masked entry = %g", tg_get(ly, 0));
    cr_assert_float_eq(tg_get(ly, 1), (double)logl(0.25L), 1e-15);
    cr_assert_float_eq(tg_get(ly, 2), (double)logl(0.75L), 1e-15);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(softmax, errors)
{
    tg_tensor *x = tg_tensor_new(TG_F64, 2, (int64_t[]){ 2, 3 });
    tg_tensor *labels = tg_tensor_new(TG_I64, 1, (int64_t[]){ 3 });
    tg_tape *tape = tg_tape_new();
    cr_assert_null(tg_softmax(tape, x, 2));
    cr_assert_not_null(strstr(tg_last_error(), "axis 2"), "%s", tg_last_error());
    cr_assert_null(tg_softmax(tape, x, -3));
    cr_assert_not_null(strstr(tg_last_error(), "axis -3"), "%s", tg_last_error());
    cr_assert_null(tg_log_softmax(tape, x, 5));
    cr_assert_not_null(strstr(tg_last_error(), "log_softmax"), "%s", tg_last_error());
    cr_assert_null(tg_softmax_jacobian(tape, x, 2));
    cr_assert_not_null(strstr(tg_last_error(), "softmax_jacobian"), "%s", tg_last_error());
    cr_assert_null(tg_softmax(tape, labels, 0));
    cr_assert_not_null(strstr(tg_last_error(), "int64"), "%s", tg_last_error());
    tg_clear_error();
    cr_assert_null(tg_softmax(tape, NULL, 0));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(labels);
}

/* ------------------------------------------------------- softmax Jacobian */

/* Checks jac (x's shape without axis, then [n, n]) entry by entry against
 * P_i (delta_ij - P_j) from a long-double softmax. */
static void check_jacobian(const tg_tensor *x, int axis, const tg_tensor *jac, double tol)
{
    int64_t outer, n, inner;
    split_axis(x, axis, &outer, &n, &inner);
    int nd = tg_ndim(x);
    cr_assert_eq(tg_ndim(jac), nd + 1, "Jacobian has %d dimensions, expected %d", tg_ndim(jac), nd + 1);
    for (int d = 0, k = 0; d < nd; d++)
        if (d != axis) {
            cr_assert_eq(tg_dim(jac, k), tg_dim(x, d), "Jacobian dim %d", k);
            k++;
        }
    cr_assert_eq(tg_dim(jac, nd - 1), n);
    cr_assert_eq(tg_dim(jac, nd), n);
    long double *p = softmax_ld(x, axis);
    /* x's lines in row-major order of the remaining axes: (o, i) -> block o * inner + i */
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const long double *line = p + o * n * inner + i;
            int64_t block = (o * inner + i) * n * n;
            for (int64_t r = 0; r < n; r++)
                for (int64_t c = 0; c < n; c++) {
                    long double want = line[r * inner] * ((r == c ? 1.0L : 0.0L) - line[c * inner]);
                    double got = tg_get(jac, block + r * n + c);
                    cr_assert(fabsl((long double)got - want) <= tol,
                              "J[line %lld][%lld][%lld] = %.17g, expected %.17Lg", (long long)(o * inner + i),
                              (long long)r, (long long)c, got, want);
                }
        }
    free(p);
}

Test(softmax_jacobian, rows_give_k_by_n_by_n)
{
    int64_t shape[] = { 4, 5 };
    tg_tensor *x = random_tensor(TG_F64, 2, shape, 21, -3, 3);
    tg_tape *tape = tg_tape_new();
    tg_tensor *jac = tg_softmax_jacobian(tape, x, -1);
    cr_assert_not_null(jac, "%s", tg_last_error());
    cr_assert_eq(tg_ndim(jac), 3);
    cr_assert_eq(tg_dim(jac, 0), 4);
    cr_assert_eq(tg_dim(jac, 1), 5);
    cr_assert_eq(tg_dim(jac, 2), 5);
    check_jacobian(x, 1, jac, 1e-15);
    /* each row of a block sums to 0: softmax sums to 1 whatever x is */
    for (int64_t b = 0; b < 4 * 5; b++) {
        long double total = 0;
        for (int64_t c = 0; c < 5; c++)
            total += tg_get(jac, b * 5 + c);
        cr_assert(fabsl(total) <= 1e-15L, "row %lld of the Jacobian sums to %Lg", (long long)b, total);
    }
    cr_assert_eq(tg_tape_size(tape), 0, "the Jacobian is not recorded");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(softmax_jacobian, known_values_by_hand)
{
    /* x = [0, ln 3]: P = [1/4, 3/4]; J = [[P0 (1 - P0), -P0 P1], [-P1 P0, P1 (1 - P1)]] = [[3, -3], [-3, 3]] / 16 */
    tg_tensor *x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 1, 2 }, (double[]){ 0, log(3.0) });
    tg_tape *tape = tg_tape_new();
    tg_tensor *jac = tg_softmax_jacobian(tape, x, 1);
    cr_assert_not_null(jac, "%s", tg_last_error());
    double want[] = { 3 / 16.0, -3 / 16.0, -3 / 16.0, 3 / 16.0 };
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(tg_get(jac, i), want[i], 1e-15, "J[%d] = %.17g", i, tg_get(jac, i));
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* softmax along axis with upstream g, walked back with tg_backward_with, must give
 * dx = J^T g line by line, with J from tg_softmax_jacobian (checked above). */
static void check_backward_is_jt_g(tg_dtype dtype, int ndim, const int64_t *shape, int axis, uint64_t seed, double tol)
{
    tg_tensor *x = random_tensor(dtype, ndim, shape, seed, -3, 3);
    tg_tensor *g = random_tensor(dtype, ndim, shape, seed + 1000, -2, 2);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_softmax(tape, x, axis);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_backward_with(tape, y, g), 0, "%s", tg_last_error());
    tg_tensor *dx = tg_grad(x);
    cr_assert_not_null(dx);
    int a = axis < 0 ? axis + ndim : axis;
    tg_tensor *jac = tg_softmax_jacobian(tape, x, axis);
    cr_assert_not_null(jac, "%s", tg_last_error());
    check_jacobian(x, a, jac, dtype == TG_F64 ? 1e-15 : 1e-7);
    int64_t outer, n, inner;
    split_axis(x, a, &outer, &n, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i, block = (o * inner + i) * n * n;
            for (int64_t c = 0; c < n; c++) {
                long double want = 0; /* (J^T g)_c = sum_r J[r][c] g_r */
                for (int64_t r = 0; r < n; r++)
                    want += (long double)tg_get(jac, block + r * n + c) * tg_get(g, base + r * inner);
                double got = tg_get(dx, base + c * inner);
                cr_assert(fabsl((long double)got - want) <= tol, "axis %d, line %lld, dx[%lld] = %.17g, J^T g = %.17Lg",
                          axis, (long long)(o * inner + i), (long long)c, got, want);
            }
        }
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(g);
}

Test(softmax_jacobian, backward_equals_jt_g_rows)
{
    for (uint64_t seed = 1; seed <= 4; seed++)
        check_backward_is_jt_g(TG_F64, 2, (int64_t[]){ 6, 5 }, -1, seed, 1e-12);
    check_backward_is_jt_g(TG_F64, 1, (int64_t[]){ 9 }, 0, 5, 1e-12);
}

Test(softmax_jacobian, backward_equals_jt_g_every_axis_3d)
{
    int64_t shape[] = { 2, 3, 4 };
    for (int axis = -1; axis < 3; axis++)
        check_backward_is_jt_g(TG_F64, 3, shape, axis, 30 + (uint64_t)(axis + 1), 1e-12);
}

Test(softmax_jacobian, axis0_of_3d_shape_and_values)
{
    int64_t shape[] = { 2, 3, 4 };
    tg_tensor *x = random_tensor(TG_F64, 3, shape, 41, -3, 3);
    tg_tape *tape = tg_tape_new();
    tg_tensor *jac = tg_softmax_jacobian(tape, x, 0);
    cr_assert_not_null(jac, "%s", tg_last_error());
    /* [2, 3, 4] along axis 0: [3, 4] lines of length 2 -> [3, 4, 2, 2] */
    int64_t want_shape[] = { 3, 4, 2, 2 };
    cr_assert_eq(tg_ndim(jac), 4);
    for (int d = 0; d < 4; d++)
        cr_assert_eq(tg_dim(jac, d), want_shape[d], "dim %d is %lld", d, (long long)tg_dim(jac, d));
    check_jacobian(x, 0, jac, 1e-15);
    /* axis 1: [2, 4, 3, 3] */
    tg_tensor *jac1 = tg_softmax_jacobian(tape, x, 1);
    cr_assert_not_null(jac1, "%s", tg_last_error());
    check_jacobian(x, 1, jac1, 1e-15);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(softmax_jacobian, float32)
{
    check_backward_is_jt_g(TG_F32, 2, (int64_t[]){ 3, 6 }, 1, 51, 1e-6);
    check_backward_is_jt_g(TG_F32, 3, (int64_t[]){ 2, 3, 4 }, 0, 52, 1e-6);
}

/* ------------------------------------------------------------ log_softmax */

Test(log_softmax, finite_where_log_of_softmax_is_minus_inf)
{
    /* x = [1e4, -1e4, 0]: lse(x) = 1e4 + log(1 + e^-1e4 + e^-2e4) = 1e4 in double,
     * so log_softmax = [0, -2e4, -1e4] exactly; softmax = [1, 0, 0] (e^-1e4
     * underflows), so log(softmax) = [0, -inf, -inf]. */
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1e4, -1e4, 0 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_log_softmax(tape, x, 0);
    cr_assert_not_null(y, "%s", tg_last_error());
    long double *want = log_softmax_ld(x, 0);
    double by_hand[] = { 0, -2e4, -1e4 };
    for (int i = 0; i < 3; i++) {
        assert_close_rel(tg_get(y, i), want[i], 1e-15, "log_softmax(+-1e4)", i);
        cr_assert_eq(tg_get(y, i), by_hand[i], "[%d] = %.17g", i, tg_get(y, i));
    }
    free(want);
    tg_tensor *naive = tg_log(tape, tg_softmax(tape, x, 0));
    cr_assert_not_null(naive, "%s", tg_last_error());
    cr_assert(isinf(tg_get(naive, 1)) && tg_get(naive, 1) < 0, "log(softmax)[1] = %g", tg_get(naive, 1));
    cr_assert(isinf(tg_get(naive, 2)) && tg_get(naive, 2) < 0, "log(softmax)[2] = %g", tg_get(naive, 2));
    /* the backward stays finite too: d/dx sum(g * log_softmax) = g - softmax * sum(g) */
    tg_tensor *g = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    cr_assert_eq(tg_backward_with(tape, y, g), 0, "%s", tg_last_error());
    double dx_by_hand[] = { 1 - 6, 2, 3 };
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(tg_get(tg_grad(x), i), dx_by_hand[i], 1e-12, "dx[%d] = %g", i, tg_get(tg_grad(x), i));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(g);
}

/* ------------------------------------------------------------- gradcheck */

typedef struct {
    int axis;
    int log; /* 1: log_softmax */
} softmax_case;

static tg_tensor *softmax_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    const softmax_case *c = ctx;
    return c->log ? tg_log_softmax(tape, inputs[0], c->axis) : tg_softmax(tape, inputs[0], c->axis);
}

Test(softmax, gradcheck_every_axis)
{
    int64_t shape[] = { 2, 3, 4 };
    for (int log_op = 0; log_op < 2; log_op++)
        for (int axis = -1; axis < 3; axis++) {
            tg_tensor *x = random_tensor(TG_F64, 3, shape, 70 + (uint64_t)axis, -3, 3);
            tg_set_requires_grad(x, 1);
            softmax_case c = { axis, log_op };
            tg_gradcheck_report report;
            int rc = tg_gradcheck(softmax_fn, 1, &x, &c, NULL, &report);
            cr_assert_eq(rc, 0, "%s axis %d: worst [%lld] analytic %g numeric %g (%s)",
                         log_op ? "log_softmax" : "softmax", axis, (long long)report.worst_index, report.analytic,
                         report.numeric, tg_last_error());
            cr_assert_eq(report.checked, 24);
            tg_tensor_free(x);
        }
}
