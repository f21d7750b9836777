/* Training from configs on libsvm (sparse) data: the config keys, and runs whose oracle is the dense run of
 * the same numbers written as a CSV file. The two go through different loaders, different products
 * (tg_sparse_linear against tg_linear's kernels) and different gathers; with the same seed they see the
 * same rows in the same order, so in float64 they agree to rounding. */
#define _POSIX_C_SOURCE 200809L /* mkstemp */

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

enum { ROWS = 96, FEATURES = 8 };

/* A data set with about 60 % zeros: values x.yz in [-2, 2] from a fixed LCG, the label the argmax of fixed
 * class scores (two classes when binary). Row 0 has every feature, so the libsvm file's largest index is
 * FEATURES. Written as CSV (no header, label last) and as libsvm (zeros left out), same decimal text. */
static void write_data(char *csv_path, char *svm_path, size_t size, bool binary)
{
    static const double score[3][FEATURES] = { { 1, -1, 0.5, 0, 2, -0.5, 0, 1 },
                                               { -1, 1, 0, 1.5, -1, 0, 1, -0.5 },
                                               { 0, 0.5, -1, -1, 0, 1, -1, 0.5 } };
    size_t cap = ROWS * FEATURES * 8 + ROWS * 8 + 1;
    char *csv = malloc(cap), *svm = malloc(cap);
    cr_assert(csv && svm);
    size_t nc = 0, ns = 0;
    uint64_t state = 12345;
    for (int r = 0; r < ROWS; r++) {
        int cents[FEATURES];
        double s[3] = { 0 };
        for (int f = 0; f < FEATURES; f++) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            uint32_t u = (uint32_t)(state >> 33);
            cents[f] = (r == 0 || u % 10 < 4) ? (int)(u / 10 % 401) - 200 : 0;
            if (cents[f] == 0 && r == 0)
                cents[f] = 1;
            for (int k = 0; k < 3; k++)
                s[k] += score[k][f] * cents[f] / 100.0;
        }
        int label = s[1] > s[0] ? 1 : 0;
        if (!binary && s[2] > s[label])
            label = 2;
        ns += (size_t)snprintf(svm + ns, cap - ns, "%d", label);
        for (int f = 0; f < FEATURES; f++) {
            char text[16];
            snprintf(text, sizeof text, "%s%d.%02d", cents[f] < 0 ? "-" : "", abs(cents[f]) / 100, abs(cents[f]) % 100);
            nc += (size_t)snprintf(csv + nc, cap - nc, "%s,", text);
            if (cents[f])
                ns += (size_t)snprintf(svm + ns, cap - ns, " %d:%s", f + 1, text);
        }
        nc += (size_t)snprintf(csv + nc, cap - nc, "%d\n", label);
        ns += (size_t)snprintf(svm + ns, cap - ns, "\n");
    }
    write_temp(csv_path, size, "tg_sparse_csv", csv, nc);
    write_temp(svm_path, size, "tg_sparse_svm", svm, ns);
    free(csv);
    free(svm);
}

/* A config from single-quoted text: data (the format-specific part, then the path), then the rest. */
static tg_config *config_for(const char *data_part, const char *path, const char *rest)
{
    char text[2048];
    int n = snprintf(text, sizeof text,
                     "{'data': {%s, 'train': '%%s', 'test_split': 0.25, 'validation_split': 0.2}, %s, 'seed': 7}",
                     data_part, rest);
    cr_assert(n > 0 && (size_t)n < sizeof text);
    return config_from_text(text, path);
}

static void expect_same_weights(const tg_model *a, const tg_model *b, double tol, const char *what)
{
    cr_assert_eq(tg_model_n_params(a), tg_model_n_params(b));
    for (int i = 0; i < tg_model_n_params(a); i++) {
        const tg_tensor *p = tg_model_param_const(a, i), *q = tg_model_param_const(b, i);
        cr_assert_eq(tg_numel(p), tg_numel(q));
        for (int64_t k = 0; k < tg_numel(p); k++)
            cr_expect(close_enough(tg_get(p, k), tg_get(q, k), tol), "%s: %s[%lld] sparse %.17g dense %.17g", what,
                      tg_model_param_name(a, i), (long long)k, tg_get(p, k), tg_get(q, k));
    }
}

/* Trains the same config on the libsvm file and on the CSV file; the weights, curves and test scores agree. */
static void expect_sparse_run_equals_dense(const char *standardize, const char *rest, bool binary, double tol)
{
    char csv[64], svm[64], sparse_part[128], dense_part[128];
    write_data(csv, svm, sizeof csv, binary);
    snprintf(sparse_part, sizeof sparse_part, "'format': 'libsvm', 'standardize': %s", standardize);
    snprintf(dense_part, sizeof dense_part, "'format': 'csv', 'header': false, 'standardize': %s", standardize);
    tg_config *sparse_cfg = config_for(sparse_part, svm, rest), *dense_cfg = config_for(dense_part, csv, rest);
    tg_training *s = tg_train_config(sparse_cfg, NULL, NULL);
    cr_assert_not_null(s, "sparse: %s", tg_last_error());
    tg_training *d = tg_train_config(dense_cfg, NULL, NULL);
    cr_assert_not_null(d, "dense: %s", tg_last_error());
    cr_expect_null(s->train->x, "the training set stayed sparse");
    cr_assert_eq(s->train->rows, d->train->rows);
    cr_assert_eq(s->test->rows, d->test->rows);
    cr_assert_eq(s->epochs_run, d->epochs_run);
    for (int64_t r = 0; r < s->train->rows; r++)
        cr_assert_eq(s->train->y[r], d->train->y[r], "the same rows in the same order");
    expect_same_weights(s->model, d->model, tol, rest);
    for (int e = 0; e < s->epochs_run; e++) {
        cr_expect(close_enough(s->train_loss[e], d->train_loss[e], tol), "train loss %d: %.17g vs %.17g", e,
                  s->train_loss[e], d->train_loss[e]);
        cr_expect(close_enough(s->val_loss[e], d->val_loss[e], tol), "val loss %d", e);
    }
    cr_expect(close_enough(s->objective, d->objective, tol * (1 + fabs(d->objective))), "objective %.17g vs %.17g",
              s->objective, d->objective);
    tg_eval se, de;
    cr_assert_eq(tg_evaluate(s->model, s->test, &se), 0, "%s", tg_last_error());
    cr_assert_eq(tg_evaluate(d->model, d->test, &de), 0, "%s", tg_last_error());
    cr_expect(close_enough(se.loss, de.loss, tol), "test loss %.17g vs %.17g", se.loss, de.loss);
    cr_expect_eq(se.correct, de.correct);
    cr_expect_gt(se.accuracy, 0.5, "it learned something: %g", se.accuracy);
    double *ps = malloc((size_t)(s->test->rows * 3) * sizeof *ps),
           *pd = malloc((size_t)(d->test->rows * 3) * sizeof *pd);
    cr_assert(ps && pd);
    cr_assert_eq(tg_predict(s->model, s->test, ps), 0, "%s", tg_last_error());
    cr_assert_eq(tg_predict(d->model, d->test, pd), 0, "%s", tg_last_error());
    for (int64_t k = 0; k < s->test->rows * tg_model_classes(s->model); k++)
        cr_expect(close_enough(ps[k], pd[k], tol), "probs[%lld] %.17g vs %.17g", (long long)k, ps[k], pd[k]);
    free(ps);
    free(pd);
    tg_eval_clear(&se);
    tg_eval_clear(&de);
    tg_training_free(s);
    tg_training_free(d);
    tg_config_free(sparse_cfg);
    tg_config_free(dense_cfg);
    unlink(csv);
    unlink(svm);
}

#define LINEAR3 "'model': {'dtype': 'float64', 'layers': [{'type': 'linear', 'out': 3}]}"
#define EPOCHS "'train': {'epochs': 4, 'batch_size': 16}"

Test(sparse_train, sgd_on_libsvm_equals_the_dense_csv_run)
{
    expect_sparse_run_equals_dense("false", LINEAR3 ", 'optimizer': {'type': 'sgd', 'lr': 0.1}, " EPOCHS, false, 1e-12);
}

Test(sparse_train, lazy_sgd_equals_dense_sgd_on_the_csv)
{
    /* untouched columns have a zero gradient: plain SGD's step leaves them as lazy SGD does */
    expect_sparse_run_equals_dense(
        "'scale'", LINEAR3 ", 'optimizer': {'type': 'sgd', 'lr': 0.1, 'lazy': true}, " EPOCHS, false, 1e-12);
}

Test(sparse_train, adam_with_scaling_equals_the_dense_csv_run)
{
    expect_sparse_run_equals_dense("'scale'", LINEAR3 ", 'optimizer': {'type': 'adam', 'lr': 0.05}, " EPOCHS, false,
                                   1e-12);
}

Test(sparse_train, a_hidden_layer_takes_the_sparse_rows_in_its_first_layer)
{
    expect_sparse_run_equals_dense("'scale'",
                                   "'model': {'dtype': 'float64', 'layers': [{'type': 'linear', 'out': 5}, {'type': "
                                   "'tanh'}, {'type': 'linear', 'out': 3}]}, 'optimizer': {'type': 'sgd', 'lr': 0.1, "
                                   "'momentum': 0.9}, " EPOCHS,
                                   false, 1e-12);
}

Test(sparse_train, a_binary_one_output_model)
{
    expect_sparse_run_equals_dense(
        "false",
        "'model': {'dtype': 'float64', 'layers': [{'type': 'linear', 'out': 1}]}, 'loss': "
        "{'type': 'binary_cross_entropy'}, 'optimizer': {'type': 'adam', 'lr': 0.05}, " EPOCHS,
        true, 1e-12);
}

/* L-BFGS to its optimum on sparse blocks of 16 rows against the dense copy: the objective and the
 * probabilities to 1e-6 (the solvers take the same path up to rounding, then stop on the same tolerance). */
Test(sparse_train, lbfgs_on_sparse_blocks_equals_lbfgs_on_the_dense_copy)
{
    expect_sparse_run_equals_dense(
        "'scale'", LINEAR3 ", 'optimizer': {'type': 'lbfgs', 'block_rows': 16, 'max_iter': 200}", false, 1e-6);
}

Test(sparse_train, lbfgs_owlqn_and_binary_on_sparse_blocks)
{
    expect_sparse_run_equals_dense("false",
                                   "'model': {'dtype': 'float64', 'layers': [{'type': 'linear', 'out': 1}]}, 'loss': "
                                   "{'type': 'binary_cross_entropy', 'penalty': 'l1', 'C': 2}, 'optimizer': {'type': "
                                   "'lbfgs', 'block_rows': 10}",
                                   true, 1e-6);
}

/* The test file takes the training file's feature count: a larger index is refused, naming file:line:column,
 * or dropped under data.unseen_features "ignore". */
Test(sparse_train, an_unseen_feature_in_the_test_file_is_refused_or_dropped)
{
    char train[64], test[64];
    const char *train_text = "0 1:1 2:0.5\n1 2:1 3:1\n0 1:2\n1 3:2\n";
    const char *test_text = "0 1:1\n1 3:1 7:5\n";
    write_temp(train, sizeof train, "tg_sparse_tr", train_text, strlen(train_text));
    write_temp(test, sizeof test, "tg_sparse_te", test_text, strlen(test_text));
    for (int ignore = 0; ignore < 2; ignore++) {
        char text[512];
        snprintf(text, sizeof text,
                 "{'data': {'format': 'libsvm', 'train': '%s', 'test': '%s', 'validation_split': 0%s}, 'model': "
                 "{'layers': [{'type': 'linear', 'out': 2}]}, 'optimizer': {'type': 'sgd', 'lr': 0.1}, 'train': "
                 "{'epochs': 1}}",
                 train, test, ignore ? ", 'unseen_features': 'ignore'" : "");
        tg_config *cfg = config_from_text(text, NULL);
        tg_dataset *tr, *va, *te;
        int rc = tg_config_load_data(cfg, &tr, &va, &te);
        if (!ignore) {
            cr_expect_neq(rc, 0);
            char where[96];
            snprintf(where, sizeof where, "%s:2:7", test);
            cr_expect_not_null(strstr(tg_last_error(), where), "%s", tg_last_error());
            cr_expect_not_null(strstr(tg_last_error(), "index 7 is above the feature count 3"), "%s", tg_last_error());
        } else {
            cr_assert_eq(rc, 0, "%s", tg_last_error());
            cr_expect_eq(te->features, 3);
            cr_expect_eq(te->nnz, 2, "the pair 7:5 is dropped");
            tg_dataset_free(tr);
            tg_dataset_free(va);
            tg_dataset_free(te);
        }
        tg_config_free(cfg);
    }
    unlink(train);
    unlink(test);
}

/* ---- the config keys ---- */

typedef struct {
    const char *data; /* the data section's keys after format and train */
    const char *path; /* the JSON path the message names, or NULL when accepted */
    const char *words;
} data_case;

static const data_case data_cases[] = {
    { "'format': 'libsvm'", NULL, NULL },
    { "'format': 'libsvm', 'features': 100, 'unseen_features': 'ignore', 'standardize': 'scale'", NULL, NULL },
    { "'format': 'libsvm', 'standardize': false, 'unseen_features': 'error'", NULL, NULL },
    { "'format': 'csv', 'standardize': 'scale'", NULL, NULL },
    { "'format': 'svmlight'", "data.format", "\"csv\", \"idx\", \"libsvm\"" },
    { "'format': 'libsvm', 'features': 0", "data.features", NULL },
    { "'format': 'libsvm', 'features': -3", "data.features", NULL },
    { "'format': 'libsvm', 'features': 2.5", "data.features", NULL },
    { "'format': 'libsvm', 'features': 2147483648", "data.features", NULL },
    { "'format': 'libsvm', 'features': '10'", "data.features", NULL },
    { "'format': 'libsvm', 'unseen_features': 'skip'", "data.unseen_features", "\"error\", \"ignore\"" },
    { "'format': 'libsvm', 'standardize': true", "data.standardize", "\"scale\"" },
    { "'format': 'libsvm', 'standardize': 'center'", "data.standardize", "true, false or \"scale\"" },
    { "'format': 'libsvm', 'header': true", "data.header", "for format \"libsvm\"" },
    { "'format': 'csv', 'features': 10", "data.features", "for format \"csv\"" },
};

Test(sparse_train, config_accepts_and_refuses_the_libsvm_keys)
{
    for (size_t i = 0; i < sizeof data_cases / sizeof *data_cases; i++) {
        const data_case *c = &data_cases[i];
        char text[512];
        snprintf(text, sizeof text,
                 "{'data': {%s, 'train': 'x.svm'}, 'model': {'layers': [{'type': 'linear', 'out': 2}]}, 'optimizer': "
                 "{'type': 'sgd', 'lr': 0.1}}",
                 c->data);
        for (char *p = text; *p; p++)
            if (*p == '\'')
                *p = '"';
        tg_clear_error();
        tg_config *cfg = tg_config_parse(text, NULL);
        if (!c->path) {
            cr_expect_not_null(cfg, "%s: refused: %s", c->data, tg_last_error());
            tg_config_free(cfg);
            continue;
        }
        cr_expect_null(cfg, "%s: accepted", c->data);
        cr_expect_not_null(strstr(tg_last_error(), c->path), "%s: \"%s\" lacks %s", c->data, tg_last_error(), c->path);
        if (c->words)
            cr_expect_not_null(strstr(tg_last_error(), c->words), "%s: \"%s\" lacks %s", c->data, tg_last_error(),
                               c->words);
        tg_config_free(cfg);
    }
    tg_config *cfg = config_from_text("{'data': {'format': 'libsvm', 'train': 'x.svm', 'features': 50, "
                                      "'unseen_features': 'ignore', 'standardize': 'scale'}, 'model': {'layers': "
                                      "[{'type': 'linear', 'out': 2}]}, 'optimizer': {'type': 'sgd', 'lr': 0.1}}",
                                      NULL);
    cr_expect_eq(cfg->data.features, 50);
    cr_expect_eq(cfg->data.skip_unseen_features, 1);
    cr_expect_eq(cfg->data.standardize, TG_STANDARDIZE_SCALE);
    tg_config_free(cfg);
    cfg = config_from_text("{'data': {'format': 'libsvm', 'train': 'x.svm'}, 'model': {'layers': [{'type': "
                           "'linear', 'out': 2}]}, 'optimizer': {'type': 'sgd', 'lr': 0.1}}",
                           NULL);
    cr_expect_eq(cfg->data.standardize, 0, "libsvm data are not standardized unless asked");
    tg_config_free(cfg);
    /* a penalty's gradient is dense: lazy updates would leave it in the untouched columns */
    cr_expect_null(tg_config_parse("{\"data\": {\"format\": \"libsvm\", \"train\": \"x.svm\"}, \"model\": {\"layers\": "
                                   "[{\"type\": \"linear\", \"out\": 2}]}, \"loss\": {\"penalty\": \"l2\"}, "
                                   "\"optimizer\": {\"type\": \"adam\", \"lazy\": true}}",
                                   NULL));
    cr_expect_not_null(strstr(tg_last_error(), "loss.penalty: \"l2\" has a gradient on every weight"), "%s",
                       tg_last_error());
    cfg = config_from_text("{'data': {'format': 'libsvm', 'train': 'x.svm'}, 'model': {'layers': [{'type': "
                           "'linear', 'out': 2}]}, 'optimizer': {'type': 'sgd', 'lr': 0.1}}",
                           NULL);
    cr_expect_eq(cfg->data.features, 0);
    cr_expect_eq(cfg->data.skip_unseen_features, 0);
    tg_config_free(cfg);
}

Test(sparse_train, a_first_layer_that_is_not_linear_is_refused_by_its_json_path)
{
    char csv[64], svm[64];
    write_data(csv, svm, sizeof csv, false);
    tg_config *cfg = config_for("'format': 'libsvm'", svm,
                                "'model': {'layers': [{'type': 'relu'}, {'type': 'linear', 'out': 3}]}, 'optimizer': "
                                "{'type': 'sgd', 'lr': 0.1}");
    tg_clear_error();
    cr_expect_null(tg_train_config(cfg, NULL, NULL));
    cr_expect_not_null(strstr(tg_last_error(), "model.layers[0] is relu, but sparse (libsvm) data needs a linear first "
                                               "layer"),
                       "%s", tg_last_error());
    tg_config_free(cfg);
    unlink(csv);
    unlink(svm);
}

static int stop_mid_epoch_2(const tg_progress *p, void *ctx)
{
    (void)ctx;
    return p->epoch == 2 && p->step == 3 && !p->finished;
}

/* A libsvm run stopped mid-epoch, saved and resumed ends with the bits of the run never stopped (the
 * training checkpoint hashes the CSR rows to recognise its data). */
Test(sparse_train, a_stopped_libsvm_run_resumes_to_the_same_bits)
{
    char csv[64], svm[64], ckpt[] = "/tmp/tg_sparse_resume_XXXXXX";
    write_data(csv, svm, sizeof csv, false);
    int fd = mkstemp(ckpt);
    cr_assert_geq(fd, 0);
    close(fd);
    tg_config *cfg = config_for("'format': 'libsvm', 'standardize': 'scale'", svm,
                                LINEAR3 ", 'optimizer': {'type': 'adam', 'lr': 0.05, 'lazy': true}, " EPOCHS);
    tg_training *whole = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(whole, "%s", tg_last_error());
    tg_training *stopped = tg_train_config_opts(cfg, &(tg_train_opts){ .progress = stop_mid_epoch_2 });
    cr_assert_not_null(stopped, "%s", tg_last_error());
    cr_assert_eq(stopped->finished, 0);
    cr_assert_eq(tg_training_save(stopped, ckpt), 0, "%s", tg_last_error());
    tg_training *resumed = tg_train_config_opts(cfg, &(tg_train_opts){ .resume = ckpt });
    cr_assert_not_null(resumed, "%s", tg_last_error());
    expect_same_weights(resumed->model, whole->model, 0, "resumed");
    tg_training_free(whole);
    tg_training_free(stopped);
    tg_training_free(resumed);
    tg_config_free(cfg);
    unlink(ckpt);
    unlink(csv);
    unlink(svm);
}
