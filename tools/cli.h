/* Shared by the tapegrad command's files: printing helpers only. */
#ifndef TAPEGRAD_CLI_H
#define TAPEGRAD_CLI_H

#include <tapegrad.h>

#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stdio.h>

/* "tapegrad" or "tapegrad <command>": the prefix of every message (tools/cli.c). */
extern const char *command;
/* The command as a user types it: command without its "(rank R of N)" under mpirun. */
const char *command_name(void);
/* Prints "<command>: error: <message>" on stderr; returns 1 (the exit code of a failed run). */
int fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#define CLI_MAX_GRID 8 /* --grid options of one cv run */

typedef struct {
    const char *positional[2];
    int n_positional;
    const char *out, *plot, *threads;
    bool json, quiet, help, proba;
    const char *folds, *metric; /* cv */
    const char *resume, *checkpoint_every; /* train */
    const char *grid[CLI_MAX_GRID]; /* cv: each --grid KEY=V1,V2,... */
    int n_grid;
} options;

/* The options a command takes besides --help and --threads. */
enum {
    OPT_JSON = 1,
    OPT_QUIET = 2,
    OPT_OUT = 4,
    OPT_PLOT = 8,
    OPT_PROBA = 16,
    OPT_CV = 32 /* --folds, --grid, --metric */,
    OPT_RESUME = 64 /* --resume, --checkpoint-every */
};

/* Parses a command's options (at most max_positional positional arguments); sets the thread budget from
 * --threads. 0, or 2 after printing a usage error. */
int parse_options(int argc, char **argv, int max_positional, int allowed, options *o);

/* Class k's label, or its number written into buf. */
const char *label_of(const tg_model *m, int64_t k, char *buf, size_t size);
/* With two classes, the positive one: class 1 of a one-output model (its loss.positive_class), else the
 * label that sorts second, as scikit-learn's classes_ (numbers by value, other labels by their bytes). -1
 * with more classes. */
int64_t positive_class(const tg_model *m, int64_t classes);
/* Prints o as indented JSON on stdout and frees it. */
void print_json(cJSON *o);

/* Training progress as train prints it: a live bar on a terminal, one line per epoch. */
typedef struct {
    bool live; /* redraw a bar in place (stderr or stdout is a terminal) */
    bool quiet;
    FILE *out;
    double last_draw;
} progress_state;
double wall_seconds(void);
int on_progress(const tg_progress *p, void *ctx);

/* Whether two paths name one existing file (hard links and symlinks included). */
bool same_file(const char *a, const char *b);
/* Whether a new file can be made in path's folder (and path is not a folder); *why says why not. */
bool folder_takes_new_file(const char *path, const char **why);
/* Before a run: option's path (NULL: not given) must not be one of the inputs (NULL entries skipped), must
 * be a regular file or a new path (tg_check_save_path: symbolic links followed) and its folder must take a
 * new file. 0, or 2 after the message. */
int check_output(const char *option, const char *path, const char *const *inputs, size_t n_inputs);

/* tapegrad cv (tools/cv.c). */
int cmd_cv(int argc, char **argv);

/* The other commands, one file each: argc/argv after the command's name; the exit code. */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_gradcheck(int argc, char **argv);

/* ---- results (tools/report.c), shared by train and eval ---- */

/* The per-class precision / recall table and the confusion matrix (shaded when colour). */
void print_report(FILE *f, const tg_model *m, const tg_eval *ev, bool colour);
/* F1, the averages, balanced accuracy, log-loss, Brier, ROC-AUC and AP lines. */
void print_metrics(FILE *f, const tg_model *m, const tg_metrics *mt);
/* The evaluation as a JSON object (rows, accuracy, loss, per-class, confusion). */
cJSON *eval_json(const tg_model *m, const tg_eval *ev);
/* The metrics' keys added to eval_json's object (NaN prints as null). */
void add_metrics_json(cJSON *o, const tg_model *m, const tg_metrics *mt);

/* ---- data for a saved model (tools/eval.c), shared by eval and predict ---- */

bool ends_with(const char *s, const char *suffix);
/* A CSV file, or a config whose test split (rebuilt with the config's seed) is wanted. */
tg_dataset *load_eval_data(const tg_model *m, const char *path);
/* Every row's class probabilities [rows, classes]; NULL with the message printed. Caller frees. */
double *predict_all(tg_model *m, const tg_dataset *ds, const char *path);

/* tapegrad gradcheck: every op's analytic gradient against central differences,
 * or a config's model parameter by parameter (tools/gradcheck.c). */
int run_gradcheck(const char *config_path, bool json);

/* Writes the learning curves of a training run as a standalone SVG (temp file,
 * then rename). 0 on success; on failure *why says what went wrong. */
int write_curves_svg(const char *path, const tg_training *t, const char **why);

/* What an evaluation's plot shows: true classes y [rows] and probabilities
 * probs [rows, classes]; names [classes] label the curves. */
typedef struct {
    int64_t rows, classes, positive; /* positive: the class drawn when there are two */
    const int64_t *y;
    const double *probs;
    const char *const *names;
} eval_plot;
/* The ROC curve (one-vs-rest, one per class, with more than two classes) and
 * the reliability diagram (10 uniform bins) as a standalone SVG, written like
 * write_curves_svg. */
int write_eval_svg(const char *path, const eval_plot *e, const char **why);

/* Caps the library's and OpenBLAS's threads at what the process's limits allow (address space,
 * thread creation): one thread when in doubt. Call first in main (tools/limits.c). */
void fit_threads_to_limits(void);
/* The most threads OpenBLAS may start when the first product loads it (tools/blas_lazy.c). */
void blas_lazy_configure(int max_threads);

#endif
