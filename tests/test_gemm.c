/* The matrix-product kernels (thin ones of the library's own, BLAS or plain C
 * for the rest) against a long-double reference, through tg_linear's forward
 * (x W^T) and backward (G W and G^T x), and tg_matmul + tg_add's (x W + b with
 * W [in, out]: G W^T, x^T G and the bias's column sums), at shapes that hit
 * every path: vector bodies and scalar tails, an odd row count, thin and
 * not-thin widths, sums longer than a kernel's stack copy; 1 and 2 threads. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>

#include "helpers.h"

typedef struct {
    int64_t m, in, out;
    tg_dtype dtype;
} gemm_case;

static long double at(const tg_tensor *t, int64_t i) { return (long double)tg_get(t, i); }

ParameterizedTestParameters(gemm, linear_matches_long_double)
{
    static gemm_case cases[] = {
        { 7, 37, 10, TG_F32 },   { 7, 37, 10, TG_F64 },  { 1, 784, 10, TG_F32 }, { 128, 784, 10, TG_F32 },
        { 5, 33, 16, TG_F64 },   { 3, 100, 17, TG_F32 }, { 3, 100, 17, TG_F64 }, { 2, 15, 1, TG_F32 },
        { 64, 256, 10, TG_F64 }, { 9, 64, 300, TG_F32 }, { 33, 17, 16, TG_F32 }, { 4, 8, 3, TG_F64 },
        { 3, 1500, 10, TG_F32 }, { 10, 9, 9, TG_F64 },
    };
    return cr_make_param_array(gemm_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(gemm_case *c, gemm, linear_matches_long_double)
{
    tg_tensor *x = random_tensor(c->dtype, 2, (int64_t[]){ c->m, c->in }, 1, -1, 1);
    tg_tensor *w = random_tensor(c->dtype, 2, (int64_t[]){ c->out, c->in }, 2, -1, 1);
    tg_tensor *g = random_tensor(c->dtype, 2, (int64_t[]){ c->m, c->out }, 3, -1, 1);
    tg_set_requires_grad(x, 1);
    tg_set_requires_grad(w, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_linear(tape, x, w, NULL);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_backward_with(tape, y, g), 0, "%s", tg_last_error());
    /* float32 rounding grows with the sum's length; 1e-5 relative per term is generous and still tight. */
    double tol = c->dtype == TG_F32 ? 2e-5 * (double)c->in : 1e-12 * (double)c->in;
    for (int64_t i = 0; i < c->m; i++)
        for (int64_t o = 0; o < c->out; o++) {
            long double ref = 0;
            for (int64_t p = 0; p < c->in; p++)
                ref += at(x, i * c->in + p) * at(w, o * c->in + p);
            cr_assert(fabs(tg_get(y, i * c->out + o) - (double)ref) <= tol, "y[%lld,%lld] = %.10g, expected %.10g",
                      (long long)i, (long long)o, tg_get(y, i * c->out + o), (double)ref);
        }
    double gtol = c->dtype == TG_F32 ? 2e-5 * (double)(c->m + c->out) : 1e-12 * (double)(c->m + c->out);
    for (int64_t i = 0; i < c->m; i++)
        for (int64_t p = 0; p < c->in; p++) {
            long double ref = 0; /* dx = G W */
            for (int64_t o = 0; o < c->out; o++)
                ref += at(g, i * c->out + o) * at(w, o * c->in + p);
            cr_assert(fabs(tg_get(tg_grad(x), i * c->in + p) - (double)ref) <= gtol, "dx[%lld,%lld]", (long long)i,
                      (long long)p);
        }
    for (int64_t o = 0; o < c->out; o++)
        for (int64_t p = 0; p < c->in; p++) {
            long double ref = 0; /* dW = G^T x */
            for (int64_t i = 0; i < c->m; i++)
                ref += at(g, i * c->out + o) * at(x, i * c->in + p);
            cr_assert(fabs(tg_get(tg_grad(w), o * c->in + p) - (double)ref) <= gtol, "dW[%lld,%lld]", (long long)o,
                      (long long)p);
        }
    /* A second backward accumulates: every gradient doubles. */
    double dw0 = tg_get(tg_grad(w), 0);
    cr_assert_eq(tg_backward_with(tape, y, g), 0);
    cr_assert(fabs(tg_get(tg_grad(w), 0) - 2 * dw0) <= 2 * gtol);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(g);
}

typedef struct {
    int64_t m, in, out;
    tg_dtype dtype;
    int threads;
} matmul_case;

ParameterizedTestParameters(gemm, matmul_matches_long_double)
{
    static matmul_case cases[] = {
        { 128, 784, 10, TG_F32, 1 }, { 128, 784, 10, TG_F64, 1 }, { 128, 784, 10, TG_F32, 2 },
        { 128, 784, 10, TG_F64, 2 }, { 7, 37, 10, TG_F32, 1 },    { 7, 37, 10, TG_F64, 2 },
        { 1, 784, 10, TG_F32, 1 },   { 5, 33, 16, TG_F64, 1 },    { 3, 100, 17, TG_F32, 2 },
        { 3, 100, 17, TG_F64, 1 },   { 2, 15, 1, TG_F32, 1 },     { 64, 256, 10, TG_F64, 2 },
        { 9, 64, 300, TG_F32, 1 },   { 33, 17, 16, TG_F32, 2 },   { 4, 8, 3, TG_F64, 1 },
        { 3, 1500, 10, TG_F32, 1 },  { 3, 2100, 9, TG_F64, 2 },   { 1100, 8, 10, TG_F32, 1 },
        { 1030, 5, 3, TG_F64, 2 },   { 10, 9, 9, TG_F64, 1 },     { 32, 64, 10, TG_F32, 2 },
        { 128, 256, 10, TG_F32, 1 }, { 17, 31, 2, TG_F64, 2 },
    };
    return cr_make_param_array(matmul_case, cases, sizeof cases / sizeof cases[0]);
}

/* x W + b with W [in, out] (the textbook layout), every gradient against a long-double sum. */
ParameterizedTest(matmul_case *c, gemm, matmul_matches_long_double)
{
    tg_set_num_threads(c->threads);
    tg_tensor *x = random_tensor(c->dtype, 2, (int64_t[]){ c->m, c->in }, 1, -1, 1);
    tg_tensor *w = random_tensor(c->dtype, 2, (int64_t[]){ c->in, c->out }, 2, -1, 1);
    tg_tensor *b = random_tensor(c->dtype, 1, (int64_t[]){ c->out }, 4, -1, 1);
    tg_tensor *g = random_tensor(c->dtype, 2, (int64_t[]){ c->m, c->out }, 3, -1, 1);
    tg_set_requires_grad(x, 1);
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(b, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_add(tape, tg_matmul(tape, x, w), b);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_backward_with(tape, y, g), 0, "%s", tg_last_error());
    double tol = c->dtype == TG_F32 ? 2e-5 * (double)c->in : 1e-12 * (double)c->in;
    for (int64_t i = 0; i < c->m; i++)
        for (int64_t o = 0; o < c->out; o++) {
            long double ref = at(b, o);
            for (int64_t p = 0; p < c->in; p++)
                ref += at(x, i * c->in + p) * at(w, p * c->out + o);
            cr_assert(fabs(tg_get(y, i * c->out + o) - (double)ref) <= tol, "y[%lld,%lld] = %.10g, expected %.10g",
                      (long long)i, (long long)o, tg_get(y, i * c->out + o), (double)ref);
        }
    double gtol = c->dtype == TG_F32 ? 2e-5 * (double)(c->m + c->out) : 1e-12 * (double)(c->m + c->out);
    for (int64_t i = 0; i < c->m; i++)
        for (int64_t p = 0; p < c->in; p++) {
            long double ref = 0; /* dx = G W^T */
            for (int64_t o = 0; o < c->out; o++)
                ref += at(g, i * c->out + o) * at(w, p * c->out + o);
            cr_assert(fabs(tg_get(tg_grad(x), i * c->in + p) - (double)ref) <= gtol, "dx[%lld,%lld]", (long long)i,
                      (long long)p);
        }
    for (int64_t p = 0; p < c->in; p++)
        for (int64_t o = 0; o < c->out; o++) {
            long double ref = 0; /* dW = x^T G */
            for (int64_t i = 0; i < c->m; i++)
                ref += at(x, i * c->in + p) * at(g, i * c->out + o);
            cr_assert(fabs(tg_get(tg_grad(w), p * c->out + o) - (double)ref) <= gtol,
                      "dW[%lld,%lld] = %.10g, "
                      "expected %.10g",
                      (long long)p, (long long)o, tg_get(tg_grad(w), p * c->out + o), (double)ref);
        }
    for (int64_t o = 0; o < c->out; o++) {
        long double ref = 0; /* db = column sums of G */
        for (int64_t i = 0; i < c->m; i++)
            ref += at(g, i * c->out + o);
        cr_assert(fabs(tg_get(tg_grad(b), o) - (double)ref) <= gtol, "db[%lld]", (long long)o);
    }
    /* A second backward accumulates: every gradient doubles. */
    double dw0 = tg_get(tg_grad(w), 0), dx0 = tg_get(tg_grad(x), 0);
    cr_assert_eq(tg_backward_with(tape, y, g), 0);
    cr_assert(fabs(tg_get(tg_grad(w), 0) - 2 * dw0) <= 2 * gtol);
    cr_assert(fabs(tg_get(tg_grad(x), 0) - 2 * dx0) <= 2 * gtol);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_tensor_free(g);
}
