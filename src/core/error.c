/* Per-thread error messages: the library reports, the caller decides. */
#include "core/core.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512];

void *tg_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return NULL;
}

const char *tg_last_error(void) { return last_error; }

void tg_clear_error(void) { last_error[0] = '\0'; }

const char *tg_shape_str(char *buf, size_t size, int ndim, const int64_t *shape)
{
    size_t used = 0;
    used += (size_t)snprintf(buf + used, size - used, "[");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}
