#include "core/core.h"

#include <stdio.h>
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

const char *tg_utf8_first_invalid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const unsigned char *start = p;
        int extra;
        uint32_t cp;
        if (*p < 0x80) {
            p++;
            continue;
        } else if ((*p & 0xE0) == 0xC0) {
            extra = 1, cp = *p & 0x1F;
        } else if ((*p & 0xF0) == 0xE0) {
            extra = 2, cp = *p & 0x0F;
        } else if ((*p & 0xF8) == 0xF0) {
            extra = 3, cp = *p & 0x07;
        } else {
            return (const char *)start;
        }
        p++;
        for (int k = 0; k < extra; k++, p++) {
            if ((*p & 0xC0) != 0x80)
                return (const char *)start;
            cp = cp << 6 | (*p & 0x3F);
        }
        /* Overlong forms, values past U+10FFFF and UTF-16 surrogates are not UTF-8 either. */
        static const uint32_t smallest[4] = { 0, 0x80, 0x800, 0x10000 };
        if (cp < smallest[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return (const char *)start;
    }
    return NULL;
}

const char *tg_bytes_str(char *buf, size_t size, double bytes)
{
    static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
    int u = 0;
    while (bytes >= 1024 && u < 6) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
    return buf;
}
