/* Penalties with scikit-learn's meaning and the full-batch solver on real
 * data: the optimum of C * sum_i loss_i + R(W) on standardized iris (three
 * classes, and versicolor against virginica as a 2-output model) and digits
 * equals scikit-learn's (tests/ref/logreg_ref.py: newton-cg polished by Newton
 * steps for L2, saga for L1): probabilities to 1e-5, the objective to 1e-7
 * relative (L1: 1e-5, and the same zero coefficients). The objective is
 * recomputed here in long double from the model's probabilities and weights.
 * Also: independence from the block size, the L2 gradient under SGD, the
 * penalty's value by hand, and the config's refusals. */
#define _GNU_SOURCE /* memmem */

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "ref/logreg_ref.h"
#include "train/train.h"

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR ".."
#endif
#define IRIS_CSV TAPEGRAD_SOURCE_DIR "/data/iris.csv"
#define DIGITS_CSV TAPEGRAD_SOURCE_DIR "/data/digits.csv"

/* data/iris.csv without its setosa rows (the first 50). */
static char *binary_iris(void)
{
    char *dir = make_temp_dir("tapegrad_penalty"), *path = join_path(dir, "iris_binary.csv");
    size_t size;
    unsigned char *text = read_bytes(IRIS_CSV, &size);
    char *out = malloc(size + 1);
    cr_assert_not_null(out);
    size_t used = 0;
    const char *line = (const char *)text, *end = (const char *)text + size;
    while (line < end) {
        const char *next = memchr(line, '\n', (size_t)(end - line));
        next = next ? next + 1 : end;
        if (!memmem(line, (size_t)(next - line), "setosa", 6)) {
            memcpy(out + used, line, (size_t)(next - line));
            used += (size_t)(next - line);
        }
        line = next;
    }
    write_bytes(path, out, used);
    free(out);
    free(text);
    free(dir);
    return path;
}

static const char *path_of(const char *data, char **owned)
{
    if (strcmp(data, "iris_binary") == 0)
        return *owned = binary_iris();
    if (strcmp(data, "breast_cancer") == 0)
        return TAPEGRAD_SOURCE_DIR "/data/breast_cancer.csv";
    return strcmp(data, "iris") == 0 ? IRIS_CSV : DIGITS_CSV;
}

/* A full-batch config over the whole file (the test set is the same file). */
static tg_config *solver_config(const char *path, int64_t classes, const char *penalty, double C, const char *extra)
{
    char loss_extra[96] = "";
    if (strcmp(penalty, "bce_l2") == 0) { /* the one-output binary model */
        snprintf(loss_extra, sizeof loss_extra, ", \"type\": \"binary_cross_entropy\"");
        penalty = "l2";
        classes = 1;
    }
    if (strcmp(penalty, "elasticnet") == 0) { /* extra is then the l1_ratio */
        snprintf(loss_extra, sizeof loss_extra, ", \"l1_ratio\": %s", extra);
        extra = NULL;
    }
    char text[2048];
    snprintf(text, sizeof text,
             "{\"data\": {\"train\": \"%s\", \"test\": \"%s\", \"standardize\": true, \"validation_split\": 0},"
             " \"model\": {\"dtype\": \"float64\", \"layers\": [{\"type\": \"linear\", \"out\": %lld}]},"
             " \"loss\": {\"penalty\": \"%s\", \"C\": %.17g%s},"
             " \"optimizer\": {\"type\": \"lbfgs\"%s}}",
             path, path, (long long)classes, penalty, C, loss_extra, extra ? extra : "");
    tg_config *cfg = tg_config_parse(text, NULL);
    cr_assert_not_null(cfg, "%s\n%s", tg_last_error(), text);
    return cfg;
}

/* C * sum_i -log p[i, y_i] + l1_ratio |W|_1 + (1 - l1_ratio) |W|^2 / 2 in long double, from the model's own
 * probabilities and weights. */
static long double objective_of(tg_model *m, const tg_dataset *ds, const double *probs, double l1_ratio, double C)
{
    long double loss = 0, abs_sum = 0, squares = 0;
    for (int64_t i = 0; i < ds->rows; i++)
        loss -= logl((long double)probs[i * ds->classes + ds->y[i]]);
    const tg_tensor *w = tg_model_param(m, 0);
    for (int64_t k = 0; k < tg_numel(w); k++) {
        long double v = tg_get(w, k);
        abs_sum += fabsl(v);
        squares += v * v;
    }
    return (long double)C * loss + (long double)l1_ratio * abs_sum + (1 - (long double)l1_ratio) * squares / 2;
}

Test(penalty, full_batch_optimum_equals_scikit_learns)
{
    for (size_t c = 0; c < sizeof logreg_refs / sizeof logreg_refs[0]; c++) {
        const logreg_ref *ref = &logreg_refs[c];
        char *owned = NULL;
        const char *path = path_of(ref->data, &owned);
        char extra[64] = "";
        bool l1 = strcmp(ref->penalty, "l2") != 0; /* l1 or elasticnet: OWL-QN */
        if (strcmp(ref->penalty, "elasticnet") == 0)
            snprintf(extra, sizeof extra, "%.17g", ref->l1_ratio);
        tg_config *cfg = solver_config(path, ref->classes, ref->penalty, ref->C, extra[0] ? extra : NULL);
        tg_training *t = tg_train_config(cfg, NULL, NULL);
        cr_assert_not_null(t, "%s C=%g: %s", ref->data, ref->C, tg_last_error());
        cr_expect(t->solver.status == TG_LBFGS_CONVERGED_GRAD || t->solver.status == TG_LBFGS_CONVERGED_ROUNDING,
                  "%s %s C=%g: %s", ref->data, ref->penalty, ref->C, tg_lbfgs_status_text(t->solver.status));
        tg_csv_opts csv = TG_CSV_OPTS_DEFAULT;
        tg_dataset *ds = tg_load_data_for_model(t->model, path, &csv); /* class ids as the model's */
        cr_assert_not_null(ds, "%s", tg_last_error());
        cr_assert_eq(ds->classes, ref->classes);
        double *probs = malloc((size_t)(ds->rows * ds->classes) * sizeof *probs);
        cr_assert_eq(tg_predict(t->model, ds, probs), 0, "%s", tg_last_error());
        double worst = 0;
        for (int r = 0; r < ref->rows; r++)
            for (int k = 0; k < ref->classes; k++)
                worst = fmax(worst, fabs(probs[(int64_t)r * ref->row_step * ds->classes + k] -
                                         ref->proba[r * ref->classes + k]));
        long double objective = objective_of(t->model, ds, probs, ref->l1_ratio, ref->C);
        double relative = (double)fabsl((objective - ref->objective) / ref->objective);
        if (getenv("MARGINS"))
            fprintf(stderr, "%s %s C=%g: proba %.2e objective rel %.2e, %d iterations\n", ref->data, ref->penalty,
                    ref->C, worst, relative, t->solver.iterations);
        cr_expect_leq(worst, 1e-5, "%s %s C=%g: probabilities differ by %.3g", ref->data, ref->penalty, ref->C, worst);
        bool bce = strcmp(ref->penalty, "bce_l2") == 0;
        if (bce) /* 1 - sigmoid loses a tiny probability's digits: the solver's own (softplus) objective instead */
            relative = fabs((t->objective - ref->objective) / ref->objective);
        cr_expect_leq(relative, l1 ? 1e-5 : 1e-7, "%s %s C=%g: objective %.15g, scikit-learn's %.15g (rel %.3g)",
                      ref->data, ref->penalty, ref->C, bce ? t->objective : (double)objective, ref->objective,
                      relative);
        cr_expect(bce || fabs(t->objective - (double)objective) <= 1e-9 * fabs(ref->objective),
                  "the objective train reports: %.15g, recomputed %.15Lg", t->objective, objective);
        if (l1) {
            const tg_tensor *w = tg_model_param(t->model, 0);
            for (int64_t k = 0; k < tg_numel(w); k++)
                cr_expect_eq(tg_get(w, k) == 0.0, ref->zero[k] == 1.0,
                             "%s l1 C=%g: W[%lld] = %.3g, scikit-learn's is %szero", ref->data, ref->C, (long long)k,
                             tg_get(w, k), ref->zero[k] == 1.0 ? "" : "non-");
        }
        free(probs);
        tg_dataset_free(ds);
        tg_training_free(t);
        tg_config_free(cfg);
        free(owned);
    }
}

/* Twenty iterations with blocks of 7 rows and of all rows follow the same path up to summation order
 * (after convergence the paths may stop at points that differ within the tolerance, so it is checked here). */
Test(penalty, block_size_changes_only_rounding)
{
    tg_config *small = solver_config(DIGITS_CSV, 10, "l2", 1.0, ", \"block_rows\": 7, \"max_iter\": 20");
    tg_config *whole = solver_config(DIGITS_CSV, 10, "l2", 1.0, ", \"block_rows\": 100000, \"max_iter\": 20");
    tg_training *a = tg_train_config(small, NULL, NULL), *b = tg_train_config(whole, NULL, NULL);
    cr_assert(a && b, "%s", tg_last_error());
    cr_expect_eq(a->solver.iterations, 20);
    cr_expect(close_enough(a->objective, b->objective, 1e-12 * fabs(b->objective)), "%.17g vs %.17g", a->objective,
              b->objective);
    for (int i = 0; i < 2; i++) {
        tg_tensor *wa = tg_model_param(a->model, i), *wb = tg_model_param(b->model, i);
        double worst = 0;
        for (int64_t k = 0; k < tg_numel(wa); k++)
            worst = fmax(worst, fabs(tg_get(wa, k) - tg_get(wb, k)));
        cr_expect_leq(worst, 1e-9, "%s differs by %.3g", tg_model_param_name(a->model, i), worst);
    }
    tg_training_free(a);
    tg_training_free(b);
    tg_config_free(small);
    tg_config_free(whole);
}

/* One thread or two (each its own blocks, model copy and tape): the same optimum up to summation order. */
Test(penalty, thread_count_changes_only_rounding)
{
    tg_config *cfg = solver_config(DIGITS_CSV, 10, "l2", 1.0, ", \"block_rows\": 100");
    int64_t min_work = tg_full_batch_min_work;
    tg_full_batch_min_work = 1; /* digits alone is too small a problem for a second thread */
    tg_set_num_threads(1);
    tg_training *a = tg_train_config(cfg, NULL, NULL);
    tg_set_num_threads(2);
    tg_training *b = tg_train_config(cfg, NULL, NULL);
    tg_training *c = tg_train_config(cfg, NULL, NULL);
    cr_assert(a && b && c, "%s", tg_last_error());
    cr_expect(close_enough(a->objective, b->objective, 1e-10 * fabs(b->objective)), "%.17g vs %.17g", a->objective,
              b->objective);
    cr_expect_eq(b->objective, c->objective, "the same thread count gives the same bits");
    tg_full_batch_min_work = min_work;
    tg_training_free(a);
    tg_training_free(b);
    tg_training_free(c);
    tg_config_free(cfg);
}

/* SGD on full batches with the penalty's gradient scaled by 1 / (C n) reaches the same optimum. */
Test(penalty, l2_under_sgd_has_the_same_optimum)
{
    const logreg_ref *ref = &logreg_refs[0];
    cr_assert(strcmp(ref->data, "iris") == 0 && ref->C == 0.01);
    char text[1024];
    snprintf(text, sizeof text,
             "{\"data\": {\"train\": \"%s\", \"test\": \"%s\", \"standardize\": true, \"validation_split\": 0},"
             " \"model\": {\"dtype\": \"float64\", \"layers\": [{\"type\": \"linear\", \"out\": 3}]},"
             " \"loss\": {\"penalty\": \"l2\", \"C\": 0.01}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 1.0},"
             " \"train\": {\"epochs\": 3000, \"batch_size\": 150}}",
             IRIS_CSV, IRIS_CSV);
    tg_config *cfg = tg_config_parse(text, NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_training *t = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(t, "%s", tg_last_error());
    tg_dataset *ds = tg_csv_load(IRIS_CSV, NULL);
    double probs[450];
    cr_assert_eq(tg_predict(t->model, ds, probs), 0);
    double worst = 0;
    for (int k = 0; k < 450; k++)
        worst = fmax(worst, fabs(probs[k] - ref->proba[k]));
    cr_expect_leq(worst, 1e-5, "probabilities differ by %.3g", worst);
    tg_dataset_free(ds);
    tg_training_free(t);
    tg_config_free(cfg);
}

Test(penalty, value_and_gradient_by_hand)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 2, 1 }, { TG_LAYER_RELU, 0, 0 }, { TG_LAYER_LINEAR, 2, 1 } };
    tg_model *m = tg_model_new(TG_F64, 2, 3, layers, &rng);
    cr_assert_not_null(m);
    const double w0[] = { 1, -2, 0.5, 0 }, w1[] = { -3, 0.25, 1, 2 };
    memcpy(tg_data(tg_model_param(m, 0)), w0, sizeof w0);
    memcpy(tg_data(tg_model_param(m, 2)), w1, sizeof w1);
    tg_fill(tg_model_param(m, 1), 7); /* biases: never penalized */
    tg_fill(tg_model_param(m, 3), -7);
    /* |W| = 3.5 + 6.25 = 9.75; |W|^2 / 2 = (1 + 4 + 0.25 + 9 + 0.0625 + 1 + 4) / 2 = 9.65625 */
    tg_penalty l1 = { TG_PENALTY_L1, 1.0, 0 }, l2 = { TG_PENALTY_L2, 1.0, 0 },
               en = { TG_PENALTY_ELASTICNET, 1.0, 0.25 };
    cr_expect_eq(tg_penalty_value(&l1, m), 9.75);
    cr_expect_eq(tg_penalty_value(&l2, m), 9.65625);
    cr_expect_eq(tg_penalty_value(&en, m), 0.25 * 9.75 + 0.75 * 9.65625);
    cr_assert_eq(tg_penalty_add_grad(&l2, m, 0.5), 0);
    for (int k = 0; k < 4; k++) {
        cr_expect_eq(tg_get(tg_grad(tg_model_param(m, 0)), k), 0.5 * w0[k]);
        cr_expect_eq(tg_get(tg_grad(tg_model_param(m, 2)), k), 0.5 * w1[k]);
    }
    cr_expect_null(tg_grad(tg_model_param(m, 1)), "the bias gets no penalty gradient");
    cr_expect_eq(tg_penalty_add_grad(&l1, m, 1.0), -1, "an L1 term has no gradient to add");
    tg_penalty bad = { TG_PENALTY_L2, 0.0, 0 };
    cr_expect(isnan(tg_penalty_value(&bad, m)));
    tg_model_free(m);
}

/* Refused before training, with the JSON path named. */
Test(penalty, config_refusals_name_the_path)
{
    static const struct {
        const char *loss, *optimizer, *train, *expect;
    } cases[] = {
        { "\"penalty\": \"l2\", \"C\": 0", "\"type\": \"lbfgs\"", NULL, "loss.C: must be > 0" },
        { "\"penalty\": \"l2\", \"C\": -1", "\"type\": \"lbfgs\"", NULL, "loss.C: must be > 0" },
        { "\"penalty\": \"l2\", \"C\": 1e999", "\"type\": \"lbfgs\"", NULL, "loss.C: must be a finite number" },
        { "\"penalty\": \"elasticnet\", \"l1_ratio\": 1.5", "\"type\": \"lbfgs\"", NULL, "loss.l1_ratio: must be in" },
        { "\"penalty\": \"elasticnet\"", "\"type\": \"lbfgs\"", NULL, "loss.l1_ratio: required" },
        { "\"penalty\": \"l2\", \"l1_ratio\": 0.5", "\"type\": \"lbfgs\"", NULL, "loss.l1_ratio: is used only" },
        { "\"penalty\": \"none\", \"C\": 2", "\"type\": \"lbfgs\"", NULL, "loss.C: has no effect" },
        { "\"penalty\": \"l1\"", "\"type\": \"sgd\", \"lr\": 0.1", NULL, "loss.penalty: \"l1\" needs optimizer.type" },
        { "\"penalty\": \"elasticnet\", \"l1_ratio\": 0.5", "\"type\": \"adam\"", NULL,
          "loss.penalty: \"elasticnet\" needs" },
        { "\"penalty\": \"l3\"", "\"type\": \"lbfgs\"", NULL, "loss.penalty" },
        { "\"penalty\": \"l2\"", "\"type\": \"lbfgs\", \"history_size\": 0", NULL, "optimizer.history_size" },
        { "\"penalty\": \"l2\"", "\"type\": \"lbfgs\", \"tolerance_grad\": -1", NULL, "optimizer.tolerance_grad" },
        { "\"penalty\": \"l2\"", "\"type\": \"lbfgs\", \"lr\": 1", NULL, "optimizer.lr: unknown key for type" },
        { "\"penalty\": \"l2\"", "\"type\": \"lbfgs\"", "\"epochs\": 5", "train.epochs: not used by optimizer.type" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"data\": {\"train\": \"x.csv\", \"test_split\": 0.2}, \"model\": {\"layers\": [{\"type\": "
                 "\"linear\", \"out\": 3}]}, \"loss\": {%s}, \"optimizer\": {%s}%s%s%s}",
                 cases[i].loss, cases[i].optimizer, cases[i].train ? ", \"train\": {" : "",
                 cases[i].train ? cases[i].train : "", cases[i].train ? "}" : "");
        tg_config *cfg = tg_config_parse(text, NULL);
        cr_expect_null(cfg, "accepted: %s", text);
        cr_expect(strstr(tg_last_error(), cases[i].expect) != NULL, "%s\nexpected \"%s\"", tg_last_error(),
                  cases[i].expect);
        tg_config_free(cfg);
    }
}

Test(penalty, defaults_keep_old_configs_unpenalized)
{
    tg_config *cfg = tg_config_parse("{\"data\": {\"train\": \"x.csv\", \"test_split\": 0.2}, \"model\": {\"layers\":"
                                     " [{\"type\": \"linear\", \"out\": 3}]}, \"optimizer\": {\"type\": \"sgd\"}}",
                                     NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_expect_eq(cfg->loss.penalty.type, TG_PENALTY_NONE);
    tg_config_free(cfg);
    cfg = tg_config_parse("{\"data\": {\"train\": \"x.csv\", \"test_split\": 0.2}, \"model\": {\"layers\":"
                          " [{\"type\": \"linear\", \"out\": 3}]}, \"optimizer\": {\"type\": \"lbfgs\"}}",
                          NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_expect_eq(cfg->loss.penalty.type, TG_PENALTY_L2, "lbfgs takes scikit-learn's default, l2 with C 1");
    cr_expect_eq(cfg->loss.penalty.C, 1.0);
    tg_config_free(cfg);
}

/* Any model the tape differentiates: an MLP's objective is not convex, but the
 * solver still ends at a stationary point (the gradient test), from the seeded start. */
Test(penalty, full_batch_trains_an_mlp)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"data\": {\"train\": \"%s\", \"test\": \"%s\", \"validation_split\": 0},"
             " \"model\": {\"dtype\": \"float64\", \"layers\": [{\"type\": \"linear\", \"out\": 8}, {\"type\": "
             "\"tanh\"}, {\"type\": \"linear\", \"out\": 3}]},"
             " \"loss\": {\"penalty\": \"l2\", \"C\": 10}, \"optimizer\": {\"type\": \"lbfgs\", \"max_iter\": 5000}}",
             IRIS_CSV, IRIS_CSV);
    tg_config *cfg = tg_config_parse(text, NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_training *t = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(t, "%s", tg_last_error());
    cr_expect(t->solver.status == TG_LBFGS_CONVERGED_GRAD || t->solver.status == TG_LBFGS_CONVERGED_ROUNDING, "%s",
              tg_lbfgs_status_text(t->solver.status));
    cr_expect_leq(t->solver.grad_norm, 1e-8);
    /* both layers' weights are penalized: the reported objective includes both */
    tg_penalty pen = { TG_PENALTY_L2, 10, 0 };
    tg_eval ev;
    cr_assert_eq(tg_evaluate(t->model, t->test, &ev), 0);
    double expected = 10 * ev.loss * (double)ev.rows + tg_penalty_value(&pen, t->model);
    cr_expect(close_enough(t->objective, expected, 1e-9 * expected), "%.15g vs %.15g", t->objective, expected);
    cr_expect_geq(ev.accuracy, 0.97);
    tg_eval_clear(&ev);
    tg_training_free(t);
    tg_config_free(cfg);
}
