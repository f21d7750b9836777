/* tapegrad cv: stratified K-fold cross-validation of a config over a grid of
 * values; the best point is refit on the training data and saved. A grid value
 * is applied by editing the parsed JSON and running the strict config loader
 * again, so a grid is checked exactly as a config is: a key that is not a
 * config path, or a value of the wrong type, gets the loader's message. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage_cv = "usage: tapegrad cv CONFIG.json --folds K [--grid KEY=V1,V2,...]... [--metric NAME]\n"
                              "                   [--out MODEL.safetensors] [--json] [--quiet]\n"
                              "\n"
                              "Stratified K-fold cross-validation on the config's training rows (everything but\n"
                              "its test set; the folds are drawn from data.shuffle_seed, so a run repeats). Each\n"
                              "--grid gives a config path and the values to try (several --grid options: every\n"
                              "combination); each point is trained K times and scored on the held-out fold.\n"
                              "Prints the metric's mean and standard deviation per point and the best point;\n"
                              "with --out, refits the best point as 'tapegrad train' would, reports its test\n"
                              "set and saves it.\n"
                              "\n"
                              "  --folds K     folds, from 2 to the row count of the smallest class\n"
                              "  --grid KEY=V1,V2,...  a config path (e.g. optimizer.lr, model.layers[0].out)\n"
                              "                and its values, JSON or bare strings (up to 8 --grid options)\n"
                              "  --metric NAME accuracy (default), balanced_accuracy, log_loss, brier, roc_auc,\n"
                              "                average_precision, f1_macro, f1_weighted, precision_macro,\n"
                              "                recall_macro, precision_weighted, recall_weighted\n"
                              "  --out PATH    refit the best point and save it there\n"
                              "  --json        print the results as one JSON object (progress goes to stderr)\n"
                              "  --quiet       no progress lines\n"
                              "  --threads N   threads for the library and BLAS\n";

/* ---- metrics by name ---- */

typedef struct {
    const char *name;
    size_t offset; /* of the double in tg_metrics */
    bool higher_is_better;
} metric_spec;

static const metric_spec metric_specs[] = {
    { "accuracy", offsetof(tg_metrics, accuracy), true },
    { "balanced_accuracy", offsetof(tg_metrics, balanced_accuracy), true },
    { "log_loss", offsetof(tg_metrics, log_loss), false },
    { "brier", offsetof(tg_metrics, brier), false },
    { "roc_auc", offsetof(tg_metrics, roc_auc), true },
    { "average_precision", offsetof(tg_metrics, average_precision), true },
    { "f1_macro", offsetof(tg_metrics, f1_macro), true },
    { "f1_weighted", offsetof(tg_metrics, f1_weighted), true },
    { "precision_macro", offsetof(tg_metrics, precision_macro), true },
    { "recall_macro", offsetof(tg_metrics, recall_macro), true },
    { "precision_weighted", offsetof(tg_metrics, precision_weighted), true },
    { "recall_weighted", offsetof(tg_metrics, recall_weighted), true },
};
enum { N_METRICS = sizeof metric_specs / sizeof metric_specs[0] };

static const metric_spec *metric_named(const char *name)
{
    for (int i = 0; i < N_METRICS; i++)
        if (strcmp(metric_specs[i].name, name) == 0)
            return &metric_specs[i];
    return NULL;
}

/* ---- the grid ---- */

typedef struct {
    char *key; /* a config path, e.g. "optimizer.lr" */
    int n_values;
    char **texts; /* each value as written */
    cJSON **values; /* each value as JSON: parsed when it is JSON, else a string */
} grid_axis;

static void grid_axis_free(grid_axis *a)
{
    for (int i = 0; i < a->n_values; i++) {
        free(a->texts[i]);
        cJSON_Delete(a->values[i]);
    }
    free(a->texts);
    free(a->values);
    free(a->key);
}

/* "KEY=V1,V2,..." into an axis; 0, or 2 after a usage message. */
static int parse_grid(const char *arg, grid_axis *a)
{
    memset(a, 0, sizeof *a);
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1])
        return fail("--grid %s: expected KEY=VALUE1,VALUE2,... (e.g. optimizer.lr=0.01,0.1)", arg), 2;
    size_t n = (size_t)(eq - arg);
    int count = 1;
    for (const char *c = eq + 1; *c; c++)
        count += *c == ',';
    a->key = malloc(n + 1);
    a->texts = calloc((size_t)count, sizeof *a->texts);
    a->values = calloc((size_t)count, sizeof *a->values);
    if (!a->key || !a->texts || !a->values)
        return fail("out of memory");
    memcpy(a->key, arg, n);
    a->key[n] = 0;
    for (const char *start = eq + 1;; a->n_values++) {
        size_t len = strcspn(start, ",");
        if (len == 0)
            return fail("--grid %s: an empty value", arg), 2;
        char *text = a->texts[a->n_values] = malloc(len + 1);
        if (!text)
            return fail("out of memory");
        memcpy(text, start, len);
        text[len] = 0;
        cJSON *v = cJSON_Parse(text);
        a->values[a->n_values] = v ? v : cJSON_CreateString(text);
        if (!a->values[a->n_values])
            return fail("out of memory");
        if (!start[len]) {
            a->n_values++;
            break;
        }
        start += len + 1;
    }
    return 0;
}

/* Sets the value at key ("a.b[2].c") in root to a copy of value, making missing objects on the way.
 * 0, or -1 with why filled. */
static int set_path(cJSON *root, const char *key, const cJSON *value, char *why, size_t size)
{
    cJSON *node = root;
    const char *p = key;
    for (;;) {
        size_t n = strcspn(p, ".[");
        char name[128];
        if (n == 0 || n >= sizeof name) {
            snprintf(why, size, "%s a name in the path", n ? "too long" : "missing");
            return -1;
        }
        memcpy(name, p, n);
        name[n] = 0;
        p += n;
        if (!cJSON_IsObject(node)) {
            snprintf(why, size, "%.*s is not an object", (int)(p - n - key - 1), key);
            return -1;
        }
        cJSON *child = cJSON_GetObjectItemCaseSensitive(node, name), *copy;
        if (!*p) {
            if (!(copy = cJSON_Duplicate(value, 1)))
                return snprintf(why, size, "out of memory"), -1;
            if (child)
                cJSON_ReplaceItemInObjectCaseSensitive(node, name, copy);
            else
                cJSON_AddItemToObject(node, name, copy);
            return 0;
        }
        if (!child && *p == '.')
            child = cJSON_AddObjectToObject(node, name);
        node = child;
        while (*p == '[') {
            char *end;
            long index = strtol(p + 1, &end, 10);
            if (end == p + 1 || *end != ']' || index < 0) {
                snprintf(why, size, "expected [INDEX] after %.*s", (int)(p - key), key);
                return -1;
            }
            if (!cJSON_IsArray(node) || index >= cJSON_GetArraySize(node)) {
                snprintf(why, size, "%.*s has no entry %ld", (int)(p - key), key, index);
                return -1;
            }
            p = end + 1;
            if (!*p) {
                if (!(copy = cJSON_Duplicate(value, 1)))
                    return snprintf(why, size, "out of memory"), -1;
                cJSON_ReplaceItemInArray(node, (int)index, copy);
                return 0;
            }
            node = cJSON_GetArrayItem(node, (int)index);
        }
        if (*p != '.' || !p[1]) {
            snprintf(why, size, "unexpected '%c' in the path", *p ? *p : '.');
            return -1;
        }
        p++;
    }
}

/* The grid's points in order, the first axis varying slowest: choice[a] of point i. */
static void point_choice(const grid_axis *axes, int n_axes, int point, int *choice)
{
    for (int a = n_axes - 1; a >= 0; a--) {
        choice[a] = point % axes[a].n_values;
        point /= axes[a].n_values;
    }
}

/* "optimizer.lr=0.1 train.epochs=50" (or "the config as written"). */
static void describe_point(const grid_axis *axes, int n_axes, const int *choice, char *buf, size_t size)
{
    buf[0] = 0;
    if (n_axes == 0)
        snprintf(buf, size, "the config as written");
    for (int a = 0; a < n_axes; a++) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s=%s", a ? " " : "", axes[a].key, axes[a].texts[choice[a]]);
    }
}

/* The config of one grid point, loaded by the strict loader from the edited JSON; NULL after a message. */
static tg_config *point_config(const cJSON *base, const char *base_dir, const grid_axis *axes, int n_axes,
                               const int *choice)
{
    cJSON *copy = cJSON_Duplicate(base, 1);
    char why[256], point[512];
    if (!copy)
        return fail("out of memory"), NULL;
    for (int a = 0; a < n_axes; a++)
        if (set_path(copy, axes[a].key, axes[a].values[choice[a]], why, sizeof why)) {
            fail("--grid %s: %s", axes[a].key, why);
            cJSON_Delete(copy);
            return NULL;
        }
    char *text = cJSON_PrintUnformatted(copy);
    cJSON_Delete(copy);
    tg_config *cfg = text ? tg_config_parse(text, base_dir) : NULL;
    if (!cfg) {
        describe_point(axes, n_axes, choice, point, sizeof point);
        fail("--grid %s: %s", point, text ? tg_last_error() : "out of memory");
    }
    cJSON_free(text);
    return cfg;
}

/* ---- one run ---- */

typedef struct {
    const char *config_path;
    int folds;
    const metric_spec *metric;
    grid_axis axes[CLI_MAX_GRID];
    int n_axes, n_points;
    tg_config **configs; /* [n_points] */
    tg_dataset *data, *test; /* the rows cross-validated, and the config's test set */
    int *fold; /* [data->rows] */
    double *scores; /* [n_points * folds] */
    progress_state ps;
    bool json;
    int point, fold_index; /* what is running, for the progress line */
    double fold_started;
} cv_run;

/* A live bar within a fold on a terminal; the fold's line itself is printed when it ends. */
static int on_fold_progress(const tg_progress *p, void *ctx)
{
    cv_run *run = ctx;
    progress_state *s = &run->ps;
    if (s->quiet || !s->live)
        return 0;
    double now = wall_seconds();
    if (!p->finished && now - s->last_draw < 0.1)
        return 0;
    s->last_draw = now;
    fprintf(s->out, "\r\033[Kpoint %d/%d  fold %d/%d  epoch %3d/%d  train loss %.4f", run->point + 1, run->n_points,
            run->fold_index + 1, run->folds, p->epoch, p->epochs, p->train_loss);
    fflush(s->out);
    return 0;
}

/* The folder of the config file, against which its relative data paths resolve. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path); /* "x.json": "."; "/x.json": "/" */
    char *dir = malloc(n + 1);
    if (dir) {
        memcpy(dir, slash ? path : ".", n);
        dir[n] = 0;
    }
    return dir;
}

/* Reads the config as JSON, loads every grid point (refusing a bad one before any training) and the data:
 * the training rows with no validation split held out (folds replace it), and the test set. */
static int open_run(cv_run *run, cJSON **base, char **base_dir)
{
    tg_config *first = tg_config_load(run->config_path); /* the file as written must load too */
    if (!first)
        return fail("%s", tg_last_error());
    *base = cJSON_Parse(first->json);
    *base_dir = folder_of(run->config_path);
    tg_config_free(first);
    if (!*base || !*base_dir)
        return fail("out of memory");
    run->n_points = 1;
    for (int a = 0; a < run->n_axes; a++)
        run->n_points *= run->axes[a].n_values;
    run->configs = calloc((size_t)run->n_points, sizeof *run->configs);
    if (!run->configs)
        return fail("out of memory");
    int choice[CLI_MAX_GRID];
    for (int i = 0; i < run->n_points; i++) {
        point_choice(run->axes, run->n_axes, i, choice);
        if (!(run->configs[i] = point_config(*base, *base_dir, run->axes, run->n_axes, choice)))
            return 2;
    }
    /* The rows to fold: the config without its validation split (and so without early stopping). */
    cJSON *for_data = cJSON_Duplicate(*base, 1);
    if (!for_data)
        return fail("out of memory");
    cJSON *data = cJSON_GetObjectItemCaseSensitive(for_data, "data");
    cJSON_DeleteItemFromObjectCaseSensitive(data, "validation_split");
    cJSON_AddNumberToObject(data, "validation_split", 0);
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(for_data, "train"), "early_stopping");
    char *text = cJSON_PrintUnformatted(for_data);
    cJSON_Delete(for_data);
    tg_config *data_cfg = text ? tg_config_parse(text, *base_dir) : NULL;
    cJSON_free(text);
    tg_dataset *unused = NULL;
    int rc = 0;
    if (!data_cfg || tg_config_load_data(data_cfg, &run->data, &unused, &run->test))
        rc = fail("%s: %s", run->config_path, tg_last_error());
    tg_dataset_free(unused);
    if (!rc) {
        tg_rng rng;
        tg_rng_seed(&rng, data_cfg->data.shuffle_seed);
        run->fold = malloc((size_t)run->data->rows * sizeof *run->fold);
        run->scores = malloc((size_t)run->n_points * (size_t)run->folds * sizeof *run->scores);
        if (!run->fold || !run->scores)
            rc = fail("out of memory");
        else if (tg_stratified_folds(run->data, run->folds, &rng, run->fold))
            rc = (fail("--folds %d: %s", run->folds, tg_last_error()), 2);
    }
    tg_config_free(data_cfg);
    return rc;
}

/* Trains point `point` on every fold but f and scores it on fold f. */
static int run_fold(cv_run *run, int point, int f, double *score)
{
    const tg_config *cfg = run->configs[point];
    int64_t rows = run->data->rows, n_test = 0;
    int64_t *idx = malloc((size_t)rows * sizeof *idx);
    if (!idx)
        return fail("out of memory");
    for (int64_t r = 0; r < rows; r++) /* held-out rows first, then the rest: two subsets of one index list */
        if (run->fold[r] == f)
            idx[n_test++] = r;
    for (int64_t r = 0, k = n_test; r < rows; r++)
        if (run->fold[r] != f)
            idx[k++] = r;
    tg_dataset *held_out = tg_dataset_subset(run->data, idx, n_test);
    tg_dataset *rest = tg_dataset_subset(run->data, idx + n_test, rows - n_test);
    free(idx);
    tg_dataset *fit = NULL, *validation = NULL;
    tg_training *t = NULL;
    double *probs = NULL;
    tg_metrics mt = { 0 };
    int rc = 1;
    if (!held_out || !rest) {
        fail("%s", tg_last_error());
        goto done;
    }
    if (cfg->data.validation_split > 0) { /* as train does: a validation split of the fold's training rows */
        tg_rng rng;
        tg_rng_seed(&rng, cfg->data.shuffle_seed + (uint64_t)f + 1);
        if (tg_dataset_split(rest, cfg->data.validation_split, &rng, &fit, &validation)) {
            fail("%s", tg_last_error());
            goto done;
        }
    }
    t = tg_train_on_data(cfg, fit ? fit : rest, validation, on_fold_progress, run);
    if (!t) {
        fail("fold %d: %s", f + 1, tg_last_error());
        goto done;
    }
    int64_t classes = tg_model_classes(t->model);
    probs = malloc((size_t)(held_out->rows * classes + 1) * sizeof *probs);
    if (!probs || tg_predict(t->model, held_out, probs) ||
        tg_metrics_compute(held_out->rows, classes, held_out->y, probs, positive_class(t->model, classes), &mt)) {
        fail("fold %d: %s", f + 1, probs ? tg_last_error() : "out of memory");
        goto done;
    }
    *score = *(const double *)((const char *)&mt + run->metric->offset);
    rc = 0;
done:
    tg_metrics_free(&mt);
    free(probs);
    tg_training_free(t);
    tg_dataset_free(fit);
    tg_dataset_free(validation);
    tg_dataset_free(held_out);
    tg_dataset_free(rest);
    return rc;
}

/* Mean and population standard deviation (numpy.std, as scikit-learn's cv_results_) of n scores. */
static void mean_std(const double *x, int n, double *mean, double *std)
{
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    *mean = sum / n;
    for (int i = 0; i < n; i++)
        sq += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(sq / n);
}

static int cross_validate(cv_run *run)
{
    char point[512];
    int choice[CLI_MAX_GRID];
    for (int i = 0; i < run->n_points; i++) {
        point_choice(run->axes, run->n_axes, i, choice);
        describe_point(run->axes, run->n_axes, choice, point, sizeof point);
        for (int f = 0; f < run->folds; f++) {
            run->point = i;
            run->fold_index = f;
            double started = wall_seconds();
            if (run_fold(run, i, f, &run->scores[i * run->folds + f]))
                return 1;
            if (run->ps.quiet)
                continue;
            if (run->ps.live)
                fprintf(run->ps.out, "\r\033[K");
            fprintf(run->ps.out, "point %d/%d  fold %d/%d  %s  %s %.4f  %.2fs\n", i + 1, run->n_points, f + 1,
                    run->folds, point, run->metric->name, run->scores[i * run->folds + f], wall_seconds() - started);
            fflush(run->ps.out);
        }
    }
    return 0;
}

/* The point with the best mean (NaN means never win); -1 when every mean is NaN. */
static int best_point(const cv_run *run, double *means, double *stds)
{
    int best = -1;
    for (int i = 0; i < run->n_points; i++) {
        mean_std(run->scores + i * run->folds, run->folds, &means[i], &stds[i]);
        if (isnan(means[i]))
            continue;
        if (best < 0 || (run->metric->higher_is_better ? means[i] > means[best] : means[i] < means[best]))
            best = i;
    }
    return best;
}

/* Refits the best point as train does, scores its test set, saves it. */
static int refit(cv_run *run, int best, const char *out, cJSON *json)
{
    tg_training *t = tg_train_config(run->configs[best], on_progress, &run->ps);
    tg_eval ev = { 0 };
    int rc = 1;
    if (!t) {
        fail("refitting the best point: %s", tg_last_error());
        goto done;
    }
    bool tested = t->test->rows > 0;
    if (tested && tg_evaluate(t->model, t->test, &ev)) {
        fail("evaluating the test set: %s", tg_last_error());
        goto done;
    }
    if (tg_model_save(t->model, out)) {
        fail("%s", tg_last_error());
        goto done;
    }
    if (json) {
        cJSON *refit = cJSON_AddObjectToObject(json, "refit");
        cJSON_AddStringToObject(refit, "model", out);
        if (tested) {
            cJSON_AddNumberToObject(refit, "test_accuracy", ev.accuracy);
            cJSON_AddNumberToObject(refit, "test_loss", ev.loss);
        }
    } else {
        if (tested)
            printf("refit on the training data: test accuracy %.4f  test loss %.4f  (%lld rows)\n", ev.accuracy,
                   ev.loss, (long long)ev.rows);
        printf("saved %s\n", out);
    }
    rc = 0;
done:
    tg_eval_clear(&ev);
    tg_training_free(t);
    return rc;
}

static int report(cv_run *run, const char *out)
{
    double *means = malloc((size_t)run->n_points * 2 * sizeof *means);
    if (!means)
        return fail("out of memory");
    double *stds = means + run->n_points;
    int best = best_point(run, means, stds), choice[CLI_MAX_GRID], rc = 0;
    char point[512];
    cJSON *json = NULL;
    if (run->json) {
        json = cJSON_CreateObject();
        cJSON_AddStringToObject(json, "metric", run->metric->name);
        cJSON_AddBoolToObject(json, "higher_is_better", run->metric->higher_is_better);
        cJSON_AddNumberToObject(json, "folds", run->folds);
        cJSON_AddNumberToObject(json, "rows", (double)run->data->rows);
        cJSON *points = cJSON_AddArrayToObject(json, "points");
        for (int i = 0; i < run->n_points; i++) {
            point_choice(run->axes, run->n_axes, i, choice);
            cJSON *p = cJSON_CreateObject(), *params = cJSON_AddObjectToObject(p, "params");
            for (int a = 0; a < run->n_axes; a++)
                cJSON_AddItemToObject(params, run->axes[a].key, cJSON_Duplicate(run->axes[a].values[choice[a]], 1));
            cJSON_AddNumberToObject(p, "mean", means[i]);
            cJSON_AddNumberToObject(p, "std", stds[i]);
            cJSON *scores = cJSON_AddArrayToObject(p, "scores");
            for (int f = 0; f < run->folds; f++)
                cJSON_AddItemToArray(scores, cJSON_CreateNumber(run->scores[i * run->folds + f]));
            cJSON_AddItemToArray(points, p);
        }
        cJSON_AddNumberToObject(json, "best", best);
    } else {
        printf("\n%s over %d stratified folds of %lld rows (%s is better)\n", run->metric->name, run->folds,
               (long long)run->data->rows, run->metric->higher_is_better ? "higher" : "lower");
        for (int i = 0; i < run->n_points; i++) {
            point_choice(run->axes, run->n_axes, i, choice);
            describe_point(run->axes, run->n_axes, choice, point, sizeof point);
            printf("  %.4f ± %.4f  %s%s\n", means[i], stds[i], point, i == best ? "  (best)" : "");
        }
    }
    if (best < 0) {
        rc = fail("every point's %s is undefined (NaN); nothing to refit", run->metric->name);
    } else if (!json) {
        point_choice(run->axes, run->n_axes, best, choice);
        describe_point(run->axes, run->n_axes, choice, point, sizeof point);
        printf("best: %s  %s %.4f ± %.4f\n", point, run->metric->name, means[best], stds[best]);
    }
    if (!rc && out) {
        if (!json && !run->ps.quiet)
            putchar('\n');
        rc = refit(run, best, out, json);
    }
    if (json && !rc)
        print_json(json);
    else
        cJSON_Delete(json);
    free(means);
    return rc;
}

int cmd_cv(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 1, OPT_JSON | OPT_QUIET | OPT_OUT | OPT_CV, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_cv, stdout), 0;
    if (o.n_positional != 1 || !o.folds)
        return fail("%s", o.n_positional != 1 ? "expected one CONFIG.json" : "--folds K is required"),
               fprintf(stderr, "%s", usage_cv), 2;
    char *end;
    long folds = strtol(o.folds, &end, 10);
    if (*end || folds < 2 || folds > 1000000)
        return fail("--folds %s: expected a whole number of at least 2", o.folds), 2;
    cv_run run = { .config_path = o.positional[0], .folds = (int)folds };
    run.metric = metric_named(o.metric ? o.metric : "accuracy");
    if (!run.metric)
        return fail("--metric %s: unknown (see '%s --help')", o.metric, command_name()), 2;
    if ((rc = check_output("--out", o.out, o.positional, 1)))
        return rc;
    cJSON *base = NULL;
    char *base_dir = NULL;
    for (int a = 0; a < o.n_grid && !rc; a++, run.n_axes++)
        rc = parse_grid(o.grid[a], &run.axes[a]);
    if (!rc)
        rc = open_run(&run, &base, &base_dir);
    if (!rc) {
        run.json = o.json;
        run.ps = (progress_state){ .quiet = o.quiet, .out = o.json ? stderr : stdout };
        run.ps.live = isatty(fileno(run.ps.out));
        rc = cross_validate(&run);
    }
    if (!rc)
        rc = report(&run, o.out);
    for (int a = 0; a < run.n_axes; a++)
        grid_axis_free(&run.axes[a]);
    for (int i = 0; run.configs && i < run.n_points; i++)
        tg_config_free(run.configs[i]);
    free(run.configs);
    free(run.fold);
    free(run.scores);
    tg_dataset_free(run.data);
    tg_dataset_free(run.test);
    cJSON_Delete(base);
    free(base_dir);
    return rc;
}
