/* A whole text file in memory, NUL-terminated, for the loaders that parse
 * text (CSV, JSON configs). */
#include "io/io_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* What a file that is not a regular file may give before the reader stops (a device such as
 * /dev/zero never ends). */
#define NON_REGULAR_MAX ((size_t)64 << 20)

const char *tg_file_kind(unsigned mode)
{
    return S_ISCHR(mode)    ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISSOCK(mode) ? "a socket"
           : S_ISDIR(mode)  ? "a directory"
                            : "not a regular file";
}

char *tg_read_file(const char *path, const char *what, size_t max_bytes, size_t *len_out)
{
    char *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    size_t cap = 1 << 16;
    const char *kind = NULL; /* set when the file is not a regular file */
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            tg_error("%s: is a directory, expected %s", path, what);
            goto fail;
        }
        if (S_ISREG(st.st_mode) && st.st_size > 0 && (uintmax_t)st.st_size < SIZE_MAX / 2)
            cap = (size_t)st.st_size + 1; /* room for the NUL: a regular file needs no growing */
        if (!S_ISREG(st.st_mode)) {
            kind = tg_file_kind(st.st_mode);
            if (max_bytes == 0 || max_bytes > NON_REGULAR_MAX)
                max_bytes = NON_REGULAR_MAX;
        }
    }
    if (max_bytes && cap > max_bytes + 1)
        cap = max_bytes + 1;
    text = tg_alloc(cap);
    if (!text)
        goto fail;
    size_t len = 0;
    for (;;) {
        size_t want = cap - 1 - len;
        size_t got = fread(text + len, 1, want, f);
        len += got;
        if (got < want)
            break;
        /* Full: grow only if there really is more (a pipe, or a file that grew since fstat). */
        int c = fgetc(f);
        if (c == EOF)
            break;
        if ((max_bytes && len >= max_bytes) || cap > SIZE_MAX / 2) {
            if (kind)
                tg_error("%s: %s that gave more than %zu bytes, the limit; "
                         "expected %s",
                         path, kind, max_bytes, what);
            else
                tg_error("%s: larger than %zu bytes; expected %s", path, max_bytes ? max_bytes : cap, what);
            goto fail;
        }
        char *grown = tg_realloc(text, cap * 2);
        if (!grown)
            goto fail;
        text = grown;
        cap *= 2;
        text[len++] = (char)c;
    }
    if (ferror(f)) {
        tg_error("%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    text[len] = '\0';
    fclose(f);
    *len_out = len;
    return text;
fail:
    tg_dealloc(text);
    fclose(f);
    return NULL;
}
