/* tg_binary_cross_entropy_with_logits, tg_binary_cross_entropy, tg_softplus and tg_log_sigmoid:
 * PyTorch's values and gradients at every shape and option, gradchecks, the fused node against the
 * composed sigmoid -> log path, extreme logits, float32, and the error messages. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static const char *reduction_name(tg_reduction r)
{
    return r == TG_MEAN ? "mean" : r == TG_SUM ? "sum" : "none";
}

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
static void check_reference(const bce_reference *c, tg_dtype dtype, double tol)
{
    int64_t n = numel_of(c->ndim, c->shape);
    tg_tensor *x = tensor_of(dtype, c->ndim, c->shape, c->x);
    tg_tensor *y = c->y ? tensor_of(dtype, c->ndim, c->shape, c->y) : NULL;
    tg_tensor *w = c->w ? tensor_of(dtype, c->w_ndim, c->w_shape, c->w) : NULL;
    tg_tensor *pw = c->pw ? tensor_of(dtype, c->pw_ndim, c->pw_shape, c->pw) : NULL;
    tg_tensor *upstream = c->upstream ? tensor_of(dtype, c->ndim, c->shape, c->upstream) : NULL;
    tg_set_requires_grad(x, 1);
    if (y && c->gy)
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
    if (y && c->gy) {
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

/* Every reference case of op; returns how many ran. float32 within 1e-5 (relative above 1) of float64. */
static int check_references(ref_op op)
{
    int ran = 0;
    for (size_t k = 0; k < N_REFERENCES; k++)
        if (bce_references[k].op == op) {
            check_reference(&bce_references[k], TG_F64, 1e-12);
            check_reference(&bce_references[k], TG_F32, 2e-5);
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
                tg_tensor *inputs[2] = { random_tensor(TG_F64, c->ndim, c->shape, ++seed, lo, hi),
                                         random_tensor(TG_F64, c->ndim, c->shape, ++seed, 0, 1) };
                tg_tensor *w = weighted && c->w_ndim >= 0
                                   ? random_tensor(TG_F64, c->w_ndim, c->w_shape, ++seed, 0.1, 2)
                                   : NULL;
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
