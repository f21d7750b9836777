/* The metrics against scikit-learn 1.2 on fixed predictions: the expected
 * numbers are in metrics_reference.h, written by tests/metrics_reference.py
 * (sklearn.metrics), never by tapegrad. Cases: binary with either class as the
 * positive one, three and four classes, ties in the scores, an all-tie row, a
 * class that is never predicted, probabilities of exactly 0 and 1. */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "helpers.h"

typedef struct {
    const char *name;
    int64_t rows, classes, positive;
    const int64_t *y;
    const double *probs;
    double accuracy, balanced_accuracy, log_loss, brier;
    double precision_macro, recall_macro, f1_macro, precision_weighted, recall_weighted, f1_weighted;
    double roc_auc, average_precision;
    const double *precision, *recall, *f1;
    const int64_t *support;
} metrics_case;

#include "metrics_reference.h"

#define TOL 1e-12

static void expect(const char *what, const char *name, double got, double want)
{
    cr_expect(fabs(got - want) <= TOL, "%s: %s is %.17g, sklearn %.17g", name, what, got, want);
}

Test(metrics, equal_sklearn_on_fixed_cases)
{
    for (size_t i = 0; i < sizeof metrics_cases / sizeof metrics_cases[0]; i++) {
        const metrics_case *c = &metrics_cases[i];
        tg_metrics m;
        cr_assert_eq(tg_metrics_compute(c->rows, c->classes, c->y, c->probs, c->positive, &m), 0, "%s",
                     tg_last_error());
        cr_expect_eq(m.rows, c->rows);
        expect("accuracy", c->name, m.accuracy, c->accuracy);
        expect("balanced_accuracy", c->name, m.balanced_accuracy, c->balanced_accuracy);
        expect("log_loss", c->name, m.log_loss, c->log_loss);
        expect("brier", c->name, m.brier, c->brier);
        expect("precision_macro", c->name, m.precision_macro, c->precision_macro);
        expect("recall_macro", c->name, m.recall_macro, c->recall_macro);
        expect("f1_macro", c->name, m.f1_macro, c->f1_macro);
        expect("precision_weighted", c->name, m.precision_weighted, c->precision_weighted);
        expect("recall_weighted", c->name, m.recall_weighted, c->recall_weighted);
        expect("f1_weighted", c->name, m.f1_weighted, c->f1_weighted);
        expect("roc_auc", c->name, m.roc_auc, c->roc_auc);
        expect("average_precision", c->name, m.average_precision, c->average_precision);
        for (int64_t k = 0; k < c->classes; k++) {
            expect("precision[k]", c->name, m.precision[k], c->precision[k]);
            expect("recall[k]", c->name, m.recall[k], c->recall[k]);
            expect("f1[k]", c->name, m.f1[k], c->f1[k]);
            cr_expect_eq(m.support[k], c->support[k], "%s: support[%lld]", c->name, (long long)k);
        }
        tg_metrics_free(&m);
    }
}

/* The multiclass cases have a class the argmax never picks: its precision is 0 (zero_division), not NaN. */
Test(metrics, a_class_never_predicted_counts_as_zero_precision)
{
    const metrics_case *c = &metrics_cases[2];
    tg_metrics m;
    cr_assert_eq(tg_metrics_compute(c->rows, c->classes, c->y, c->probs, 0, &m), 0);
    cr_expect_eq(m.predicted[2], 0);
    cr_expect_eq(m.precision[2], 0.0);
    cr_expect_eq(m.positive, -1);
    tg_metrics_free(&m);
}

Test(metrics, binary_functions_and_curves_equal_sklearn)
{
    const metrics_case *c = &metrics_cases[0];
    double score[16], fpr[17], tpr[17], threshold[17];
    for (int i = 0; i < 16; i++)
        score[i] = c->probs[2 * i + 1];
    expect("tg_roc_auc", c->name, tg_roc_auc(16, c->y, score, 1), c->roc_auc);
    expect("tg_average_precision", c->name, tg_average_precision(16, c->y, score, 1), c->average_precision);
    int64_t n = tg_roc_curve(16, c->y, score, 1, fpr, tpr, threshold);
    cr_assert_eq(n, roc_points);
    cr_expect(isinf(threshold[0]));
    for (int64_t i = 0; i < n; i++) {
        expect("roc fpr", c->name, fpr[i], roc_fpr[i]);
        expect("roc tpr", c->name, tpr[i], roc_tpr[i]);
        if (i > 0)
            cr_expect_eq(threshold[i], roc_threshold[i]);
    }
    double mean[5], fraction[5];
    int64_t count[5];
    cr_assert_eq(tg_calibration_curve(16, c->y, score, 1, 5, mean, fraction, count), calibration_bins);
    int64_t total = 0;
    for (int b = 0; b < calibration_bins; b++) {
        expect("calibration mean", c->name, mean[b], calibration_pred[b]);
        expect("calibration fraction", c->name, fraction[b], calibration_true[b]);
        total += count[b];
    }
    cr_expect_eq(total, 16);
}

/* Hand-checked: scores of positives all above the negatives give AUC and AP 1; all tied give AUC 0.5. */
Test(metrics, separable_and_tied_scores)
{
    int64_t y[4] = { 0, 1, 0, 1 };
    double separable[4] = { 0.1, 0.9, 0.2, 0.8 }, tied[4] = { 0.3, 0.3, 0.3, 0.3 };
    cr_expect_eq(tg_roc_auc(4, y, separable, 1), 1.0);
    cr_expect_eq(tg_average_precision(4, y, separable, 1), 1.0);
    cr_expect_eq(tg_roc_auc(4, y, tied, 1), 0.5);
    cr_expect_eq(tg_average_precision(4, y, tied, 1), 0.5);
}

Test(metrics, undefined_and_bad_input)
{
    int64_t y[3] = { 1, 1, 1 };
    double score[3] = { 0.1, 0.2, 0.3 };
    cr_expect(isnan(tg_roc_auc(3, y, score, 1)));
    cr_expect(strstr(tg_last_error(), "no negative rows"), "%s", tg_last_error());
    double probs[6] = { 0.5, 0.5, NAN, 1, 0, 1 };
    tg_metrics m;
    int64_t labels[3] = { 0, 1, 0 };
    cr_expect_neq(tg_metrics_compute(3, 2, labels, probs, 1, &m), 0);
    cr_expect(strstr(tg_last_error(), "probs[1, 0]"), "%s", tg_last_error());
    probs[2] = 0;
    labels[2] = 2;
    cr_expect_neq(tg_metrics_compute(3, 2, labels, probs, 1, &m), 0);
    cr_expect(strstr(tg_last_error(), "y[2] is 2"), "%s", tg_last_error());
    cr_expect_neq(tg_metrics_compute(3, 2, y, probs, 2, &m), 0);
    double bad[1] = { 1.5 }, mean[2], fraction[2];
    cr_expect_eq(tg_calibration_curve(1, y, bad, 1, 2, mean, fraction, NULL), -1);
    tg_metrics_free(&m);
}
