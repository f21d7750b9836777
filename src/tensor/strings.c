#include "internal.h"

#include <string.h>

char *tg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = tg_alloc(n);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}

void tg_free_strings(char **strings, int64_t n)
{
    if (!strings)
        return;
    for (int64_t i = 0; i < n; i++)
        tg_dealloc(strings[i]);
    tg_dealloc(strings);
}
