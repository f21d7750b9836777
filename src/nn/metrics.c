/* Classification metrics from true classes and predicted probabilities, with
 * scikit-learn's definitions (sklearn.metrics 1.2): the same numbers on the
 * same predictions. Ties in the scores are one threshold, as in roc_curve. */
#include "nn/nn_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double score;
    int positive;
} scored;

static int by_score_descending(const void *a, const void *b)
{
    double x = ((const scored *)a)->score, y = ((const scored *)b)->score;
    return (x < y) - (x > y);
}

/* One point per distinct score, highest first: the true and false positives
 * of the threshold "score >= s". The caller's callback sees them in order. */
typedef void (*threshold_fn)(void *ctx, double score, int64_t tp, int64_t fp);

static void walk_thresholds(scored *pairs, int64_t n, threshold_fn fn, void *ctx)
{
    qsort(pairs, (size_t)n, sizeof *pairs, by_score_descending);
    int64_t tp = 0, fp = 0;
    for (int64_t i = 0; i < n; i++) {
        tp += pairs[i].positive;
        fp += !pairs[i].positive;
        if (i + 1 == n || pairs[i + 1].score != pairs[i].score)
            fn(ctx, pairs[i].score, tp, fp);
    }
}

/* pairs[i] = (score[i * stride], y[i] == positive). */
static int64_t fill_pairs(scored *pairs, int64_t n, const int64_t *y, const double *score, int64_t stride,
                          int64_t positive)
{
    int64_t positives = 0;
    for (int64_t i = 0; i < n; i++) {
        pairs[i].score = score[i * stride];
        pairs[i].positive = y[i] == positive;
        positives += pairs[i].positive;
    }
    return positives;
}

typedef struct {
    double positives, negatives;
    int64_t last_tp, last_fp;
    double area; /* ROC: trapezoids in counts; AP: sum of (recall step) * precision */
} curve_acc;

/* Trapezoid from the previous point, in units of tp * fp (divided once at the end). */
static void roc_step(void *ctx, double score, int64_t tp, int64_t fp)
{
    (void)score;
    curve_acc *a = ctx;
    a->area += (double)(fp - a->last_fp) * (double)(tp + a->last_tp) / 2;
    a->last_tp = tp;
    a->last_fp = fp;
}

/* AP = sum_n (R_n - R_{n-1}) P_n (sklearn's average_precision_score: no interpolation). */
static void ap_step(void *ctx, double score, int64_t tp, int64_t fp)
{
    (void)score;
    curve_acc *a = ctx;
    a->area += ((double)tp / a->positives - (double)a->last_tp / a->positives) * ((double)tp / (double)(tp + fp));
    a->last_tp = tp;
    a->last_fp = fp;
}

/* Binary ROC-AUC (ap = 0) or average precision (ap = 1) of sorted scratch pairs; NaN when undefined. */
static double binary_area(scored *pairs, int64_t n, int64_t positives, int ap)
{
    curve_acc a = { (double)positives, (double)(n - positives), 0, 0, 0 };
    if (positives == 0 || (!ap && positives == n))
        return NAN;
    walk_thresholds(pairs, n, ap ? ap_step : roc_step, &a);
    return ap ? a.area : a.area / (a.positives * a.negatives);
}

static int check_binary_args(const char *fn, int64_t n, const int64_t *y, const double *score)
{
    if (n < 0 || (n > 0 && (!y || !score))) {
        tg_error("%s: %s", fn, n < 0 ? "negative row count" : "y and score are required");
        return -1;
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(score[i])) {
            tg_error("%s: score[%lld] is %g; scores must be finite", fn, (long long)i, score[i]);
            return -1;
        }
    return 0;
}

static double binary_metric(const char *fn, int64_t n, const int64_t *y, const double *score, int64_t positive, int ap)
{
    if (check_binary_args(fn, n, y, score))
        return NAN;
    scored *pairs = tg_alloc((size_t)(n ? n : 1) * sizeof *pairs);
    if (!pairs)
        return NAN;
    int64_t positives = fill_pairs(pairs, n, y, score, 1, positive);
    double v = binary_area(pairs, n, positives, ap);
    tg_dealloc(pairs);
    if (isnan(v))
        tg_error("%s: undefined with %s", fn, positives == 0 ? "no positive rows" : "no negative rows");
    return v;
}

double tg_roc_auc(int64_t n, const int64_t *y, const double *score, int64_t positive)
{
    return binary_metric("roc_auc", n, y, score, positive, 0);
}

double tg_average_precision(int64_t n, const int64_t *y, const double *score, int64_t positive)
{
    return binary_metric("average_precision", n, y, score, positive, 1);
}

typedef struct {
    double positives, negatives;
    double *fpr, *tpr, *threshold;
    int64_t points;
} roc_points;

static void roc_point(void *ctx, double score, int64_t tp, int64_t fp)
{
    roc_points *r = ctx;
    r->fpr[r->points] = (double)fp / r->negatives;
    r->tpr[r->points] = (double)tp / r->positives;
    if (r->threshold)
        r->threshold[r->points] = score;
    r->points++;
}

int64_t tg_roc_curve(int64_t n, const int64_t *y, const double *score, int64_t positive, double *fpr, double *tpr,
                     double *threshold)
{
    if (check_binary_args("roc_curve", n, y, score))
        return -1;
    if (!fpr || !tpr) {
        tg_error("roc_curve: fpr and tpr are required");
        return -1;
    }
    scored *pairs = tg_alloc((size_t)(n ? n : 1) * sizeof *pairs);
    if (!pairs)
        return -1;
    int64_t positives = fill_pairs(pairs, n, y, score, 1, positive);
    if (positives == 0 || positives == n) {
        tg_dealloc(pairs);
        tg_error("roc_curve: undefined with %s", positives == 0 ? "no positive rows" : "no negative rows");
        return -1;
    }
    roc_points r = { (double)positives, (double)(n - positives), fpr, tpr, threshold, 1 };
    fpr[0] = tpr[0] = 0;
    if (threshold)
        threshold[0] = INFINITY;
    walk_thresholds(pairs, n, roc_point, &r);
    tg_dealloc(pairs);
    return r.points;
}

int tg_calibration_curve(int64_t n, const int64_t *y, const double *score, int64_t positive, int bins,
                         double *mean_predicted, double *fraction_positive, int64_t *count)
{
    if (check_binary_args("calibration_curve", n, y, score))
        return -1;
    if (bins < 1 || !mean_predicted || !fraction_positive) {
        tg_error("calibration_curve: %s", bins < 1 ? "bins must be at least 1" : "the output arrays are required");
        return -1;
    }
    double *sum = tg_alloc_zeroed((size_t)bins * 3 * sizeof *sum);
    if (!sum)
        return -1;
    double *hits = sum + bins, *total = hits + bins;
    for (int64_t i = 0; i < n; i++) {
        if (score[i] < 0 || score[i] > 1) {
            tg_dealloc(sum);
            tg_error("calibration_curve: score[%lld] is %g, outside [0, 1]", (long long)i, score[i]);
            return -1;
        }
        /* numpy.searchsorted(edges[1:-1], p, "left") with edges i * (1 / bins): bins are (lo, hi], the first [0, hi]. */
        int b = 0;
        while (b < bins - 1 && (double)(b + 1) * (1.0 / bins) < score[i])
            b++;
        sum[b] += score[i];
        hits[b] += y[i] == positive;
        total[b] += 1;
    }
    int out = 0;
    for (int b = 0; b < bins; b++) {
        if (total[b] == 0)
            continue;
        mean_predicted[out] = sum[b] / total[b];
        fraction_positive[out] = hits[b] / total[b];
        if (count)
            count[out] = (int64_t)total[b];
        out++;
    }
    tg_dealloc(sum);
    return out;
}

/* ---- every metric at once ---- */

static int check_inputs(int64_t rows, int64_t classes, const int64_t *y, const double *probs, int64_t positive)
{
    if (rows < 0 || classes < 2 || (rows > 0 && (!y || !probs))) {
        tg_error("metrics: %s", rows < 0      ? "negative row count"
                                : classes < 2 ? "at least two classes are needed"
                                              : "y and probs are required");
        return -1;
    }
    if (classes == 2 && positive != 0 && positive != 1) {
        tg_error("metrics: positive class %lld is not 0 or 1", (long long)positive);
        return -1;
    }
    for (int64_t i = 0; i < rows; i++) {
        if (y[i] < 0 || y[i] >= classes) {
            tg_error("metrics: y[%lld] is %lld, outside [0, %lld)", (long long)i, (long long)y[i], (long long)classes);
            return -1;
        }
        for (int64_t k = 0; k < classes; k++)
            if (!isfinite(probs[i * classes + k])) {
                tg_error("metrics: probs[%lld, %lld] is %g; probabilities must be finite", (long long)i, (long long)k,
                         probs[i * classes + k]);
                return -1;
            }
    }
    return 0;
}

/* The first largest probability, as numpy.argmax. */
static int64_t argmax(const double *p, int64_t c)
{
    int64_t best = 0;
    for (int64_t k = 1; k < c; k++)
        if (p[k] > p[best])
            best = k;
    return best;
}

/* sklearn.metrics.log_loss: clip to [eps, 1 - eps] (eps of float64), renormalize each row, mean -log p[y]. */
static double log_loss_of(int64_t rows, int64_t c, const int64_t *y, const double *probs)
{
    double total = 0;
    for (int64_t i = 0; i < rows; i++) {
        const double *p = probs + i * c;
        double row_sum = 0;
        for (int64_t k = 0; k < c; k++)
            row_sum += fmin(fmax(p[k], DBL_EPSILON), 1 - DBL_EPSILON);
        total -= log(fmin(fmax(p[y[i]], DBL_EPSILON), 1 - DBL_EPSILON) / row_sum);
    }
    return total / (double)rows;
}

/* Binary: brier_score_loss on P(positive). More classes: the sum over classes of (p_k - [y = k])^2, averaged. */
static double brier_of(int64_t rows, int64_t c, const int64_t *y, const double *probs, int64_t positive)
{
    double total = 0;
    for (int64_t i = 0; i < rows; i++) {
        const double *p = probs + i * c;
        if (c == 2) {
            double d = (y[i] == positive) - p[positive];
            total += d * d;
        } else {
            for (int64_t k = 0; k < c; k++) {
                double d = (y[i] == k) - p[k];
                total += d * d;
            }
        }
    }
    return total / (double)rows;
}

/* Per-class precision, recall and F1 (0 where undefined, as zero_division's default), then the macro
 * means over the classes in y or in the predictions (sklearn's default labels) and the support-weighted means. */
static void class_scores(tg_metrics *m, const int64_t *hits)
{
    double labels = 0, recall_sum = 0, present = 0;
    for (int64_t k = 0; k < m->classes; k++) {
        double tp = (double)hits[k], predicted = (double)m->predicted[k], support = (double)m->support[k];
        double p = predicted > 0 ? tp / predicted : 0, r = support > 0 ? tp / support : 0;
        m->precision[k] = p;
        m->recall[k] = r;
        m->f1[k] = p + r > 0 ? 2 * p * r / (p + r) : 0;
        if (predicted > 0 || support > 0) {
            labels++;
            m->precision_macro += p;
            m->recall_macro += r;
            m->f1_macro += m->f1[k];
        }
        if (support > 0) {
            present++;
            recall_sum += r;
        }
        m->precision_weighted += p * support;
        m->recall_weighted += r * support;
        m->f1_weighted += m->f1[k] * support;
    }
    double rows = (double)m->rows;
    m->precision_macro /= labels;
    m->recall_macro /= labels;
    m->f1_macro /= labels;
    m->precision_weighted /= rows;
    m->recall_weighted /= rows;
    m->f1_weighted /= rows;
    m->balanced_accuracy = recall_sum / present;
}

/* Binary: the positive class's ROC-AUC and AP. More classes: one-vs-rest, the mean over the classes where
 * each is defined (scikit-learn refuses the others). */
static void ranking_scores(tg_metrics *m, const int64_t *y, const double *probs, scored *pairs)
{
    int64_t c = m->classes;
    if (c == 2) {
        int64_t positives = fill_pairs(pairs, m->rows, y, probs + m->positive, 2, m->positive);
        m->roc_auc = binary_area(pairs, m->rows, positives, 0);
        m->average_precision = binary_area(pairs, m->rows, positives, 1);
        return;
    }
    double auc_sum = 0, ap_sum = 0, auc_n = 0, ap_n = 0;
    for (int64_t k = 0; k < c; k++) {
        int64_t positives = fill_pairs(pairs, m->rows, y, probs + k, c, k);
        double auc = binary_area(pairs, m->rows, positives, 0), ap = binary_area(pairs, m->rows, positives, 1);
        if (!isnan(auc))
            auc_sum += auc, auc_n++;
        if (!isnan(ap))
            ap_sum += ap, ap_n++;
    }
    m->roc_auc = auc_n > 0 ? auc_sum / auc_n : NAN;
    m->average_precision = ap_n > 0 ? ap_sum / ap_n : NAN;
}

int tg_metrics_compute(int64_t rows, int64_t classes, const int64_t *y, const double *probs, int64_t positive,
                       tg_metrics *out)
{
    if (!out) {
        tg_error("metrics: out is NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (check_inputs(rows, classes, y, probs, positive))
        return -1;
    size_t c = (size_t)classes;
    out->rows = rows;
    out->classes = classes;
    out->positive = classes == 2 ? positive : -1;
    out->precision = tg_alloc_zeroed(3 * c * sizeof *out->precision);
    out->support = tg_alloc_zeroed(3 * c * sizeof *out->support);
    scored *pairs = tg_alloc((size_t)(rows ? rows : 1) * sizeof *pairs);
    if (!out->precision || !out->support || !pairs) {
        tg_dealloc(pairs);
        tg_metrics_free(out);
        return -1;
    }
    out->recall = out->precision + c;
    out->f1 = out->recall + c;
    out->predicted = out->support + c;
    int64_t *hits = out->predicted + c, correct = 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t best = argmax(probs + i * classes, classes);
        out->support[y[i]]++;
        out->predicted[best]++;
        hits[y[i]] += best == y[i];
        correct += best == y[i];
    }
    if (rows == 0) {
        double nan = NAN;
        out->accuracy = out->balanced_accuracy = out->log_loss = out->brier = out->roc_auc = nan;
        out->average_precision = out->precision_macro = out->recall_macro = out->f1_macro = nan;
        out->precision_weighted = out->recall_weighted = out->f1_weighted = nan;
        tg_dealloc(pairs);
        return 0;
    }
    out->accuracy = (double)correct / (double)rows;
    out->log_loss = log_loss_of(rows, classes, y, probs);
    out->brier = brier_of(rows, classes, y, probs, positive);
    class_scores(out, hits);
    ranking_scores(out, y, probs, pairs);
    tg_dealloc(pairs);
    return 0;
}

void tg_metrics_free(tg_metrics *m)
{
    if (!m)
        return;
    tg_dealloc(m->precision);
    tg_dealloc(m->support);
    m->precision = m->recall = m->f1 = NULL;
    m->support = m->predicted = NULL;
}
