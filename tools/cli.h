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

#endif
