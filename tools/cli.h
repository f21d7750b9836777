/* Shared by the tapegrad command's files: printing helpers only. */
#ifndef TAPEGRAD_CLI_H
#define TAPEGRAD_CLI_H

#include <tapegrad.h>

#include <stdbool.h>
#include <stdio.h>

/* "tapegrad" or "tapegrad <command>": the prefix of every message (tools/cli.c). */
extern const char *command;
/* Prints "<command>: error: <message>" on stderr; returns 1 (the exit code of a failed run). */
int fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

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

#endif
