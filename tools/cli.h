/* Shared by the tapegrad command's files: printing helpers only. */
#ifndef TAPEGRAD_CLI_H
#define TAPEGRAD_CLI_H

#include <tapegrad.h>

#include <stdio.h>

/* Writes the learning curves of a training run as a standalone SVG (temp file,
 * then rename). 0 on success; on failure *why says what went wrong. */
int write_curves_svg(const char *path, const tg_training *t, const char **why);

#endif
