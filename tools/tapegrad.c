/* The tapegrad command: argument parsing and printing around the library's
 * public API; no training logic lives here. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- usage ---- */

static const char *usage_main =
    "usage: tapegrad <command> [options]\n"
    "\n"
    "Train, evaluate and check small classifiers described by JSON configs.\n"
    "\n"
    "commands:\n"
    "  train CONFIG.json       train a model, print test results, save it\n"
    "  eval MODEL DATA         accuracy, loss and confusion matrix of a saved model\n"
    "                          (DATA: a CSV, or a config for its test set)\n"
    "  predict MODEL DATA.csv  one predicted label and its probability per row (CSV)\n"
    "  gradcheck [CONFIG.json] check analytic gradients against finite differences\n"
    "\n"
    "Run 'tapegrad <command> --help' for a command's options. Every command takes\n"
    "--threads N (default: TAPEGRAD_NUM_THREADS, else the number of cores).\n"
    "Exit status: 0 on success, 1 on an error, 2 on a usage error.\n";

static const char *usage_train =
    "usage: tapegrad train CONFIG.json [--out MODEL.safetensors] [--plot CURVES.svg] [--json] [--quiet]\n"
    "\n"
    "Trains the model CONFIG.json describes (see docs/config.md), printing one line per\n"
    "epoch (a live bar on a terminal), then the test accuracy, confusion matrix and\n"
    "per-class precision and recall, and saves the model.\n"
    "\n"
    "  --out PATH    where to save the model (default: the config's name with .safetensors,\n"
    "                in the current folder)\n"
    "  --plot PATH   write the learning curves as an SVG\n"
    "  --json        print the results as one JSON object on stdout (progress goes to stderr)\n"
    "  --quiet       no progress lines\n"
    "  --threads N   threads for the library and BLAS (see docs/performance.md)\n";

static const char *usage_eval = "usage: tapegrad eval MODEL.safetensors DATA.csv|CONFIG.json [--json]\n"
                                "\n"
                                "Scores a saved model on labelled data: accuracy, mean cross-entropy,\n"
                                "confusion matrix and per-class precision and recall. The CSV has the\n"
                                "model's feature columns and a label column (the last one). Given the\n"
                                "config the model was trained from, it scores that config's test set\n"
                                "(the same rows 'tapegrad train' reported on).\n"
                                "\n"
                                "  --json        print the results as one JSON object\n"
                                "  --threads N   threads for the library and BLAS\n";

static const char *usage_predict =
    "usage: tapegrad predict MODEL.safetensors DATA.csv\n"
    "\n"
    "Writes 'label,probability' for each row of DATA.csv to stdout, as CSV with a\n"
    "header. DATA.csv holds the model's feature columns, with or without a label\n"
    "column after them (a label column is ignored).\n"
    "\n"
    "  --threads N   threads for the library and BLAS\n";

static const char *usage_gradcheck =
    "usage: tapegrad gradcheck [CONFIG.json] [--json]\n"
    "\n"
    "With a config: builds the model it describes in float64 on a few rows of its\n"
    "data and compares every parameter's analytic gradient of the loss with central\n"
    "differences (eps 1e-6, atol 1e-5, rtol 1e-3). Without one: checks every op.\n"
    "Prints the worst error per parameter (or op) and pass/fail; exits 1 on a failure.\n"
    "\n"
    "  --json        print the table as JSON\n"
    "  --threads N   threads for the library and BLAS\n";

/* ---- options ---- */

typedef struct {
    const char *positional[2];
    int n_positional;
    const char *out, *plot, *threads;
    bool json, quiet, help;
} options;

/* The options a command takes besides --help and --threads. */
enum { OPT_JSON = 1, OPT_QUIET = 2, OPT_OUT = 4, OPT_PLOT = 8 };

static int parse_options(int argc, char **argv, int max_positional, int allowed, options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **value = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            o->help = true;
        else if ((allowed & OPT_JSON) && strcmp(a, "--json") == 0)
            o->json = true;
        else if ((allowed & OPT_QUIET) && (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0))
            o->quiet = true;
        else if ((allowed & OPT_OUT) && strncmp(a, "--out", 5) == 0 && (a[5] == 0 || a[5] == '='))
            value = &o->out;
        else if ((allowed & OPT_PLOT) && strncmp(a, "--plot", 6) == 0 && (a[6] == 0 || a[6] == '='))
            value = &o->plot;
        else if (strncmp(a, "--threads", 9) == 0 && (a[9] == 0 || a[9] == '='))
            value = &o->threads;
        else if (a[0] == '-' && a[1] != 0)
            return fail("unknown option '%s' (see '%s --help')", a, command), 2;
        else if (o->n_positional < max_positional)
            o->positional[o->n_positional++] = a;
        else
            return fail("unexpected argument '%s' (see '%s --help')", a, command), 2;
        if (value) {
            const char *eq = strchr(a, '=');
            if (eq)
                *value = eq + 1;
            else if (i + 1 < argc)
                *value = argv[++i];
            else
                return fail("%s needs a value", a), 2;
            if (!**value)
                return fail("%s needs a non-empty value", a), 2;
            if ((value == &o->out && o->plot && strcmp(o->out, o->plot) == 0) ||
                (value == &o->plot && o->out && strcmp(o->out, o->plot) == 0))
                return fail("--out and --plot name the same file"), 2;
        }
    }
    if (o->threads) {
        char *end;
        long n = strtol(o->threads, &end, 10);
        if (*end || n < 1 || n > 1024)
            return fail("--threads %s: expected a whole number from 1 to 1024", o->threads), 2;
        tg_set_num_threads((int)n);
    }
    return 0;
}

/* ---- printing results ---- */

static const char *label_of(const tg_model *m, int64_t k, char *buf, size_t size)
{
    const char *name = tg_model_label(m, k);
    if (name)
        return name;
    snprintf(buf, size, "%lld", (long long)k);
    return buf;
}

/* A blue background whose depth follows the cell's share of its row. */
static const char *shade(double share)
{
    static const char *codes[] = { "", "\033[48;5;195m", "\033[48;5;153m", "\033[48;5;111m", "\033[48;5;69m",
                                   "\033[48;5;27m\033[97m" };
    if (!(share > 0))
        return codes[0];
    int level = 1 + (int)(share * 4.999);
    return codes[level > 5 ? 5 : level];
}

/* Class k's precision, recall and support (true rows) from the confusion matrix. */
typedef struct {
    double precision, recall;
    int64_t support;
} class_stats;

static class_stats stats_of(const tg_eval *ev, int64_t k)
{
    int64_t c = ev->classes, predicted = 0, actual = 0, hit = ev->confusion[k * c + k];
    for (int64_t j = 0; j < c; j++) {
        predicted += ev->confusion[j * c + k];
        actual += ev->confusion[k * c + j];
    }
    return (class_stats){ predicted ? (double)hit / (double)predicted : 0.0, actual ? (double)hit / (double)actual : 0.0,
                          actual };
}

/* Rows classified correctly: the confusion matrix's trace. */
static int64_t correct_rows(const tg_eval *ev)
{
    int64_t correct = 0;
    for (int64_t k = 0; k < ev->classes; k++)
        correct += ev->confusion[k * ev->classes + k];
    return correct;
}

static void print_report(FILE *f, const tg_model *m, const tg_eval *ev, bool colour)
{
    int64_t c = ev->classes;
    int width = 5;
    char buf[32];
    for (int64_t k = 0; k < c; k++) {
        int len = (int)strlen(label_of(m, k, buf, sizeof buf));
        width = len > width ? len : width;
    }
    width = width > 14 ? 14 : width;
    fprintf(f, "\nconfusion matrix (rows: true class, columns: predicted)\n%*s", width + 2, "");
    for (int64_t k = 0; k < c; k++)
        fprintf(f, " %*.*s", width, width, label_of(m, k, buf, sizeof buf));
    fputc('\n', f);
    for (int64_t r = 0; r < c; r++) {
        int64_t row_total = 0;
        for (int64_t k = 0; k < c; k++)
            row_total += ev->confusion[r * c + k];
        fprintf(f, "  %*.*s", width, width, label_of(m, r, buf, sizeof buf));
        for (int64_t k = 0; k < c; k++) {
            int64_t n = ev->confusion[r * c + k];
            const char *on = colour ? shade(row_total ? (double)n / (double)row_total : 0) : "";
            fprintf(f, " %s%*lld%s", on, width, (long long)n, colour && *on ? "\033[0m" : "");
        }
        fputc('\n', f);
    }
    fprintf(f, "\n  %*s %9s %9s %9s\n", width, "class", "precision", "recall", "support");
    for (int64_t k = 0; k < c; k++) {
        class_stats st = stats_of(ev, k);
        fprintf(f, "  %*.*s %9.4f %9.4f %9lld\n", width, width, label_of(m, k, buf, sizeof buf), st.precision,
                st.recall, (long long)st.support);
    }
}

static cJSON *eval_json(const tg_model *m, const tg_eval *ev)
{
    cJSON *o = cJSON_CreateObject();
    char buf[32];
    cJSON_AddNumberToObject(o, "rows", (double)ev->rows);
    cJSON_AddNumberToObject(o, "accuracy", ev->accuracy);
    cJSON_AddNumberToObject(o, "loss", ev->loss);
    cJSON *labels = cJSON_AddArrayToObject(o, "labels");
    cJSON *confusion = cJSON_AddArrayToObject(o, "confusion");
    cJSON *per_class = cJSON_AddArrayToObject(o, "per_class");
    for (int64_t r = 0; r < ev->classes; r++) {
        cJSON_AddItemToArray(labels, cJSON_CreateString(label_of(m, r, buf, sizeof buf)));
        cJSON *row = cJSON_CreateArray();
        for (int64_t k = 0; k < ev->classes; k++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)ev->confusion[r * ev->classes + k]));
        cJSON_AddItemToArray(confusion, row);
        class_stats st = stats_of(ev, r);
        cJSON *cls = cJSON_CreateObject();
        cJSON_AddStringToObject(cls, "label", label_of(m, r, buf, sizeof buf));
        cJSON_AddNumberToObject(cls, "precision", st.precision);
        cJSON_AddNumberToObject(cls, "recall", st.recall);
        cJSON_AddNumberToObject(cls, "support", (double)st.support);
        cJSON_AddItemToArray(per_class, cls);
    }
    return o;
}

static void print_json(cJSON *o)
{
    char *text = cJSON_Print(o);
    if (text) {
        puts(text);
        cJSON_free(text);
    }
    cJSON_Delete(o);
}

/* ---- train ---- */

typedef struct {
    bool live; /* redraw a bar in place (stderr or stdout is a terminal) */
    bool quiet;
    FILE *out;
    double last_draw;
} progress_state;

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int print_solver_iteration(progress_state *s, const tg_progress *p)
{
    if (s->live)
        fprintf(s->out, "\r\033[Kiteration %4d/%d  objective/(C n) %.10g  %.2fs", p->epoch, p->epochs, p->train_loss,
                p->seconds);
    else if (p->epoch % 10 == 0)
        fprintf(s->out, "iteration %4d/%d  objective/(C n) %.10g  %.2fs\n", p->epoch, p->epochs, p->train_loss,
                p->seconds);
    fflush(s->out);
    return 0;
}

/* How the full-batch solver ended, as scikit-learn would say it (a warning at max_iter). */
static void print_solver_summary(FILE *out, const tg_config *cfg, const tg_training *t, bool live)
{
    const tg_lbfgs_result *r = &t->solver;
    if (live)
        fprintf(out, "\n");
    fprintf(out, "lbfgs%s: %s after %d iterations (%d evaluations); objective %.12g, gradient norm %.3g\n",
            cfg->loss.penalty.type == TG_PENALTY_L1 || cfg->loss.penalty.type == TG_PENALTY_ELASTICNET ? " (OWL-QN)"
                                                                                                       : "",
            tg_lbfgs_status_text(r->status), r->iterations, r->evaluations, t->objective, r->grad_norm);
    if (r->status == TG_LBFGS_MAX_ITER)
        fprintf(stderr,
                "tapegrad: warning: lbfgs failed to converge: stopped at optimizer.max_iter (%d) with gradient norm "
                "%.3g > optimizer.tolerance_grad (%g); increase optimizer.max_iter\n",
                r->iterations, r->grad_norm, cfg->lbfgs.opts.tolerance_grad);
}

static int on_progress(const tg_progress *p, void *ctx)
{
    progress_state *s = ctx;
    if (s->quiet)
        return 0;
    if (!p->finished) {
        double now = wall_seconds();
        if (!s->live || now - s->last_draw < 0.1)
            return 0;
        s->last_draw = now;
        int filled = (int)(30.0 * (double)p->step / (double)p->steps_per_epoch);
        fprintf(s->out, "\r\033[Kepoch %3d/%d [%.*s%*s] %3d%%  train loss %.4f", p->epoch, p->epochs, filled,
                "##############################", 30 - filled, "", (int)(100.0 * (double)p->step / (double)p->steps_per_epoch),
                p->train_loss);
        fflush(s->out);
        return 0;
    }
    if (p->full_batch) /* one line per solver iteration: in place on a terminal, every 10th otherwise */
        return print_solver_iteration(s, p);
    if (s->live)
        fprintf(s->out, "\r\033[K");
    fprintf(s->out, "epoch %3d/%d  train loss %.4f", p->epoch, p->epochs, p->train_loss);
    if (!isnan(p->val_loss))
        fprintf(s->out, "  val loss %.4f  val acc %.4f", p->val_loss, p->val_accuracy);
    fprintf(s->out, "  lr %.3g  %.2fs\n", p->lr, p->seconds);
    fflush(s->out);
    return 0;
}

static char *default_model_path(const char *config_path)
{
    const char *base = strrchr(config_path, '/');
    base = base ? base + 1 : config_path;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    char *path = malloc(n + 13);
    if (path)
        snprintf(path, n + 13, "%.*s.safetensors", (int)n, base);
    return path;
}

/* Whether two paths name one existing file (hard links and symlinks included). */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Whether a new file can be made in path's folder (and path is not a folder): made and removed at once. */
static bool folder_takes_new_file(const char *path, const char **why)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        *why = "it is a folder";
        return false;
    }
    size_t n = strlen(path);
    char *probe = malloc(n + 24);
    if (!probe) {
        *why = "out of memory";
        return false;
    }
    snprintf(probe, n + 24, "%s.probe.XXXXXX", path);
    int fd = mkstemp(probe);
    if (fd < 0) {
        *why = strerror(errno);
        free(probe);
        return false;
    }
    close(fd);
    unlink(probe);
    free(probe);
    return true;
}

static int cmd_train(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 1, OPT_JSON | OPT_QUIET | OPT_OUT | OPT_PLOT, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_train, stdout), 0;
    if (o.n_positional != 1)
        return fprintf(stderr, "%s", usage_train), 2;
    tg_config *cfg = tg_config_load(o.positional[0]);
    if (!cfg)
        return fail("%s", tg_last_error());
    char *default_out = o.out ? NULL : default_model_path(o.positional[0]);
    const char *out = o.out ? o.out : default_out;
    /* Everything that can be checked before a long run is: the outputs must not replace an input or each
     * other, their folders must take a new file, and there must be a test set to report on. */
    const char *inputs[] = { o.positional[0], cfg->data.train, cfg->data.test, cfg->data.train_labels,
                             cfg->data.test_labels };
    const char *outputs[2][2] = { { "--out", out }, { "--plot", o.plot } };
    rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        const char *name = outputs[k][0], *path = outputs[k][1];
        if (!path)
            continue;
        for (size_t i = 0; i < sizeof inputs / sizeof inputs[0] && !rc; i++)
            if (inputs[i] && same_file(path, inputs[i]))
                rc = (fail("%s %s names %s, an input of this run; it would be overwritten", name, path, inputs[i]), 2);
        const char *why = NULL;
        if (!rc && !folder_takes_new_file(path, &why))
            rc = (fail("%s %s: cannot write there: %s", name, path, why), 2);
    }
    if (!rc && o.plot && (strcmp(out, o.plot) == 0 || same_file(out, o.plot)))
        rc = (fail("--out and --plot name the same file"), 2);
    if (!rc && !cfg->data.test && !(cfg->data.test_split > 0))
        rc = (fail("%s: no test set (set data.test or a data.test_split above 0)", o.positional[0]), 2);
    if (rc) {
        tg_config_free(cfg);
        free(default_out);
        return rc;
    }
    progress_state ps = { .quiet = o.quiet, .out = o.json ? stderr : stdout };
    ps.live = isatty(fileno(ps.out));
    tg_training *t = tg_train_config(cfg, on_progress, &ps);
    tg_eval ev = { 0 };
    rc = 1;
    if (!t) {
        fail("%s", tg_last_error());
        goto done;
    }
    if (t->full_batch && !o.quiet)
        print_solver_summary(o.json ? stderr : stdout, cfg, t, ps.live);
    if (t->full_batch && (t->solver.status == TG_LBFGS_LINESEARCH_FAILED || t->solver.status == TG_LBFGS_NOT_FINITE)) {
        fail("%s", tg_last_error());
        if (tg_model_save(t->model, out) == 0)
            fprintf(stderr, "tapegrad: saved the last good weights to %s\n", out);
        goto done;
    }
    if (t->test->rows == 0) {
        fail("the test set is empty (set data.test or a data.test_split > 0)");
        goto done;
    }
    if (tg_evaluate(t->model, t->test, &ev)) {
        fail("evaluating the test set: %s", tg_last_error());
        goto done;
    }
    if (tg_model_save(t->model, out)) {
        fail("%s", tg_last_error());
        goto done;
    }
    const char *why = NULL;
    if (o.plot && write_curves_svg(o.plot, t, &why)) {
        fail("writing %s: %s", o.plot, why);
        goto done;
    }
    if (o.json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *epochs = cJSON_AddArrayToObject(root, "epochs");
        for (int e = 0; e < t->epochs_run; e++) {
            cJSON *row = cJSON_CreateObject();
            cJSON_AddNumberToObject(row, "epoch", e + 1);
            cJSON_AddNumberToObject(row, "train_loss", t->train_loss[e]);
            if (!isnan(t->val_loss[e])) {
                cJSON_AddNumberToObject(row, "val_loss", t->val_loss[e]);
                cJSON_AddNumberToObject(row, "val_accuracy", t->val_accuracy[e]);
            }
            cJSON_AddItemToArray(epochs, row);
        }
        cJSON_AddBoolToObject(root, "stopped_early", t->stopped_early);
        if (t->full_batch) {
            cJSON *solver = cJSON_AddObjectToObject(root, "solver");
            cJSON_AddStringToObject(solver, "type", "lbfgs");
            cJSON_AddStringToObject(solver, "status", tg_lbfgs_status_text(t->solver.status));
            cJSON_AddBoolToObject(solver, "converged", t->solver.status == TG_LBFGS_CONVERGED_GRAD ||
                                                           t->solver.status == TG_LBFGS_CONVERGED_CHANGE ||
                                                           t->solver.status == TG_LBFGS_CONVERGED_ROUNDING);
            cJSON_AddNumberToObject(solver, "iterations", t->solver.iterations);
            cJSON_AddNumberToObject(solver, "evaluations", t->solver.evaluations);
            cJSON_AddNumberToObject(solver, "objective", t->objective);
            cJSON_AddNumberToObject(solver, "grad_norm", t->solver.grad_norm);
        }
        cJSON_AddItemToObject(root, "test", eval_json(t->model, &ev));
        cJSON_AddStringToObject(root, "model", out);
        if (o.plot) /* always present, as docs/cli.md lists it: null without --plot */
            cJSON_AddStringToObject(root, "plot", o.plot);
        else
            cJSON_AddNullToObject(root, "plot");
        print_json(root);
    } else {
        printf("\ntest accuracy %.4f (%lld of %lld)  test loss %.4f\n", ev.accuracy, (long long)correct_rows(&ev),
               (long long)ev.rows, ev.loss);
        print_report(stdout, t->model, &ev, isatty(fileno(stdout)));
        printf("\nsaved %s\n", out);
        if (o.plot)
            printf("wrote %s\n", o.plot);
    }
    rc = 0;
done:
    tg_eval_clear(&ev);
    tg_training_free(t);
    tg_config_free(cfg);
    free(default_out);
    return rc;
}

/* ---- eval and predict ---- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A CSV file, or a config whose test split (rebuilt with the config's seed) is wanted. */
static tg_dataset *load_eval_data(const tg_model *m, const char *path)
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

static int cmd_eval(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 2, OPT_JSON, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_eval, stdout), 0;
    if (o.n_positional != 2)
        return fprintf(stderr, "%s", usage_eval), 2;
    tg_model *m = tg_model_load(o.positional[0]);
    if (!m)
        return fail("%s", tg_last_error());
    tg_dataset *ds = load_eval_data(m, o.positional[1]);
    tg_eval ev = { 0 };
    rc = 1;
    if (!ds) {
        fail("%s", tg_last_error());
    } else if (tg_evaluate(m, ds, &ev)) {
        fail("%s: %s", o.positional[1], tg_last_error());
    } else {
        rc = 0;
        if (o.json) {
            print_json(eval_json(m, &ev));
        } else {
            printf("accuracy %.4f (%lld of %lld)  loss %.4f\n", ev.accuracy, (long long)correct_rows(&ev),
                   (long long)ev.rows, ev.loss);
            print_report(stdout, m, &ev, isatty(fileno(stdout)));
        }
    }
    tg_eval_clear(&ev);
    tg_dataset_free(ds);
    tg_model_free(m);
    return rc;
}

static int cmd_predict(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 2, 0, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_predict, stdout), 0;
    if (o.n_positional != 2)
        return fprintf(stderr, "%s", usage_predict), 2;
    if (ends_with(o.positional[1], ".json"))
        return fail("%s: predict takes a CSV of rows to label, not a config", o.positional[1]), 2;
    tg_model *m = tg_model_load(o.positional[0]);
    if (!m)
        return fail("%s", tg_last_error());
    tg_csv_opts csv = TG_CSV_OPTS_DEFAULT;
    csv.unlabeled = -1;
    tg_dataset *ds = tg_load_data_for_model(m, o.positional[1], &csv);
    double *probs = ds ? malloc((size_t)(ds->rows * tg_model_classes(m) + 1) * sizeof *probs) : NULL;
    rc = 1;
    if (!ds) {
        fail("%s", tg_last_error());
    } else if (!probs) {
        fail("out of memory for %lld predictions", (long long)ds->rows);
    } else if (tg_predict(m, ds, probs)) {
        fail("%s: %s", o.positional[1], tg_last_error());
    } else {
        int64_t c = tg_model_classes(m);
        char buf[32];
        printf("label,probability\n");
        for (int64_t r = 0; r < ds->rows; r++) {
            int64_t best = 0;
            for (int64_t k = 1; k < c; k++)
                if (probs[r * c + k] > probs[r * c + best])
                    best = k;
            const char *label = label_of(m, best, buf, sizeof buf);
            /* Quote a label holding a comma or quote, as RFC 4180 does. */
            if (strpbrk(label, ",\"\n")) {
                putchar('"');
                for (const char *ch = label; *ch; ch++)
                    printf(*ch == '"' ? "\"\"" : "%c", *ch);
                putchar('"');
            } else {
                fputs(label, stdout);
            }
            printf(",%.6f\n", probs[r * c + best]);
        }
        rc = fflush(stdout) == 0 && !ferror(stdout) ? 0 : fail("writing the predictions failed");
    }
    free(probs);
    tg_dataset_free(ds);
    tg_model_free(m);
    return rc;
}


static int cmd_gradcheck(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 1, OPT_JSON, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_gradcheck, stdout), 0;
    return run_gradcheck(o.n_positional ? o.positional[0] : NULL, o.json);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fputs(usage_main, stderr), 2;
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return fputs(usage_main, stdout), 0;
    if (strcmp(cmd, "--version") == 0)
        return printf("tapegrad %d.%d.%d\n", TG_VERSION_MAJOR, TG_VERSION_MINOR, TG_VERSION_PATCH), 0;
    static char name[64];
    snprintf(name, sizeof name, "tapegrad %s", cmd);
    command = name;
    if (strcmp(cmd, "train") == 0)
        return cmd_train(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "predict") == 0)
        return cmd_predict(argc - 2, argv + 2);
    if (strcmp(cmd, "gradcheck") == 0)
        return cmd_gradcheck(argc - 2, argv + 2);
    command = "tapegrad";
    fail("unknown command '%s'", cmd);
    return fputs(usage_main, stderr), 2;
}
