/* tg_cross_entropy and tg_nll_loss: the fused node against the composed
 * path built from other ops, extreme logits, PyTorch's values and gradients,
 * and the error messages. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* |got - want| <= tol * max(1, |want|); two NaNs are equal. */
static void assert_close(double got, double want, double tol, const char *what, int64_t i)
{
    double scale = fabs(want) > 1 ? fabs(want) : 1;
    cr_assert(close_enough(got, want, tol * scale), "%s[%lld] = %.17g, expected %.17g (tol %g)", what, (long long)i,
              got, want, tol);
}

static tg_tensor *scalar(double v) { return tg_tensor_from(TG_F64, 0, (int64_t[]){ 1 }, (double[]){ v }); }

/* Runs backward from loss: seeded with 1 for a scalar, with upstream for a TG_NONE loss. */
static void backward(tg_tape *tape, tg_tensor *loss, const tg_tensor *upstream)
{
    int rc = tg_ndim(loss) == 0 ? tg_backward(tape, loss) : tg_backward_with(tape, loss, upstream);
    cr_assert_eq(rc, 0, "backward: %s", tg_last_error());
}

/* ===================================================== (a) fused vs composed */

typedef struct {
    int64_t rows, classes;
    int probabilities; /* probability targets, else class indices */
    int weighted;
    int ignore_a_row; /* class indices: row rows / 2 gets ignore_index */
    int64_t ignore_index;
    double label_smoothing;
    tg_reduction reduction;
    uint64_t seed;
} compose_case;

static const char *reduction_name(tg_reduction r) { return r == TG_MEAN ? "mean" : r == TG_SUM ? "sum" : "none"; }

/* The loss from ops that know nothing of cross-entropy:
 *   q = w * ((1 - eps) y + eps / C)                       (probabilities y)
 *   q = (1 - eps) w_t onehot(t) + eps / C w, 0 if ignored (class indices t)
 *   loss_i = -sum_c q_ic log(softmax(x)_ic), then the reduction, the mean
 *   dividing by sum of w_t over kept rows (indices) or by K (probabilities). */
static tg_tensor *composed_loss(tg_tape *tape, const compose_case *c, tg_tensor *x, tg_tensor *labels, tg_tensor *probs,
                                const tg_tensor *weight, tg_tensor **owned, int *n_owned)
{
    int64_t rows = c->rows, classes = c->classes;
    double eps = c->label_smoothing;
    tg_tensor *w_row = tg_tensor_new(TG_F64, 1, (int64_t[]){ classes });
    for (int64_t k = 0; k < classes; k++)
        tg_set(w_row, k, weight ? tg_get(weight, k) : 1.0);
    owned[(*n_owned)++] = w_row;
    tg_tensor *q;
    double denominator = 0;
    if (c->probabilities) {
        tg_tensor *keep = scalar(1 - eps), *spread = scalar(eps / (double)classes);
        owned[(*n_owned)++] = keep;
        owned[(*n_owned)++] = spread;
        q = tg_mul(tape, w_row, tg_add(tape, tg_mul(tape, probs, keep), spread));
        denominator = (double)rows;
    } else {
        q = tg_tensor_new(TG_F64, 2, (int64_t[]){ rows, classes });
        owned[(*n_owned)++] = q;
        for (int64_t i = 0; i < rows; i++) {
            int64_t t = ((const int64_t *)tg_data(labels))[i];
            if (t == c->ignore_index)
                continue;
            for (int64_t k = 0; k < classes; k++)
                tg_set(q, i * classes + k,
                       eps / (double)classes * tg_get(w_row, k) + (k == t ? (1 - eps) * tg_get(w_row, t) : 0));
            denominator += tg_get(w_row, t);
        }
    }
    tg_tensor *per_row = tg_neg(tape, tg_sum(tape, tg_mul(tape, q, tg_log(tape, tg_softmax(tape, x, 1))), 1));
    if (c->reduction == TG_NONE)
        return per_row;
    tg_tensor *total = tg_sum(tape, per_row, TG_ALL);
    if (c->reduction == TG_SUM)
        return total;
    tg_tensor *denom = scalar(denominator);
    owned[(*n_owned)++] = denom;
    return tg_div(tape, total, denom);
}

static void check_fused_vs_composed(const compose_case *c)
{
    int64_t rows = c->rows, classes = c->classes, shape[] = { rows, classes };
    tg_tensor *x = random_tensor(TG_F64, 2, shape, c->seed, -4, 4);
    tg_tensor *x_composed = tg_tensor_clone(x), *x_nll = tg_tensor_clone(x);
    tg_tensor *weight = c->weighted ? random_tensor(TG_F64, 1, &classes, c->seed + 1, 0.1, 3) : NULL;
    tg_tensor *upstream = random_tensor(TG_F64, 1, &rows, c->seed + 2, -2, 2);
    tg_tensor *labels = NULL, *probs = NULL, *probs_composed = NULL, *target;
    if (c->probabilities) {
        probs = random_tensor(TG_F64, 2, shape, c->seed + 3, 0.05, 1);
        for (int64_t i = 0; i < rows; i++) {
            double total = 0;
            for (int64_t k = 0; k < classes; k++)
                total += tg_get(probs, i * classes + k);
            for (int64_t k = 0; k < classes; k++)
                tg_set(probs, i * classes + k, tg_get(probs, i * classes + k) / total);
        }
        probs_composed = tg_tensor_clone(probs);
        tg_set_requires_grad(probs, 1);
        tg_set_requires_grad(probs_composed, 1);
        target = probs;
    } else {
        labels = random_labels(rows, classes, c->seed + 3);
        if (c->ignore_a_row)
            ((int64_t *)tg_data(labels))[rows / 2] = c->ignore_index;
        target = labels;
    }
    tg_set_requires_grad(x, 1);
    tg_set_requires_grad(x_composed, 1);
    tg_set_requires_grad(x_nll, 1);
    tg_ce_opts opts = { .reduction = c->reduction,
                        .weight = weight,
                        .ignore_index = c->ignore_index,
                        .label_smoothing = c->label_smoothing };
    char what[256];
    snprintf(what, sizeof what, "K=%lld C=%lld %s%s%s eps=%g %s", (long long)rows, (long long)classes,
             c->probabilities ? "probabilities" : "indices", c->weighted ? " weighted" : "",
             c->ignore_a_row ? " one-ignored" : "", c->label_smoothing, reduction_name(c->reduction));

    tg_tape *fused_tape = tg_tape_new(), *composed_tape = tg_tape_new();
    tg_tensor *fused = tg_cross_entropy(fused_tape, x, target, &opts);
    cr_assert_not_null(fused, "%s: %s", what, tg_last_error());
    tg_tensor *owned[8];
    int n_owned = 0;
    tg_tensor *composed = composed_loss(composed_tape, c, x_composed, labels, probs_composed, weight, owned, &n_owned);
    cr_assert_not_null(composed, "%s: %s", what, tg_last_error());
    cr_assert_eq(tg_numel(fused), tg_numel(composed), "%s", what);
    cr_assert_eq(tg_ndim(fused), c->reduction == TG_NONE ? 1 : 0, "%s", what);
    if (labels) { /* every row ignored makes the composed mean 0/0 and its gradient NaN: a case for the PyTorch tests */
        int64_t kept = 0;
        for (int64_t i = 0; i < rows; i++)
            kept += ((const int64_t *)tg_data(labels))[i] != c->ignore_index;
        cr_assert_gt(kept, 0, "%s: the test case ignores every row", what);
    }
    for (int64_t i = 0; i < tg_numel(fused); i++)
        assert_close(tg_get(fused, i), tg_get(composed, i), 1e-10, what, i);
    backward(fused_tape, fused, upstream);
    backward(composed_tape, composed, upstream);
    strcat(what, " dx");
    for (int64_t i = 0; i < rows * classes; i++)
        assert_close(tg_get(tg_grad(x), i), tg_get(tg_grad(x_composed), i), 1e-10, what, i);
    if (c->probabilities) { /* the fused node also differentiates a probability target */
        strcat(what, " dy");
        for (int64_t i = 0; i < rows * classes; i++)
            assert_close(tg_get(tg_grad(probs), i), tg_get(tg_grad(probs_composed), i), 1e-10, what, i);
    }

    /* class indices without smoothing: nll_loss(log_softmax(x)) is PyTorch's own composed path */
    if (!c->probabilities && c->label_smoothing == 0) {
        tg_tape *nll_tape = tg_tape_new();
        tg_tensor *nll = tg_nll_loss(nll_tape, tg_log_softmax(nll_tape, x_nll, 1), labels, &opts);
        cr_assert_not_null(nll, "%s: %s", what, tg_last_error());
        strcat(what, " vs nll_loss(log_softmax)");
        for (int64_t i = 0; i < tg_numel(fused); i++)
            assert_close(tg_get(fused, i), tg_get(nll, i), 1e-10, what, i);
        backward(nll_tape, nll, upstream);
        for (int64_t i = 0; i < rows * classes; i++)
            assert_close(tg_get(tg_grad(x), i), tg_get(tg_grad(x_nll), i), 1e-10, what, i);
        tg_tape_free(nll_tape);
    }
    tg_tape_free(fused_tape);
    tg_tape_free(composed_tape);
    for (int i = 0; i < n_owned; i++)
        tg_tensor_free(owned[i]);
    tg_tensor_free(x);
    tg_tensor_free(x_composed);
    tg_tensor_free(x_nll);
    tg_tensor_free(weight);
    tg_tensor_free(upstream);
    tg_tensor_free(labels);
    tg_tensor_free(probs);
    tg_tensor_free(probs_composed);
}

static const int64_t sizes[][2] = { { 1, 2 }, { 3, 5 }, { 7, 4 }, { 16, 10 }, { 2, 1 } };
#define N_SIZES (sizeof sizes / sizeof *sizes)

Test(cross_entropy_composed, class_indices)
{
    tg_reduction reductions[] = { TG_MEAN, TG_SUM, TG_NONE };
    for (size_t s = 0; s < N_SIZES; s++)
        for (int r = 0; r < 3; r++) {
            compose_case c = { .rows = sizes[s][0],
                               .classes = sizes[s][1],
                               .ignore_index = -100,
                               .reduction = reductions[r],
                               .seed = 100 + 10 * s + (uint64_t)r };
            check_fused_vs_composed(&c);
        }
}

Test(cross_entropy_composed, class_indices_weighted_and_ignored)
{
    tg_reduction reductions[] = { TG_MEAN, TG_SUM, TG_NONE };
    for (size_t s = 0; s < N_SIZES; s++)
        for (int r = 0; r < 3; r++) {
            compose_case c = { .rows = sizes[s][0],
                               .classes = sizes[s][1],
                               .weighted = 1,
                               .ignore_index = -100,
                               .reduction = reductions[r],
                               .seed = 200 + 10 * s + (uint64_t)r };
            check_fused_vs_composed(&c);
            if (c.rows > 1) { /* with every row ignored the mean is 0/0: see the PyTorch tests */
                c.ignore_a_row = 1;
                check_fused_vs_composed(&c);
                if (c.classes > 1) { /* a real class as ignore_index: the rows labelled 0 drop out */
                    c.ignore_index = 0;
                    check_fused_vs_composed(&c);
                }
            }
        }
}

Test(cross_entropy_composed, class_indices_label_smoothing)
{
    tg_reduction reductions[] = { TG_MEAN, TG_SUM, TG_NONE };
    for (size_t s = 0; s < N_SIZES; s++)
        for (int r = 0; r < 3; r++)
            for (int weighted = 0; weighted < 2; weighted++) {
                compose_case c = { .rows = sizes[s][0],
                                   .classes = sizes[s][1],
                                   .weighted = weighted,
                                   .ignore_a_row = sizes[s][0] > 1,
                                   .ignore_index = -100,
                                   .label_smoothing = 0.15,
                                   .reduction = reductions[r],
                                   .seed = 300 + 10 * s + 2 * (uint64_t)r + (uint64_t)weighted };
                check_fused_vs_composed(&c);
            }
}

Test(cross_entropy_composed, probability_targets)
{
    tg_reduction reductions[] = { TG_MEAN, TG_SUM, TG_NONE };
    for (size_t s = 0; s < N_SIZES; s++)
        for (int r = 0; r < 3; r++)
            for (int variant = 0; variant < 3; variant++) { /* plain, weighted, weighted + smoothing */
                compose_case c = { .rows = sizes[s][0],
                                   .classes = sizes[s][1],
                                   .probabilities = 1,
                                   .weighted = variant > 0,
                                   .ignore_index = -100,
                                   .label_smoothing = variant == 2 ? 0.2 : 0,
                                   .reduction = reductions[r],
                                   .seed = 400 + 10 * s + 3 * (uint64_t)r + (uint64_t)variant };
                check_fused_vs_composed(&c);
            }
}

/* ========================================================= (b) extreme logits */

/* x = [[1e4, -1e4, 0], [-1e4, 0, 1e4]]: each row's log-sum-exp is 1e4 in double
 * (e^-1e4 underflows), softmax rows are [1, 0, 0] and [0, 0, 1] exactly.
 * Targets t = [1, 0]: loss_i = lse - x_t = 2e4 for both rows, mean 2e4;
 * dx = (softmax - onehot(t)) / 2 = [[1, -1, 0], [-1, 0, 1]] / 2. */
static const double extreme_logits[] = { 1e4, -1e4, 0, -1e4, 0, 1e4 };

Test(cross_entropy_extreme, fused_is_finite_class_indices)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 2, 3 }, extreme_logits);
    tg_tensor *t = tg_tensor_from(TG_I64, 1, (int64_t[]){ 2 }, (int64_t[]){ 1, 0 });
    tg_tensor *x_composed = tg_tensor_clone(x);
    tg_set_requires_grad(x, 1);
    tg_set_requires_grad(x_composed, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_cross_entropy(tape, x, t, NULL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert(isfinite(tg_get(loss, 0)), "fused loss = %g", tg_get(loss, 0));
    assert_close(tg_get(loss, 0), 2e4, 1e-15, "fused loss", 0);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    double dx[] = { 0.5, -0.5, 0, -0.5, 0, 0.5 };
    for (int i = 0; i < 6; i++) {
        cr_assert(isfinite(tg_get(tg_grad(x), i)), "dx[%d] = %g", i, tg_get(tg_grad(x), i));
        assert_close(tg_get(tg_grad(x), i), dx[i], 1e-15, "fused dx", i);
    }

    /* The composed path: softmax underflows to 0 at the targets, log(0) = -inf,
     * and 0 * -inf = NaN at the other classes, so the loss is NaN; the backward
     * of log divides by 0. At the time of writing it gives loss = NaN and NaN in
     * all six entries of dx. Asserted only as "not finite": the point is the fused node. */
    tg_tape *composed_tape = tg_tape_new();
    tg_tensor *onehot = tg_tensor_from(TG_F64, 2, (int64_t[]){ 2, 3 }, (double[]){ 0, 1, 0, 1, 0, 0 });
    tg_tensor *composed = tg_mean(
        composed_tape,
        tg_neg(composed_tape,
               tg_sum(composed_tape,
                      tg_mul(composed_tape, onehot, tg_log(composed_tape, tg_softmax(composed_tape, x_composed, 1))),
                      1)),
        TG_ALL);
    cr_assert_not_null(composed, "%s", tg_last_error());
    cr_assert(!isfinite(tg_get(composed, 0)), "composed loss = %g (log(softmax) was expected to overflow)",
              tg_get(composed, 0));
    cr_assert_eq(tg_backward(composed_tape, composed), 0, "%s", tg_last_error());
    int non_finite = 0;
    for (int i = 0; i < 6; i++)
        non_finite += !isfinite(tg_get(tg_grad(x_composed), i));
    cr_assert_gt(non_finite, 0, "the composed gradient was expected to hold inf or NaN");
    tg_tape_free(tape);
    tg_tape_free(composed_tape);
    tg_tensor_free(x);
    tg_tensor_free(x_composed);
    tg_tensor_free(t);
    tg_tensor_free(onehot);
}

Test(cross_entropy_extreme, fused_is_finite_probabilities_and_smoothing)
{
    /* y = [[0.2, 0.5, 0.3], [1, 0, 0]], eps = 0.1, C = 3: q = 0.9 y + 0.1 / 3, and
     * every row's log-sum-exp is 1e4, so loss = mean_i sum_c q_ic (1e4 - x_ic)
     * (summed below in long double) and dx_i = (softmax_i - q_i) / 2 since sum_c q_ic = 1.
     * Every q_ic > 0 here, so the composed log(softmax) path meets no 0 * -inf in its loss:
     * it gives +inf (and NaN in every entry of dx) at the time of writing. */
    tg_tensor *x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 2, 3 }, extreme_logits);
    double y_values[] = { 0.2, 0.5, 0.3, 1, 0, 0 };
    tg_tensor *y = tg_tensor_from(TG_F64, 2, (int64_t[]){ 2, 3 }, y_values);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
    opts.label_smoothing = 0.1;
    tg_tensor *loss = tg_cross_entropy(tape, x, y, &opts);
    cr_assert_not_null(loss, "%s", tg_last_error());
    long double want = 0, softmax[] = { 1, 0, 0, 0, 0, 1 }, q[6];
    for (int i = 0; i < 6; i++) {
        q[i] = 0.9L * y_values[i] + 0.1L / 3;
        want += q[i] * (1e4L - extreme_logits[i]);
    }
    want /= 2;
    cr_assert(isfinite(tg_get(loss, 0)), "fused loss = %g", tg_get(loss, 0));
    assert_close(tg_get(loss, 0), (double)want, 1e-14, "fused loss", 0);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    for (int i = 0; i < 6; i++)
        assert_close(tg_get(tg_grad(x), i), (double)((softmax[i] - q[i]) / 2), 1e-14, "fused dx", i);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(y);
}

Test(cross_entropy_extreme, fused_is_finite_float32)
{
    float xf[6];
    for (int i = 0; i < 6; i++)
        xf[i] = (float)extreme_logits[i];
    tg_tensor *x = tg_tensor_from(TG_F32, 2, (int64_t[]){ 2, 3 }, xf);
    tg_tensor *t = tg_tensor_from(TG_I64, 1, (int64_t[]){ 2 }, (int64_t[]){ 1, 0 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_cross_entropy(tape, x, t, NULL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_dtype_of(loss), TG_F32);
    assert_close(tg_get(loss, 0), 2e4, 1e-6, "float32 fused loss", 0);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    double dx[] = { 0.5, -0.5, 0, -0.5, 0, 0.5 };
    for (int i = 0; i < 6; i++)
        assert_close(tg_get(tg_grad(x), i), dx[i], 1e-6, "float32 fused dx", i);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(t);
}

/* ==================================================== (c), (d) PyTorch values */

/* clang-format off */
/* Every number below was printed, in float64, by this script (Debian 12's
 * python3-torch 1.13, run with /usr/bin/python3); a line "NAME loss {...}" /
 * "NAME grad {...}" fills the case called NAME.

import torch, torch.nn.functional as F
torch.set_default_dtype(torch.float64)
X = [[1.5, -0.3, 0.2], [-1.2, 0.7, 2.1], [0.05, 0.4, -0.9], [3.0, -2.0, 0.5]]
T = [0, 2, 1, 2]
W = [0.2, 1.0, 3.0]
P = [[0.7, 0.2, 0.1], [0.0, 0.25, 0.75], [0.3, 0.3, 0.4], [0.1, 0.0, 0.9]]
G = [1.0, -2.0, 0.5, 3.0]  # upstream gradient for reduction='none'

def run(name, fn, target, **kw):
    x = torch.tensor(X, requires_grad=True)
    loss = fn(x, torch.tensor(target), **kw)
    if loss.dim() == 0:
        loss.backward()
    else:
        loss.backward(torch.tensor(G))
    vals = ", ".join("%.17g" % v for v in loss.detach().reshape(-1).tolist())
    grads = ", ".join("%.17g" % v for v in x.grad.reshape(-1).tolist())
    print("%s loss { %s }\n%s grad { %s }" % (name, vals, name, grads))

w = torch.tensor(W)
ce = F.cross_entropy
run("ce_default", ce, T)
run("ce_sum", ce, T, reduction="sum")
run("ce_none", ce, T, reduction="none")
run("ce_weight", ce, T, weight=w)
run("ce_ignore", ce, [0, -100, 1, 2])
run("ce_ignore1_weight", ce, T, weight=w, ignore_index=1)
run("ce_smooth", ce, T, label_smoothing=0.1)
run("ce_smooth_weight", ce, T, weight=w, label_smoothing=0.1)
run("ce_smooth_weight_ignore", ce, [0, -100, 1, 2], weight=w, label_smoothing=0.1)
run("ce_prob", ce, P)
run("ce_prob_smooth_weight", ce, P, weight=w, label_smoothing=0.1)
run("ce_prob_smooth_weight_none", ce, P, weight=w, label_smoothing=0.1, reduction="none")
run("ce_all_ignored_mean", ce, [-100] * 4)
run("ce_all_ignored_sum", ce, [-100] * 4, reduction="sum")
nll = F.nll_loss
run("nll_default", nll, T)
run("nll_sum", nll, T, reduction="sum")
run("nll_none", nll, T, reduction="none")
run("nll_weight_ignore", nll, [0, -100, 1, 2], weight=w)
run("nll_weight_ignore1_none", nll, T, weight=w, ignore_index=1, reduction="none")
run("ce_all_ignored_none", ce, [-100] * 4, reduction="none")
run("ce_smooth_full", ce, T, label_smoothing=1.0)
# one row given as 1-D logits [C] with a 0-d target: X[1], class 2
x1 = torch.tensor(X[1], requires_grad=True)
l1 = F.cross_entropy(x1, torch.tensor(2), weight=w, label_smoothing=0.1)
l1.backward()
print("ce_1d loss { %.17g }\nce_1d grad { %s }" % (l1.item(), ", ".join("%.17g" % v for v in x1.grad.tolist())))
# nll_loss over log_softmax, the composed path, with weight and one row ignored
run("nll_logsoftmax_weight_ignore", lambda x, t, **kw: F.nll_loss(F.log_softmax(x, 1), t, **kw), [0, -100, 1, 2], weight=w)
 */
/* clang-format on */
static const double X[] = { 1.5, -0.3, 0.2, -1.2, 0.7, 2.1, 0.05, 0.4, -0.9, 3.0, -2.0, 0.5 };
static const double W[] = { 0.2, 1.0, 3.0 };
static const double P[] = { 0.7, 0.2, 0.1, 0.0, 0.25, 0.75, 0.3, 0.3, 0.4, 0.1, 0.0, 0.9 };
static const double G[] = { 1.0, -2.0, 0.5, 3.0 };
static const int64_t T[] = { 0, 2, 1, 2 };
static const int64_t T_ONE_IGNORED[] = { 0, -100, 1, 2 };
static const int64_t T_ALL_IGNORED[] = { -100, -100, -100, -100 };

typedef struct {
    const int64_t *labels; /* NULL: probability targets P */
    int weighted; /* weight W */
    int64_t ignore_index;
    double label_smoothing;
    tg_reduction reduction;
    double loss[4]; /* 4 values for TG_NONE, else 1 */
    double grad[12]; /* dL/dX; TG_NONE seeded with G */
} torch_case;

typedef enum { FUSED_CE, NLL_OF_INPUT, NLL_OF_LOG_SOFTMAX } loss_path;

static void check_torch(const char *name, const torch_case *c, loss_path path)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 4, 3 }, X);
    tg_tensor *w = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, W);
    tg_tensor *upstream = tg_tensor_from(TG_F64, 1, (int64_t[]){ 4 }, G);
    tg_tensor *target = c->labels ? tg_tensor_from(TG_I64, 1, (int64_t[]){ 4 }, c->labels)
                                  : tg_tensor_from(TG_F64, 2, (int64_t[]){ 4, 3 }, P);
    tg_set_requires_grad(x, 1);
    tg_ce_opts opts = { .reduction = c->reduction,
                        .weight = c->weighted ? w : NULL,
                        .ignore_index = c->ignore_index,
                        .label_smoothing = c->label_smoothing };
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = path == FUSED_CE       ? tg_cross_entropy(tape, x, target, &opts)
                      : path == NLL_OF_INPUT ? tg_nll_loss(tape, x, target, &opts)
                                             : tg_nll_loss(tape, tg_log_softmax(tape, x, 1), target, &opts);
    cr_assert_not_null(loss, "%s: %s", name, tg_last_error());
    int64_t n_loss = c->reduction == TG_NONE ? 4 : 1;
    cr_assert_eq(tg_numel(loss), n_loss, "%s", name);
    cr_assert_eq(tg_ndim(loss), c->reduction == TG_NONE ? 1 : 0, "%s", name);
    char what[96];
    snprintf(what, sizeof what, "%s loss", name);
    for (int64_t i = 0; i < n_loss; i++)
        assert_close(tg_get(loss, i), c->loss[i], 1e-12, what, i);
    backward(tape, loss, upstream);
    cr_assert_not_null(tg_grad(x), "%s: no gradient", name);
    snprintf(what, sizeof what, "%s dx", name);
    for (int64_t i = 0; i < 12; i++)
        assert_close(tg_get(tg_grad(x), i), c->grad[i], 1e-12, what, i);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(upstream);
    tg_tensor_free(target);
}

#define TORCH_CE_TEST(NAME, ...)                                                                                       \
    Test(cross_entropy_torch, NAME)                                                                                    \
    {                                                                                                                  \
        static const torch_case c = __VA_ARGS__;                                                                       \
        check_torch(#NAME, &c, FUSED_CE);                                                                              \
    }

TORCH_CE_TEST(ce_default,
              {
                  .labels = T,
                  .ignore_index = -100,
                  .reduction = TG_MEAN,
                  .loss = { 0.9698749380743078 },
                  .grad = { -0.076126954126695096, 0.028741021174558214, 0.04738593295213691, 0.0071842108226971239,
                            0.048032875211633262, -0.05521708603433037, 0.089100875409166974, -0.12355983915560018,
                            0.034458963746433237, 0.22960574169105086, 0.0015470713182000097, -0.23115281300925083 },
              })
TORCH_CE_TEST(ce_sum,
              {
                  .labels = T,
                  .ignore_index = -100,
                  .reduction = TG_SUM,
                  .loss = { 3.8794997522972312 },
                  .grad = { -0.30450781650678038, 0.11496408469823285, 0.18954373180854764, 0.028736843290788495,
                            0.19213150084653305, -0.22086834413732148, 0.3564035016366679, -0.49423935662240071,
                            0.13783585498573295, 0.91842296676420343, 0.0061882852728000386, -0.92461125203700334 },
              })
TORCH_CE_TEST(ce_none,
              {
                  .labels = T,
                  .ignore_index = -100,
                  .reduction = TG_NONE,
                  .loss = { 0.36313550636875352, 0.24957524114912874, 0.68169175841503893, 2.58509724636431 },
                  .grad = { -0.30450781650678038, 0.11496408469823285, 0.18954373180854764, -0.057473686581576991,
                            -0.3842630016930661, 0.44173668827464296, 0.17820175081833395, -0.24711967831120035,
                            0.068917927492866474, 2.7552689002926103, 0.018564855818400117, -2.77383375611101 },
              })
TORCH_CE_TEST(ce_weight,
              {
                  .labels = T,
                  .weighted = 1,
                  .ignore_index = -100,
                  .reduction = TG_MEAN,
                  .loss = { 1.2858800447540426 },
                  .grad = { -0.0084585504585216777, 0.0031934467971731352, 0.0052651036613485455, 0.011973684704495207,
                            0.080054792019388768, -0.092028476723883951, 0.049500486338426096, -0.06864435508644455,
                            0.019143868748018465, 0.38267623615175145, 0.0025784521970000163, -0.38525468834875143 },
              })
TORCH_CE_TEST(ce_ignore, {
                             .labels = T_ONE_IGNORED,
                             .ignore_index = -100,
                             .reduction = TG_MEAN,
                             .loss = { 1.2099748370493675 },
                             .grad = { -0.10150260550226012, 0.038321361566077614, 0.063181243936182546, 0, 0, 0,
                                       0.11880116721222263, -0.16474645220746689, 0.045945284995244313,
                                       0.30614098892140112, 0.0020627617576000129, -0.30820375067900108 },
                         })
TORCH_CE_TEST(ce_ignore1_weight, {
                                     .labels = T,
                                     .weighted = 1,
                                     .ignore_index = 1,
                                     .reduction = TG_MEAN,
                                     .loss = { 1.3833297683571075 },
                                     .grad = { -0.0098228327905413026, 0.0037085188612333178, 0.0061143139293079879,
                                               0.013904924172962175, 0.092966855248322447, -0.10687177942128459, 0, 0,
                                               0, 0.44439820972461458, 0.0029943315836129221, -0.44739254130822742 },
                                 })
TORCH_CE_TEST(ce_smooth,
              {
                  .labels = T,
                  .ignore_index = -100,
                  .label_smoothing = 0.1,
                  .reduction = TG_MEAN,
                  .loss = { 1.0486249380743078 },
                  .grad = { -0.059460287460028433, 0.020407687841224882, 0.039052599618803578, -0.0011491225106362093,
                            0.039699541878299931, -0.038550419367663707, 0.080767542075833643, -0.10689317248893351,
                            0.026125630413099905, 0.22127240835771753, -0.0067862620151333238, -0.21448614634258417 },
              })
/* PyTorch's mean divides the smoothing term by the same sum of target weights as the NLL term */
TORCH_CE_TEST(ce_smooth_weight,
              {
                  .labels = T,
                  .weighted = 1,
                  .ignore_index = -100,
                  .label_smoothing = 0.1,
                  .reduction = TG_MEAN,
                  .loss = { 1.2962915724992328 },
                  .grad = { 0.004984837784883833, 0.0004798852458473866, -0.0054647230307312148, 0.010409162260996202,
                            0.071155573482058407, -0.081564735743054603, 0.050554579866037209, -0.056575314475087506,
                            0.0060207346090503135, 0.36134091096439874, -0.0021886948831362808, -0.35915221608126241 },
              })
TORCH_CE_TEST(ce_smooth_weight_ignore,
              {
                  .labels = T_ONE_IGNORED,
                  .weighted = 1,
                  .ignore_index = -100,
                  .label_smoothing = 0.1,
                  .reduction = TG_MEAN,
                  .loss = { 2.0371045167772097 },
                  .grad = { 0.008545436202658005, 0.00082266042145266315, -0.0093680966241106532, 0, 0, 0,
                            0.086664994056063788, -0.096986253385864293, 0.010321259329800539, 0.61944156165325492,
                            -0.0037520483710907675, -0.61568951328216415 },
              })
TORCH_CE_TEST(ce_smooth_full,
              {
                  .labels = T,
                  .ignore_index = -100,
                  .label_smoothing = 1.0,
                  .reduction = TG_MEAN,
                  .loss = { 1.7573749380743076 },
                  .grad = { 0.090539712539971576, -0.054592312158775115, -0.035947400381196419, -0.0761491225106362,
                            -0.035300458121700067, 0.1114495806323363, 0.0057675420758336454, 0.043106827511066495,
                            -0.048874369586900092, 0.14627240835771754, -0.081786262015133324, -0.064486146342584164 },
              })
TORCH_CE_TEST(ce_prob,
              {
                  .labels = NULL,
                  .ignore_index = -100,
                  .reduction = TG_MEAN,
                  .loss = { 1.2736249380743079 },
                  .grad = { -0.0011269541266951037, -0.021258978825441793, 0.022385932952136901, 0.0071842108226971239,
                            -0.014467124788366738, 0.0072829139656696296, 0.014100875409166977, 0.051440160844399827,
                            -0.065541036253566776, 0.20460574169105086, 0.0015470713182000097, -0.20615281300925084 },
              })
/* probability targets: the mean divides by the number of rows, whatever the weights */
TORCH_CE_TEST(ce_prob_smooth_weight,
              {
                  .labels = NULL,
                  .weighted = 1,
                  .ignore_index = -100,
                  .label_smoothing = 0.1,
                  .reduction = TG_MEAN,
                  .loss = { 2.8562050660391916 },
                  .grad = { 0.091326434178619659, -0.032754762172349655, -0.058571672006269983, 0.01550359719957946,
                            0.050215238422470165, -0.065718835622049568, 0.12240508496508715, 0.11939027501042,
                            -0.24179535997550713, 0.58805299282977297, -0.0043295127618317077, -0.58372348006794117 },
              })
TORCH_CE_TEST(ce_prob_smooth_weight_none,
              {
                  .labels = NULL,
                  .weighted = 1,
                  .ignore_index = -100,
                  .label_smoothing = 0.1,
                  .reduction = TG_NONE,
                  .loss = { 1.1250050225600279, 0.98015149301308446, 2.6077654083261534, 6.711898340257501 },
                  .grad = { 0.36530573671447863, -0.13101904868939862, -0.23428668802507993, -0.12402877759663568,
                            -0.40172190737976132, 0.52575068497639654, 0.24481016993017429, 0.23878055002084,
                            -0.48359071995101427, 7.0566359139572761, -0.0519541531419805, -7.0046817608152949 },
              })
/* every row ignored: the mean is 0/0 = NaN, sum and none are 0, the gradient is zero */
TORCH_CE_TEST(ce_all_ignored_mean, {
                                       .labels = T_ALL_IGNORED,
                                       .ignore_index = -100,
                                       .reduction = TG_MEAN,
                                       .loss = { NAN },
                                       .grad = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
                                   })
TORCH_CE_TEST(ce_all_ignored_sum, {
                                      .labels = T_ALL_IGNORED,
                                      .ignore_index = -100,
                                      .reduction = TG_SUM,
                                      .loss = { 0 },
                                      .grad = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
                                  })
TORCH_CE_TEST(ce_all_ignored_none, {
                                       .labels = T_ALL_IGNORED,
                                       .ignore_index = -100,
                                       .reduction = TG_NONE,
                                       .loss = { 0, 0, 0, 0 },
                                       .grad = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
                                   })

Test(cross_entropy_torch, ce_all_ignored_mean_is_nan)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 4, 3 }, X);
    tg_tensor *t = tg_tensor_from(TG_I64, 1, (int64_t[]){ 4 }, T_ALL_IGNORED);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_cross_entropy(tape, x, t, NULL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert(isnan(tg_get(loss, 0)), "mean over no rows = %g, expected NaN", tg_get(loss, 0));
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    for (int i = 0; i < 12; i++) /* exactly zero, not NaN */
        cr_assert_eq(tg_get(tg_grad(x), i), 0.0, "dx[%d] = %g", i, tg_get(tg_grad(x), i));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(t);
}

/* clang-format off */
/* Every kept row's class has weight 0, so the mean's denominator (the sum of target weights) is 0.
 * PyTorch's loss is NaN with and without smoothing: its smoothed loss is (1 - eps) nll + eps / C smooth,
 * and nll is already 0/0. Produced by:

import torch, torch.nn.functional as F
x = torch.tensor([[1., 2., 3.], [0., 1., -1.]], dtype=torch.float64, requires_grad=True)
w = torch.tensor([0., 1., 1.], dtype=torch.float64)
print(F.cross_entropy(x, torch.tensor([0, 0]), weight=w).item())                       # nan
print(F.cross_entropy(x, torch.tensor([0, 0]), weight=w, label_smoothing=0.1).item())  # nan
 */
/* clang-format on */
Test(cross_entropy_torch, zero_total_target_weight_mean_is_nan)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 2, 3 }, (double[]){ 1, 2, 3, 0, 1, -1 });
    tg_tensor *t = tg_tensor_from(TG_I64, 1, (int64_t[]){ 2 }, (int64_t[]){ 0, 0 });
    tg_tensor *w = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 0, 1, 1 });
    tg_tape *tape = tg_tape_new();
    for (int smoothing = 0; smoothing < 2; smoothing++) {
        tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
        opts.weight = w;
        opts.label_smoothing = smoothing ? 0.1 : 0;
        tg_tensor *loss = tg_cross_entropy(tape, x, t, &opts);
        cr_assert_not_null(loss, "%s", tg_last_error());
        cr_expect(isnan(tg_get(loss, 0)), "label_smoothing %g: loss = %g, PyTorch gives nan", opts.label_smoothing,
                  tg_get(loss, 0));
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(t);
    tg_tensor_free(w);
}

Test(cross_entropy_torch, ce_1d)
{
    /* one row as 1-D logits [C] with a 0-d class-index target: a 0-d loss */
    static const double loss_ce_1d[] = { 0.25915345051006411 };
    static const double grad_ce_1d[] = { 0.024981989426390884, 0.17077337635694015, -0.195755365783331 };
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, X + 3);
    tg_tensor *t = tg_tensor_from(TG_I64, 0, (int64_t[]){ 1 }, (int64_t[]){ 2 });
    tg_tensor *w = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, W);
    tg_set_requires_grad(x, 1);
    tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
    opts.weight = w;
    opts.label_smoothing = 0.1;
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_cross_entropy(tape, x, t, &opts);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_ndim(loss), 0);
    assert_close(tg_get(loss, 0), loss_ce_1d[0], 1e-12, "ce_1d loss", 0);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    for (int i = 0; i < 3; i++)
        assert_close(tg_get(tg_grad(x), i), grad_ce_1d[i], 1e-12, "ce_1d grad", i);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(t);
    tg_tensor_free(w);
}

/* (d) nll_loss: X itself as the log-probabilities (nll_loss does not care
 * whether they are normalised), then over log_softmax(X). */
#define TORCH_NLL_TEST(NAME, PATH, ...)                                                                                \
    Test(nll_loss_torch, NAME)                                                                                         \
    {                                                                                                                  \
        static const torch_case c = __VA_ARGS__;                                                                       \
        check_torch(#NAME, &c, PATH);                                                                                  \
    }

TORCH_NLL_TEST(nll_default, NLL_OF_INPUT,
               {
                   .labels = T,
                   .ignore_index = -100,
                   .reduction = TG_MEAN,
                   .loss = { -1.125 },
                   .grad = { -0.25, 0, 0, 0, 0, -0.25, 0, -0.25, 0, 0, 0, -0.25 },
               })
TORCH_NLL_TEST(nll_sum, NLL_OF_INPUT,
               {
                   .labels = T,
                   .ignore_index = -100,
                   .reduction = TG_SUM,
                   .loss = { -4.5 },
                   .grad = { -1, 0, 0, 0, 0, -1, 0, -1, 0, 0, 0, -1 },
               })
TORCH_NLL_TEST(nll_none, NLL_OF_INPUT,
               {
                   .labels = T,
                   .ignore_index = -100,
                   .reduction = TG_NONE,
                   .loss = { -1.5, -2.1000000000000001, -0.40000000000000002, -0.5 },
                   .grad = { -1, 0, 0, 0, 0, 2, 0, -0.5, 0, 0, 0, -3 },
               })
TORCH_NLL_TEST(nll_weight_ignore, NLL_OF_INPUT,
               {
                   .labels = T_ONE_IGNORED,
                   .weighted = 1,
                   .ignore_index = -100,
                   .reduction = TG_MEAN,
                   .loss = { -0.52380952380952384 },
                   .grad = { -0.047619047619047616, 0, 0, 0, 0, 0, 0, -0.23809523809523808, 0, 0, 0,
                             -0.71428571428571419 },
               })
TORCH_NLL_TEST(nll_weight_ignore1_none, NLL_OF_INPUT,
               {
                   .labels = T,
                   .weighted = 1,
                   .ignore_index = 1,
                   .reduction = TG_NONE,
                   .loss = { -0.30000000000000004, -6.3000000000000007, 0, -1.5 },
                   .grad = { -0.20000000000000001, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, -9 },
               })
TORCH_NLL_TEST(nll_logsoftmax_weight_ignore, NLL_OF_LOG_SOFTMAX,
               {
                   .labels = T_ONE_IGNORED,
                   .weighted = 1,
                   .ignore_index = -100,
                   .reduction = TG_MEAN,
                   .loss = { 2.0260977616146949 },
                   .grad = { -0.014500372214608589, 0.0054744802237253736, 0.0090258919908832204, 0, 0, 0,
                             0.08485797658015902, -0.11767603729104778, 0.032818060710888795, 0.65601640483157375,
                             0.0044202037662857416, -0.66043660859785946 },
               })
/* nll_loss(log_softmax(X)) is cross_entropy(X): the same PyTorch numbers as the fused cases */
TORCH_NLL_TEST(nll_logsoftmax_default, NLL_OF_LOG_SOFTMAX,
               {
                   .labels = T,
                   .ignore_index = -100,
                   .reduction = TG_MEAN,
                   .loss = { 0.9698749380743078 },
                   .grad = { -0.076126954126695096, 0.028741021174558214, 0.04738593295213691, 0.0071842108226971239,
                             0.048032875211633262, -0.05521708603433037, 0.089100875409166974, -0.12355983915560018,
                             0.034458963746433237, 0.22960574169105086, 0.0015470713182000097, -0.23115281300925083 },
               })
TORCH_NLL_TEST(nll_logsoftmax_none, NLL_OF_LOG_SOFTMAX,
               {
                   .labels = T,
                   .ignore_index = -100,
                   .reduction = TG_NONE,
                   .loss = { 0.36313550636875352, 0.24957524114912874, 0.68169175841503893, 2.58509724636431 },
                   .grad = { -0.30450781650678038, 0.11496408469823285, 0.18954373180854764, -0.057473686581576991,
                             -0.3842630016930661, 0.44173668827464296, 0.17820175081833395, -0.24711967831120035,
                             0.068917927492866474, 2.7552689002926103, 0.018564855818400117, -2.77383375611101 },
               })
TORCH_NLL_TEST(nll_logsoftmax_all_ignored_sum, NLL_OF_LOG_SOFTMAX,
               {
                   .labels = T_ALL_IGNORED,
                   .ignore_index = -100,
                   .reduction = TG_SUM,
                   .loss = { 0 },
                   .grad = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
               })

/* ================================================================ (e) errors */

typedef struct {
    tg_tape *tape;
    tg_tensor *x, *x32, *labels, *w;
} error_fixture;

static error_fixture error_setup(void)
{
    error_fixture f;
    f.tape = tg_tape_new();
    f.x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 4, 3 }, X);
    f.x32 = tg_tensor_new(TG_F32, 2, (int64_t[]){ 4, 3 });
    f.labels = tg_tensor_from(TG_I64, 1, (int64_t[]){ 4 }, T);
    f.w = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, W);
    return f;
}

static void error_teardown(error_fixture *f)
{
    tg_tape_free(f->tape);
    tg_tensor_free(f->x);
    tg_tensor_free(f->x32);
    tg_tensor_free(f->labels);
    tg_tensor_free(f->w);
}

Test(cross_entropy_errors, target_out_of_range_names_row_and_value)
{
    error_fixture f = error_setup();
    tg_tensor *t = tg_tensor_from(TG_I64, 1, (int64_t[]){ 4 }, (int64_t[]){ 0, 2, 3, 1 });
    ASSERT_ERROR("class 3 of 3", tg_cross_entropy(f.tape, f.x, t, NULL), "cross_entropy", "target[2]", "= 3",
                 "3 classes");
    ((int64_t *)tg_data(t))[2] = -1;
    ASSERT_ERROR("class -1", tg_cross_entropy(f.tape, f.x, t, NULL), "target[2]", "= -1");
    ((int64_t *)tg_data(t))[2] = 7;
    ASSERT_ERROR("nll class 7", tg_nll_loss(f.tape, f.x, t, NULL), "nll_loss", "target[2]", "= 7");
    /* -100 is only fine while it is the ignore_index */
    ((int64_t *)tg_data(t))[2] = -100;
    tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
    opts.ignore_index = 1;
    ASSERT_ERROR("-100 not ignored", tg_cross_entropy(f.tape, f.x, t, &opts), "target[2]", "= -100");
    tg_tensor_free(t);
    error_teardown(&f);
}

Test(cross_entropy_errors, wrong_target_shape)
{
    error_fixture f = error_setup();
    tg_tensor *short_labels = tg_tensor_from(TG_I64, 1, (int64_t[]){ 3 }, T);
    tg_tensor *labels_2d = tg_tensor_from(TG_I64, 2, (int64_t[]){ 2, 2 }, T);
    tg_tensor *probs_bad = tg_tensor_new(TG_F64, 2, (int64_t[]){ 4, 2 });
    tg_tensor *probs_f32 = tg_tensor_new(TG_F32, 2, (int64_t[]){ 4, 3 });
    ASSERT_ERROR("labels [3]", tg_cross_entropy(f.tape, f.x, short_labels, NULL), "cross_entropy", "[3]", "[4, 3]",
                 "expected [4]");
    ASSERT_ERROR("labels [2, 2]", tg_cross_entropy(f.tape, f.x, labels_2d, NULL), "[2, 2]", "expected [4]");
    ASSERT_ERROR("probabilities [4, 2]", tg_cross_entropy(f.tape, f.x, probs_bad, NULL), "probability target", "[4, 2]",
                 "[4, 3]");
    ASSERT_ERROR("float32 probabilities", tg_cross_entropy(f.tape, f.x, probs_f32, NULL), "float32", "float64");
    ASSERT_ERROR("nll of probabilities", tg_nll_loss(f.tape, f.x, probs_bad, NULL), "nll_loss", "int64");
    ASSERT_ERROR("nll labels [3]", tg_nll_loss(f.tape, f.x, short_labels, NULL), "nll_loss", "expected [4]");
    tg_tensor *x3 = tg_tensor_new(TG_F64, 3, (int64_t[]){ 2, 2, 3 });
    /* [N, C, d] logits take targets [N, d] */
    ASSERT_ERROR("3-D logits, target [4]", tg_cross_entropy(f.tape, x3, f.labels, NULL), "[2, 2, 3]",
                 "expected [2, 3]");
    tg_tensor_free(x3);
    tg_tensor_free(short_labels);
    tg_tensor_free(labels_2d);
    tg_tensor_free(probs_bad);
    tg_tensor_free(probs_f32);
    error_teardown(&f);
}

Test(cross_entropy_errors, weight_of_wrong_length_or_dtype)
{
    error_fixture f = error_setup();
    tg_tensor *w2 = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, W);
    tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
    opts.weight = w2;
    ASSERT_ERROR("weight [2]", tg_cross_entropy(f.tape, f.x, f.labels, &opts), "weight", "[2]", "[3]");
    ASSERT_ERROR("nll weight [2]", tg_nll_loss(f.tape, f.x, f.labels, &opts), "nll_loss", "weight", "[2]");
    /* float32 logits, float64 weight */
    opts.weight = f.w;
    ASSERT_ERROR("float32 logits, float64 weight", tg_cross_entropy(f.tape, f.x32, f.labels, &opts), "weight",
                 "float64", "float32");
    tg_tensor_free(w2);
    error_teardown(&f);
}

Test(cross_entropy_errors, label_smoothing_out_of_range)
{
    error_fixture f = error_setup();
    double bad[] = { -0.1, 1.5, NAN };
    for (int i = 0; i < 3; i++) {
        tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
        opts.label_smoothing = bad[i];
        ASSERT_ERROR("label_smoothing", tg_cross_entropy(f.tape, f.x, f.labels, &opts), "label_smoothing");
    }
    tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
    opts.label_smoothing = 0.1;
    ASSERT_ERROR("nll with smoothing", tg_nll_loss(f.tape, f.x, f.labels, &opts), "nll_loss", "label_smoothing");
    error_teardown(&f);
}

Test(cross_entropy_errors, null_inputs_keep_the_first_error)
{
    error_fixture f = error_setup();
    tg_clear_error();
    /* axis 5 fails first; cross_entropy of its NULL must not overwrite that message */
    ASSERT_ERROR("NULL logits", tg_cross_entropy(f.tape, tg_softmax(f.tape, f.x, 5), f.labels, NULL), "axis 5");
    ASSERT_ERROR("NULL log_probs", tg_nll_loss(f.tape, tg_log_softmax(f.tape, f.x, 5), f.labels, NULL), "axis 5");
    cr_assert_null(tg_cross_entropy(f.tape, f.x, NULL, NULL));
    cr_assert_null(tg_cross_entropy(NULL, f.x, f.labels, NULL));
    cr_assert_not_null(strstr(tg_last_error(), "tape"), "%s", tg_last_error());
    error_teardown(&f);
}

/* ==================================================== accumulation, float32, gradcheck */

Test(cross_entropy_misc, gradients_accumulate_across_uses)
{
    /* L = ce(x, T) + ce(x, T) on one tape: dx is twice PyTorch's ce_default gradient;
     * a second tg_backward adds the same again (caller-owned gradients accumulate). */
    static const double grad_default[] = { -0.076126954126695096, 0.028741021174558214,  0.04738593295213691,
                                           0.0071842108226971239, 0.048032875211633262,  -0.05521708603433037,
                                           0.089100875409166974,  -0.12355983915560018,  0.034458963746433237,
                                           0.22960574169105086,   0.0015470713182000097, -0.23115281300925083 };
    tg_tensor *x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 4, 3 }, X);
    tg_tensor *t = tg_tensor_from(TG_I64, 1, (int64_t[]){ 4 }, T);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss =
        tg_add(tape, tg_cross_entropy(tape, x, t, NULL), tg_nll_loss(tape, tg_log_softmax(tape, x, 1), t, NULL));
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    for (int i = 0; i < 12; i++)
        assert_close(tg_get(tg_grad(x), i), 2 * grad_default[i], 1e-12, "dx after one backward", i);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    for (int i = 0; i < 12; i++)
        assert_close(tg_get(tg_grad(x), i), 4 * grad_default[i], 1e-12, "dx after two backwards", i);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(t);
}

Test(cross_entropy_misc, float32_near_pytorch_float64)
{
    /* ce_smooth_weight in float32: within float tolerance of PyTorch's float64 numbers */
    static const double want_loss = 1.2962915724992328;
    static const double want_grad[] = { 0.004984837784883833, 0.0004798852458473866,  -0.0054647230307312148,
                                        0.010409162260996202, 0.071155573482058407,   -0.081564735743054603,
                                        0.050554579866037209, -0.056575314475087506,  0.0060207346090503135,
                                        0.36134091096439874,  -0.0021886948831362808, -0.35915221608126241 };
    float xf[12], wf[3];
    for (int i = 0; i < 12; i++)
        xf[i] = (float)X[i];
    for (int i = 0; i < 3; i++)
        wf[i] = (float)W[i];
    tg_tensor *x = tg_tensor_from(TG_F32, 2, (int64_t[]){ 4, 3 }, xf);
    tg_tensor *w = tg_tensor_from(TG_F32, 1, (int64_t[]){ 3 }, wf);
    tg_tensor *t = tg_tensor_from(TG_I64, 1, (int64_t[]){ 4 }, T);
    tg_set_requires_grad(x, 1);
    tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
    opts.weight = w;
    opts.label_smoothing = 0.1;
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_cross_entropy(tape, x, t, &opts);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_dtype_of(loss), TG_F32);
    assert_close(tg_get(loss, 0), want_loss, 1e-6, "float32 loss", 0);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    cr_assert_eq(tg_dtype_of(tg_grad(x)), TG_F32);
    for (int i = 0; i < 12; i++)
        assert_close(tg_get(tg_grad(x), i), want_grad[i], 1e-6, "float32 dx", i);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(t);
}

Test(cross_entropy_misc, forward_without_recording)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 4, 3 }, X);
    tg_tensor *t = tg_tensor_from(TG_I64, 1, (int64_t[]){ 4 }, T);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tape_set_recording(tape, 0);
    tg_tensor *loss = tg_cross_entropy(tape, x, t, NULL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    assert_close(tg_get(loss, 0), 0.9698749380743078, 1e-12, "ce_default without recording", 0);
    cr_assert_eq(tg_tape_size(tape), 0);
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(t);
}

typedef struct {
    const tg_tensor *labels; /* NULL: inputs[1] holds probability targets */
    tg_ce_opts opts;
    int nll; /* nll_loss(log_softmax(x)) instead of the fused node */
} loss_fn_ctx;

static tg_tensor *loss_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    const loss_fn_ctx *c = ctx;
    tg_tensor *target = c->labels ? (tg_tensor *)c->labels : inputs[1];
    if (c->nll)
        return tg_nll_loss(tape, tg_log_softmax(tape, inputs[0], 1), target, &c->opts);
    return tg_cross_entropy(tape, inputs[0], target, &c->opts);
}

Test(cross_entropy_misc, gradcheck)
{
    int64_t shape[] = { 5, 4 };
    tg_tensor *w = random_tensor(TG_F64, 1, (int64_t[]){ 4 }, 91, 0.1, 3);
    tg_tensor *labels = random_labels(5, 4, 92);
    ((int64_t *)tg_data(labels))[1] = -100;
    tg_reduction reductions[] = { TG_MEAN, TG_SUM, TG_NONE };
    for (int r = 0; r < 3; r++)
        for (int variant = 0; variant < 4; variant++) { /* indices, indices + smoothing, nll, probabilities */
            tg_tensor *inputs[2] = { random_tensor(TG_F64, 2, shape, 93 + (uint64_t)(4 * r + variant), -3, 3),
                                     random_tensor(TG_F64, 2, shape, 193 + (uint64_t)(4 * r + variant), 0, 1) };
            tg_set_requires_grad(inputs[0], 1);
            tg_set_requires_grad(inputs[1], 1);
            loss_fn_ctx c = { .labels = variant < 3 ? labels : NULL,
                              .opts = { .reduction = reductions[r],
                                        .weight = w,
                                        .ignore_index = -100,
                                        .label_smoothing = variant == 1 || variant == 3 ? 0.2 : 0 },
                              .nll = variant == 2 };
            tg_gradcheck_report report;
            int rc = tg_gradcheck(loss_fn, variant == 3 ? 2 : 1, inputs, &c, NULL, &report);
            cr_assert_eq(rc, 0, "reduction %s variant %d: input %d [%lld] analytic %g numeric %g (%s)",
                         reduction_name(reductions[r]), variant, report.worst_input, (long long)report.worst_index,
                         report.analytic, report.numeric, tg_last_error());
            tg_tensor_free(inputs[0]);
            tg_tensor_free(inputs[1]);
        }
    tg_tensor_free(w);
    tg_tensor_free(labels);
}
