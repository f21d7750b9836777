/* The tapegrad command: argument parsing and printing around the library's
 * public API; no training logic lives here. */
#define _XOPEN_SOURCE 700 /* sigaction */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
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
    "  predict MODEL DATA.csv  one predicted label and its probability per row (CSV);\n"
    "                          --proba: every class's probability\n"
    "  cv CONFIG.json --folds K  stratified K-fold cross-validation over a --grid of\n"
    "                          config values; --out refits the best and saves it\n"
    "  gradcheck [CONFIG.json] check analytic gradients against finite differences\n"
    "\n"
    "Run 'tapegrad <command> --help' for a command's options. Every command takes\n"
    "--threads N (default: TAPEGRAD_NUM_THREADS, else the number of cores).\n"
    "Exit status: 0 on success, 1 on an error, 2 on a usage error.\n";

static const char *usage_train =
    "usage: tapegrad train CONFIG.json [--out MODEL.safetensors] [--plot CURVES.svg] [--json] [--quiet]\n"
    "                      [--resume CHECKPOINT] [--checkpoint-every N]\n"
    "\n"
    "Trains the model CONFIG.json describes (see docs/config.md), printing one line per\n"
    "epoch (a live bar on a terminal), then the test accuracy, confusion matrix and\n"
    "per-class precision and recall, and saves the model.\n"
    "\n"
    "  --out PATH    where to save the model (default: the config's name with .safetensors,\n"
    "                in the current folder)\n"
    "  --plot PATH   write the learning curves as an SVG\n"
    "  --resume CKPT continue the run saved in CKPT (an interrupted run's --out) with the\n"
    "                same config; the result is bit-identical to an uninterrupted run\n"
    "  --checkpoint-every N\n"
    "                save a training checkpoint to --out every N epochs\n"
    "  --json        print the results as one JSON object on stdout (progress goes to stderr)\n"
    "  --quiet       no progress lines\n"
    "  --threads N   threads for the library and BLAS (see docs/performance.md)\n"
    "\n"
    "Ctrl-C (SIGINT) or SIGTERM stops training at the next step, saves a training\n"
    "checkpoint to --out and exits 130 (143 for SIGTERM); a second one stops at once,\n"
    "saving nothing (a save under way is finished first). --out and --plot must be\n"
    "regular files or new paths; a symbolic link is followed and its target replaced.\n";

static const char *usage_eval =
    "usage: tapegrad eval MODEL.safetensors DATA.csv|CONFIG.json [--json] [--plot FILE.svg]\n"
    "\n"
    "Scores a saved model on labelled data: accuracy, mean cross-entropy,\n"
    "confusion matrix and per-class precision and recall; then F1 per class,\n"
    "macro and weighted precision / recall / F1, balanced accuracy, log-loss,\n"
    "Brier score, ROC-AUC and average precision (scikit-learn's definitions;\n"
    "one-vs-rest macro with more than two classes). The CSV has the model's\n"
    "feature columns and a label column (the last one). Given the config the\n"
    "model was trained from, it scores that config's test set (the same rows\n"
    "'tapegrad train' reported on).\n"
    "\n"
    "  --json        print the results as one JSON object\n"
    "  --plot PATH   write the ROC curve and a reliability diagram as an SVG\n"
    "  --threads N   threads for the library and BLAS\n";

static const char *usage_predict =
    "usage: tapegrad predict MODEL.safetensors DATA.csv [--proba]\n"
    "\n"
    "Writes 'label,probability' for each row of DATA.csv to stdout, as CSV with a\n"
    "header. DATA.csv holds the model's feature columns, with or without a label\n"
    "column after them (a label column is ignored).\n"
    "\n"
    "  --proba       every class's probability instead, one column per class named\n"
    "                by its label (scikit-learn's predict_proba); a two-class model\n"
    "                prints P(positive) alone, the positive class being the label\n"
    "                that sorts second\n"
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

/* ---- printing results ---- */

/* The width of the label column: the longest label, 5 to 14 characters. */
static int label_width(const tg_model *m, int64_t classes)
{
    int width = 5;
    char buf[32];
    for (int64_t k = 0; k < classes; k++) {
        int len = (int)strlen(label_of(m, k, buf, sizeof buf));
        width = len > width ? len : width;
    }
    return width > 14 ? 14 : width;
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


static void print_report(FILE *f, const tg_model *m, const tg_eval *ev, bool colour)
{
    int64_t c = ev->classes;
    int width = label_width(m, c);
    char buf[32];
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

/* The lines eval prints after the confusion matrix and the precision / recall table. */
static void print_metrics(FILE *f, const tg_model *m, const tg_metrics *mt)
{
    int width = label_width(m, mt->classes);
    char buf[32];
    fprintf(f, "\n  %*s %9s\n", width, "class", "f1");
    for (int64_t k = 0; k < mt->classes; k++)
        fprintf(f, "  %*.*s %9.4f\n", width, width, label_of(m, k, buf, sizeof buf), mt->f1[k]);
    fprintf(f, "\n  %*s %9s %9s %9s\n", width < 8 ? 8 : width, "average", "precision", "recall", "f1");
    fprintf(f, "  %*s %9.4f %9.4f %9.4f\n", width < 8 ? 8 : width, "macro", mt->precision_macro, mt->recall_macro,
            mt->f1_macro);
    fprintf(f, "  %*s %9.4f %9.4f %9.4f\n", width < 8 ? 8 : width, "weighted", mt->precision_weighted,
            mt->recall_weighted, mt->f1_weighted);
    fprintf(f, "\nbalanced accuracy %.4f  log-loss %.4f  Brier score %.4f\n", mt->balanced_accuracy, mt->log_loss,
            mt->brier);
    if (mt->classes == 2)
        fprintf(f, "ROC-AUC %.4f  average precision %.4f  (positive class %s)\n", mt->roc_auc, mt->average_precision,
                label_of(m, mt->positive, buf, sizeof buf));
    else
        fprintf(f, "ROC-AUC %.4f  average precision %.4f  (one-vs-rest, macro)\n", mt->roc_auc,
                mt->average_precision);
}

static void add_averages(cJSON *o, const char *name, double precision, double recall, double f1)
{
    cJSON *avg = cJSON_AddObjectToObject(o, name);
    cJSON_AddNumberToObject(avg, "precision", precision);
    cJSON_AddNumberToObject(avg, "recall", recall);
    cJSON_AddNumberToObject(avg, "f1", f1);
}

/* The keys eval --json adds to eval_json's object (NaN prints as null). */
static void add_metrics_json(cJSON *o, const tg_model *m, const tg_metrics *mt)
{
    char buf[32];
    cJSON_AddNumberToObject(o, "balanced_accuracy", mt->balanced_accuracy);
    cJSON_AddNumberToObject(o, "log_loss", mt->log_loss);
    cJSON_AddNumberToObject(o, "brier", mt->brier);
    cJSON_AddNumberToObject(o, "roc_auc", mt->roc_auc);
    cJSON_AddNumberToObject(o, "average_precision", mt->average_precision);
    if (mt->classes == 2)
        cJSON_AddStringToObject(o, "positive_label", label_of(m, mt->positive, buf, sizeof buf));
    add_averages(o, "macro", mt->precision_macro, mt->recall_macro, mt->f1_macro);
    add_averages(o, "weighted", mt->precision_weighted, mt->recall_weighted, mt->f1_weighted);
    cJSON *per_class = cJSON_GetObjectItem(o, "per_class");
    for (int64_t k = 0; k < mt->classes; k++)
        cJSON_AddNumberToObject(cJSON_GetArrayItem(per_class, (int)k), "f1", mt->f1[k]);
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

/* ---- train ---- */

/* ---- signals: stop at a step boundary, save, exit 128 + the signal ---- */

/* The first SIGINT or SIGTERM asks training to stop at the next step boundary (the progress callback
 * returns it); a second one exits at once, unless a save is under way: then it exits as soon as the save
 * has renamed its file, so no partial or temporary file is ever left. Handlers touch only these flags,
 * write(2) and _exit (async-signal-safe), on whichever thread the signal lands. */
static volatile sig_atomic_t stop_signal, saving, exit_after_save;

static void say(const char *text)
{
    ssize_t ignored = write(STDERR_FILENO, text, strlen(text));
    (void)ignored;
}

static void on_signal(int sig)
{
    if (!stop_signal) {
        stop_signal = sig;
        return;
    }
    if (saving) {
        exit_after_save = sig;
        return;
    }
    say("\ntapegrad train: interrupted again: stopped at once, nothing more saved\n");
    _exit(128 + sig);
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void begin_save(void) { saving = 1; }

/* After a save: when a second signal came during it, says what was saved (note, when the save succeeded)
 * and exits. */
static void end_save(const char *note)
{
    saving = 0;
    if (exit_after_save) {
        if (note)
            say(note);
        say("tapegrad train: interrupted again: stopped after the save under way finished\n");
        _exit(128 + exit_after_save);
    }
}

static const char *signal_name(int sig) { return sig == SIGTERM ? "SIGTERM" : "SIGINT"; }

/* ---- train ---- */

/* The progress line as every command prints it, and the signal flag returned: a stop at the step boundary. */
typedef struct {
    progress_state ps;
    const char *model_path; /* --out, where --checkpoint-every saves */
} train_progress;

static int on_train_progress(const tg_progress *p, void *ctx)
{
    on_progress(p, &((train_progress *)ctx)->ps);
    return stop_signal != 0;
}

/* --checkpoint-every: a training checkpoint over --out, with a second signal held until it is in place. */
static int save_checkpoint(const tg_training *t, void *ctx)
{
    const train_progress *s = ctx;
    begin_save();
    int rc = tg_training_save(t, s->model_path);
    char note[512];
    snprintf(note, sizeof note, "tapegrad train: saved a training checkpoint to %s after epoch %d\n", s->model_path,
             t->epochs_run);
    end_save(rc == 0 ? note : NULL);
    return rc;
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

/* Everything that can be checked before a long run: the outputs must not replace an input or each other,
 * must be regular files or new paths in folders that take a new file (check_output), the checkpoint to
 * resume must be there, and there must be a test set to report on. 0, or 2 after one message. */
static int check_train_paths(const options *o, const tg_config *cfg, const char *out)
{
    const char *inputs[] = { o->positional[0], cfg->data.train, cfg->data.test, cfg->data.train_labels,
                             cfg->data.test_labels };
    const char *outputs[2][2] = { { "--out", out }, { "--plot", o->plot } };
    for (int k = 0; k < 2; k++) {
        int rc = check_output(outputs[k][0], outputs[k][1], inputs, sizeof inputs / sizeof inputs[0]);
        if (rc)
            return rc;
    }
    if (o->plot && (strcmp(out, o->plot) == 0 || same_file(out, o->plot)))
        return fail("--out and --plot name the same file"), 2;
    struct stat st;
    if (o->resume && stat(o->resume, &st) != 0)
        return fail("--resume %s: %s", o->resume, strerror(errno)), 2;
    if (!cfg->data.test && !(cfg->data.test_split > 0))
        return fail("%s: no test set (set data.test or a data.test_split above 0)", o->positional[0]), 2;
    return 0;
}

/* --checkpoint-every N: a whole number of epochs from 1. */
static int parse_checkpoint_every(const char *text, int *every)
{
    *every = 0;
    if (!text)
        return 0;
    char *end;
    long n = strtol(text, &end, 10);
    if (*end || n < 1 || n > INT_MAX)
        return fail("--checkpoint-every %s: expected a whole number of epochs from 1", text), 2;
    *every = (int)n;
    return 0;
}
/* ---- train: divergence ---- */

/* A final train loss this many times the lowest epoch's, or this many times log(classes) (the loss of a
 * uniform guess), means the run diverged though the loss stayed finite. */
#define DIVERGED_RATIO 100.0
#define DIVERGED_UNIFORM 10.0

/* The hint for a diverging run: the learning rate, and the data's scale when it is not standardized. */
static void divergence_hint(const tg_config *cfg, const tg_training *t, char *hint, size_t size)
{
    int n = snprintf(hint, size, "lower optimizer.lr (now %g) or set train.clip_grad_norm", cfg->optimizer.lr);
    if (t->input_scale >= TG_LARGE_INPUT && n > 0 && (size_t)n < size)
        snprintf(hint + n, size - (size_t)n, "; the inputs are not standardized and reach |x| = %.3g: set "
                 "data.standardize to true", t->input_scale);
}

/* The accuracy of always predicting ds's most common class (chance, for an accuracy). */
static double majority_rate(const tg_dataset *ds)
{
    if (!ds || ds->rows == 0)
        return 0;
    int64_t *counts = calloc((size_t)ds->classes, sizeof *counts), most = 0;
    if (!counts)
        return 1.0 / (double)ds->classes;
    for (int64_t r = 0; r < ds->rows; r++)
        if (++counts[ds->y[r]] > most)
            most = counts[ds->y[r]];
    free(counts);
    return (double)most / (double)ds->rows;
}

/* Warnings for a run that diverged with a finite loss, or ended no better than chance; each one line. */
static int divergence_warnings(const tg_config *cfg, const tg_training *t, const tg_eval *test, char warnings[][512])
{
    int n = 0, last = t->epochs_run - 1;
    if (last < 0)
        return 0;
    char hint[256];
    divergence_hint(cfg, t, hint, sizeof hint);
    double lowest = t->train_loss[0], uniform = log((double)t->train->classes);
    for (int e = 1; e <= last; e++)
        lowest = t->train_loss[e] < lowest ? t->train_loss[e] : lowest;
    double final = t->train_loss[last];
    if (final > DIVERGED_RATIO * lowest && last > 0)
        snprintf(warnings[n++], 512, "training diverged: the last epoch's train loss %.3g is %.0f times the lowest "
                 "(%.3g); %s", final, final / lowest, lowest, hint);
    else if (final > DIVERGED_UNIFORM * uniform)
        snprintf(warnings[n++], 512, "training diverged: the last epoch's train loss %.3g is over %g times that of "
                 "a uniform guess (log %lld = %.3g); %s", final, DIVERGED_UNIFORM, (long long)t->train->classes,
                 uniform, hint);
    double test_chance = majority_rate(t->test), val_chance = majority_rate(t->validation);
    if (test->accuracy <= test_chance)
        snprintf(warnings[n++], 512, "the test accuracy %.4f is no better than chance (always predicting the most "
                 "common class scores %.4f): the model learned nothing useful; %s", test->accuracy, test_chance, hint);
    else if (!isnan(t->val_accuracy[last]) && t->val_accuracy[last] <= val_chance)
        snprintf(warnings[n++], 512, "the last validation accuracy %.4f is no better than chance (always predicting "
                 "the most common class scores %.4f); %s", t->val_accuracy[last], val_chance, hint);
    return n;
}

/* ---- train: the outcomes ---- */

/* Stopped by a signal: a training checkpoint over --out (with a second signal held until it is in place),
 * the curves so far, and one line saying where and what was saved. Exits 128 + the signal. */
static int report_interrupted(const options *o, const tg_training *t, const char *out)
{
    int sig = stop_signal;
    char where[128];
    if (t->steps_done > 0)
        snprintf(where, sizeof where, "in epoch %d after step %lld of %lld", t->epochs_run + 1,
                 (long long)t->steps_done, (long long)t->steps_per_epoch);
    else
        snprintf(where, sizeof where, "after epoch %d", t->epochs_run);
    char line[2048];
    snprintf(line, sizeof line, "%s: interrupted by %s %s: saved a training checkpoint to %s (continue with: "
             "tapegrad train %s --resume %s --out %s)\n", command, signal_name(sig), where, out, o->positional[0], out,
             out);
    begin_save();
    int saved = tg_training_save(t, out);
    end_save(saved == 0 ? line : NULL);
    if (saved != 0)
        return fail("interrupted by %s %s; saving the training checkpoint failed, nothing was saved: %s",
                    signal_name(sig), where, tg_last_error());
    fputs(line, stderr);
    const char *why = NULL;
    if (o->plot && t->epochs_run > 0 && write_curves_svg(o->plot, t, &why))
        fail("the training checkpoint was saved to %s, but writing the plot %s failed: %s", out, o->plot, why);
    if (o->json) {
        cJSON *root = cJSON_CreateObject(), *stop = cJSON_AddObjectToObject(root, "interrupted");
        cJSON_AddStringToObject(stop, "signal", signal_name(sig));
        cJSON_AddNumberToObject(stop, "epochs_run", t->epochs_run);
        cJSON_AddNumberToObject(stop, "steps_done", (double)t->steps_done);
        cJSON_AddNumberToObject(stop, "steps_per_epoch", (double)t->steps_per_epoch);
        cJSON_AddStringToObject(root, "checkpoint", out);
        print_json(root);
    }
    return 128 + sig;
}

static void print_train_json(const options *o, const tg_training *t, const tg_eval *ev, const char *out,
                             char warnings[][512], int n_warnings)
{
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
    cJSON_AddItemToObject(root, "test", eval_json(t->model, ev));
    cJSON *list = cJSON_AddArrayToObject(root, "warnings");
    for (int k = 0; k < n_warnings; k++)
        cJSON_AddItemToArray(list, cJSON_CreateString(warnings[k]));
    cJSON_AddStringToObject(root, "model", out);
    if (o->plot) /* always present, as docs/cli.md lists it: null without --plot */
        cJSON_AddStringToObject(root, "plot", o->plot);
    else
        cJSON_AddNullToObject(root, "plot");
    print_json(root);
}

/* A finished run: test results, warnings, the model, the plot. 0, or 1 after saying what was written. */
static int report_finished(const options *o, const tg_config *cfg, const tg_training *t, const char *out)
{
    tg_eval ev = { 0 };
    if (t->test->rows == 0) {
        int64_t rows = t->train->rows + t->validation->rows;
        if (cfg->data.test)
            return fail("the test set %s has no rows", cfg->data.test);
        /* test_split > 0 was checked before training: the split rounded to no row */
        return fail("the test set is empty: data.test_split %g of %lld row%s rounds to 0 rows (use more data, a "
                    "larger data.test_split, or a test file in data.test)",
                    cfg->data.test_split, (long long)rows, rows == 1 ? "" : "s");
    }
    if (tg_evaluate(t->model, t->test, &ev))
        return fail("evaluating the test set: %s", tg_last_error());
    char warnings[4][512];
    int n_warnings = divergence_warnings(cfg, t, &ev, warnings);
    for (int k = 0; k < n_warnings; k++)
        fprintf(stderr, "%s: warning: %s\n", command, warnings[k]);
    char note[1024];
    snprintf(note, sizeof note, "%s: saved %s\n", command, out);
    begin_save();
    int saved = tg_model_save(t->model, out);
    end_save(saved == 0 ? note : NULL);
    int rc = 1;
    const char *why = NULL;
    if (saved != 0)
        fail("%s (nothing was saved%s)", tg_last_error(), o->plot ? "; the plot was not written" : "");
    else if (o->plot && write_curves_svg(o->plot, t, &why))
        fail("the model was saved to %s, but writing the plot %s failed: %s", out, o->plot, why);
    else
        rc = 0;
    if (rc == 0 && o->json) {
        print_train_json(o, t, &ev, out, warnings, n_warnings);
    } else if (rc == 0) {
        printf("\ntest accuracy %.4f (%lld of %lld)  test loss %.4f\n", ev.accuracy, (long long)ev.correct,
               (long long)ev.rows, ev.loss);
        print_report(stdout, t->model, &ev, isatty(fileno(stdout)));
        printf("\nsaved %s\n", out);
        if (o->plot)
            printf("wrote %s\n", o->plot);
    }
    tg_eval_clear(&ev);
    return rc;
}

static int cmd_train(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 1, OPT_JSON | OPT_QUIET | OPT_OUT | OPT_PLOT | OPT_RESUME, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_train, stdout), 0;
    if (o.n_positional != 1)
        return fprintf(stderr, "%s", usage_train), 2;
    int every;
    if ((rc = parse_checkpoint_every(o.checkpoint_every, &every)))
        return rc;
    tg_config *cfg = tg_config_load(o.positional[0]);
    if (!cfg)
        return fail("%s", tg_last_error());
    char *default_out = o.out ? NULL : default_model_path(o.positional[0]);
    const char *out = o.out ? o.out : default_out;
    if ((rc = check_train_paths(&o, cfg, out))) {
        tg_config_free(cfg);
        free(default_out);
        return rc;
    }
    train_progress tp = { .ps = { .quiet = o.quiet, .out = o.json ? stderr : stdout }, .model_path = out };
    progress_state *ps = &tp.ps;
    ps->live = isatty(fileno(ps->out));
    tg_train_opts opts = { .progress = on_train_progress, .ctx = &tp, .resume = o.resume, .checkpoint_every = every,
                           .checkpoint = save_checkpoint };
    catch_signals();
    tg_training *t = tg_train_config_opts(cfg, &opts);
    if (t && t->full_batch && !o.quiet)
        print_solver_summary(o.json ? stderr : stdout, cfg, t, ps->live);
    if (!t)
        rc = fail("%s", tg_last_error());
    else if (t->full_batch &&
             (t->solver.status == TG_LBFGS_LINESEARCH_FAILED || t->solver.status == TG_LBFGS_NOT_FINITE)) {
        rc = fail("%s", tg_last_error());
        if (tg_model_save(t->model, out) == 0)
            fprintf(stderr, "tapegrad: saved the last good weights to %s\n", out);
    } else if (t->stopped_by_caller && !t->finished && stop_signal) {
        if (ps->live && !ps->quiet)
            fputs("\r\033[K", ps->out), fflush(ps->out); /* the message does not land on the live bar's line */
        rc = report_interrupted(&o, t, out);
    }
    else
        rc = report_finished(&o, cfg, t, out);
    if (rc == 0 && stop_signal) /* the signal came after the last step: the run is complete, and says so */
        rc = 128 + stop_signal;
    tg_training_free(t);
    tg_config_free(cfg);
    free(default_out);
    return rc;
}

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

/* Every class's probability of every row of ds, into a new buffer (caller frees); NULL with a message printed. */
static double *predict_all(tg_model *m, const tg_dataset *ds, const char *path)
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
    char (*bufs)[32] = malloc((size_t)c * sizeof *bufs);
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

static int cmd_eval(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 2, OPT_JSON | OPT_PLOT, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_eval, stdout), 0;
    if (o.n_positional != 2)
        return fprintf(stderr, "%s", usage_eval), 2;
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
            printf("accuracy %.4f (%lld of %lld)  loss %.4f\n", ev.accuracy, (long long)ev.correct,
                   (long long)ev.rows, ev.loss);
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
static void put_csv_field(const char *text)
{
    if (!strpbrk(text, ",\"\n")) {
        fputs(text, stdout);
        return;
    }
    putchar('"');
    for (const char *ch = text; *ch; ch++)
        printf(*ch == '"' ? "\"\"" : "%c", *ch);
    putchar('"');
}

/* --proba: a header naming the columns by class, then each row's probabilities; a two-class model prints
 * P(positive) alone (scikit-learn's predict_proba(X)[:, 1]). */
static void print_probabilities(const tg_model *m, const tg_dataset *ds, const double *probs)
{
    int64_t c = tg_model_classes(m), positive = positive_class(m, c);
    char buf[32];
    for (int64_t k = 0; k < c; k++) {
        if (positive >= 0 && k != positive)
            continue;
        if (k > 0 && positive < 0)
            putchar(',');
        put_csv_field(label_of(m, k, buf, sizeof buf));
    }
    putchar('\n');
    for (int64_t r = 0; r < ds->rows; r++) {
        if (positive >= 0) {
            printf("%.9g\n", probs[r * c + positive]);
            continue;
        }
        for (int64_t k = 0; k < c; k++)
            printf(k ? ",%.9g" : "%.9g", probs[r * c + k]);
        putchar('\n');
    }
}

static void print_labels(const tg_model *m, const tg_dataset *ds, const double *probs)
{
    int64_t c = tg_model_classes(m);
    char buf[32];
    printf("label,probability\n");
    for (int64_t r = 0; r < ds->rows; r++) {
        int64_t best = 0;
        for (int64_t k = 1; k < c; k++)
            if (probs[r * c + k] > probs[r * c + best])
                best = k;
        put_csv_field(label_of(m, best, buf, sizeof buf));
        printf(",%.6f\n", probs[r * c + best]);
    }
}

static int cmd_predict(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 2, OPT_PROBA, &o);
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
    double *probs = NULL;
    rc = 1;
    if (!ds) {
        fail("%s", tg_last_error());
    } else if ((probs = predict_all(m, ds, o.positional[1]))) {
        if (o.proba)
            print_probabilities(m, ds, probs);
        else
            print_labels(m, ds, probs);
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
    fit_threads_to_limits(); /* before any thread: a memory or thread limit must not hang the command */
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
    if (strcmp(cmd, "cv") == 0)
        return cmd_cv(argc - 2, argv + 2);
    if (strcmp(cmd, "gradcheck") == 0)
        return cmd_gradcheck(argc - 2, argv + 2);
    command = "tapegrad";
    fail("unknown command '%s'", cmd);
    return fputs(usage_main, stderr), 2;
}
