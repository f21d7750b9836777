/* Training from a config and evaluation: determinism, the accuracy logistic
 * regression reaches on digits, early stopping, learning-rate schedules, a
 * diverging run, stopping from the progress callback, label names, the
 * evaluation's bookkeeping and the data checks. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR ".."
#endif

#define IRIS_CSV TAPEGRAD_SOURCE_DIR "/data/iris.csv"
#define DIGITS_CSV TAPEGRAD_SOURCE_DIR "/data/digits.csv"

static tg_config *load_config(const char *path)
{
    tg_config *cfg = tg_config_load(path);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    return cfg;
}

/* A config from text with single quotes (turned into JSON's double quotes);
 * the text may name IRIS_CSV through a %s. */
static tg_config *parse_config(const char *single_quoted) { return config_from_text(single_quoted, IRIS_CSV); }

static tg_training *train(const tg_config *cfg, tg_progress_fn progress, void *ctx)
{
    tg_training *t = tg_train_config(cfg, progress, ctx);
    cr_assert_not_null(t, "%s", tg_last_error());
    return t;
}

static char *temp_dir(void)
{
    static char dir[64];
    strcpy(dir, "/tmp/tapegrad_train_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static unsigned char *read_all(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    *size = ftell(f);
    rewind(f);
    unsigned char *bytes = malloc((size_t)*size + 1);
    cr_assert_not_null(bytes);
    cr_assert_eq(fread(bytes, 1, (size_t)*size, f), (size_t)*size);
    fclose(f);
    return bytes;
}

/* ---- determinism ---- */

Test(train, the_same_config_trains_bit_identical_weights_and_files)
{
    tg_config *cfg = load_config(TAPEGRAD_SOURCE_DIR "/examples/iris_mlp.json");
    tg_training *a = train(cfg, NULL, NULL), *b = train(cfg, NULL, NULL);
    cr_assert_eq(a->epochs_run, b->epochs_run);
    for (int e = 0; e < a->epochs_run; e++) {
        cr_assert_eq(memcmp(&a->train_loss[e], &b->train_loss[e], sizeof(double)), 0, "train loss of epoch %d", e + 1);
        cr_assert_eq(memcmp(&a->val_loss[e], &b->val_loss[e], sizeof(double)), 0, "val loss of epoch %d", e + 1);
    }
    cr_assert_eq(tg_model_n_params(a->model), tg_model_n_params(b->model));
    for (int i = 0; i < tg_model_n_params(a->model); i++) {
        const tg_tensor *pa = tg_model_param(a->model, i), *pb = tg_model_param(b->model, i);
        size_t bytes = (size_t)tg_numel(pa) * tg_dtype_size(tg_dtype_of(pa));
        cr_assert_eq(memcmp(tg_data(pa), tg_data(pb), bytes), 0, "%s differs", tg_model_param_name(a->model, i));
    }
    char *dir = temp_dir(), path_a[128], path_b[128];
    snprintf(path_a, sizeof path_a, "%s/a.safetensors", dir);
    snprintf(path_b, sizeof path_b, "%s/b.safetensors", dir);
    cr_assert_eq(tg_model_save(a->model, path_a), 0, "%s", tg_last_error());
    cr_assert_eq(tg_model_save(b->model, path_b), 0, "%s", tg_last_error());
    long size_a, size_b;
    unsigned char *bytes_a = read_all(path_a, &size_a), *bytes_b = read_all(path_b, &size_b);
    cr_assert_eq(size_a, size_b);
    cr_assert_eq(memcmp(bytes_a, bytes_b, (size_t)size_a), 0, "the two saved files differ");
    free(bytes_a);
    free(bytes_b);
    unlink(path_a);
    unlink(path_b);
    rmdir(dir);
    tg_training_free(a);
    tg_training_free(b);
    tg_config_free(cfg);
}

/* The splits: 150 iris rows, test_split 0.2 -> 30, validation_split 0.1 of
 * the 120 left -> 12, 108 to train. tg_config_load_data gives the same rows. */
Test(train, splits_have_the_configured_sizes_and_config_load_data_repeats_them)
{
    tg_config *cfg = load_config(TAPEGRAD_SOURCE_DIR "/examples/iris.json");
    tg_training *t = train(cfg, NULL, NULL);
    cr_assert_eq(t->test->rows, 30);
    cr_assert_eq(t->validation->rows, 12);
    cr_assert_eq(t->train->rows, 108);
    tg_dataset *tr, *val, *test;
    cr_assert_eq(tg_config_load_data(cfg, &tr, &val, &test), 0, "%s", tg_last_error());
    const tg_dataset *mine[3] = { t->train, t->validation, t->test }, *again[3] = { tr, val, test };
    for (int s = 0; s < 3; s++) {
        cr_assert_eq(mine[s]->rows, again[s]->rows);
        cr_assert_eq(memcmp(mine[s]->x, again[s]->x, (size_t)(mine[s]->rows * 4) * sizeof(float)), 0, "split %d", s);
        cr_assert_eq(memcmp(mine[s]->y, again[s]->y, (size_t)mine[s]->rows * sizeof(int64_t)), 0, "split %d", s);
    }
    tg_dataset_free(tr);
    tg_dataset_free(val);
    tg_dataset_free(test);
    tg_training_free(t);
    tg_config_free(cfg);
}

/* The model carries the training rows' population mean and standard deviation. */
Test(train, the_model_keeps_the_training_rows_standardization)
{
    tg_config *cfg = load_config(TAPEGRAD_SOURCE_DIR "/examples/iris.json");
    tg_training *t = train(cfg, NULL, NULL);
    const float *mean = tg_model_mean(t->model), *std = tg_model_std(t->model);
    cr_assert(mean && std);
    for (int64_t f = 0; f < 4; f++) {
        long double sum = 0, sum_sq = 0;
        for (int64_t r = 0; r < t->train->rows; r++)
            sum += t->train->x[r * 4 + f];
        long double mu = sum / t->train->rows;
        for (int64_t r = 0; r < t->train->rows; r++)
            sum_sq += (t->train->x[r * 4 + f] - mu) * (t->train->x[r * 4 + f] - mu);
        long double sigma = sqrtl(sum_sq / t->train->rows);
        cr_assert(close_enough(mean[f], (double)mu, 1e-5 * (double)fabsl(mu)), "mean %lld: %g vs %Lg", (long long)f,
                  mean[f], mu);
        cr_assert(close_enough(std[f], (double)sigma, 1e-5 * (double)sigma), "std %lld: %g vs %Lg", (long long)f,
                  std[f], sigma);
    }
    tg_training_free(t);
    tg_config_free(cfg);
}

/* ---- accuracy ---- */

Test(train, digits_logistic_regression_reaches_96_percent)
{
    tg_config *cfg = load_config(TAPEGRAD_SOURCE_DIR "/examples/digits.json");
    tg_training *t = train(cfg, NULL, NULL);
    /* 1797 rows: round(0.2 * 1797) = 359 test rows */
    cr_assert_eq(t->test->rows, 359);
    tg_eval ev;
    cr_assert_eq(tg_evaluate(t->model, t->test, &ev), 0, "%s", tg_last_error());
    cr_assert_geq(ev.accuracy, 0.96, "test accuracy %.4f", ev.accuracy);
    cr_assert_str_eq(tg_model_label(t->model, 7), "7"); /* integer labels keep their text */
    tg_eval_clear(&ev);
    tg_training_free(t);
    tg_config_free(cfg);
}

/* ---- early stopping ---- */

Test(train, early_stopping_stops_and_keeps_the_best_validation_epoch)
{
    tg_config *cfg = parse_config("{'data': {'train': '%s', 'test_split': 0.2, 'validation_split': 0.25},"
                                  " 'model': {'layers': [{'type': 'linear', 'out': 3}]},"
                                  " 'optimizer': {'type': 'sgd', 'lr': 20, 'momentum': 0.9},"
                                  " 'train': {'epochs': 200, 'batch_size': 8, 'early_stopping': {'patience': 1}},"
                                  " 'seed': 5}");
    cr_assert_eq(cfg->train.patience, 1);
    tg_training *t = train(cfg, NULL, NULL);
    cr_assert_lt(t->epochs_run, 200, "ran all %d epochs", t->epochs_run);
    cr_assert(t->stopped_early);
    int best = 0;
    for (int e = 1; e < t->epochs_run; e++)
        if (t->val_loss[e] < t->val_loss[best])
            best = e;
    /* patience 1: the last epoch did not improve on the best one */
    cr_assert_lt(best, t->epochs_run - 1, "the best epoch is the last one (%d)", best + 1);
    cr_assert_geq(t->val_loss[t->epochs_run - 1], t->val_loss[best]);
    tg_eval ev;
    cr_assert_eq(tg_evaluate(t->model, t->validation, &ev), 0, "%s", tg_last_error());
    cr_assert(close_enough(ev.loss, t->val_loss[best], 1e-12 * t->val_loss[best]),
              "the kept weights' val loss %.17g is not the best epoch's (%d: %.17g; last: %.17g)", ev.loss, best + 1,
              t->val_loss[best], t->val_loss[t->epochs_run - 1]);
    tg_eval_clear(&ev);
    tg_training_free(t);
    tg_config_free(cfg);
}

/* ---- learning-rate schedules ---- */

typedef struct {
    int calls, finished_calls;
    int epoch_of_call[256];
    double lr_of_call[256];
    int bad_step; /* a step call whose fields are off */
    int64_t steps_per_epoch;
    int stop_at_call; /* return non-zero at this call (1-based); 0: never */
} progress_log;

static int log_progress(const tg_progress *p, void *ctx)
{
    progress_log *log = ctx;
    if (log->calls < 256) {
        log->epoch_of_call[log->calls] = p->epoch;
        log->lr_of_call[log->calls] = p->lr;
    }
    log->calls++;
    log->steps_per_epoch = p->steps_per_epoch;
    if (p->finished) {
        log->finished_calls++;
        if (p->step != p->steps_per_epoch || isnan(p->val_loss) || !isfinite(p->train_loss))
            log->bad_step = log->calls;
    } else if (p->step < 1 || p->step >= p->steps_per_epoch || !isnan(p->val_loss) || !isfinite(p->train_loss)) {
        log->bad_step = log->calls;
    }
    return log->stop_at_call && log->calls == log->stop_at_call;
}

/* Trains cfg and checks the lr of every callback against want[epoch]. */
static void expect_schedule(const char *config, int epochs, const long double *want)
{
    tg_config *cfg = parse_config(config);
    for (int e = 0; e < epochs; e++)
        cr_assert(close_enough(tg_config_lr_at(cfg, e), (double)want[e], 1e-15),
                  "tg_config_lr_at(%d) = %.17g, expected %.17Lg", e, tg_config_lr_at(cfg, e), want[e]);
    progress_log log = { 0 };
    tg_training *t = train(cfg, log_progress, &log);
    /* 108 training rows in batches of 32: 4 steps, so 3 step calls and one at the epoch's end */
    cr_assert_eq(log.steps_per_epoch, 4);
    cr_assert_eq(log.calls, 4 * epochs);
    cr_assert_eq(log.finished_calls, epochs);
    cr_assert_eq(log.bad_step, 0, "call %d has wrong step, loss or val_loss fields", log.bad_step);
    for (int c = 0; c < log.calls; c++)
        cr_assert(close_enough(log.lr_of_call[c], (double)want[log.epoch_of_call[c] - 1], 1e-15),
                  "call %d (epoch %d) reports lr %.17g, expected %.17Lg", c + 1, log.epoch_of_call[c],
                  log.lr_of_call[c], want[log.epoch_of_call[c] - 1]);
    tg_training_free(t);
    tg_config_free(cfg);
}

Test(train, step_schedule_halves_the_lr_every_three_epochs)
{
    /* StepLR: lr gamma^floor(e / step_size) */
    const long double want[7] = { 0.1L, 0.1L, 0.1L, 0.05L, 0.05L, 0.05L, 0.025L };
    expect_schedule("{'data': {'train': '%s'}, 'model': {'layers': [{'type': 'linear', 'out': 3}]},"
                    " 'optimizer': {'type': 'sgd', 'lr': 0.1},"
                    " 'train': {'epochs': 7, 'batch_size': 32,"
                    "           'lr_schedule': {'type': 'step', 'step_size': 3, 'gamma': 0.5}}}",
                    7, want);
}

Test(train, cosine_schedule_follows_cosine_annealing)
{
    /* CosineAnnealingLR, T_max 6: 0.01 + 0.09 (1 + cos(pi e / 6)) / 2, with cos(pi/6) = sqrt(3)/2 */
    const long double h = sqrtl(3.0L) / 2;
    const long double want[6] = { 0.1L,   0.01L + 0.045L * (1 + h), 0.01L + 0.045L * 1.5L,
                                  0.055L, 0.01L + 0.045L * 0.5L,    0.01L + 0.045L * (1 - h) };
    expect_schedule("{'data': {'train': '%s'}, 'model': {'layers': [{'type': 'linear', 'out': 3}]},"
                    " 'optimizer': {'type': 'adam', 'lr': 0.1},"
                    " 'train': {'epochs': 6, 'batch_size': 32, 'lr_schedule': {'type': 'cosine', 'min_lr': 0.01}}}",
                    6, want);
}

Test(train, constant_schedule_keeps_the_lr)
{
    const long double want[3] = { 0.05L, 0.05L, 0.05L };
    expect_schedule("{'data': {'train': '%s'}, 'model': {'layers': [{'type': 'linear', 'out': 3}]},"
                    " 'optimizer': {'type': 'sgd', 'lr': 0.05}, 'train': {'epochs': 3, 'batch_size': 32}}",
                    3, want);
}

/* ---- stopping ---- */

/* A ReLU network under lr 1e6 overflows within a few steps. (Logistic
 * regression would not: its gradient is bounded, so its loss stays finite.) */
Test(train, a_diverging_run_fails_naming_the_epoch)
{
    tg_config *cfg = parse_config("{'data': {'train': '%s'},"
                                  " 'model': {'layers': [{'type': 'linear', 'out': 16}, {'type': 'relu'},"
                                  "                      {'type': 'linear', 'out': 3}]},"
                                  " 'optimizer': {'type': 'sgd', 'lr': 1e6}, 'train': {'epochs': 20}}");
    tg_clear_error();
    tg_training *t = tg_train_config(cfg, NULL, NULL);
    cr_assert_null(t, "trained without noticing the divergence");
    const char *error = tg_last_error();
    cr_assert((strstr(error, "loss became NaN") || strstr(error, "loss became infinite")) && strstr(error, "epoch"),
              "%s", error);
    tg_config_free(cfg);
}

#define IRIS_LOGISTIC                                                                                                  \
    "{'data': {'train': '%s'}, 'model': {'layers': [{'type': 'linear', 'out': 3}]},"                                   \
    " 'optimizer': {'type': 'sgd', 'lr': 0.1}, 'train': {'epochs': 50, 'batch_size': 32}}"

Test(train, a_callback_returning_non_zero_mid_epoch_stops_training)
{
    tg_config *cfg = parse_config(IRIS_LOGISTIC);
    progress_log log = { .stop_at_call = 3 }; /* the third step of the first epoch */
    tg_training *t = train(cfg, log_progress, &log);
    cr_assert_eq(log.calls, 3, "called %d times after asking to stop", log.calls);
    /* the partial epoch is not counted: it ends (validation, curves) when the run is resumed */
    cr_assert_eq(t->epochs_run, 0);
    cr_assert_eq(t->steps_done, 3);
    cr_assert_eq(t->steps_per_epoch, 4);
    cr_assert(t->stopped_by_caller);
    cr_assert(!t->stopped_early, "the caller's stop is not early stopping");
    tg_training_free(t);
    tg_config_free(cfg);
}

Test(train, a_callback_returning_non_zero_at_an_epochs_end_stops_training)
{
    tg_config *cfg = parse_config(IRIS_LOGISTIC);
    progress_log log = { .stop_at_call = 8 }; /* the end of epoch 2 (4 calls per epoch) */
    tg_training *t = train(cfg, log_progress, &log);
    cr_assert_eq(log.calls, 8);
    cr_assert_eq(t->epochs_run, 2);
    cr_assert(t->stopped_by_caller);
    cr_assert(!t->stopped_early, "the caller's stop is not early stopping");
    tg_training_free(t);
    tg_config_free(cfg);
}

/* ---- labels, evaluation and prediction ---- */

Test(train, a_model_trained_on_iris_keeps_the_label_names)
{
    tg_config *cfg = load_config(TAPEGRAD_SOURCE_DIR "/examples/iris.json");
    tg_training *t = train(cfg, NULL, NULL);
    /* ids in order of first appearance in the file, which is sorted by species */
    cr_assert_str_eq(tg_model_label(t->model, 0), "setosa");
    cr_assert_str_eq(tg_model_label(t->model, 1), "versicolor");
    cr_assert_str_eq(tg_model_label(t->model, 2), "virginica");
    cr_assert_null(tg_model_label(t->model, 3));
    /* a file loaded for the model maps its labels the same way: rows 0, 50 and 100 */
    tg_dataset *ds = tg_load_data_for_model(t->model, IRIS_CSV, NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 150);
    cr_assert_eq(ds->y[0], 0);
    cr_assert_eq(ds->y[50], 1);
    cr_assert_eq(ds->y[149], 2);
    tg_dataset_free(ds);
    tg_training_free(t);
    tg_config_free(cfg);
}

Test(train, evaluation_adds_up_and_agrees_with_prediction)
{
    tg_config *cfg = load_config(TAPEGRAD_SOURCE_DIR "/examples/iris.json");
    tg_training *t = train(cfg, NULL, NULL);
    tg_dataset *ds = tg_load_data_for_model(t->model, IRIS_CSV, NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    tg_eval ev;
    cr_assert_eq(tg_evaluate(t->model, ds, &ev), 0, "%s", tg_last_error());
    cr_assert_eq(ev.classes, 3);
    cr_assert_eq(ev.rows, 150);
    double *probs = malloc(150 * 3 * sizeof *probs);
    cr_assert_eq(tg_predict(t->model, ds, probs), 0, "%s", tg_last_error());

    int64_t total = 0, trace = 0, row_sum[3] = { 0 }, truth[3] = { 0 }, predicted[3] = { 0 }, column_sum[3] = { 0 };
    long double nll = 0;
    for (int64_t r = 0; r < 150; r++) {
        long double sum = 0;
        int64_t best = 0;
        for (int k = 0; k < 3; k++) {
            double p = probs[r * 3 + k];
            cr_assert(p >= 0 && p <= 1, "row %lld: p = %g", (long long)r, p);
            sum += p;
            if (p > probs[r * 3 + best])
                best = k;
        }
        cr_assert(fabsl(sum - 1) < 1e-12L, "row %lld: probabilities sum to %.17Lg", (long long)r, sum);
        truth[ds->y[r]]++;
        predicted[best]++;
        nll -= logl(probs[r * 3 + ds->y[r]]);
    }
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) {
            int64_t n = ev.confusion[i * 3 + k];
            total += n;
            row_sum[i] += n;
            column_sum[k] += n;
            trace += i == k ? n : 0;
        }
    cr_assert_eq(total, 150, "the confusion matrix holds %lld rows", (long long)total);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(row_sum[i], truth[i], "row %d of the confusion matrix", i);
        cr_assert_eq(column_sum[i], predicted[i], "column %d against tg_predict's argmax", i);
    }
    cr_assert_eq(truth[0], 50);
    cr_assert_eq(ev.accuracy, (double)trace / 150.0);
    cr_assert_geq(ev.accuracy, 0.9);
    cr_assert(close_enough(ev.loss, (double)(nll / 150), 1e-12), "loss %.17g, mean -log p %.17Lg", ev.loss, nll / 150);
    free(probs);
    tg_eval_clear(&ev);
    tg_dataset_free(ds);
    tg_training_free(t);
    tg_config_free(cfg);
}

Test(train, data_with_the_wrong_column_count_is_refused_naming_both_numbers)
{
    tg_config *cfg = load_config(TAPEGRAD_SOURCE_DIR "/examples/iris.json");
    tg_training *t = train(cfg, NULL, NULL);
    tg_clear_error();
    cr_assert_null(tg_load_data_for_model(t->model, DIGITS_CSV, NULL));
    const char *error = tg_last_error();
    cr_assert(strstr(error, "65 columns") && strstr(error, "4 inputs"), "%s", error);
    /* the same for data to predict (label column optional) */
    tg_csv_opts opts = TG_CSV_OPTS_DEFAULT;
    opts.unlabeled = -1;
    tg_clear_error();
    cr_assert_null(tg_load_data_for_model(t->model, DIGITS_CSV, &opts));
    error = tg_last_error();
    cr_assert(strstr(error, "65 columns") && strstr(error, "4 inputs"), "%s", error);
    /* tg_evaluate and tg_predict refuse a data set of the wrong width too */
    tg_dataset *digits = tg_csv_load(DIGITS_CSV, NULL);
    cr_assert_not_null(digits, "%s", tg_last_error());
    tg_eval ev;
    cr_assert_neq(tg_evaluate(t->model, digits, &ev), 0);
    cr_assert(strstr(tg_last_error(), "64") && strstr(tg_last_error(), "4 inputs"), "%s", tg_last_error());
    double probs[3];
    cr_assert_neq(tg_predict(t->model, digits, probs), 0);
    tg_dataset_free(digits);
    tg_training_free(t);
    tg_config_free(cfg);
}

Test(train, data_to_predict_may_omit_the_label_column)
{
    tg_config *cfg = load_config(TAPEGRAD_SOURCE_DIR "/examples/iris.json");
    tg_training *t = train(cfg, NULL, NULL);
    char *dir = temp_dir(), path[128];
    snprintf(path, sizeof path, "%s/features.csv", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("a,b,c,d\n5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n", f);
    cr_assert_eq(fclose(f), 0);
    tg_csv_opts opts = TG_CSV_OPTS_DEFAULT;
    opts.unlabeled = -1;
    tg_dataset *ds = tg_load_data_for_model(t->model, path, &opts);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 2);
    cr_assert_eq(ds->features, 4);
    double probs[6];
    cr_assert_eq(tg_predict(t->model, ds, probs), 0, "%s", tg_last_error());
    /* the first row is iris row 1 (setosa), the second row 101 (virginica) */
    cr_assert_gt(probs[0], 0.5, "%g", probs[0]);
    cr_assert_gt(probs[5], 0.5, "%g", probs[5]);
    /* as labelled data the same file lacks a column */
    tg_clear_error();
    cr_assert_null(tg_load_data_for_model(t->model, path, NULL));
    cr_assert(strstr(tg_last_error(), "4 columns") && strstr(tg_last_error(), "4 inputs"), "%s", tg_last_error());
    tg_dataset_free(ds);
    unlink(path);
    rmdir(dir);
    tg_training_free(t);
    tg_config_free(cfg);
}

/* The old spelling still links and still frees the contents (it only warns at compile time). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
Test(train, the_deprecated_tg_eval_free_still_frees_an_evaluations_contents)
{
    tg_eval ev = { 0 };
    ev.confusion = NULL;
    tg_eval_free(&ev); /* nothing to free: a no-op */
    tg_config *cfg = parse_config(IRIS_LOGISTIC);
    tg_training *t = train(cfg, NULL, NULL);
    cr_assert_eq(tg_evaluate(t->model, t->test, &ev), 0, "%s", tg_last_error());
    cr_assert_not_null(ev.confusion);
    int64_t trace = 0;
    for (int64_t k = 0; k < ev.classes; k++)
        trace += ev.confusion[k * ev.classes + k];
    cr_assert_eq(ev.correct, trace);
    cr_assert_float_eq(ev.accuracy, (double)trace / (double)ev.rows, 1e-15);
    tg_eval_free(&ev);
    cr_assert_null(ev.confusion);
    tg_training_free(t);
    tg_config_free(cfg);
}
#pragma GCC diagnostic pop
