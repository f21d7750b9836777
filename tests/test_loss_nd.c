/* tg_cross_entropy and tg_nll_loss over inputs [N, C, d1, ..., dk] (class
 * axis 1): PyTorch's and ONNX's values and gradients (tests/ref/nd_loss_refs.h,
 * written by tests/ref/make_nd_loss_refs.py), tg_gradcheck over a table of
 * shapes and options, the fused node against a path composed of other ops on
 * shapes of several tiles, thread-count independence, and the errors. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
    tg_tensor *target =
        c->labels ? tg_tensor_from(TG_I64, tndim, tshape, c->labels) : from_doubles(dtype, c->ndim, c->shape, c->probs);
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
    { 2, { 3, 4 } },       { 2, { 1, 3 } },       { 3, { 2, 3, 4 } },       { 3, { 1, 4, 3 } },
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

static const char *const variant_names[] = { "plain",         "weight",         "ignore",      "ignore in range",
                                             "ignore high",   "ignore -1",      "all ignored", "smoothing",
                                             "probabilities", "prob smoothing", "nll",         "nll ignore" };

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
        bool ignored =
            v == V_ALL_IGNORED ||
            ((v == V_IGNORE || v == V_IGNORE_HIGH || v == V_IGNORE_NEGATIVE || v == V_SMOOTH || v == V_NLL_IGNORE) &&
             i % 3 == 1);
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
                 reduction == TG_MEAN  ? "mean"
                 : reduction == TG_SUM ? "sum"
                                       : "none",
                 report.worst_input, (long long)report.worst_index, report.analytic, report.numeric, tg_last_error());
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

/* ================================================================ fused vs composed, several tiles */

typedef struct {
    tg_dtype dtype;
    int ndim;
    int64_t shape[5];
    int probabilities;
    int weighted;
    int ignore_every; /* class indices: every this many positions get ignore_index (0: none) */
    double label_smoothing;
    tg_reduction reduction;
} compose_case;

/* -sum_c q_c log_softmax(x)_c per position from ops that know nothing of cross-entropy, then the reduction,
 * the mean dividing by denominator. */
static tg_tensor *composed_loss(tg_tape *tape, tg_tensor *x, tg_tensor *q, tg_reduction reduction,
                                tg_tensor *denominator)
{
    tg_tensor *per_position = tg_neg(tape, tg_sum(tape, tg_mul(tape, q, tg_log_softmax(tape, x, 1)), 1));
    if (reduction == TG_NONE)
        return per_position;
    tg_tensor *total = tg_sum(tape, per_position, TG_ALL);
    return reduction == TG_SUM ? total : tg_div(tape, total, denominator);
}

/* Class indices of the target's shape, every `ignore_every`-th position (from 1) set to -100. */
static tg_tensor *indices_with_ignored(const nd_shape *s, int ignore_every, uint64_t seed)
{
    int64_t tshape[5], positions = 1;
    int tndim = target_shape(s->ndim, s->shape, tshape);
    for (int a = 0; a < tndim; a++)
        positions *= tshape[a];
    tg_tensor *flat = random_labels(positions, s->shape[1], seed);
    tg_tensor *labels = tg_tensor_from(TG_I64, tndim, tshape, tg_data(flat));
    tg_tensor_free(flat);
    for (int64_t p = 1; ignore_every && p < positions; p += ignore_every)
        ((int64_t *)tg_data(labels))[p] = -100;
    return labels;
}

/* q = (1 - eps) w_t onehot(t) + eps / C w at each position not ignored (0 where ignored), along axis 1;
 * the mean's denominator, the sum of w_t over kept positions, into *denominator. */
static tg_tensor *class_index_q(tg_tape *tape, const compose_case *k, const tg_tensor *labels, const tg_tensor *w,
                                double *denominator)
{
    int64_t classes = k->shape[1], inner = 1;
    for (int a = 2; a < k->ndim; a++)
        inner *= k->shape[a];
    double eps = k->label_smoothing;
    tg_tensor *q = tg_tape_tensor(tape, k->dtype, k->ndim, k->shape);
    const int64_t *t = tg_data(labels);
    *denominator = 0;
    for (int64_t p = 0; p < tg_numel(labels); p++) {
        int64_t n = p / inner, j = p % inner;
        double wt = t[p] < 0 ? 0 : k->weighted ? tg_get(w, t[p]) : 1;
        for (int64_t c = 0; c < classes && t[p] >= 0; c++)
            tg_set(q, (n * classes + c) * inner + j,
                   eps / (double)classes * (k->weighted ? tg_get(w, c) : 1) + (c == t[p]) * (1 - eps) * wt);
        *denominator += wt;
    }
    return q;
}

static void check_composed(const compose_case *k, uint64_t seed)
{
    const nd_shape s = { k->ndim, { k->shape[0], k->shape[1], k->shape[2], k->shape[3], k->shape[4] } };
    int64_t classes = s.shape[1], inner = 1, tshape[5], wshape[5] = { 1, classes, 1, 1, 1 };
    int tndim = target_shape(s.ndim, s.shape, tshape);
    for (int a = 2; a < s.ndim; a++)
        inner *= s.shape[a];
    int64_t positions = s.shape[0] * inner, numel = positions * classes;
    double eps = k->label_smoothing, tol = k->dtype == TG_F64 ? 1e-10 : 2e-5;
    tg_tensor *x64 = random_tensor(TG_F64, s.ndim, s.shape, seed, -6, 6);
    tg_tensor *w64 = random_tensor(TG_F64, 1, &classes, seed + 1, 0.1, 2);
    tg_tensor *y64 = k->probabilities ? random_probabilities(&s, seed + 2) : NULL;
    tg_tensor *upstream64 = random_tensor(TG_F64, tndim, tshape, seed + 3, -2, 2);
    tg_tensor *x = from_doubles(k->dtype, s.ndim, s.shape, tg_data(x64));
    tg_tensor *x_composed = from_doubles(k->dtype, s.ndim, s.shape, tg_data(x64));
    tg_tensor *w = from_doubles(k->dtype, 1, &classes, tg_data(w64));
    tg_tensor *w_axis1 = from_doubles(k->dtype, s.ndim, wshape, tg_data(w64)); /* w along axis 1 */
    tg_tensor *upstream = from_doubles(k->dtype, tndim, tshape, tg_data(upstream64));
    tg_tensor *y = NULL, *y_composed = NULL, *labels = NULL, *q;
    tg_tape *tape = tg_tape_new(), *composed_tape = tg_tape_new();
    double denominator = 0;
    if (k->probabilities) {
        y = from_doubles(k->dtype, s.ndim, s.shape, tg_data(y64));
        y_composed = from_doubles(k->dtype, s.ndim, s.shape, tg_data(y64));
        tg_set_requires_grad(y, 1);
        tg_set_requires_grad(y_composed, 1);
        tg_tensor *keep = tg_tape_tensor(composed_tape, k->dtype, 0, NULL);
        tg_tensor *spread = tg_tape_tensor(composed_tape, k->dtype, 0, NULL);
        tg_set(keep, 0, 1 - eps);
        tg_set(spread, 0, eps / (double)classes);
        q = tg_add(composed_tape, tg_mul(composed_tape, y_composed, keep), spread);
        q = k->weighted ? tg_mul(composed_tape, w_axis1, q) : q;
        denominator = (double)positions;
    } else {
        labels = indices_with_ignored(&s, k->ignore_every, seed + 4);
        q = class_index_q(composed_tape, k, labels, w64, &denominator);
    }
    tg_tensor *denom = tg_tape_tensor(composed_tape, k->dtype, 0, NULL);
    tg_set(denom, 0, denominator);
    tg_set_requires_grad(x, 1);
    tg_set_requires_grad(x_composed, 1);
    tg_ce_opts opts = {
        .reduction = k->reduction, .weight = k->weighted ? w : NULL, .ignore_index = -100, .label_smoothing = eps
    };
    char what[128];
    snprintf(what, sizeof what, "%s [%lld, %lld, ...] (%d axes) %s", tg_dtype_name(k->dtype), (long long)s.shape[0],
             (long long)classes, s.ndim, k->probabilities ? "probabilities" : "indices");
    tg_tensor *fused = tg_cross_entropy(tape, x, labels ? labels : y, &opts);
    tg_tensor *composed = composed_loss(composed_tape, x_composed, q, k->reduction, denom);
    cr_assert_not_null(fused, "%s: %s", what, tg_last_error());
    cr_assert_not_null(composed, "%s: %s", what, tg_last_error());
    cr_assert_eq(tg_numel(fused), tg_numel(composed), "%s", what);
    for (int64_t i = 0; i < tg_numel(fused); i++)
        assert_close(tg_get(fused, i), tg_get(composed, i), tol, what, i);
    backward(tape, fused, upstream, what);
    backward(composed_tape, composed, upstream, what);
    for (int64_t i = 0; i < numel; i++)
        assert_close(tg_get(tg_grad(x), i), tg_get(tg_grad(x_composed), i), tol, "dx", i);
    for (int64_t i = 0; y && i < numel; i++)
        assert_close(tg_get(tg_grad(y), i), tg_get(tg_grad(y_composed), i), tol, "dy", i);
    tg_tape_free(tape);
    tg_tape_free(composed_tape);
    tg_tensor *owned[] = { x64, w64, y64, upstream64, x, x_composed, w, w_axis1, upstream, y, y_composed, labels };
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        tg_tensor_free(owned[i]);
}

Test(loss_nd_composed, several_tiles)
{
    /* a row of 2500 positions is walked in tiles of 1024, 1024 and 452 */
    static const compose_case cases[] = {
        { TG_F64, 3, { 1, 3, 2500 }, 0, 1, 7, 0.1, TG_NONE },
        { TG_F64, 3, { 1, 3, 2500 }, 0, 1, 7, 0.1, TG_MEAN },
        { TG_F64, 4, { 2, 40, 7, 10 }, 0, 0, 0, 0.0, TG_MEAN },
        { TG_F64, 3, { 2, 7, 1300 }, 1, 1, 0, 0.2, TG_SUM },
        { TG_F64, 5, { 2, 3, 5, 3, 70 }, 1, 0, 0, 0.0, TG_NONE },
        { TG_F32, 3, { 2, 40, 1100 }, 0, 1, 5, 0.05, TG_MEAN },
        { TG_F32, 3, { 2, 5, 1030 }, 1, 1, 0, 0.1, TG_NONE },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_composed(&cases[i], 900 + 10 * i);
}

/* ================================================================ threads, layouts */

Test(loss_nd_misc, same_bits_with_one_and_two_threads)
{
    /* enough work for two threads; losses are summed in position order afterwards */
    int64_t shape[] = { 4, 10, 4100 }, tshape[] = { 4, 4100 };
    tg_tensor *x = random_tensor(TG_F32, 3, shape, 71, -5, 5);
    tg_tensor *flat = random_labels(4 * 4100, 10, 72);
    tg_tensor *labels = tg_tensor_from(TG_I64, 2, tshape, tg_data(flat));
    tg_tensor *w = random_tensor(TG_F32, 1, &shape[1], 73, 0.1, 2);
    ((int64_t *)tg_data(labels))[5] = -100;
    tg_set_requires_grad(x, 1);
    int before = tg_num_threads();
    float loss[2], *grad[2];
    for (int run = 0; run < 2; run++) {
        tg_set_num_threads(run + 1);
        tg_zero_grad(x);
        tg_tape *tape = tg_tape_new();
        tg_ce_opts opts = { .reduction = TG_MEAN, .weight = w, .ignore_index = -100, .label_smoothing = 0.1 };
        tg_tensor *l = tg_cross_entropy(tape, x, labels, &opts);
        cr_assert_not_null(l, "%s", tg_last_error());
        cr_assert_eq(tg_backward(tape, l), 0, "%s", tg_last_error());
        loss[run] = *(float *)tg_data(l);
        grad[run] = malloc((size_t)tg_numel(x) * sizeof(float));
        memcpy(grad[run], tg_data(tg_grad(x)), (size_t)tg_numel(x) * sizeof(float));
        tg_tape_free(tape);
    }
    tg_set_num_threads(before);
    cr_assert_eq(memcmp(&loss[0], &loss[1], sizeof(float)), 0, "loss %.9g vs %.9g", loss[0], loss[1]);
    cr_assert_eq(memcmp(grad[0], grad[1], (size_t)tg_numel(x) * sizeof(float)), 0, "gradients differ");
    free(grad[0]);
    free(grad[1]);
    tg_tensor_free(x);
    tg_tensor_free(flat);
    tg_tensor_free(labels);
    tg_tensor_free(w);
}

Test(loss_nd_misc, trailing_axes_of_one_are_the_2d_loss)
{
    /* [K, C, 1, 1] with targets [K, 1, 1] is [K, C] with targets [K], bit for bit; TG_NONE keeps [K, 1, 1] */
    int64_t shape2[] = { 6, 5 }, shape4[] = { 6, 5, 1, 1 }, tshape[] = { 6, 1, 1 };
    tg_tensor *x2 = random_tensor(TG_F64, 2, shape2, 81, -3, 3);
    tg_tensor *x4 = tg_tensor_from(TG_F64, 4, shape4, tg_data(x2));
    tg_tensor *t1 = random_labels(6, 5, 82);
    tg_tensor *t3 = tg_tensor_from(TG_I64, 3, tshape, tg_data(t1));
    tg_set_requires_grad(x2, 1);
    tg_set_requires_grad(x4, 1);
    tg_ce_opts opts = { .reduction = TG_NONE, .ignore_index = -100, .label_smoothing = 0.3 };
    tg_tape *tape = tg_tape_new();
    tg_tensor *l2 = tg_cross_entropy(tape, x2, t1, &opts), *l4 = tg_cross_entropy(tape, x4, t3, &opts);
    cr_assert(l2 && l4, "%s", tg_last_error());
    cr_assert_eq(tg_ndim(l4), 3);
    cr_assert(tg_shape(l4)[0] == 6 && tg_shape(l4)[1] == 1 && tg_shape(l4)[2] == 1);
    cr_assert_eq(memcmp(tg_data(l2), tg_data(l4), 6 * sizeof(double)), 0);
    cr_assert_eq(tg_backward(tape, tg_add(tape, tg_sum(tape, l2, TG_ALL), tg_sum(tape, l4, TG_ALL))), 0, "%s",
                 tg_last_error());
    cr_assert_eq(memcmp(tg_data(tg_grad(x2)), tg_data(tg_grad(x4)), 30 * sizeof(double)), 0);
    tg_tape_free(tape);
    tg_tensor_free(x2);
    tg_tensor_free(x4);
    tg_tensor_free(t1);
    tg_tensor_free(t3);
}

/* ================================================================ errors */

Test(loss_nd_errors, target_shape)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 4, (int64_t[]){ 2, 3, 4, 5 });
    tg_tensor *t_axis = tg_tensor_new(TG_I64, 3, (int64_t[]){ 2, 4, 6 });
    tg_tensor *t_axes = tg_tensor_new(TG_I64, 2, (int64_t[]){ 2, 20 });
    tg_tensor *t_c = tg_tensor_new(TG_I64, 3, (int64_t[]){ 2, 3, 4 });
    tg_tensor *probs = tg_tensor_new(TG_F64, 4, (int64_t[]){ 2, 3, 5, 4 });
    ASSERT_ERROR("target [2, 4, 6]", tg_cross_entropy(tape, x, t_axis, NULL), "cross_entropy", "[2, 4, 6]",
                 "[2, 3, 4, 5]", "expected [2, 4, 5]", "axis 2 is 6, expected 5");
    ASSERT_ERROR("target [2, 20]", tg_nll_loss(tape, x, t_axes, NULL), "nll_loss", "[2, 20]", "expected [2, 4, 5]",
                 "2 axes, expected 3");
    ASSERT_ERROR("target [2, 3, 4]", tg_cross_entropy(tape, x, t_c, NULL), "axis 1 is 3, expected 4");
    ASSERT_ERROR("probabilities [2, 3, 5, 4]", tg_cross_entropy(tape, x, probs, NULL), "probability target",
                 "[2, 3, 5, 4]", "[2, 3, 4, 5]", "axis 2 is 5, expected 4");
    tg_tape_free(tape);
    tg_tensor *owned[] = { x, t_axis, t_axes, t_c, probs };
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        tg_tensor_free(owned[i]);
}

Test(loss_nd_errors, class_out_of_range_names_the_position)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_new(TG_F32, 3, (int64_t[]){ 2, 3, 4 });
    tg_tensor *t = tg_tensor_new(TG_I64, 2, (int64_t[]){ 2, 4 });
    int64_t *labels = tg_data(t);
    labels[6] = 3; /* position [1, 2] */
    labels[7] = -2;
    ASSERT_ERROR("class 3", tg_cross_entropy(tape, x, t, NULL), "cross_entropy", "target[1, 2] = 3", "3 classes",
                 "or -100 to ignore", "target [2, 4]", "input [2, 3, 4]");
    ASSERT_ERROR("class 3, nll", tg_nll_loss(tape, x, t, NULL), "nll_loss", "target[1, 2] = 3");
    tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
    opts.ignore_index = 3; /* out of range, so ignored: the first bad one is now -2 */
    ASSERT_ERROR("class -2", tg_cross_entropy(tape, x, t, &opts), "target[1, 3] = -2", "or 3 to ignore");
    opts.ignore_index = -2;
    ASSERT_ERROR("class 3 again", tg_cross_entropy(tape, x, t, &opts), "target[1, 2] = 3");
    labels[6] = -2;
    cr_assert_not_null(tg_cross_entropy(tape, x, t, &opts), "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(t);
}

Test(loss_nd_errors, weight_and_smoothing)
{
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 3, (int64_t[]){ 2, 3, 4 });
    tg_tensor *t = tg_tensor_new(TG_I64, 2, (int64_t[]){ 2, 4 });
    tg_tensor *w4 = tg_tensor_new(TG_F64, 1, (int64_t[]){ 4 });
    tg_tensor *w32 = tg_tensor_new(TG_F32, 1, (int64_t[]){ 3 });
    tg_tensor *w2d = tg_tensor_new(TG_F64, 2, (int64_t[]){ 1, 3 });
    tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
    opts.weight = w4; /* [d] instead of [C] */
    ASSERT_ERROR("weight [4]", tg_cross_entropy(tape, x, t, &opts), "cross_entropy", "weight", "[4]",
                 "expected float64 [3]");
    opts.weight = w32;
    ASSERT_ERROR("weight float32", tg_nll_loss(tape, x, t, &opts), "nll_loss", "weight is float32 [3]", "float64");
    opts.weight = w2d;
    ASSERT_ERROR("weight [1, 3]", tg_cross_entropy(tape, x, t, &opts), "weight is float64 [1, 3]");
    opts.weight = NULL;
    double bad[] = { INFINITY, -INFINITY, NAN, 1.5, -0.25 };
    for (int i = 0; i < 5; i++) {
        opts.label_smoothing = bad[i];
        ASSERT_ERROR("label_smoothing", tg_cross_entropy(tape, x, t, &opts), "cross_entropy", "label_smoothing",
                     "finite");
    }
    tg_tape_free(tape);
    tg_tensor *owned[] = { x, t, w4, w32, w2d };
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        tg_tensor_free(owned[i]);
}

Test(loss_nd_errors, a_failed_call_leaves_gradients_alone)
{
    tg_tensor *x = random_tensor(TG_F64, 3, (int64_t[]){ 2, 3, 4 }, 61, -1, 1);
    tg_tensor *y = random_tensor(TG_F64, 3, (int64_t[]){ 2, 3, 4 }, 62, 0, 1);
    tg_tensor *t = random_labels(8, 3, 63), *bad = tg_tensor_new(TG_I64, 2, (int64_t[]){ 2, 4 });
    tg_tensor *labels = tg_tensor_from(TG_I64, 2, (int64_t[]){ 2, 4 }, tg_data(t));
    ((int64_t *)tg_data(bad))[3] = 9;
    tg_set_requires_grad(x, 1);
    tg_set_requires_grad(y, 1);
    tg_tape *tape = tg_tape_new();
    cr_assert_eq(tg_backward(tape, tg_cross_entropy(tape, x, labels, NULL)), 0, "%s", tg_last_error());
    double before[24];
    for (int i = 0; i < 24; i++)
        before[i] = tg_get(tg_grad(x), i);
    tg_ce_opts smooth = TG_CE_OPTS_DEFAULT;
    smooth.label_smoothing = NAN;
    tg_tensor *failed = tg_add(tape, tg_cross_entropy(tape, x, bad, NULL), tg_cross_entropy(tape, x, y, &smooth));
    cr_assert_null(failed);
    cr_assert_eq(tg_backward(tape, failed), -1, "backward of NULL must fail");
    for (int i = 0; i < 24; i++)
        cr_assert_eq(tg_get(tg_grad(x), i), before[i], "dx[%d] changed", i);
    cr_assert_null(tg_grad(y), "y has no gradient yet");
    tg_tape_free(tape);
    tg_tensor *owned[] = { x, y, t, bad, labels };
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        tg_tensor_free(owned[i]);
}
