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

/* Caps the library's and OpenBLAS's threads at what the process's limits allow (address space,
 * thread creation): one thread when in doubt. Call first in main (tools/limits.c). */
void fit_threads_to_limits(void);
/* The most threads OpenBLAS may start when the first product loads it (tools/blas_lazy.c). */
void blas_lazy_configure(int max_threads);

#endif
