/* tg_binary_cross_entropy_with_logits, tg_binary_cross_entropy, tg_softplus and tg_log_sigmoid:
 * PyTorch's values and gradients at every shape and option, gradchecks, the fused node against the
 * composed sigmoid -> log path, extreme logits, float32, and the error messages. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

typedef enum { REF_BCE_LOGITS, REF_BCE, REF_SOFTPLUS, REF_LOG_SIGMOID } ref_op;

/* One PyTorch case: inputs, options, and what PyTorch computed (tests/binary_losses_reference.py). */
typedef struct {
    const char *name;
    ref_op op;
    int ndim;
    int64_t shape[4];
    const double *x, *y; /* y NULL for the unary ops */
    int w_ndim;
    int64_t w_shape[4];
    const double *w;
    int pw_ndim;
    int64_t pw_shape[4];
    const double *pw;
    tg_reduction reduction;
    const double *loss, *upstream; /* upstream: the seed of a TG_NONE backward, else NULL */
    const double *gx, *gy; /* gy NULL when not compared */
} bce_reference;

#include "binary_losses_reference.h"

#define N_REFERENCES (sizeof bce_references / sizeof *bce_references)

static int64_t numel_of(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

/* |got - want| <= tol * max(1, |want|); two NaNs are equal. */
static void assert_close(double got, double want, double tol, const char *what, int64_t i)
{
    double scale = fabs(want) > 1 ? fabs(want) : 1;
    cr_assert(close_enough(got, want, tol * scale), "%s[%lld] = %.17g, expected %.17g (tol %g)", what, (long long)i,
              got, want, tol);
}

/* A caller-owned tensor of dtype from float64 values. */
static tg_tensor *tensor_of(tg_dtype dtype, int ndim, const int64_t *shape, const double *values)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    for (int64_t i = 0; i < tg_numel(t); i++)
        tg_set(t, i, values[i]);
    return t;
}

static const char *reduction_name(tg_reduction r) { return r == TG_MEAN ? "mean" : r == TG_SUM ? "sum" : "none"; }

/* Runs backward from loss: seeded with 1 for a scalar, with upstream for a TG_NONE loss. */
static void backward(tg_tape *tape, tg_tensor *loss, const tg_tensor *upstream)
{
    int rc = upstream ? tg_backward_with(tape, loss, upstream) : tg_backward(tape, loss);
    cr_assert_eq(rc, 0, "backward: %s", tg_last_error());
}

/* ========================================================= PyTorch's numbers */

static tg_tensor *run_op(tg_tape *tape, ref_op op, tg_tensor *x, tg_tensor *y, const tg_bce_opts *opts)
{
    switch (op) {
    case REF_BCE_LOGITS: return tg_binary_cross_entropy_with_logits(tape, x, y, opts);
    case REF_BCE: return tg_binary_cross_entropy(tape, x, y, opts);
    case REF_SOFTPLUS: return tg_softplus(tape, x);
    case REF_LOG_SIGMOID: return tg_log_sigmoid(tape, x);
    }
    return NULL;
}

/* The case's op in dtype against PyTorch's float64 numbers, to tol (relative above 1). */
static void check_reference(const bce_reference *c, tg_dtype dtype, double tol, bool target_grad)
{
    int64_t n = numel_of(c->ndim, c->shape);
    tg_tensor *x = tensor_of(dtype, c->ndim, c->shape, c->x);
    tg_tensor *y = c->y ? tensor_of(dtype, c->ndim, c->shape, c->y) : NULL;
    tg_tensor *w = c->w ? tensor_of(dtype, c->w_ndim, c->w_shape, c->w) : NULL;
    tg_tensor *pw = c->pw ? tensor_of(dtype, c->pw_ndim, c->pw_shape, c->pw) : NULL;
    tg_tensor *upstream = c->upstream ? tensor_of(dtype, c->ndim, c->shape, c->upstream) : NULL;
    tg_set_requires_grad(x, 1);
    if (y && c->gy && target_grad)
        tg_set_requires_grad(y, 1);
    tg_bce_opts opts = { .reduction = c->reduction, .weight = w, .pos_weight = pw };
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = run_op(tape, c->op, x, y, &opts);
    cr_assert_not_null(loss, "%s: %s", c->name, tg_last_error());
    cr_assert_eq(tg_dtype_of(loss), dtype, "%s", c->name);
    int64_t n_loss = c->reduction == TG_NONE ? n : 1;
    cr_assert_eq(tg_numel(loss), n_loss, "%s", c->name);
    cr_assert_eq(tg_ndim(loss), c->reduction == TG_NONE ? c->ndim : 0, "%s", c->name);
    char what[128];
    snprintf(what, sizeof what, "%s %s loss", c->name, dtype == TG_F32 ? "float32" : "float64");
    for (int64_t i = 0; i < n_loss; i++)
        assert_close(tg_get(loss, i), c->loss[i], tol, what, i);
    backward(tape, loss, upstream);
    snprintf(what, sizeof what, "%s %s dx", c->name, dtype == TG_F32 ? "float32" : "float64");
    for (int64_t i = 0; i < n; i++)
        assert_close(tg_get(tg_grad(x), i), c->gx[i], tol, what, i);
    if (y && c->gy && target_grad) {
        snprintf(what, sizeof what, "%s %s dy", c->name, dtype == TG_F32 ? "float32" : "float64");
        for (int64_t i = 0; i < n; i++)
            assert_close(tg_get(tg_grad(y), i), c->gy[i], tol, what, i);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(w);
    tg_tensor_free(pw);
    tg_tensor_free(upstream);
}

/* Every reference case of op; returns how many ran. float32 within 2e-5 (relative above 1) of float64. */
static int check_references(ref_op op)
{
    int ran = 0;
    for (size_t k = 0; k < N_REFERENCES; k++)
        if (bce_references[k].op == op) {
            check_reference(&bce_references[k], TG_F64, 1e-12, true);
            check_reference(&bce_references[k], TG_F64, 1e-12, false); /* dx alone: the backward's other branch */
            check_reference(&bce_references[k], TG_F32, 2e-5, true);
            ran++;
        }
    return ran;
}

Test(binary_losses_torch, bce_with_logits) { cr_assert_gt(check_references(REF_BCE_LOGITS), 20); }
Test(binary_losses_torch, bce) { cr_assert_gt(check_references(REF_BCE), 10); }
Test(binary_losses_torch, softplus) { cr_assert_eq(check_references(REF_SOFTPLUS), 3); }
Test(binary_losses_torch, log_sigmoid) { cr_assert_eq(check_references(REF_LOG_SIGMOID), 3); }

/* ================================================================ gradcheck */

typedef struct {
    ref_op op;
    tg_bce_opts opts;
} loss_ctx;

static tg_tensor *loss_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    const loss_ctx *c = ctx;
    bool unary = c->op == REF_SOFTPLUS || c->op == REF_LOG_SIGMOID;
    return run_op(tape, c->op, inputs[0], unary ? NULL : inputs[1], &c->opts);
}

typedef struct {
    int ndim;
    int64_t shape[4];
    int w_ndim; /* -1: no weight */
    int64_t w_shape[4];
    int pw_ndim; /* -1: no pos_weight */
    int64_t pw_shape[4];
} shape_case;

/* 0-D to 4-D, batch 1 and more, weights of every broadcasting kind */
static const shape_case shape_cases[] = {
    { 0, { 0 }, -1, { 0 }, -1, { 0 } },
    { 0, { 0 }, 0, { 0 }, 0, { 0 } },
    { 1, { 1 }, -1, { 0 }, -1, { 0 } },
    { 1, { 6 }, 1, { 6 }, 1, { 1 } },
    { 2, { 1, 3 }, 1, { 3 }, 1, { 3 } },
    { 2, { 5, 3 }, -1, { 0 }, 1, { 3 } },
    { 2, { 5, 3 }, 2, { 5, 1 }, 2, { 5, 3 } },
    { 2, { 7, 1 }, 2, { 7, 1 }, 1, { 1 } },
    { 3, { 2, 3, 4 }, 2, { 3, 1 }, 1, { 4 } },
    { 3, { 1, 2, 3 }, 3, { 1, 2, 3 }, -1, { 0 } },
    { 4, { 2, 2, 3, 2 }, 4, { 2, 1, 1, 1 }, 1, { 2 } },
    { 4, { 1, 3, 1, 2 }, 1, { 2 }, 3, { 3, 1, 2 } },
};
#define N_SHAPE_CASES (sizeof shape_cases / sizeof *shape_cases)

/* Tighter than PyTorch's default: central differences in float64 are good to about 1e-9 here. */
static const tg_gradcheck_opts tight = { .eps = 1e-6, .atol = 1e-8, .rtol = 1e-6 };

/* Gradchecks op over every shape case and reduction, with and without the case's weights; the
 * target (inputs[1]) in [0, 1] and checked too when the op takes one. */
static void gradcheck_table(ref_op op, double lo, double hi, bool pos_weight)
{
    tg_reduction reductions[] = { TG_MEAN, TG_SUM, TG_NONE };
    uint64_t seed = 1000 * (uint64_t)op;
    for (size_t k = 0; k < N_SHAPE_CASES; k++)
        for (int r = 0; r < 3; r++)
            for (int weighted = 0; weighted < 2; weighted++) {
                const shape_case *c = &shape_cases[k];
                tg_tensor *inputs[2];
                inputs[0] = random_tensor(TG_F64, c->ndim, c->shape, ++seed, lo, hi);
                inputs[1] = random_tensor(TG_F64, c->ndim, c->shape, ++seed, 0, 1);
                tg_tensor *w =
                    weighted && c->w_ndim >= 0 ? random_tensor(TG_F64, c->w_ndim, c->w_shape, ++seed, 0.1, 2) : NULL;
                tg_tensor *pw = weighted && pos_weight && c->pw_ndim >= 0
                                    ? random_tensor(TG_F64, c->pw_ndim, c->pw_shape, ++seed, 0.2, 3)
                                    : NULL;
                tg_set_requires_grad(inputs[0], 1);
                tg_set_requires_grad(inputs[1], 1);
                loss_ctx ctx = { .op = op, .opts = { .reduction = reductions[r], .weight = w, .pos_weight = pw } };
                tg_gradcheck_report report;
                int rc = tg_gradcheck(loss_fn, 2, inputs, &ctx, &tight, &report);
                cr_assert_eq(rc, 0, "shape case %zu, %s%s%s: input %d [%lld] analytic %.10g numeric %.10g (%s)", k,
                             reduction_name(reductions[r]), w ? " weight" : "", pw ? " pos_weight" : "",
                             report.worst_input, (long long)report.worst_index, report.analytic, report.numeric,
                             rc < 0 ? tg_last_error() : "");
                tg_tensor_free(inputs[0]);
                tg_tensor_free(inputs[1]);
                tg_tensor_free(w);
                tg_tensor_free(pw);
            }
}

Test(binary_losses_gradcheck, bce_with_logits) { gradcheck_table(REF_BCE_LOGITS, -5, 5, true); }
Test(binary_losses_gradcheck, bce) { gradcheck_table(REF_BCE, 0.05, 0.95, false); }

/* The unary ops over the same shapes, with logits far enough out that exp(-|x|) is tiny. */
static void gradcheck_unary(ref_op op)
{
    for (size_t k = 0; k < N_SHAPE_CASES; k++)
        for (int wide = 0; wide < 2; wide++) {
            const shape_case *c = &shape_cases[k];
            tg_tensor *x = random_tensor(TG_F64, c->ndim, c->shape, 3000 + 2 * (uint64_t)k + (uint64_t)wide,
                                         wide ? -40 : -4, wide ? 40 : 4);
            tg_set_requires_grad(x, 1);
            loss_ctx ctx = { .op = op };
            tg_gradcheck_report report;
            int rc = tg_gradcheck(loss_fn, 1, &x, &ctx, &tight, &report);
            cr_assert_eq(rc, 0, "shape case %zu%s: [%lld] analytic %.10g numeric %.10g (%s)", k, wide ? " wide" : "",
                         (long long)report.worst_index, report.analytic, report.numeric, rc < 0 ? tg_last_error() : "");
            tg_tensor_free(x);
        }
}

Test(binary_losses_gradcheck, softplus) { gradcheck_unary(REF_SOFTPLUS); }
Test(binary_losses_gradcheck, log_sigmoid) { gradcheck_unary(REF_LOG_SIGMOID); }

/* ====================================================== fused vs composed */

/* 1 as a 0-D float64 tensor, caller-owned. */
static tg_tensor *scalar(double v) { return tg_tensor_from(TG_F64, 0, NULL, (double[]){ v }); }

/* loss_i = -w (p y log s + (1 - y) log(1 - s)), s = sigmoid(x), from ops that know nothing of it;
 * with log_sigmoid, log s = log_sigmoid(x) and log(1 - s) = log_sigmoid(-x) instead. */
static tg_tensor *composed_loss(tg_tape *tape, tg_tensor *x, tg_tensor *y, const tg_bce_opts *opts, bool log_sigmoid,
                                tg_tensor *one)
{
    tg_tensor *log_s, *log_1ms;
    if (log_sigmoid) {
        log_s = tg_log_sigmoid(tape, x);
        log_1ms = tg_log_sigmoid(tape, tg_neg(tape, x));
    } else {
        tg_tensor *s = tg_sigmoid(tape, x);
        log_s = tg_log(tape, s);
        log_1ms = tg_log(tape, tg_sub(tape, one, s));
    }
    tg_tensor *positive = tg_mul(tape, y, log_s);
    if (opts->pos_weight)
        positive = tg_mul(tape, (tg_tensor *)opts->pos_weight, positive);
    tg_tensor *per = tg_neg(tape, tg_add(tape, positive, tg_mul(tape, tg_sub(tape, one, y), log_1ms)));
    if (opts->weight)
        per = tg_mul(tape, (tg_tensor *)opts->weight, per);
    return opts->reduction == TG_NONE  ? per
           : opts->reduction == TG_SUM ? tg_sum(tape, per, TG_ALL)
                                       : tg_mean(tape, per, TG_ALL);
}

/* The fused node against both composed paths, value, dx and dy, to 1e-10 over the shape table. */
Test(binary_losses_composed, fused_matches_sigmoid_log_path)
{
    tg_reduction reductions[] = { TG_MEAN, TG_SUM, TG_NONE };
    tg_tensor *one = scalar(1);
    uint64_t seed = 5000;
    for (size_t k = 0; k < N_SHAPE_CASES; k++)
        for (int r = 0; r < 3; r++)
            for (int weighted = 0; weighted < 2; weighted++)
                for (int log_sigmoid = 0; log_sigmoid < 2; log_sigmoid++) {
                    const shape_case *c = &shape_cases[k];
                    tg_tensor *x = random_tensor(TG_F64, c->ndim, c->shape, ++seed, -6, 6);
                    tg_tensor *y = random_tensor(TG_F64, c->ndim, c->shape, ++seed, 0, 1);
                    tg_tensor *upstream = random_tensor(TG_F64, c->ndim, c->shape, ++seed, -2, 2);
                    tg_tensor *w = weighted && c->w_ndim >= 0
                                       ? random_tensor(TG_F64, c->w_ndim, c->w_shape, ++seed, 0.1, 2)
                                       : NULL;
                    tg_tensor *pw = weighted && c->pw_ndim >= 0
                                        ? random_tensor(TG_F64, c->pw_ndim, c->pw_shape, ++seed, 0.2, 3)
                                        : NULL;
                    tg_tensor *xc = tg_tensor_clone(x), *yc = tg_tensor_clone(y);
                    tg_set_requires_grad(x, 1);
                    tg_set_requires_grad(y, 1);
                    tg_set_requires_grad(xc, 1);
                    tg_set_requires_grad(yc, 1);
                    tg_bce_opts opts = { .reduction = reductions[r], .weight = w, .pos_weight = pw };
                    char what[160];
                    snprintf(what, sizeof what, "shape case %zu %s%s%s via %s", k, reduction_name(reductions[r]),
                             w ? " weight" : "", pw ? " pos_weight" : "", log_sigmoid ? "log_sigmoid" : "sigmoid->log");
                    tg_tape *fused_tape = tg_tape_new(), *composed_tape = tg_tape_new();
                    tg_tensor *fused = tg_binary_cross_entropy_with_logits(fused_tape, x, y, &opts);
                    tg_tensor *composed = composed_loss(composed_tape, xc, yc, &opts, log_sigmoid, one);
                    cr_assert_not_null(fused, "%s: %s", what, tg_last_error());
                    cr_assert_not_null(composed, "%s: %s", what, tg_last_error());
                    cr_assert_eq(tg_numel(fused), tg_numel(composed), "%s", what);
                    for (int64_t i = 0; i < tg_numel(fused); i++)
                        assert_close(tg_get(fused, i), tg_get(composed, i), 1e-10, what, i);
                    const tg_tensor *seed_grad = reductions[r] == TG_NONE ? upstream : NULL;
                    backward(fused_tape, fused, seed_grad);
                    backward(composed_tape, composed, seed_grad);
                    for (int64_t i = 0; i < tg_numel(x); i++) {
                        assert_close(tg_get(tg_grad(x), i), tg_get(tg_grad(xc), i), 1e-10, what, i);
                        assert_close(tg_get(tg_grad(y), i), tg_get(tg_grad(yc), i), 1e-10, what, i);
                    }
                    tg_tape_free(fused_tape);
                    tg_tape_free(composed_tape);
                    tg_tensor *owned[] = { x, y, xc, yc, upstream, w, pw };
                    for (size_t o = 0; o < sizeof owned / sizeof *owned; o++)
                        tg_tensor_free(owned[o]);
                }
    tg_tensor_free(one);
}

/* softplus(t) = max(t, 0) + log1p(exp(-|t|)) in long double, the oracle of the extreme cases */
static long double softplus_ld(long double t) { return (t > 0 ? t : 0) + log1pl(expl(-fabsl(t))); }
static long double sigmoid_ld(long double t) { return t >= 0 ? 1 / (1 + expl(-t)) : expl(t) / (1 + expl(t)); }
/* -y log s(t) - (1 - y) log(1 - s(t)), as two softplus terms: (1 - y) t + softplus(-t) would cancel at y = 0, t << 0 */
static long double bce_ld(long double t, long double y) { return y * softplus_ld(-t) + (1 - y) * softplus_ld(t); }

static const double extreme_x[] = { -1e4, -1e4, -100, -40, 0, 40, 100, 1e4, 1e4 };
static const double extreme_y[] = { 1, 0, 1, 0.5, 0.5, 0.25, 0, 0, 1 };
#define N_EXTREME 9

/* Extreme logits: the fused loss and gradient are finite and equal the long-double formula, while
 * the composed sigmoid -> log path overflows (log(0) = -inf where sigmoid saturates). */
Test(binary_losses_composed, fused_is_finite_where_composed_overflows)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ N_EXTREME }, extreme_x);
    tg_tensor *y = tg_tensor_from(TG_F64, 1, (int64_t[]){ N_EXTREME }, extreme_y);
    tg_tensor *xc = tg_tensor_clone(x), *one = scalar(1);
    tg_set_requires_grad(x, 1);
    tg_set_requires_grad(xc, 1);
    tg_tape *tape = tg_tape_new(), *composed_tape = tg_tape_new();
    tg_bce_opts opts = TG_BCE_OPTS_DEFAULT;
    opts.reduction = TG_SUM;
    tg_tensor *loss = tg_binary_cross_entropy_with_logits(tape, x, y, &opts);
    cr_assert_not_null(loss, "%s", tg_last_error());
    long double want = 0;
    for (int i = 0; i < N_EXTREME; i++)
        want += bce_ld(extreme_x[i], extreme_y[i]);
    cr_assert(isfinite(tg_get(loss, 0)), "fused loss = %g", tg_get(loss, 0));
    assert_close(tg_get(loss, 0), (double)want, 1e-15, "fused loss", 0);
    backward(tape, loss, NULL);
    for (int i = 0; i < N_EXTREME; i++)
        assert_close(tg_get(tg_grad(x), i), (double)(sigmoid_ld(extreme_x[i]) - extreme_y[i]), 1e-15, "fused dx", i);

    tg_tensor *composed = composed_loss(composed_tape, xc, y, &opts, false, one);
    cr_assert_not_null(composed, "%s", tg_last_error());
    cr_assert(!isfinite(tg_get(composed, 0)), "composed loss = %g, expected log(sigmoid) to overflow",
              tg_get(composed, 0));
    backward(composed_tape, composed, NULL);
    int non_finite = 0;
    for (int i = 0; i < N_EXTREME; i++)
        non_finite += !isfinite(tg_get(tg_grad(xc), i));
    cr_assert_gt(non_finite, 0, "the composed gradient was expected to hold inf or NaN");
    tg_tape_free(tape);
    tg_tape_free(composed_tape);
    tg_tensor *owned[] = { x, y, xc, one };
    for (size_t o = 0; o < sizeof owned / sizeof *owned; o++)
        tg_tensor_free(owned[o]);
}

/* The same in float32, element by element (TG_NONE), and softplus / log_sigmoid at the extremes. */
Test(binary_losses_composed, extremes_float32_and_unary)
{
    float xf[N_EXTREME], yf[N_EXTREME];
    for (int i = 0; i < N_EXTREME; i++) {
        xf[i] = (float)extreme_x[i];
        yf[i] = (float)extreme_y[i];
    }
    tg_tensor *x = tg_tensor_from(TG_F32, 1, (int64_t[]){ N_EXTREME }, xf);
    tg_tensor *y = tg_tensor_from(TG_F32, 1, (int64_t[]){ N_EXTREME }, yf);
    tg_tensor *x64 = tg_tensor_from(TG_F64, 1, (int64_t[]){ N_EXTREME }, extreme_x);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_bce_opts opts = TG_BCE_OPTS_DEFAULT;
    opts.reduction = TG_NONE;
    tg_tensor *loss = tg_binary_cross_entropy_with_logits(tape, x, y, &opts);
    cr_assert_not_null(loss, "%s", tg_last_error());
    tg_tensor *ones = tg_tensor_new(TG_F32, 1, (int64_t[]){ N_EXTREME });
    for (int i = 0; i < N_EXTREME; i++)
        tg_set(ones, i, 1);
    backward(tape, loss, ones);
    for (int i = 0; i < N_EXTREME; i++) {
        long double t = extreme_x[i], yi = extreme_y[i];
        assert_close(tg_get(loss, i), (double)bce_ld(t, yi), 1e-6, "float32 loss", i);
        assert_close(tg_get(tg_grad(x), i), (double)(sigmoid_ld(t) - yi), 1e-6, "float32 dx", i);
    }
    tg_tensor *sp = tg_softplus(tape, x64), *ls = tg_log_sigmoid(tape, x64);
    cr_assert_not_null(sp, "%s", tg_last_error());
    cr_assert_not_null(ls, "%s", tg_last_error());
    for (int i = 0; i < N_EXTREME; i++) {
        assert_close(tg_get(sp, i), (double)softplus_ld(extreme_x[i]), 1e-15, "softplus", i);
        assert_close(tg_get(ls, i), (double)-softplus_ld(-(long double)extreme_x[i]), 1e-15, "log_sigmoid", i);
    }
    tg_tape_free(tape);
    tg_tensor *owned[] = { x, y, x64, ones };
    for (size_t o = 0; o < sizeof owned / sizeof *owned; o++)
        tg_tensor_free(owned[o]);
}

/* ============================================================ float32 */

/* Many elements (past several blocks, with a ragged tail), float32 against long double per element:
 * relative 2e-6 even where the loss is tiny (y = 1, x large: the log1p tail of softplus). */
Test(binary_losses_float32, long_vector_against_long_double)
{
    int64_t n = 1000 + 3;
    tg_tensor *x = random_tensor(TG_F32, 1, &n, 71, -30, 30);
    tg_tensor *y = random_tensor(TG_F32, 1, &n, 72, 0, 1);
    for (int64_t i = 0; i < n; i += 3) /* a third of the targets hard, agreeing with the logit's sign */
        tg_set(y, i, tg_get(x, i) > 0 ? 1 : 0);
    tg_tensor *upstream = tg_tensor_new(TG_F32, 1, &n);
    for (int64_t i = 0; i < n; i++)
        tg_set(upstream, i, 1);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_bce_opts opts = TG_BCE_OPTS_DEFAULT;
    opts.reduction = TG_NONE;
    tg_tensor *loss = tg_binary_cross_entropy_with_logits(tape, x, y, &opts);
    cr_assert_not_null(loss, "%s", tg_last_error());
    backward(tape, loss, upstream);
    long double total = 0;
    for (int64_t i = 0; i < n; i++) {
        long double t = tg_get(x, i), yi = tg_get(y, i);
        long double want = bce_ld(t, yi), got = tg_get(loss, i);
        total += want;
        cr_assert(fabsl(got - want) <= 2e-6L * fabsl(want) + 1e-37L,
                  "loss[%lld] = %.9g, expected %.12Lg (x %.9Lg, y %.9Lg)", (long long)i, (double)got, want, t, yi);
        assert_close(tg_get(tg_grad(x), i), (double)(sigmoid_ld(t) - yi), 1e-6, "dx", i);
    }
    tg_tensor *mean = tg_binary_cross_entropy_with_logits(tape, x, y, NULL);
    cr_assert_not_null(mean, "%s", tg_last_error());
    assert_close(tg_get(mean, 0), (double)(total / (long double)n), 1e-6, "mean", 0);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(upstream);
}

/* ================================================================ errors */

typedef struct {
    tg_tape *tape;
    tg_tensor *x, *y, *x32;
} error_fixture;

static error_fixture error_setup(void)
{
    error_fixture f = { .tape = tg_tape_new() };
    f.x = random_tensor(TG_F64, 2, (int64_t[]){ 4, 3 }, 11, 0.1, 0.9);
    f.y = random_tensor(TG_F64, 2, (int64_t[]){ 4, 3 }, 12, 0, 1);
    f.x32 = random_tensor(TG_F32, 2, (int64_t[]){ 4, 3 }, 13, 0.1, 0.9);
    return f;
}

static void error_teardown(error_fixture *f)
{
    tg_tape_free(f->tape);
    tg_tensor_free(f->x);
    tg_tensor_free(f->y);
    tg_tensor_free(f->x32);
}

Test(binary_losses_errors, target_shape_and_dtype)
{
    error_fixture f = error_setup();
    tg_tensor *y_short = tg_tensor_new(TG_F64, 2, (int64_t[]){ 4, 2 });
    tg_tensor *y_flat = tg_tensor_new(TG_F64, 1, (int64_t[]){ 12 });
    tg_tensor *y_i64 = tg_tensor_new(TG_I64, 2, (int64_t[]){ 4, 3 });
    tg_tensor *y_f32 = tg_tensor_new(TG_F32, 2, (int64_t[]){ 4, 3 });
    ASSERT_ERROR("target [4, 2]", tg_binary_cross_entropy_with_logits(f.tape, f.x, y_short, NULL),
                 "binary_cross_entropy_with_logits", "[4, 2]", "[4, 3]");
    ASSERT_ERROR("target [12]", tg_binary_cross_entropy_with_logits(f.tape, f.x, y_flat, NULL), "[12]", "[4, 3]");
    ASSERT_ERROR("int64 target", tg_binary_cross_entropy_with_logits(f.tape, f.x, y_i64, NULL), "int64", "float64");
    ASSERT_ERROR("float32 target", tg_binary_cross_entropy_with_logits(f.tape, f.x, y_f32, NULL), "float32", "float64");
    ASSERT_ERROR("bce target [4, 2]", tg_binary_cross_entropy(f.tape, f.x, y_short, NULL),
                 "binary_cross_entropy:", "[4, 2]", "[4, 3]");
    ASSERT_ERROR("bce int64 target", tg_binary_cross_entropy(f.tape, f.x, y_i64, NULL), "int64");
    ASSERT_ERROR("int64 logits", tg_binary_cross_entropy_with_logits(f.tape, y_i64, y_i64, NULL), "int64");
    ASSERT_ERROR("softplus of int64", tg_softplus(f.tape, y_i64), "softplus", "int64");
    ASSERT_ERROR("log_sigmoid of int64", tg_log_sigmoid(f.tape, y_i64), "log_sigmoid", "int64");
    tg_tensor *owned[] = { y_short, y_flat, y_i64, y_f32 };
    for (size_t o = 0; o < sizeof owned / sizeof *owned; o++)
        tg_tensor_free(owned[o]);
    error_teardown(&f);
}

Test(binary_losses_errors, weight_and_pos_weight_shape_and_dtype)
{
    error_fixture f = error_setup();
    tg_tensor *w2 = tg_tensor_new(TG_F64, 1, (int64_t[]){ 2 });
    tg_tensor *w4 = tg_tensor_new(TG_F64, 1, (int64_t[]){ 4 });
    tg_tensor *w_big = tg_tensor_new(TG_F64, 3, (int64_t[]){ 2, 4, 3 });
    tg_tensor *w32 = tg_tensor_new(TG_F32, 1, (int64_t[]){ 3 });
    tg_tensor *w_i64 = tg_tensor_new(TG_I64, 1, (int64_t[]){ 3 });
    tg_bce_opts opts = TG_BCE_OPTS_DEFAULT;
    opts.weight = w2;
    ASSERT_ERROR("weight [2]", tg_binary_cross_entropy_with_logits(f.tape, f.x, f.y, &opts),
                 "binary_cross_entropy_with_logits", "weight", "[2]", "[4, 3]");
    ASSERT_ERROR("bce weight [2]", tg_binary_cross_entropy(f.tape, f.x, f.y, &opts), "binary_cross_entropy:", "weight",
                 "[2]", "[4, 3]");
    opts.weight = w_big; /* broadcastable, but it would make the loss larger than the input: PyTorch refuses it too */
    ASSERT_ERROR("weight [2, 4, 3]", tg_binary_cross_entropy_with_logits(f.tape, f.x, f.y, &opts), "weight",
                 "[2, 4, 3]", "[4, 3]");
    opts.weight = w32;
    ASSERT_ERROR("float32 weight", tg_binary_cross_entropy_with_logits(f.tape, f.x, f.y, &opts), "weight", "float32",
                 "float64");
    opts.weight = w_i64;
    ASSERT_ERROR("int64 weight", tg_binary_cross_entropy(f.tape, f.x, f.y, &opts), "weight", "int64");
    opts = TG_BCE_OPTS_DEFAULT;
    opts.pos_weight = w4; /* one per row is [4, 1]; [4] lines up with the 3 classes */
    ASSERT_ERROR("pos_weight [4]", tg_binary_cross_entropy_with_logits(f.tape, f.x, f.y, &opts), "pos_weight", "[4]",
                 "[4, 3]");
    opts.pos_weight = w32;
    ASSERT_ERROR("float32 pos_weight", tg_binary_cross_entropy_with_logits(f.tape, f.x, f.y, &opts), "pos_weight",
                 "float32", "float64");
    opts.pos_weight = w_big;
    ASSERT_ERROR("pos_weight for bce", tg_binary_cross_entropy(f.tape, f.x, f.y, &opts),
                 "binary_cross_entropy:", "pos_weight");
    opts = TG_BCE_OPTS_DEFAULT;
    opts.reduction = (tg_reduction)7;
    ASSERT_ERROR("reduction 7", tg_binary_cross_entropy_with_logits(f.tape, f.x, f.y, &opts), "reduction 7");
    tg_tensor *owned[] = { w2, w4, w_big, w32, w_i64 };
    for (size_t o = 0; o < sizeof owned / sizeof *owned; o++)
        tg_tensor_free(owned[o]);
    error_teardown(&f);
}

Test(binary_losses_errors, probability_outside_unit_interval)
{
    error_fixture f = error_setup();
    double bad[] = { 1.5, -1e-9, NAN, INFINITY };
    const char *shown[] = { "= 1.5", "= -1e-09", "= nan", "= inf" };
    for (int k = 0; k < 4; k++) {
        tg_set(f.x, 5, bad[k]); /* [1, 2] of [4, 3] */
        tg_set(f.x, 9, 2.0); /* a later one is not the first */
        ASSERT_ERROR("p out of [0, 1]", tg_binary_cross_entropy(f.tape, f.x, f.y, NULL), "binary_cross_entropy",
                     "input[5]", "at [1, 2]", shown[k], "[4, 3]", "[0, 1]");
        tg_set(f.x32, 5, bad[k]);
        ASSERT_ERROR("float32 p out of [0, 1]", tg_binary_cross_entropy(f.tape, f.x32, f.x32, NULL), "input[5]");
    }
    tg_tensor *p0 = scalar(1.25), *y0 = scalar(1);
    ASSERT_ERROR("0-D p", tg_binary_cross_entropy(f.tape, p0, y0, NULL), "input[0] = 1.25", "shape []");
    tg_tensor_free(p0);
    tg_tensor_free(y0);
    error_teardown(&f);
}

Test(binary_losses_errors, null_inputs_keep_the_first_error)
{
    error_fixture f = error_setup();
    ASSERT_ERROR("NULL logits", tg_binary_cross_entropy_with_logits(f.tape, tg_softmax(f.tape, f.x, 5), f.y, NULL),
                 "axis 5");
    ASSERT_ERROR("NULL probs", tg_binary_cross_entropy(f.tape, tg_softmax(f.tape, f.x, 5), f.y, NULL), "axis 5");
    ASSERT_ERROR("NULL softplus", tg_softplus(f.tape, tg_softmax(f.tape, f.x, 5)), "axis 5");
    cr_assert_null(tg_binary_cross_entropy_with_logits(f.tape, f.x, NULL, NULL));
    cr_assert_null(tg_binary_cross_entropy(f.tape, f.x, NULL, NULL));
    ASSERT_ERROR("NULL tape", tg_binary_cross_entropy_with_logits(NULL, f.x, f.y, NULL),
                 "binary_cross_entropy_with_logits", "tape");
    ASSERT_ERROR("NULL tape", tg_binary_cross_entropy(NULL, f.x, f.y, NULL), "binary_cross_entropy", "tape");
    error_teardown(&f);
}

/* A failing call records nothing and leaves every gradient as it was. */
Test(binary_losses_errors, failure_writes_no_gradient)
{
    error_fixture f = error_setup();
    tg_set_requires_grad(f.x, 1);
    tg_set_requires_grad(f.y, 1);
    tg_tensor *loss = tg_binary_cross_entropy_with_logits(f.tape, f.x, f.y, NULL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    backward(f.tape, loss, NULL);
    double before_x[12], before_y[12];
    for (int i = 0; i < 12; i++) {
        before_x[i] = tg_get(tg_grad(f.x), i);
        before_y[i] = tg_get(tg_grad(f.y), i);
    }
    int64_t nodes = tg_tape_size(f.tape);
    tg_tensor *w2 = tg_tensor_new(TG_F64, 1, (int64_t[]){ 2 });
    tg_bce_opts opts = TG_BCE_OPTS_DEFAULT;
    opts.weight = w2;
    cr_assert_null(tg_binary_cross_entropy_with_logits(f.tape, f.x, f.y, &opts));
    tg_tensor *p_bad = tg_tensor_clone(f.x);
    tg_set_requires_grad(p_bad, 1);
    tg_set(p_bad, 3, 1.5);
    cr_assert_null(tg_binary_cross_entropy(f.tape, p_bad, f.y, NULL));
    cr_assert_null(tg_grad(p_bad));
    cr_assert_eq(tg_tape_size(f.tape), nodes, "a failed op was recorded");
    cr_assert_eq(tg_backward(f.tape, loss), 0, "%s", tg_last_error()); /* the tape still walks */
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(tg_get(tg_grad(f.x), i), 2 * before_x[i], "dx[%d]", i);
        cr_assert_eq(tg_get(tg_grad(f.y), i), 2 * before_y[i], "dy[%d]", i);
    }
    tg_tensor_free(w2);
    tg_tensor_free(p_bad);
    error_teardown(&f);
}

/* ================================================================= misc */

/* An empty input: the mean is NaN (0/0, PyTorch's mean of nothing), sum 0, none empty. */
Test(binary_losses_misc, empty_input)
{
    tg_tensor *x = tg_tensor_new(TG_F64, 2, (int64_t[]){ 0, 3 }), *y = tg_tensor_new(TG_F64, 2, (int64_t[]){ 0, 3 });
    tg_tensor *pw = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_reduction reductions[] = { TG_MEAN, TG_SUM, TG_NONE };
    for (int r = 0; r < 3; r++)
        for (int op = 0; op < 2; op++) {
            tg_bce_opts opts = { .reduction = reductions[r], .pos_weight = op ? NULL : pw };
            tg_tensor *loss = op ? tg_binary_cross_entropy(tape, x, y, &opts)
                                 : tg_binary_cross_entropy_with_logits(tape, x, y, &opts);
            cr_assert_not_null(loss, "%s", tg_last_error());
            if (reductions[r] == TG_NONE) {
                cr_assert_eq(tg_numel(loss), 0);
                continue;
            }
            cr_assert(reductions[r] == TG_MEAN ? isnan(tg_get(loss, 0)) : tg_get(loss, 0) == 0, "%s %s: %g",
                      op ? "bce" : "with logits", reduction_name(reductions[r]), tg_get(loss, 0));
            backward(tape, loss, NULL);
        }
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(pw);
}

/* L = bce_logits(x, y) + bce(sigmoid(x), y) on one tape: dx is twice sigmoid(x) - y over the count. */
Test(binary_losses_misc, gradients_accumulate_and_no_recording)
{
    tg_tensor *x = random_tensor(TG_F64, 1, (int64_t[]){ 6 }, 21, -3, 3);
    tg_tensor *y = random_tensor(TG_F64, 1, (int64_t[]){ 6 }, 22, 0, 1);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_add(tape, tg_binary_cross_entropy_with_logits(tape, x, y, NULL),
                             tg_binary_cross_entropy(tape, tg_sigmoid(tape, x), y, NULL));
    cr_assert_not_null(loss, "%s", tg_last_error());
    backward(tape, loss, NULL);
    for (int i = 0; i < 6; i++)
        assert_close(tg_get(tg_grad(x), i), (double)(2 * (sigmoid_ld(tg_get(x, i)) - tg_get(y, i)) / 6), 1e-12, "dx",
                     i);
    tg_tape_reset(tape);
    tg_tape_set_recording(tape, 0);
    tg_tensor *plain = tg_binary_cross_entropy_with_logits(tape, x, y, NULL);
    cr_assert_not_null(plain, "%s", tg_last_error());
    long double want = 0;
    for (int i = 0; i < 6; i++)
        want += bce_ld(tg_get(x, i), tg_get(y, i)) / 6;
    assert_close(tg_get(plain, 0), (double)want, 1e-14, "loss without recording", 0);
    cr_assert_eq(tg_tape_size(tape), 0);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

/* ====================================================== the references' source */

/* The committed reference numbers are exactly what the committed script prints (with the PyTorch it names). */
Test(binary_losses_torch, references_come_from_the_script)
{
    if (system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
        cr_skip_test("/usr/bin/python3 with torch (Debian's python3-torch) is not installed");
    char *dir = make_temp_dir("tapegrad-bce");
    char *fresh = join_path(dir, "reference.h"), command[2048];
    snprintf(command, sizeof command, "/usr/bin/python3 '%s/tests/binary_losses_reference.py' > '%s'",
             TAPEGRAD_SOURCE_DIR, fresh);
    cr_assert_eq(system(command), 0, "%s failed", command);
    size_t fresh_size = 0, committed_size = 0;
    unsigned char *fresh_bytes = read_bytes(fresh, &fresh_size);
    char committed_path[1024];
    snprintf(committed_path, sizeof committed_path, "%s/tests/binary_losses_reference.h", TAPEGRAD_SOURCE_DIR);
    unsigned char *committed = read_bytes(committed_path, &committed_size);
    const unsigned char *fresh_eol = memchr(fresh_bytes, '\n', fresh_size);
    const unsigned char *committed_eol = memchr(committed, '\n', committed_size);
    size_t first_line = fresh_eol ? (size_t)(fresh_eol - fresh_bytes) : fresh_size;
    if (!committed_eol || (size_t)(committed_eol - committed) != first_line ||
        memcmp(fresh_bytes, committed, first_line) != 0) { /* the first line names PyTorch's version */
        free(fresh_bytes);
        free(committed);
        cr_skip_test("another PyTorch than the one the references were made with");
    }
    cr_assert(fresh_size == committed_size && memcmp(fresh_bytes, committed, fresh_size) == 0,
              "tests/binary_losses_reference.h differs from what tests/binary_losses_reference.py prints");
    unlink(fresh);
    rmdir(dir);
    free(fresh_bytes);
    free(committed);
    free(fresh);
    free(dir);
}
