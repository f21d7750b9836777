/* tapegrad eval MODEL DATA: accuracy, loss, confusion matrix and metrics of a
 * saved model on a CSV or on a config's test split; --plot draws ROC and
 * reliability curves. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage_eval =
    "usage: tapegrad eval MODEL.safetensors DATA.csv|CONFIG.json [--json] [--plot FILE.svg]\n"
    "\n"
    "Scores a saved model on labelled data: accuracy, mean cross-entropy,\n"
    "confusion matrix and per-class precision and recall; then F1 per class,\n"
    "macro and weighted precision / recall / F1, balanced accuracy, log-loss,\n"
    "Brier score, ROC-AUC and average precision (scikit-learn's definitions;\n"
    "one-vs-rest macro with more than two classes). The CSV has the model's\n"
    "feature columns and a label column (the last one). A libsvm file is read as\n"
    "such when the model was trained on libsvm data or the file is named *.svm,\n"
    "*.libsvm or *.svmlight. Given the config the model was trained from, it\n"
    "scores that config's test set (the same rows 'tapegrad train' reported on).\n"
    "\n"
    "  --json        print the results as one JSON object\n"
    "  --plot PATH   write the ROC curve and a reliability diagram as an SVG\n"
    "  --threads N   threads for the library and BLAS\n";

bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A CSV file, or a config whose test split (rebuilt with the config's seed) is wanted. */
tg_dataset *load_eval_data(const tg_model *m, const char *path)
{
    if (!ends_with(path, ".json"))
        return tg_load_data_for_model(m, path, NULL);
    tg_dataset *train = NULL, *val = NULL, *test = NULL;
    tg_config *cfg = tg_config_load(path);
    if (cfg)
        tg_config_load_data(cfg, &train, &val, &test); /* tg_evaluate checks the test set against the model */
    tg_dataset_free(train);
    tg_dataset_free(val);
    tg_config_free(cfg);
    return test;
}

/* Every class's probability of every row of ds, into a new buffer (caller frees); NULL with a message printed. */
double *predict_all(tg_model *m, const tg_dataset *ds, const char *path)
{
    double *probs = malloc((size_t)(ds->rows * tg_model_classes(m) + 1) * sizeof *probs);
    if (!probs)
        fail("out of memory for %lld predictions", (long long)ds->rows);
    else if (tg_predict(m, ds, probs))
        fail("%s: %s", path, tg_last_error());
    else
        return probs;
    free(probs);
    return NULL;
}

static int write_eval_plot(const char *path, const tg_model *m, const tg_dataset *ds, const double *probs,
                           int64_t positive)
{
    int64_t c = tg_model_classes(m);
    char(*bufs)[32] = malloc((size_t)c * sizeof *bufs);
    const char **names = malloc((size_t)c * sizeof *names);
    const char *why = "out of memory";
    int rc = 1;
    if (bufs && names) {
        for (int64_t k = 0; k < c; k++)
            names[k] = label_of(m, k, bufs[k], sizeof bufs[k]);
        eval_plot e = { ds->rows, c, positive, ds->y, probs, names };
        rc = write_eval_svg(path, &e, &why);
    }
    if (rc)
        fail("writing %s: %s", path, why);
    free(bufs);
    free(names);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 2, OPT_JSON | OPT_PLOT, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_eval, stdout), 0;
    if (o.n_positional != 2)
        return fail("expected MODEL and DATA, got %d argument%s", o.n_positional, o.n_positional == 1 ? "" : "s"),
               fprintf(stderr, "%s", usage_eval), 2;
    if ((rc = check_output("--plot", o.plot, o.positional, 2)))
        return rc;
    tg_model *m = tg_model_load(o.positional[0]);
    if (!m)
        return fail("%s", tg_last_error());
    tg_dataset *ds = load_eval_data(m, o.positional[1]);
    tg_eval ev = { 0 };
    tg_metrics mt = { 0 };
    double *probs = NULL;
    int64_t positive = positive_class(m, tg_model_classes(m));
    bool scored = tg_model_classes(m) >= 2; /* a one-class model has nothing to rank or average */
    rc = 1;
    if (!ds) {
        fail("%s", tg_last_error());
    } else if (tg_evaluate(m, ds, &ev)) {
        fail("%s: %s", o.positional[1], tg_last_error());
    } else if (!(probs = predict_all(m, ds, o.positional[1]))) {
        /* reported */
    } else if (scored && tg_metrics_compute(ds->rows, tg_model_classes(m), ds->y, probs, positive, &mt)) {
        fail("%s: %s", o.positional[1], tg_last_error());
    } else if (o.plot && write_eval_plot(o.plot, m, ds, probs, positive)) {
        /* reported */
    } else {
        rc = 0;
        if (o.json) {
            cJSON *root = eval_json(m, &ev);
            if (scored)
                add_metrics_json(root, m, &mt);
            if (o.plot)
                cJSON_AddStringToObject(root, "plot", o.plot);
            print_json(root);
        } else {
            printf("accuracy %.4f (%lld of %lld)  loss %.4f\n", ev.accuracy, (long long)ev.correct, (long long)ev.rows,
                   ev.loss);
            print_report(stdout, m, &ev, isatty(fileno(stdout)));
            if (scored)
                print_metrics(stdout, m, &mt);
            if (o.plot)
                printf("\nwrote %s\n", o.plot);
        }
    }
    tg_metrics_free(&mt);
    free(probs);
    tg_eval_clear(&ev);
    tg_dataset_free(ds);
    tg_model_free(m);
    return rc;
}

/* A CSV field, quoted when it holds a comma, quote or newline (RFC 4180). */
