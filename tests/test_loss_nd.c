/* tg_cross_entropy and tg_nll_loss over inputs [N, C, d1, ..., dk] (class
 * axis 1): PyTorch's and ONNX's values and gradients (tests/ref/nd_loss_refs.h,
 * written by tests/ref/make_nd_loss_refs.py), tg_gradcheck over a table of
 * shapes and options, the fused node against a path composed of other ops on
 * shapes of several tiles, thread-count independence, and the errors. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"
#include "ref/nd_loss_refs.h"

/* |got - want| <= tol * max(1, |want|); two NaNs are equal. */
static void assert_close(double got, double want, double tol, const char *what, int64_t i)
{
    double scale = fabs(want) > 1 ? fabs(want) : 1;
    cr_assert(close_enough(got, want, tol * scale), "%s[%lld] = %.17g, expected %.17g (tol %g)", what, (long long)i,
              got, want, tol);
}

static tg_tensor *from_doubles(tg_dtype dtype, int ndim, const int64_t *shape, const double *values)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    cr_assert_not_null(t, "%s", tg_last_error());
    for (int64_t i = 0; i < tg_numel(t); i++)
        tg_set(t, i, values[i]);
    return t;
}

/* The target's shape: the input's without axis 1. */
static int target_shape(int ndim, const int64_t *shape, int64_t *out)
{
    for (int a = 0, k = 0; a < ndim; a++)
        if (a != 1)
            out[k++] = shape[a];
    return ndim - 1;
}

static tg_tensor *run_loss(nd_op op, tg_tape *tape, tg_tensor *x, tg_tensor *target, const tg_ce_opts *opts)
{
    return op == ND_CE ? tg_cross_entropy(tape, x, target, opts) : tg_nll_loss(tape, x, target, opts);
}

/* Runs backward from loss: seeded with 1 for a scalar, with upstream for a TG_NONE loss. */
static void backward(tg_tape *tape, tg_tensor *loss, const tg_tensor *upstream, const char *what)
{
    int rc = tg_ndim(loss) == 0 ? tg_backward(tape, loss) : tg_backward_with(tape, loss, upstream);
    cr_assert_eq(rc, 0, "%s: backward: %s", what, tg_last_error());
}

/* ================================================================ PyTorch */

static void check_torch_case(const nd_torch_case *c, tg_dtype dtype, double tol)
{
    int64_t tshape[5], classes = c->shape[1];
    int tndim = target_shape(c->ndim, c->shape, tshape);
    tg_tensor *x = from_doubles(dtype, c->ndim, c->shape, c->x);
    tg_tensor *target = c->labels ? tg_tensor_from(TG_I64, tndim, tshape, c->labels)
                                  : from_doubles(dtype, c->ndim, c->shape, c->probs);
    tg_tensor *weight = c->weight ? from_doubles(dtype, 1, &classes, c->weight) : NULL;
    tg_tensor *upstream = from_doubles(dtype, tndim, tshape, c->upstream);
    tg_set_requires_grad(x, 1);
    if (!c->labels)
        tg_set_requires_grad(target, 1);
    tg_ce_opts opts = { .reduction = c->reduction,
                        .weight = weight,
                        .ignore_index = c->ignore_index,
                        .label_smoothing = c->label_smoothing };
    char what[128];
    snprintf(what, sizeof what, "%s (%s)", c->name, tg_dtype_name(dtype));
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = run_loss(c->op, tape, x, target, &opts);
    cr_assert_not_null(loss, "%s: %s", what, tg_last_error());
    cr_assert_eq(tg_numel(loss), c->n_loss, "%s", what);
    if (c->reduction == TG_NONE) { /* the target's shape */
        cr_assert_eq(tg_ndim(loss), tndim, "%s", what);
        for (int a = 0; a < tndim; a++)
            cr_assert_eq(tg_shape(loss)[a], tshape[a], "%s: axis %d", what, a);
    } else {
        cr_assert_eq(tg_ndim(loss), 0, "%s", what);
    }
    for (int64_t i = 0; i < c->n_loss; i++)
        assert_close(tg_get(loss, i), c->loss[i], tol, what, i);
    backward(tape, loss, upstream, what);
    cr_assert_not_null(tg_grad(x), "%s: no gradient", what);
    strcat(what, " dx");
    for (int64_t i = 0; i < tg_numel(x); i++)
        assert_close(tg_get(tg_grad(x), i), c->dx[i], tol, what, i);
    if (c->dy) {
        strcat(what, " dy");
        for (int64_t i = 0; i < tg_numel(x); i++)
            assert_close(tg_get(tg_grad(target), i), c->dy[i], tol, what, i);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(target);
    tg_tensor_free(weight);
    tg_tensor_free(upstream);
}

#define N_TORCH_CASES (sizeof nd_torch_cases / sizeof *nd_torch_cases)

Test(loss_nd_torch, float64)
{
    for (size_t i = 0; i < N_TORCH_CASES; i++)
        check_torch_case(&nd_torch_cases[i], TG_F64, 1e-12);
}

Test(loss_nd_torch, float32)
{
    /* the same inputs rounded to float32, against PyTorch's float64 numbers */
    for (size_t i = 0; i < N_TORCH_CASES; i++)
        check_torch_case(&nd_torch_cases[i], TG_F32, 2e-5);
}

/* ================================================================ ONNX */

static void check_onnx_case(const nd_onnx_case *c, tg_dtype dtype)
{
    int64_t tshape[5], classes = c->shape[1], numel = 1;
    int tndim = target_shape(c->ndim, c->shape, tshape);
    tg_tensor *x = tg_tensor_new(dtype, c->ndim, c->shape);
    for (int a = 0; a < c->ndim; a++)
        numel *= c->shape[a];
    for (int64_t i = 0; i < numel; i++)
        tg_set(x, i, c->x[i]);
    tg_tensor *weight = NULL;
    if (c->weight) {
        weight = tg_tensor_new(dtype, 1, &classes);
        for (int64_t k = 0; k < classes; k++)
            tg_set(weight, k, c->weight[k]);
    }
    tg_tensor *labels = tg_tensor_from(TG_I64, tndim, tshape, c->labels);
    tg_ce_opts opts = { .reduction = c->reduction, .weight = weight, .ignore_index = c->ignore_index };
    char what[128];
    snprintf(what, sizeof what, "%s (%s)", c->name, tg_dtype_name(dtype));
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = run_loss(c->op, tape, x, labels, &opts);
    cr_assert_not_null(loss, "%s: %s", what, tg_last_error());
    cr_assert_eq(tg_numel(loss), c->n_loss, "%s", what);
    cr_assert_eq(tg_ndim(loss), c->reduction == TG_NONE ? tndim : 0, "%s", what);
    for (int64_t i = 0; i < c->n_loss; i++) /* numpy's reference rounds to float32 along the way */
        assert_close(tg_get(loss, i), c->loss[i], 1e-5, what, i);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(weight);
    tg_tensor_free(labels);
}

Test(loss_nd_onnx, node_tests)
{
    size_t n = sizeof nd_onnx_cases / sizeof *nd_onnx_cases;
    for (size_t i = 0; i < n; i++) {
        check_onnx_case(&nd_onnx_cases[i], TG_F32);
        check_onnx_case(&nd_onnx_cases[i], TG_F64);
    }
}

/* ================================================================ gradcheck */

typedef struct {
    int ndim;
    int64_t shape[5];
} nd_shape;

/* k = 0..3, batch 1 and more */
static const nd_shape grad_shapes[] = {
    { 2, { 3, 4 } },    { 2, { 1, 3 } },          { 3, { 2, 3, 4 } },          { 3, { 1, 4, 3 } },
    { 4, { 2, 3, 2, 2 } }, { 4, { 1, 3, 3, 2 } }, { 5, { 2, 3, 2, 1, 2 } }, { 5, { 1, 2, 2, 2, 2 } },
};

typedef enum {
    V_PLAIN,
    V_WEIGHT,
    V_IGNORE, /* weights, some positions -100 */
    V_IGNORE_IN_RANGE, /* ignore_index 1, a class */
    V_IGNORE_HIGH, /* ignore_index C + 2, some positions set to it */
    V_IGNORE_NEGATIVE, /* ignore_index -1 */
    V_ALL_IGNORED,
    V_SMOOTH, /* smoothing, weights, some ignored */
    V_PROB, /* probability targets, differentiated too */
    V_PROB_SMOOTH, /* with weights and smoothing */
    V_NLL,
    V_NLL_IGNORE, /* weights, some ignored */
    N_VARIANTS
} variant;

static const char *const variant_names[] = { "plain",          "weight",        "ignore",     "ignore in range",
                                             "ignore high",    "ignore -1",     "all ignored", "smoothing",
                                             "probabilities", "prob smoothing", "nll",        "nll ignore" };

typedef struct {
    const tg_tensor *labels; /* NULL: inputs[1] holds probability targets */
    tg_ce_opts opts;
    int nll;
} loss_fn_ctx;

static tg_tensor *loss_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    const loss_fn_ctx *c = ctx;
    tg_tensor *target = c->labels ? (tg_tensor *)c->labels : inputs[1];
    if (c->nll)
        return tg_nll_loss(tape, inputs[0], target, &c->opts);
    return tg_cross_entropy(tape, inputs[0], target, &c->opts);
}

/* Probabilities of x's shape: positive, each position's summing to 1 along axis 1. */
static tg_tensor *random_probabilities(const nd_shape *s, uint64_t seed)
{
    tg_tensor *y = random_tensor(TG_F64, s->ndim, s->shape, seed, 0.05, 1);
    int64_t classes = s->shape[1], inner = 1;
    for (int a = 2; a < s->ndim; a++)
        inner *= s->shape[a];
    for (int64_t n = 0; n < s->shape[0]; n++)
        for (int64_t j = 0; j < inner; j++) {
            double total = 0;
            for (int64_t c = 0; c < classes; c++)
                total += tg_get(y, (n * classes + c) * inner + j);
            for (int64_t c = 0; c < classes; c++)
                tg_set(y, (n * classes + c) * inner + j, tg_get(y, (n * classes + c) * inner + j) / total);
        }
    return y;
}

static tg_tensor *variant_labels(const nd_shape *s, variant v, uint64_t seed, int64_t *ignore_index)
{
    int64_t tshape[5], positions = 1, classes = s->shape[1];
    int tndim = target_shape(s->ndim, s->shape, tshape);
    for (int a = 0; a < tndim; a++)
        positions *= tshape[a];
    tg_tensor *flat = random_labels(positions, classes, seed);
    tg_tensor *labels = tg_tensor_from(TG_I64, tndim, tshape, tg_data(flat));
    tg_tensor_free(flat);
    int64_t *t = tg_data(labels);
    *ignore_index = v == V_IGNORE_IN_RANGE ? 1 : v == V_IGNORE_HIGH ? classes + 2 : v == V_IGNORE_NEGATIVE ? -1 : -100;
    for (int64_t i = 0; i < positions; i++) {
        bool ignored = v == V_ALL_IGNORED || ((v == V_IGNORE || v == V_IGNORE_HIGH || v == V_IGNORE_NEGATIVE ||
                                               v == V_SMOOTH || v == V_NLL_IGNORE) && i % 3 == 1);
        if (ignored)
            t[i] = *ignore_index;
    }
    if (v == V_IGNORE_IN_RANGE) { /* position 0 kept, the last ignored */
        t[0] = 0;
        t[positions - 1] = positions > 1 ? 1 : t[positions - 1];
    }
    return labels;
}

static void gradcheck_case(const nd_shape *s, variant v, tg_reduction reduction, uint64_t seed)
{
    int64_t classes = s->shape[1];
    int prob = v == V_PROB || v == V_PROB_SMOOTH;
    tg_tensor *inputs[2] = { random_tensor(TG_F64, s->ndim, s->shape, seed, -3, 3),
                             prob ? random_probabilities(s, seed + 1) : NULL };
    tg_tensor *weight = random_tensor(TG_F64, 1, &classes, seed + 2, 0.1, 2);
    loss_fn_ctx c = { .opts = TG_CE_OPTS_DEFAULT, .nll = v == V_NLL || v == V_NLL_IGNORE };
    tg_tensor *labels = prob ? NULL : variant_labels(s, v, seed + 3, &c.opts.ignore_index);
    c.labels = labels;
    c.opts.reduction = reduction;
    bool weighted = v == V_WEIGHT || v == V_IGNORE || v == V_IGNORE_IN_RANGE || v == V_SMOOTH || v == V_PROB_SMOOTH ||
                    v == V_NLL_IGNORE;
    c.opts.weight = weighted ? weight : NULL;
    c.opts.label_smoothing = v == V_SMOOTH ? 0.15 : v == V_PROB_SMOOTH ? 0.25 : 0;
    tg_set_requires_grad(inputs[0], 1);
    if (prob)
        tg_set_requires_grad(inputs[1], 1);
    tg_gradcheck_report report;
    int rc = tg_gradcheck(loss_fn, prob ? 2 : 1, inputs, &c, NULL, &report);
    cr_assert_eq(rc, 0, "ndim %d [%lld, %lld, ...] %s %s: input %d [%lld] analytic %g numeric %g (%s)", s->ndim,
                 (long long)s->shape[0], (long long)s->shape[1], variant_names[v],
                 reduction == TG_MEAN ? "mean" : reduction == TG_SUM ? "sum" : "none", report.worst_input,
                 (long long)report.worst_index, report.analytic, report.numeric, tg_last_error());
    tg_tensor_free(inputs[0]);
    tg_tensor_free(inputs[1]);
    tg_tensor_free(weight);
    tg_tensor_free(labels);
}

Test(loss_nd_gradcheck, every_shape_and_option)
{
    tg_reduction reductions[] = { TG_MEAN, TG_SUM, TG_NONE };
    uint64_t seed = 500;
    for (size_t s = 0; s < sizeof grad_shapes / sizeof *grad_shapes; s++)
        for (int v = 0; v < N_VARIANTS; v++)
            for (int r = 0; r < 3; r++) {
                seed += 10;
                if (v == V_ALL_IGNORED && reductions[r] == TG_MEAN)
                    continue; /* a NaN constant (0/0): the PyTorch cases check its zero gradient */
                gradcheck_case(&grad_shapes[s], (variant)v, reductions[r], seed);
            }
}
