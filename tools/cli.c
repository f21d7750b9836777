/* What every command of the tapegrad tool shares: its name in messages and one way to fail. */
#include "cli.h"

#include <stdarg.h>

const char *command = "tapegrad";

int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", command);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}
