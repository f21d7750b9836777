/* Numerical edge cases, one test each: the smallest shapes (one row, one
 * class, one feature), labels at the edges, a whole batch ignored, zero class
 * weights, logits at +-1e30, +-inf and NaN through softmax, log_softmax and
 * cross_entropy in both float dtypes, log of 0 and of negatives, and a
 * training run that diverges. Expected values are PyTorch 1.13's (the script
 * that printed them is quoted above each table) or follow from the formula by
 * hand; docs/robustness.md lists the results. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* ---- helpers ---- */

static tg_tensor *values(tg_dtype dtype, int ndim, const int64_t *shape, const double *v)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    cr_assert_not_null(t, "%s", tg_last_error());
    for (int64_t i = 0; i < tg_numel(t); i++)
        tg_set(t, i, v[i]);
    return t;
}

static tg_tensor *labels(int64_t n, const int64_t *y)
{
    tg_tensor *t = tg_tensor_from(TG_I64, 1, (int64_t[]){ n }, y);
    cr_assert_not_null(t, "%s", tg_last_error());
    return t;
}

/* NaN matches NaN, an infinity matches the same infinity, else a relative tolerance. */
static bool matches(double got, double want, double rtol)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= rtol * fmax(1.0, fabs(want));
}

static double tolerance(tg_dtype dtype) { return dtype == TG_F32 ? 2e-6 : 1e-14; }

static void assert_values(const tg_tensor *t, const double *want, double rtol, const char *what)
{
    cr_assert_not_null(t, "%s: %s", what, tg_last_error());
    for (int64_t i = 0; i < tg_numel(t); i++)
        cr_assert(matches(tg_get(t, i), want[i], rtol), "%s[%lld] = %.17g, expected %.17g", what, (long long)i,
                  tg_get(t, i), want[i]);
}

static void assert_all_exactly_zero(const tg_tensor *t, const char *what)
{
    cr_assert_not_null(t, "%s: no gradient", what);
    for (int64_t i = 0; i < tg_numel(t); i++)
        cr_assert(tg_get(t, i) == 0.0, "%s[%lld] = %.17g, expected exactly 0", what, (long long)i, tg_get(t, i));
}

static const tg_dtype both_dtypes[2] = { TG_F32, TG_F64 };

/* ---- the smallest shapes ---- */

/* PyTorch 1.13, float64:
 *   x = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64, requires_grad=True)
 *   l = F.cross_entropy(x, torch.tensor([2])); l.backward()
 *   l = 0.24131129665715703, x.grad = [[0.1752903921400367, 0.03911257327068745, -0.21440296541072412]] */
Test(numerics, batch_of_one)
{
    static const double x[3] = { 0.5, -1.0, 2.0 }, loss = 0.24131129665715703;
    static const double grad[3] = { 0.1752903921400367, 0.03911257327068745, -0.21440296541072412 };
    for (int d = 0; d < 2; d++)
        for (int ndim = 1; ndim <= 2; ndim++) { /* [1, 3] and the one-row form [3] */
            tg_dtype dtype = both_dtypes[d];
            const int64_t *shape = ndim == 2 ? (int64_t[]){ 1, 3 } : (int64_t[]){ 3 };
            tg_tensor *logits = values(dtype, ndim, shape, x);
            tg_tensor *target =
                ndim == 2 ? labels(1, (int64_t[]){ 2 }) : tg_tensor_from(TG_I64, 0, NULL, (int64_t[]){ 2 });
            cr_assert_not_null(target, "%s", tg_last_error());
            tg_set_requires_grad(logits, 1);
            tg_tape *tape = tg_tape_new();
            for (int r = 0; r < 3; r++) { /* mean, sum and none agree on one row */
                tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
                opts.reduction = (tg_reduction)r;
                tg_tape_reset(tape);
                tg_zero_grad(logits);
                tg_tensor *l = tg_cross_entropy(tape, logits, target, &opts);
                cr_assert_not_null(l, "%s", tg_last_error());
                cr_assert_eq(tg_numel(l), 1);
                cr_assert(matches(tg_get(l, 0), loss, tolerance(dtype)), "%s reduction %d: %.17g", tg_dtype_name(dtype),
                          r, tg_get(l, 0));
                cr_assert_eq(tg_backward(tape, l), 0, "%s", tg_last_error());
                assert_values(tg_grad(logits), grad, tolerance(dtype), "gradient");
            }
            tg_tape_free(tape);
            tg_tensor_free(logits);
            tg_tensor_free(target);
        }
}

/* C = 1: softmax is 1, log_softmax 0, the loss 0 and its gradient 0, whatever the logit.
 * PyTorch: F.cross_entropy(torch.tensor([[3.], [-2.]]), torch.tensor([0, 0])) = 0, grad [[0], [0]]. */
Test(numerics, one_class)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dtype = both_dtypes[d];
        tg_tensor *logits = values(dtype, 2, (int64_t[]){ 2, 1 }, (double[]){ 3.0, -2.0 });
        tg_tensor *target = labels(2, (int64_t[]){ 0, 0 });
        tg_set_requires_grad(logits, 1);
        tg_tape *tape = tg_tape_new();
        assert_values(tg_softmax(tape, logits, 1), (double[]){ 1, 1 }, 0, "softmax");
        assert_values(tg_log_softmax(tape, logits, 1), (double[]){ 0, 0 }, 0, "log_softmax");
        tg_tensor *l = tg_cross_entropy(tape, logits, target, NULL);
        cr_assert_not_null(l, "%s", tg_last_error());
        cr_assert(tg_get(l, 0) == 0.0, "loss %.17g", tg_get(l, 0));
        cr_assert_eq(tg_backward(tape, l), 0, "%s", tg_last_error());
        assert_all_exactly_zero(tg_grad(logits), "gradient");
        tg_tape_free(tape);
        tg_tensor_free(logits);
        tg_tensor_free(target);
    }
}

/* One input feature: linear [K, 1] x [C, 1]^T, checked by gradcheck. */
static tg_tensor *one_feature_loss(tg_tape *tape, tg_tensor *const *in, void *ctx)
{
    return tg_cross_entropy(tape, tg_linear(tape, in[0], in[1], in[2]), ctx, NULL);
}

Test(numerics, one_feature)
{
    tg_tensor *x = random_tensor(TG_F64, 2, (int64_t[]){ 5, 1 }, 1, -2, 2);
    tg_tensor *w = random_tensor(TG_F64, 2, (int64_t[]){ 3, 1 }, 2, -1, 1);
    tg_tensor *b = random_tensor(TG_F64, 1, (int64_t[]){ 3 }, 3, -1, 1);
    tg_tensor *y = labels(5, (int64_t[]){ 0, 2, 1, 2, 0 });
    tg_set_requires_grad(x, 1);
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(b, 1);
    tg_gradcheck_report report;
    int rc = tg_gradcheck(one_feature_loss, 3, (tg_tensor *[]){ x, w, b }, y, NULL, &report);
    cr_assert_eq(rc, 0, "gradcheck: %s (input %d [%lld]: analytic %g, numeric %g)", tg_last_error(), report.worst_input,
                 (long long)report.worst_index, report.analytic, report.numeric);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_tensor_free(y);
}

/* PyTorch 1.13, float64 (class 1 appears in no row; labels 0 and C-1 = 2 at the edges):
 *   x = torch.tensor([[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
 *   l = F.cross_entropy(x, torch.tensor([0, 2, 0])); l.backward()
 *   l = 0.9240006131070384
 *   x.grad = [[-0.256258700792617, 0.20951057307058746, 0.04674812772202949],
 *             [0.04940848762807404, 0.013465383724377847, -0.06287387135245184],
 *             [-0.2222222222222222, 0.1111111111111111, 0.1111111111111111]] */
Test(numerics, class_absent_from_the_batch)
{
    static const double x[9] = { 1.0, 2.0, 0.5, 0.3, -1.0, 2.0, 0.0, 0.0, 0.0 };
    static const double grad[9] = { -0.256258700792617,  0.20951057307058746,  0.04674812772202949,
                                    0.04940848762807404, 0.013465383724377847, -0.06287387135245184,
                                    -0.2222222222222222, 0.1111111111111111,   0.1111111111111111 };
    for (int d = 0; d < 2; d++) {
        tg_dtype dtype = both_dtypes[d];
        tg_tensor *logits = values(dtype, 2, (int64_t[]){ 3, 3 }, x);
        tg_tensor *target = labels(3, (int64_t[]){ 0, 2, 0 });
        tg_set_requires_grad(logits, 1);
        tg_tape *tape = tg_tape_new();
        tg_tensor *l = tg_cross_entropy(tape, logits, target, NULL);
        cr_assert_not_null(l, "%s", tg_last_error());
        cr_assert(matches(tg_get(l, 0), 0.9240006131070384, tolerance(dtype)), "loss %.17g", tg_get(l, 0));
        cr_assert_eq(tg_backward(tape, l), 0, "%s", tg_last_error());
        assert_values(tg_grad(logits), grad, tolerance(dtype), "gradient");
        /* The absent class still gets a gradient: its probability is pushed down in every row. */
        for (int r = 0; r < 3; r++)
            cr_assert_gt(tg_get(tg_grad(logits), r * 3 + 1), 0.0);
        tg_tape_free(tape);
        tg_tensor_free(logits);
        tg_tensor_free(target);
    }
}

Test(numerics, labels_at_the_edges)
{
    /* 0 and C-1 are classes; -1 and C are not (unless -1 is the ignore_index). */
    tg_tensor *logits = values(TG_F64, 2, (int64_t[]){ 2, 4 }, (double[]){ 0.1, 0.2, 0.3, 0.4, 1, -1, 2, -2 });
    tg_tape *tape = tg_tape_new();
    tg_tensor *edges = labels(2, (int64_t[]){ 0, 3 });
    tg_tensor *l = tg_cross_entropy(tape, logits, edges, NULL);
    cr_assert_not_null(l, "%s", tg_last_error());
    /* by hand: row 0: lse - 0.1, row 1: lse - (-2) */
    long double lse0 = logl(expl(0.1L) + expl(0.2L) + expl(0.3L) + expl(0.4L));
    long double lse1 = logl(expl(1.0L) + expl(-1.0L) + expl(2.0L) + expl(-2.0L));
    cr_assert(matches(tg_get(l, 0), (double)(((lse0 - 0.1L) + (lse1 + 2.0L)) / 2), 1e-15), "%.17g", tg_get(l, 0));

    static const int64_t outside[2][2] = { { 4, 0 }, { 0, -1 } };
    static const char *const messages[2] = {
        "cross_entropy: target[0] = 4 is out of range for 4 classes (expected 0 to 3, or -100 to ignore)",
        "cross_entropy: target[1] = -1 is out of range for 4 classes (expected 0 to 3, or -100 to ignore)"
    };
    for (int k = 0; k < 2; k++) {
        tg_tensor *bad = labels(2, outside[k]);
        tg_clear_error();
        cr_assert_null(tg_cross_entropy(tape, logits, bad, NULL));
        cr_assert_str_eq(tg_last_error(), messages[k]);
        tg_tensor_free(bad);
    }
    tg_ce_opts minus_one = TG_CE_OPTS_DEFAULT;
    minus_one.ignore_index = -1;
    tg_tensor *ignored = labels(2, outside[1]);
    l = tg_cross_entropy(tape, logits, ignored, &minus_one);
    cr_assert_not_null(l, "%s", tg_last_error());
    cr_assert(matches(tg_get(l, 0), (double)(lse0 - 0.1L), 1e-15), "%.17g", tg_get(l, 0));
    tg_tensor_free(ignored);
    tg_tensor_free(edges);
    tg_tape_free(tape);
    tg_tensor_free(logits);
}

/* PyTorch 1.13 (float64, every target -100):
 *   F.cross_entropy(x, torch.tensor([-100, -100]), reduction=r) -> mean nan, sum 0.0, none [0.0, 0.0],
 *   and x.grad = zeros after l.sum().backward() for all three. */
Test(numerics, ignore_index_covers_the_whole_batch)
{
    static const double x[6] = { 1.0, 2.0, 0.5, 0.3, -1.0, 2.0 };
    for (int d = 0; d < 2; d++)
        for (int r = 0; r < 3; r++) {
            tg_dtype dtype = both_dtypes[d];
            tg_tensor *logits = values(dtype, 2, (int64_t[]){ 2, 3 }, x);
            tg_tensor *target = labels(2, (int64_t[]){ -100, -100 });
            tg_set_requires_grad(logits, 1);
            tg_tape *tape = tg_tape_new();
            tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
            opts.reduction = (tg_reduction)r;
            tg_tensor *l = tg_cross_entropy(tape, logits, target, &opts);
            cr_assert_not_null(l, "%s", tg_last_error());
            if (opts.reduction == TG_MEAN)
                cr_assert(isnan(tg_get(l, 0)), "mean over no rows = %g, expected NaN (0/0)", tg_get(l, 0));
            else
                assert_all_exactly_zero(l, opts.reduction == TG_SUM ? "sum" : "none");
            tg_tensor *total = opts.reduction == TG_NONE ? tg_sum(tape, l, TG_ALL) : l;
            cr_assert_eq(tg_backward(tape, total), 0, "%s", tg_last_error());
            assert_all_exactly_zero(tg_grad(logits), "gradient");
            tg_tape_free(tape);
            tg_tensor_free(logits);
            tg_tensor_free(target);
        }
}

/* A NaN logit in an ignored row: that row adds nothing, so the loss stays finite.
 * PyTorch 1.13: x = [[nan, 0], [1, 2]], target [-100, 1] -> 0.31326168751822286 (the same), but its
 * composite log_softmax backward gives the ignored row a NaN gradient, where tapegrad's fused backward
 * gives it 0 (nothing depends on it); the kept row's gradient [0.2689414213699951, -0.2689414213699951]. */
Test(numerics, nan_in_an_ignored_row)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dtype = both_dtypes[d];
        tg_tensor *logits = values(dtype, 2, (int64_t[]){ 2, 2 }, (double[]){ NAN, 0, 1, 2 });
        tg_tensor *target = labels(2, (int64_t[]){ -100, 1 });
        tg_set_requires_grad(logits, 1);
        tg_tape *tape = tg_tape_new();
        tg_tensor *l = tg_cross_entropy(tape, logits, target, NULL);
        cr_assert_not_null(l, "%s", tg_last_error());
        cr_assert(matches(tg_get(l, 0), 0.31326168751822286, tolerance(dtype)), "%.17g", tg_get(l, 0));
        cr_assert_eq(tg_backward(tape, l), 0, "%s", tg_last_error());
        assert_values(tg_grad(logits), (double[]){ 0, 0, 0.2689414213699951, -0.2689414213699951 }, tolerance(dtype),
                      "gradient");
        tg_tape_free(tape);
        tg_tensor_free(logits);
        tg_tensor_free(target);
    }
}

/* ---- class weights summing to zero ---- */

Test(numerics, zero_class_weights_are_refused_by_the_config_loader)
{
    const char *json =
        "{\"data\": {\"train\": \"d.csv\"}, \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 3}]},"
        " \"loss\": {\"weight\": [0, 0, 0]}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}}";
    tg_clear_error();
    tg_config *cfg = tg_config_parse(json, NULL);
    cr_assert_null(cfg, "all-zero class weights were accepted");
    cr_assert_str_eq(tg_last_error(), "loss.weight: every weight is 0; at least one class must count");
    /* one weight above zero is enough */
    const char *one =
        "{\"data\": {\"train\": \"d.csv\"}, \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 3}]},"
        " \"loss\": {\"weight\": [0, 0, 0.5]}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}}";
    cfg = tg_config_parse(one, NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_config_free(cfg);
}

/* PyTorch 1.13 (float64, weight=torch.zeros(3), targets [0, 2]):
 *   mean: nan (0/0), gradient nan; sum: 0.0, gradient +-0; none: [0.0, 0.0], gradient +-0.
 * tapegrad's mean is NaN too; its gradient is documented (tapegrad.h) as zero, since no
 * kept row carries any weight: the one place it departs from PyTorch's NaN. */
Test(numerics, zero_class_weights_in_cross_entropy)
{
    static const double x[6] = { 1.0, 2.0, 0.5, 0.3, -1.0, 2.0 };
    for (int d = 0; d < 2; d++)
        for (int r = 0; r < 3; r++) {
            tg_dtype dtype = both_dtypes[d];
            tg_tensor *logits = values(dtype, 2, (int64_t[]){ 2, 3 }, x);
            tg_tensor *weight = values(dtype, 1, (int64_t[]){ 3 }, (double[]){ 0, 0, 0 });
            tg_tensor *target = labels(2, (int64_t[]){ 0, 2 });
            tg_set_requires_grad(logits, 1);
            tg_tape *tape = tg_tape_new();
            tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
            opts.reduction = (tg_reduction)r;
            opts.weight = weight;
            tg_tensor *l = tg_cross_entropy(tape, logits, target, &opts);
            cr_assert_not_null(l, "%s", tg_last_error());
            if (opts.reduction == TG_MEAN)
                cr_assert(isnan(tg_get(l, 0)), "mean with zero total weight = %g, expected NaN", tg_get(l, 0));
            else
                assert_all_exactly_zero(l, "loss");
            tg_tensor *total = opts.reduction == TG_NONE ? tg_sum(tape, l, TG_ALL) : l;
            cr_assert_eq(tg_backward(tape, total), 0, "%s", tg_last_error());
            assert_all_exactly_zero(tg_grad(logits), "gradient");
            tg_tape_free(tape);
            tg_tensor_free(logits);
            tg_tensor_free(weight);
            tg_tensor_free(target);
        }
}

/* ---- logits at +-1e30, +-inf and NaN ---- */

/* PyTorch 1.13 (/usr/bin/python3), for dt in (torch.float32, torch.float64) and each row r (x below):
 *   def leaf(): return torch.tensor(r, dtype=dt, requires_grad=True)
 *   x = leaf(); y = torch.softmax(x, 0); y[0].backward()          # softmax = y, dsoftmax0 = x.grad
 *   x = leaf(); y = torch.log_softmax(x, 0); y[1].backward()      # log_softmax = y, dlog_softmax1 = x.grad
 *   for t in (0, 1):
 *       x = leaf(); l = F.cross_entropy(x[None], torch.tensor([t])); l.backward()   # ce[t] = l, x.grad
 * gave (float32 identical up to float rounding of 1e30 = 1.0000000150474662e30):
 *   [1e30, 0]     softmax [1, 0]      log_softmax [0, -1e30]    ce t0 0,     grad [0, 0]; t1 1e30, grad [1, -1]
 *                 dsoftmax0 [0, -0]   dlog_softmax1 [-1, 1]
 *   [-1e30, 0]    softmax [0, 1]      log_softmax [-1e30, 0]    ce t0 1e30,  grad [-1, 1]; t1 0, grad [0, 0]
 *                 dsoftmax0 [0, 0]    dlog_softmax1 [0, 0]
 *   [1e30, 1e30]  softmax [.5, .5]    log_softmax [-ln 2, -ln 2]  ce t0 ln 2, grad [-.5, .5]; t1 ln 2, [.5, -.5]
 *                 dsoftmax0 [.25, -.25]  dlog_softmax1 [-.5, .5]      (ln 2 = 0.6931471805599453)
 *   [-1e30, -1e30] and [1e8, 1e8]: the same as [1e30, 1e30]
 *   [1e30, -1e30] softmax [1, 0]      log_softmax [0, -2e30]    ce t0 0, grad [0, 0]; t1 2e30, grad [1, -1]
 *                 dsoftmax0 [0, -0]   dlog_softmax1 [-1, 1]
 *   [-inf, 0]     softmax [0, 1]      log_softmax [-inf, 0]     ce t0 inf,   grad [-1, 1]; t1 0, grad [0, 0]
 *                 dsoftmax0 [0, 0]    dlog_softmax1 [0, 0]
 *   [inf, 0], [inf, inf], [-inf, -inf], [nan, 0], [0, nan]: every value and gradient nan */
typedef struct {
    const char *name;
    double x[2];
    double softmax[2], log_softmax[2], dsoftmax0[2], dlog_softmax1[2];
    double ce[2], ce_grad[2][2]; /* targets 0 and 1 */
} extreme;

#define LN2 0.6931471805599453
/* clang-format off */
/* every value and gradient NaN */
#define ALL_NAN {NAN, NAN}, {NAN, NAN}, {NAN, NAN}, {NAN, NAN}, {NAN, NAN}, {{NAN, NAN}, {NAN, NAN}}

static const extreme extremes[] = {
    /* name             x                      softmax     log_softmax     dsoftmax0     dlog_softmax1
                                               ce (targets 0, 1)   ce gradients (target 0), (target 1) */
    {"[1e30, 0]",       {1e30, 0},             {1, 0},     {0, -1e30},     {0, 0},       {-1, 1},
                                               {0, 1e30},          {{0, 0}, {1, -1}}},
    {"[-1e30, 0]",      {-1e30, 0},            {0, 1},     {-1e30, 0},     {0, 0},       {0, 0},
                                               {1e30, 0},          {{-1, 1}, {0, 0}}},
    {"[1e30, 1e30]",    {1e30, 1e30},          {.5, .5},   {-LN2, -LN2},   {.25, -.25},  {-.5, .5},
                                               {LN2, LN2},         {{-.5, .5}, {.5, -.5}}},
    {"[1e8, 1e8]",      {1e8, 1e8},            {.5, .5},   {-LN2, -LN2},   {.25, -.25},  {-.5, .5},
                                               {LN2, LN2},         {{-.5, .5}, {.5, -.5}}},
    {"[-1e30, -1e30]",  {-1e30, -1e30},        {.5, .5},   {-LN2, -LN2},   {.25, -.25},  {-.5, .5},
                                               {LN2, LN2},         {{-.5, .5}, {.5, -.5}}},
    {"[1e30, -1e30]",   {1e30, -1e30},         {1, 0},     {0, -2e30},     {0, 0},       {-1, 1},
                                               {0, 2e30},          {{0, 0}, {1, -1}}},
    {"[-inf, 0]",       {-INFINITY, 0},        {0, 1},     {-INFINITY, 0}, {0, 0},       {0, 0},
                                               {INFINITY, 0},      {{-1, 1}, {0, 0}}},
    {"[inf, 0]",        {INFINITY, 0},         ALL_NAN},
    {"[inf, inf]",      {INFINITY, INFINITY},  ALL_NAN},
    {"[-inf, -inf]",    {-INFINITY, -INFINITY}, ALL_NAN},
    {"[nan, 0]",        {NAN, 0},              ALL_NAN},
    {"[0, nan]",        {0, NAN},              ALL_NAN},
};
/* clang-format on */
enum { N_EXTREMES = sizeof extremes / sizeof *extremes };

typedef enum { OP_SOFTMAX, OP_LOG_SOFTMAX, OP_CROSS_ENTROPY } extreme_op;

/* Appends "case: what [i] = got, expected want" for each mismatch; returns the count. */
static int compare(char *report, size_t size, const char *name, const char *what, const tg_tensor *t,
                   const double *want, double rtol)
{
    int bad = 0;
    if (!t) {
        size_t used = strlen(report);
        snprintf(report + used, size - used, "\n  %s: %s: NULL (%s)", name, what, tg_last_error());
        return 1;
    }
    for (int64_t i = 0; i < tg_numel(t); i++)
        if (!matches(tg_get(t, i), want[i], rtol)) {
            size_t used = strlen(report);
            snprintf(report + used, size - used, "\n  %s: %s[%lld] = %.17g, expected %.17g", name, what, (long long)i,
                     tg_get(t, i), want[i]);
            bad++;
        }
    return bad;
}

static void check_extremes(extreme_op op, tg_dtype dtype)
{
    static const char *const op_names[] = { "softmax", "log_softmax", "cross_entropy" };
    char report[4096] = "";
    int bad = 0;
    double rtol = tolerance(dtype);
    for (int c = 0; c < N_EXTREMES; c++) {
        const extreme *e = &extremes[c];
        for (int variant = 0; variant < 2; variant++) { /* softmax: d/dx of output 0; CE: target 0 or 1 */
            if (op != OP_CROSS_ENTROPY && variant == 1)
                break;
            tg_tensor *x = values(dtype, 1, (int64_t[]){ 2 }, e->x);
            tg_set_requires_grad(x, 1);
            tg_tape *tape = tg_tape_new();
            cr_assert_not_null(tape);
            tg_tensor *y = NULL;
            const double *want_y = NULL, *want_grad = NULL;
            tg_tensor *seed = NULL, *target = NULL; /* the target lives until the backward is done */
            if (op == OP_SOFTMAX) {
                y = tg_softmax(tape, x, 0);
                want_y = e->softmax;
                want_grad = e->dsoftmax0;
                seed = values(dtype, 1, (int64_t[]){ 2 }, (double[]){ 1, 0 });
            } else if (op == OP_LOG_SOFTMAX) {
                y = tg_log_softmax(tape, x, 0);
                want_y = e->log_softmax;
                want_grad = e->dlog_softmax1;
                seed = values(dtype, 1, (int64_t[]){ 2 }, (double[]){ 0, 1 });
            } else {
                target = tg_tensor_from(TG_I64, 0, NULL, (int64_t[]){ variant });
                y = tg_cross_entropy(tape, x, target, NULL);
                want_y = &e->ce[variant];
                want_grad = e->ce_grad[variant];
                seed = values(dtype, 0, NULL, (double[]){ 1 });
            }
            char what[64];
            snprintf(what, sizeof what, op == OP_CROSS_ENTROPY ? "loss (target %d)" : "value", variant);
            bad += compare(report, sizeof report, e->name, what, y, want_y, rtol);
            if (y) {
                if (tg_backward_with(tape, y, seed) != 0) {
                    size_t used = strlen(report);
                    snprintf(report + used, sizeof report - used, "\n  %s: backward failed: %s", e->name,
                             tg_last_error());
                    bad++;
                } else {
                    snprintf(what, sizeof what, op == OP_CROSS_ENTROPY ? "gradient (target %d)" : "gradient", variant);
                    bad += compare(report, sizeof report, e->name, what, tg_grad(x), want_grad, rtol);
                }
            }
            tg_tensor_free(seed);
            tg_tensor_free(target);
            tg_tape_free(tape);
            tg_tensor_free(x);
        }
    }
    cr_assert_eq(bad, 0, "%s %s: %d values differ from PyTorch's:%s", op_names[op], tg_dtype_name(dtype), bad, report);
}

Test(numerics, softmax_extreme_logits_float32) { check_extremes(OP_SOFTMAX, TG_F32); }
Test(numerics, softmax_extreme_logits_float64) { check_extremes(OP_SOFTMAX, TG_F64); }
Test(numerics, log_softmax_extreme_logits_float32) { check_extremes(OP_LOG_SOFTMAX, TG_F32); }
Test(numerics, log_softmax_extreme_logits_float64) { check_extremes(OP_LOG_SOFTMAX, TG_F64); }
Test(numerics, cross_entropy_extreme_logits_float32) { check_extremes(OP_CROSS_ENTROPY, TG_F32); }
Test(numerics, cross_entropy_extreme_logits_float64) { check_extremes(OP_CROSS_ENTROPY, TG_F64); }

/* ---- log of 0 and of negatives ---- */

/* PyTorch 1.13, float64: torch.log(x).backward(ones) for x = 0.0, -0.0, -1.0, 2.0 gives
 *   values -inf, -inf, nan, 0.6931471805599453 and gradients (1/x) inf, -inf, -1.0, 0.5 */
Test(numerics, log_of_zero_and_negatives)
{
    static const double x[4] = { 0.0, -0.0, -1.0, 2.0 };
    static const double want[4] = { -INFINITY, -INFINITY, NAN, LN2 };
    static const double grad[4] = { INFINITY, -INFINITY, -1.0, 0.5 };
    for (int d = 0; d < 2; d++) {
        tg_dtype dtype = both_dtypes[d];
        tg_tensor *t = values(dtype, 1, (int64_t[]){ 4 }, x);
        tg_set_requires_grad(t, 1);
        tg_tape *tape = tg_tape_new();
        tg_tensor *y = tg_log(tape, t);
        assert_values(y, want, tolerance(dtype), "log");
        cr_assert_eq(tg_backward(tape, tg_sum(tape, y, TG_ALL)), 0, "%s", tg_last_error());
        assert_values(tg_grad(t), grad, tolerance(dtype), "d log");
        tg_tape_free(tape);
        tg_tensor_free(t);
    }
}

/* ---- training that diverges ---- */

static char *make_dir(void)
{
    char *dir = strdup("/tmp/tapegrad-numerics-XXXXXX");
    cr_assert_not_null(dir);
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static char *write_text(const char *dir, const char *name, const char *text)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    cr_assert_not_null(path);
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static const char diverging_config[] =
    "{\"data\": {\"train\": \"" TAPEGRAD_SOURCE_DIR "/data/iris.csv\", \"label\": \"species\", \"test_split\": 0.2},"
    " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 16}, {\"type\": \"relu\"},"
    " {\"type\": \"linear\", \"out\": 3}]},"
    " \"optimizer\": {\"type\": \"sgd\", \"lr\": 1e6}, \"train\": {\"epochs\": 50, \"batch_size\": 16}, \"seed\": 1}";

/* "loss became NaN at epoch E, step S" (or "infinite"): E and S from the message, or 0. */
static int diverged_at(const char *message, int *epoch, int *step)
{
    const char *p = strstr(message, "loss became ");
    if (!p)
        return 0;
    char kind[16];
    return sscanf(p, "loss became %15s at epoch %d, step %d", kind, epoch, step) == 3 &&
           (strcmp(kind, "NaN") == 0 || strcmp(kind, "infinite") == 0);
}

Test(numerics, diverging_training_stops_with_the_epoch_and_step)
{
    char *dir = make_dir(), *path = write_text(dir, "diverge.json", diverging_config);
    tg_config *cfg = tg_config_load(path);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_clear_error();
    tg_training *run = tg_train_config(cfg, NULL, NULL);
    const char *error = tg_last_error();
    cr_assert_null(run, "a run with lr 1e6 finished without noticing");
    int epoch = 0, step = 0;
    cr_assert(diverged_at(error, &epoch, &step), "unexpected message: %s", error);
    cr_assert(epoch >= 1 && epoch <= 50 && step >= 1 && step <= 8, "epoch %d, step %d: %s", epoch, step, error);
    cr_log_info("numerics: lr 1e6 on iris: %s", error);
    tg_config_free(cfg);

    /* The command says the same and saves no model. */
    char out[512], command[1024];
    snprintf(out, sizeof out, "%s/diverged.safetensors", dir);
    snprintf(command, sizeof command, "'%s' train '%s' --out '%s' --quiet 2>'%s/stderr.txt' >/dev/null", TAPEGRAD_CLI,
             path, out, dir);
    int status = system(command);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit status %d", status);
    cr_assert_neq(access(out, F_OK), 0, "the command saved a model from a diverged run");
    char stderr_path[512], text[1024] = "";
    snprintf(stderr_path, sizeof stderr_path, "%s/stderr.txt", dir);
    FILE *f = fopen(stderr_path, "r");
    cr_assert_not_null(f);
    size_t got = fread(text, 1, sizeof text - 1, f);
    text[got] = '\0';
    fclose(f);
    cr_assert(diverged_at(text, &epoch, &step), "the command printed: %s", text);
    cr_log_info("numerics: the command printed: %s", text);
    unlink(stderr_path);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

/* The smallest data a config can train on: one feature, batches of one (and a last batch of one). */
Test(numerics, training_with_one_feature_and_batches_of_one)
{
    char *dir = make_dir();
    char *csv = write_text(dir, "line.csv", "x,label\n-2,a\n-1.5,a\n-1,a\n-0.5,a\n0.5,b\n1,b\n1.5,b\n2,b\n2.5,b\n");
    for (int batch = 1; batch <= 2; batch++) { /* 9 rows: nine batches of one; four of two and one of one */
        char json[512];
        snprintf(json, sizeof json,
                 "{\"data\": {\"train\": \"line.csv\", \"test_split\": 0, \"validation_split\": 0},"
                 " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 2}]},"
                 " \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.5}, \"train\": {\"epochs\": 20, \"batch_size\": %d},"
                 " \"seed\": 4}",
                 batch);
        tg_config *cfg = tg_config_parse(json, dir);
        cr_assert_not_null(cfg, "%s", tg_last_error());
        tg_training *run = tg_train_config(cfg, NULL, NULL);
        cr_assert_not_null(run, "batch %d: %s", batch, tg_last_error());
        cr_assert_eq(tg_model_inputs(run->model), 1);
        cr_assert_eq(run->train->rows, 9);
        cr_assert_eq(run->epochs_run, 20);
        cr_assert(run->train_loss[19] < run->train_loss[0], "batch %d: loss %g -> %g", batch, run->train_loss[0],
                  run->train_loss[19]);
        tg_eval ev;
        cr_assert_eq(tg_evaluate(run->model, run->train, &ev), 0, "%s", tg_last_error());
        cr_assert_eq(ev.accuracy, 1.0, "batch %d: a threshold at 0 separates the classes; accuracy %g", batch,
                     ev.accuracy);
        tg_eval_clear(&ev);
        tg_training_free(run);
        tg_config_free(cfg);
    }
    unlink(csv);
    rmdir(dir);
    free(csv);
    free(dir);
}

/* One class in the data: the loss is 0 from the first step and stays 0. */
Test(numerics, training_on_a_single_class)
{
    char *dir = make_dir();
    char *csv = write_text(dir, "one.csv", "a,b,label\n1,2,only\n3,4,only\n5,6,only\n7,8,only\n");
    const char *json =
        "{\"data\": {\"train\": \"one.csv\", \"test_split\": 0, \"validation_split\": 0},"
        " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 1}]},"
        " \"optimizer\": {\"type\": \"adam\", \"lr\": 0.1}, \"train\": {\"epochs\": 3, \"batch_size\": 2}}";
    tg_config *cfg = tg_config_parse(json, dir);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_training *run = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(run, "%s", tg_last_error());
    cr_assert_eq(tg_model_classes(run->model), 1);
    for (int e = 0; e < run->epochs_run; e++)
        cr_assert(run->train_loss[e] == 0.0, "epoch %d: loss %g", e + 1, run->train_loss[e]);
    tg_eval ev;
    cr_assert_eq(tg_evaluate(run->model, run->train, &ev), 0, "%s", tg_last_error());
    cr_assert_eq(ev.accuracy, 1.0);
    cr_assert_eq(ev.loss, 0.0);
    tg_eval_clear(&ev);
    tg_training_free(run);
    tg_config_free(cfg);
    unlink(csv);
    rmdir(dir);
    free(csv);
    free(dir);
}
