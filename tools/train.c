/* tapegrad train CONFIG: trains what a config describes with progress, stops
 * cleanly on SIGINT/SIGTERM with a training checkpoint, resumes one, reports
 * test results and divergence, saves the model. */
#define _XOPEN_SOURCE 700 /* sigaction */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    "                save a training checkpoint to --out every N epochs (optimizer lbfgs:\n"
    "                every N solver iterations)\n"
    "  --json        print the results as one JSON object on stdout (progress goes to stderr)\n"
    "  --quiet       no progress lines\n"
    "  --threads N   threads for the library and BLAS (see docs/performance.md)\n"
    "\n"
    "Ctrl-C (SIGINT) or SIGTERM stops training at the next step (lbfgs: iteration), saves a training\n"
    "checkpoint to --out and exits 130 (143 for SIGTERM); a second one stops at once,\n"
    "saving nothing (a save under way is finished first). --out and --plot must be\n"
    "regular files or new paths; a symbolic link is followed and its target replaced.\n";

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
        /* Under mpirun the signal comes from mpirun, which then stops reading the ranks' output: a rank
         * whose terminal (mpirun's pty) is full would block in a write and never reach the save. Its output
         * no longer blocks (what does not fit is lost; the checkpoint is what matters). fcntl is
         * async-signal-safe. */
        if (tg_dist_size() > 1) {
            fcntl(STDOUT_FILENO, F_SETFL, fcntl(STDOUT_FILENO, F_GETFL) | O_NONBLOCK);
            fcntl(STDERR_FILENO, F_SETFL, fcntl(STDERR_FILENO, F_GETFL) | O_NONBLOCK);
        }
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
    snprintf(note, sizeof note, "tapegrad train: saved a training checkpoint to %s after %s %d\n", s->model_path,
             t->full_batch ? "iteration" : "epoch", t->epochs_run);
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
                "%s: warning: lbfgs failed to converge: stopped at optimizer.max_iter (%d) with gradient norm "
                "%.3g > optimizer.tolerance_grad (%g); increase optimizer.max_iter\n",
                command, r->iterations, r->grad_norm, cfg->lbfgs.opts.tolerance_grad);
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
        snprintf(hint + n, size - (size_t)n,
                 "; the inputs are not standardized and reach |x| = %.3g: set "
                 "data.standardize to %s",
                 t->input_scale,
                 !t->train->row_ptr && !(cfg->data.format && strcmp(cfg->data.format, "libsvm") == 0)
                     ? "true"
                     : "\"scale\" (sparse data are not centred)");
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
        snprintf(warnings[n++], 512,
                 "training diverged: the last epoch's train loss %.3g is %.0f times the lowest "
                 "(%.3g); %s",
                 final, final / lowest, lowest, hint);
    else if (final > DIVERGED_UNIFORM * uniform)
        snprintf(warnings[n++], 512,
                 "training diverged: the last epoch's train loss %.3g is over %g times that of "
                 "a uniform guess (log %lld = %.3g); %s",
                 final, DIVERGED_UNIFORM, (long long)t->train->classes, uniform, hint);
    double test_chance = majority_rate(t->test), val_chance = majority_rate(t->validation);
    if (test->accuracy <= test_chance)
        snprintf(warnings[n++], 512,
                 "the test accuracy %.4f is no better than chance (always predicting the most "
                 "common class scores %.4f): the model learned nothing useful; %s",
                 test->accuracy, test_chance, hint);
    else if (!isnan(t->val_accuracy[last]) && t->val_accuracy[last] <= val_chance)
        snprintf(warnings[n++], 512,
                 "the last validation accuracy %.4f is no better than chance (always predicting "
                 "the most common class scores %.4f); %s",
                 t->val_accuracy[last], val_chance, hint);
    return n;
}

/* ---- train: the outcomes ---- */

/* Stopped by a signal: a training checkpoint over --out (with a second signal held until it is in place),
 * the curves so far, and one line saying where and what was saved. Exits 128 + the signal. */
static int report_interrupted(const options *o, const tg_training *t, const char *out)
{
    int sig = stop_signal;
    char where[128];
    if (t->full_batch)
        snprintf(where, sizeof where, "after lbfgs iteration %d", t->epochs_run);
    else if (t->steps_done > 0)
        snprintf(where, sizeof where, "in epoch %d after step %lld of %lld", t->epochs_run + 1,
                 (long long)t->steps_done, (long long)t->steps_per_epoch);
    else
        snprintf(where, sizeof where, "after epoch %d", t->epochs_run);
    char line[2048];
    char launcher[48] = ""; /* across ranks the run resumes across as many */
    if (tg_dist_size() > 1)
        snprintf(launcher, sizeof launcher, "mpirun -np %d ", tg_dist_size());
    snprintf(line, sizeof line,
             "%s: interrupted by %s %s: saved a training checkpoint to %s (continue with: "
             "%stapegrad train %s --resume %s --out %s)\n",
             command, signal_name(sig), where, out, launcher, o->positional[0], out, out);
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
        cJSON_AddBoolToObject(solver, "converged",
                              t->solver.status == TG_LBFGS_CONVERGED_GRAD ||
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
        int64_t rows = tg_training_rows(t) + t->validation->rows;
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
        print_report(stdout, t->model, &ev, isatty(fileno(stdout)) && tg_dist_size() == 1);
        printf("\nsaved %s\n", out);
        if (o->plot)
            printf("wrote %s\n", o->plot);
    }
    tg_eval_clear(&ev);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 1, OPT_JSON | OPT_QUIET | OPT_OUT | OPT_PLOT | OPT_RESUME, &o);
    if (rc)
        return rc;
    if (o.help)
        return (tg_dist_rank() == 0 ? fputs(usage_train, stdout) : 0), 0; /* once, under mpirun */
    if (o.n_positional != 1)
        return fail("expected one CONFIG.json"), fprintf(stderr, "%s", usage_train), 2;
    int every;
    if ((rc = parse_checkpoint_every(o.checkpoint_every, &every)))
        return rc;
    tg_config *cfg = tg_config_load(o.positional[0]);
    if (!cfg)
        return fail("%s", tg_last_error());
    char *default_out = o.out ? NULL : default_model_path(o.positional[0]);
    const char *out = o.out ? o.out : default_out;
    bool lead = tg_dist_rank() == 0; /* under mpirun, rank 0 alone prints, evaluates and saves */
    if (lead && (rc = check_train_paths(&o, cfg, out))) {
        tg_config_free(cfg);
        free(default_out);
        return rc;
    }
    train_progress tp = { .ps = { .quiet = o.quiet || !lead, .out = o.json ? stderr : stdout }, .model_path = out };
    progress_state *ps = &tp.ps;
    /* mpirun gives each rank a pty whether or not the user's output is a terminal: plain lines there */
    ps->live = isatty(fileno(ps->out)) && tg_dist_size() == 1;
    tg_train_opts opts = { .progress = on_train_progress,
                           .ctx = &tp,
                           .resume = o.resume,
                           .checkpoint_every = every,
                           .checkpoint = lead ? save_checkpoint : NULL };
    catch_signals(); /* across ranks: mpirun passes Ctrl-C on as SIGTERM, and the ranks agree on the step */
    tg_training *t = tg_train_config_opts(cfg, &opts);
    if (!lead) {
        rc = !t ? fail("%s", tg_last_error()) : stop_signal ? 128 + stop_signal : 0;
        tg_training_free(t);
        tg_config_free(cfg);
        free(default_out);
        return rc;
    }
    if (t && t->full_batch && !o.quiet && t->finished)
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
    } else
        rc = report_finished(&o, cfg, t, out);
    if (rc == 0 && stop_signal) /* the signal came after the last step: the run is complete, and says so */
        rc = 128 + stop_signal;
    tg_training_free(t);
    tg_config_free(cfg);
    free(default_out);
    return rc;
}
