/* A whole text file in memory, NUL-terminated, for the loaders that parse
 * text (CSV, JSON configs). */
#define _POSIX_C_SOURCE 200809L /* fseeko, fileno */

#include "dist/dist.h"
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

/* The offset of the first line starting at or after byte cut of f (size bytes) into *at, and the newlines
 * before it into *lines (every byte before it read once, through buf), or, lines NULL, only the offset (the
 * scan starts at byte cut - 1). */
static int line_start_at(FILE *f, const char *path, int64_t cut, int64_t size, char *buf, size_t cap, int64_t *at,
                         int64_t *lines)
{
    *at = cut >= size ? size : cut;
    if (lines)
        *lines = 0;
    if (cut == 0 || cut >= size)
        return 0;
    int64_t done = lines ? 0 : cut - 1;
    if (fseeko(f, (off_t)done, SEEK_SET) != 0)
        return tg_error("%s: cannot seek to byte %lld: %s", path, (long long)done, strerror(errno)), -1;
    bool seen = false; /* the newline at or after byte cut - 1 */
    while (!seen && done < size) {
        size_t got = fread(buf, 1, cap, f);
        if (got == 0)
            break;
        for (size_t i = 0; i < got && !seen; i++)
            if (buf[i] == '\n') {
                if (lines)
                    ++*lines;
                if (done + (int64_t)i >= cut - 1) {
                    seen = true;
                    *at = done + (int64_t)i + 1;
                }
            }
        done += (int64_t)got;
    }
    if (ferror(f))
        return tg_error("%s: read error: %s", path, strerror(errno)), -1;
    if (!seen)
        *at = size;
    return 0;
}

char *tg_read_file_part(const char *path, const char *what, int part, int parts, size_t *len_out, int64_t *lines_before)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    char *text = NULL, *buf = NULL;
    size_t cap = (size_t)1 << 20;
    if (fstat(fileno(f), &st) != 0) {
        tg_error("%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        tg_error("%s: %s, expected %s (a part of a file is read by its byte offsets)", path,
                 S_ISDIR(st.st_mode) ? "is a directory" : tg_file_kind(st.st_mode), what);
        goto fail;
    }
    int64_t size = (int64_t)st.st_size, first, last, lines_first;
    int64_t cut = size / parts * part + size % parts * part / parts,
            end = size / parts * (part + 1) + size % parts * (part + 1) / parts;
    /* the lines before the part's first line: those before byte cut - 1, and the one the scan for the part's
     * first line start ends (none when no line starts in the part) */
    if (!(buf = tg_alloc(cap)) || tg_lines_before_byte(f, path, cut, end, part, parts, &lines_first) ||
        line_start_at(f, path, cut, size, buf, cap, &first, NULL) ||
        line_start_at(f, path, end, size, buf, cap, &last, NULL))
        goto fail;
    lines_first += cut > 0;
    size_t len = (size_t)(last > first ? last - first : 0);
    if (!(text = tg_alloc(len + 1)))
        goto fail;
    if (len && (fseeko(f, (off_t)first, SEEK_SET) != 0 || fread(text, 1, len, f) != len)) {
        tg_error("%s: cannot read bytes %lld to %lld: %s", path, (long long)first, (long long)last,
                 ferror(f) ? strerror(errno) : "the file is shorter than it was");
        goto fail;
    }
    text[len] = '\0';
    tg_dealloc(buf);
    fclose(f);
    *len_out = len;
    *lines_before = lines_first;
    return text;
fail:
    tg_dealloc(buf);
    tg_dealloc(text);
    fclose(f);
    return NULL;
}

/* Newlines in bytes [from, to) of f, read through a buffer of its own. */
static int count_newlines(FILE *f, const char *path, int64_t from, int64_t to, int64_t *count)
{
    *count = 0;
    if (to <= from)
        return 0;
    size_t cap = (size_t)1 << 20;
    char *buf = tg_alloc(cap);
    if (!buf)
        return -1;
    int status = 0;
    if (fseeko(f, (off_t)from, SEEK_SET) != 0)
        status = (tg_error("%s: cannot seek to byte %lld: %s", path, (long long)from, strerror(errno)), -1);
    for (int64_t done = from; !status && done < to;) {
        size_t want = (uint64_t)(to - done) < cap ? (size_t)(to - done) : cap;
        size_t got = fread(buf, 1, want, f);
        for (const char *p = buf, *end = buf + got; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
            ++*count;
        done += (int64_t)got;
        if (got < want) {
            if (ferror(f))
                status = (tg_error("%s: read error: %s", path, strerror(errno)), -1);
            break;
        }
    }
    tg_dealloc(buf);
    return status;
}

int tg_lines_before_byte(FILE *f, const char *path, int64_t cut, int64_t end, int part, int parts, int64_t *lines)
{
    *lines = 0;
    if (!(tg_dist_parallel() && parts == tg_dist_size() && part == tg_dist_rank()))
        return cut > 1 ? count_newlines(f, path, 0, cut - 1, lines) : 0;
    /* across ranks: each counts its own bytes, and the counts of the ranks before it add up to those
     * before its cut (every rank joins, whatever its part holds) */
    int64_t mine = 0, *counts = NULL;
    size_t *sizes = tg_alloc((size_t)parts * sizeof *sizes);
    void *all = NULL;
    int status = !sizes || count_newlines(f, path, cut, end, &mine) ? -1 : 0;
    if (!status && tg_dist_gather_all(&mine, sizeof mine, &all, sizes))
        status = -1;
    counts = all;
    for (int r = 0; !status && r < part; r++)
        *lines += counts[r];
    if (!status && cut >= 1) { /* the newline at byte cut - 1, if it is one, is not before it */
        int c = fseeko(f, (off_t)(cut - 1), SEEK_SET) == 0 ? fgetc(f) : EOF;
        if (c == EOF)
            status = (tg_error("%s: cannot read byte %lld", path, (long long)cut - 1), -1);
        *lines -= c == '\n';
    }
    tg_dealloc(all);
    tg_dealloc(sizes);
    return status;
}
