/* CSV loading. The file is streamed in 1 MiB chunks, twice: a first pass
 * counts the rows so that x is allocated once, exactly, and the second parses
 * each line in place in the chunk buffer (which grows only for a line longer
 * than itself). Memory is the matrix, the labels and one chunk, never the
 * whole text. A cell must match the C grammar of a decimal number before
 * strtod sees it, so the result never depends on the process's locale. */
#define _POSIX_C_SOURCE 200809L /* fstat, fileno */

#include "io/io_internal.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Integer labels are class ids, and every id below the largest gets a name:
 * a label of 10^9 would ask for 10^9 names, so ids stop here. */
#define MAX_CLASS_ID TG_MAX_CLASS_ID
/* Characters of a cell or a name quoted in an error message. */
#define PREVIEW 40
#define PREVIEW_ARGS(s) (strlen(s) > PREVIEW ? PREVIEW : (int)strlen(s)), (s), (strlen(s) > PREVIEW ? "..." : "")

/* ---- reading the file ---- */

#define CHUNK ((size_t)1 << 20)

typedef tg_line_reader line_reader; /* io_internal.h: shared with the libsvm stream */

static void reader_close(line_reader *r)
{
    if (r->f)
        fclose(r->f);
    tg_dealloc(r->buf);
    *r = (line_reader){ 0 };
}

/* Skips a UTF-8 byte order mark at the start of the file. */
static int reader_start(line_reader *r)
{
    r->start = r->end = 0;
    r->eof = false;
    r->line = 0;
    r->base = 0;
    if (fseek(r->f, 0, SEEK_SET) != 0)
        return tg_error("%s: cannot read it from the start: %s", r->path, strerror(errno)), -1;
    unsigned char bom[3];
    size_t got = fread(bom, 1, 3, r->f);
    if (got == 3 && memcmp(bom, "\xEF\xBB\xBF", 3) == 0)
        return r->base = 3, 0;
    memcpy(r->buf, bom, got);
    r->end = got;
    return 0;
}

/* Opens a data file for reading (`what`: "a CSV file"): a regular file (a device, FIFO or socket could
 * stream forever). */
static int reader_open_as(line_reader *r, const char *path, const char *what)
{
    *r = (line_reader){ .path = path };
    struct stat st;
    if (!(r->f = fopen(path, "rb")))
        return tg_error("%s: cannot open: %s", path, strerror(errno)), -1;
    if (fstat(fileno(r->f), &st) != 0)
        return tg_error("%s: cannot stat: %s", path, strerror(errno)), -1;
    if (S_ISDIR(st.st_mode))
        return tg_error("%s: is a directory, expected %s", path, what), -1;
    if (!S_ISREG(st.st_mode))
        return tg_error("%s: not a regular file (%s), expected %s", path, tg_file_kind(st.st_mode), what), -1;
    /* A chunk, or the whole file when it is smaller; + 1 for the NUL after a last line without a newline. */
    r->cap = (uintmax_t)st.st_size < CHUNK ? (size_t)st.st_size + 64 : CHUNK + 1; /* 64: room for the mark */
    if (!(r->buf = tg_alloc(r->cap)))
        return tg_error("%s: out of memory: allocating the %zu-byte read buffer failed", path, r->cap), -1;
    return reader_start(r);
}

static int reader_open(line_reader *r, const char *path) { return reader_open_as(r, path, "a CSV file"); }

/* Reads more bytes after the unread ones (moved to the front, the buffer doubled when they fill it). */
static int reader_fill(line_reader *r)
{
    size_t unread = r->end - r->start;
    memmove(r->buf, r->buf + r->start, unread);
    r->base += (int64_t)r->start;
    r->start = 0;
    r->end = unread;
    if (r->end == r->cap - 1) {
        char *grown = r->cap <= SIZE_MAX / 2 ? tg_realloc(r->buf, r->cap * 2) : NULL;
        if (!grown)
            return tg_error("%s:%lld: out of memory: line %lld is longer than %zu bytes", r->path,
                            (long long)r->line + 1, (long long)r->line + 1, r->cap - 1),
                   -1;
        r->buf = grown;
        r->cap *= 2;
    }
    size_t got = fread(r->buf + r->end, 1, r->cap - 1 - r->end, r->f);
    const char *nul = memchr(r->buf + r->end, '\0', got);
    if (nul) {
        int64_t line = r->line + 1;
        for (const char *p = r->buf; p < nul; p++)
            line += *p == '\n';
        return tg_error("%s:%lld: line %lld has a NUL byte; expected a text file", r->path, (long long)line,
                        (long long)line),
               -1;
    }
    r->end += got;
    if (got == 0) {
        if (ferror(r->f))
            return tg_error("%s: read error: %s", r->path, strerror(errno)), -1;
        r->eof = true;
    }
    return 0;
}

/* 1 with the next line in *line (NUL-terminated in place, without its "\n" or "\r\n", valid until
 * the next call), 0 at the end of the file, -1 on error. */
static int reader_next(line_reader *r, char **line, size_t *len)
{
    for (;;) {
        char *begin = r->buf + r->start, *newline = memchr(begin, '\n', r->end - r->start);
        if (newline || (r->eof && r->start < r->end)) {
            char *e = newline ? newline : r->buf + r->end;
            r->start = (size_t)(e - r->buf) + (newline ? 1 : 0);
            if (e > begin && e[-1] == '\r')
                e--;
            *e = '\0';
            *line = begin;
            *len = (size_t)(e - begin);
            r->line++;
            return 1;
        }
        if (r->eof)
            return 0;
        if (reader_fill(r))
            return -1;
    }
}

/* Positions the reader at a line start found by an earlier pass: offset bytes in, after lines_before lines. */
static int reader_seek(line_reader *r, int64_t offset, int64_t lines_before)
{
    if (fseeko(r->f, (off_t)offset, SEEK_SET) != 0)
        return tg_error("%s: cannot seek to byte %lld: %s", r->path, (long long)offset, strerror(errno)), -1;
    r->start = r->end = 0;
    r->eof = false;
    r->line = lines_before;
    r->base = offset;
    return 0;
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* ---- splitting a line ---- */

typedef enum { SPLIT_OK, SPLIT_NO_MEMORY, SPLIT_UNTERMINATED, SPLIT_TEXT_AFTER_QUOTE } split_result;

/* Splits a NUL-terminated line in place into cells: surrounding spaces are
 * trimmed, a cell may be double-quoted ("" is a quote inside; the delimiter
 * may appear inside quotes). *n is the cell count, or on a quote error the
 * 0-based index of the bad cell. */
static split_result split_line(char *line, char delim, char ***fields, size_t *cap, int64_t *n)
{
    char *p = line;
    int64_t count = 0;
    for (;;) {
        while (*p == ' ' || (*p == '\t' && delim != '\t'))
            p++;
        char *start = p, *out;
        if (*p == '"') {
            out = start;
            for (p++;; p++) {
                if (*p == '\0')
                    return *n = count, SPLIT_UNTERMINATED;
                if (*p == '"') {
                    if (p[1] != '"')
                        break;
                    p++;
                }
                *out++ = *p;
            }
            p++;
            while (*p == ' ' || (*p == '\t' && delim != '\t'))
                p++;
            if (*p != delim && *p != '\0')
                return *n = count, SPLIT_TEXT_AFTER_QUOTE;
        } else {
            while (*p != delim && *p != '\0')
                p++;
            out = p;
            while (out > start && (out[-1] == ' ' || (out[-1] == '\t' && delim != '\t')))
                out--;
        }
        char next = *p;
        *out = '\0';
        if ((size_t)count == *cap) {
            size_t new_cap = *cap ? *cap * 2 : 16;
            if (new_cap > SIZE_MAX / sizeof(char *))
                return tg_error("a line has too many fields"), SPLIT_NO_MEMORY;
            char **grown = tg_realloc(*fields, new_cap * sizeof(char *));
            if (!grown)
                return SPLIT_NO_MEMORY;
            *fields = grown;
            *cap = new_cap;
        }
        (*fields)[count++] = start;
        if (next == '\0')
            break;
        p++;
    }
    *n = count;
    return SPLIT_OK;
}

/* ---- numbers ---- */

typedef enum { CELL_NUMBER, CELL_NOT_NUMBER, CELL_NAN, CELL_INF, CELL_OUT_OF_RANGE, CELL_NO_MEMORY } cell_kind;

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool same_letters(const char *s, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0' || (s[i] | 0x20) != lower[i])
            return false;
    return true;
}

/* Parses a decimal number in the C locale's grammar, [+-]digits[.digits][e[+-]digits]
 * (no hex, no grouping), into a value that fits a float. The spellings of NaN
 * and infinity are recognised only to say so. */
static cell_kind parse_number(const char *s, double *value)
{
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    if (same_letters(p, "nan", 3)) {
        p += 3;
        if (*p == '(') /* nan(n-char-sequence) */
            while (*p && *p != ')')
                p++;
        return (*p == '\0' || (p[0] == ')' && p[1] == '\0')) ? CELL_NAN : CELL_NOT_NUMBER;
    }
    if ((same_letters(p, "inf", 3) && p[3] == '\0') || (same_letters(p, "infinity", 8) && p[8] == '\0'))
        return CELL_INF;
    size_t digits = 0;
    for (; is_digit(*p); p++)
        digits++;
    bool whole_number = *p != '.' && *p != 'e' && *p != 'E';
    if (*p == '.')
        for (p++; is_digit(*p); p++)
            digits++;
    if (!digits)
        return CELL_NOT_NUMBER;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!is_digit(*p))
            return CELL_NOT_NUMBER;
        while (is_digit(*p))
            p++;
    }
    if (*p != '\0')
        return CELL_NOT_NUMBER;
    if (whole_number && digits <= 15) { /* a whole number below 10^15: exact in a double, as strtod gives it */
        double v = 0;
        for (const char *d = s + (*s == '+' || *s == '-'); d < p; d++)
            v = v * 10 + (*d - '0');
        *value = *s == '-' ? -v : v;
        return CELL_NUMBER;
    }

    /* strtod reads the locale's decimal point: hand it one it knows. */
    size_t len = (size_t)(p - s);
    const char *point = localeconv()->decimal_point;
    char *copy = NULL;
    const char *text = s;
    if (strcmp(point, ".") != 0) {
        const char *dot = strchr(s, '.');
        if (dot) {
            size_t point_len = strlen(point);
            copy = tg_alloc(len + point_len + 1);
            if (!copy)
                return CELL_NO_MEMORY;
            size_t head = (size_t)(dot - s);
            memcpy(copy, s, head);
            memcpy(copy + head, point, point_len);
            memcpy(copy + head + point_len, dot + 1, len - head); /* the rest and the NUL */
            text = copy;
            len += point_len - 1;
        }
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    bool whole = end == text + len;
    bool overflow = errno == ERANGE && fabs(v) > 1.0;
    tg_dealloc(copy);
    if (!whole) /* only when the locale rejects what the C locale accepts */
        return CELL_NOT_NUMBER;
    /* FLT_MAX plus half an ulp rounds to infinity; anything below it rounds to at most FLT_MAX
     * (numpy prints FLT_MAX as 3.4028235e+38, which is a little above it). */
    if (overflow || fabs(v) >= 0x1.ffffffp+127)
        return CELL_OUT_OF_RANGE;
    *value = fabs(v) > FLT_MAX ? copysign(FLT_MAX, v) : v;
    return CELL_NUMBER;
}

/* Whether s is a class id: decimal digits only. Large values saturate. */
static bool is_class_id(const char *s, int64_t *value)
{
    int64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!is_digit(*s))
            return false;
        v = v > (INT64_MAX - 9) / 10 ? INT64_MAX : v * 10 + (*s - '0');
    }
    *value = v;
    return true;
}

/* ---- labels: distinct texts in order of first appearance ---- */

typedef tg_label_table label_table; /* internal.h: the libsvm loader shares it */

static size_t hash_text(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (size_t)h;
}

static int64_t table_find(const label_table *t, const char *s)
{
    if (!t->n_slots)
        return -1;
    size_t mask = t->n_slots - 1;
    for (size_t i = hash_text(s) & mask;; i = (i + 1) & mask) {
        if (!t->slots[i])
            return -1;
        if (strcmp(t->names[t->slots[i] - 1], s) == 0)
            return t->slots[i] - 1;
    }
}

static void table_place(label_table *t, int64_t id)
{
    size_t mask = t->n_slots - 1, i = hash_text(t->names[id]) & mask;
    while (t->slots[i])
        i = (i + 1) & mask;
    t->slots[i] = id + 1;
}

/* Adds s (not yet in the table); its id, or -1 on allocation failure. */
static int64_t table_add(label_table *t, const char *s, int64_t line)
{
    if ((size_t)t->n >= t->n_slots / 2) {
        size_t n_slots = t->n_slots ? t->n_slots * 2 : 16;
        if (n_slots > SIZE_MAX / sizeof(int64_t))
            return tg_error("labels: too many distinct labels"), -1;
        int64_t *slots = tg_alloc_zeroed(n_slots * sizeof(int64_t));
        if (!slots)
            return -1;
        tg_dealloc(t->slots);
        t->slots = slots;
        t->n_slots = n_slots;
        for (int64_t id = 0; id < t->n; id++)
            table_place(t, id);
    }
    if (t->n == t->cap) {
        int64_t cap = t->cap ? t->cap * 2 : 16;
        if ((uint64_t)cap > SIZE_MAX / sizeof(char *))
            return tg_error("labels: too many distinct labels"), -1;
        char **names = tg_realloc(t->names, (size_t)cap * sizeof(char *));
        if (!names)
            return -1;
        t->names = names;
        int64_t *first_line = tg_realloc(t->first_line, (size_t)cap * sizeof(int64_t));
        if (!first_line)
            return -1;
        t->first_line = first_line;
        t->cap = cap;
    }
    char *copy = tg_strdup(s);
    if (!copy)
        return -1;
    t->names[t->n] = copy;
    t->first_line[t->n] = line;
    table_place(t, t->n);
    return t->n++;
}

static void table_free(label_table *t)
{
    tg_free_strings(t->names, t->n);
    tg_dealloc(t->first_line);
    tg_dealloc(t->slots);
    *t = (label_table){ 0 };
}

/* "a, b, c" into buf, cut with "..." when it does not fit. */
static const char *list_names(char *buf, size_t size, char *const *names, int64_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int64_t i = 0; i < n; i++) {
        size_t need = strlen(names[i]) + (i ? 2 : 0);
        if (used + need + 4 >= size) {
            snprintf(buf + used, size - used, "%s...", i ? ", " : "");
            break;
        }
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", names[i]);
    }
    return buf;
}

/* ---- the loader ---- */

typedef struct {
    const char *path;
    char delim;
    line_reader reader;
    char **fields; /* the current line's cells (pointers into the reader's buffer) */
    size_t fields_cap;
    char **header; /* [n_fields] the header's cells, or NULL */
    char *header_text; /* the header's cells, one after another */
    int64_t n_fields;
    int64_t label_col;
    int64_t *cols; /* [features] */
    int64_t features;
    bool given_names;
    label_table labels;
    float *x;
    int64_t *y; /* while loading: ids into labels */
    int64_t rows;
} csv_load;

static void load_free(csv_load *s)
{
    reader_close(&s->reader);
    tg_dealloc(s->fields);
    tg_dealloc(s->header);
    tg_dealloc(s->header_text);
    tg_dealloc(s->cols);
    table_free(&s->labels);
    tg_dealloc(s->x);
    tg_dealloc(s->y);
}

/* "column 2 ('sepal_width')", or "column 2" without a header. */
static const char *column_desc(char *buf, size_t size, const csv_load *s, int64_t col)
{
    if (s->header)
        snprintf(buf, size, "column %lld ('%.*s%s')", (long long)col + 1, PREVIEW_ARGS(s->header[col]));
    else
        snprintf(buf, size, "column %lld", (long long)col + 1);
    return buf;
}

static int check_opts(const char *path, const tg_csv_opts *o)
{
    if (o->header < -1 || o->header > 1)
        return tg_error("%s: header is %d, expected 1, 0 or -1 (detect)", path, o->header), -1;
    if (o->delimiter == '"' || o->delimiter == '\n' || o->delimiter == '\r' || o->delimiter == ' ')
        return tg_error("%s: the delimiter cannot be a quote, a space or a line break", path), -1;
    if (o->label_name && o->header == 0)
        return tg_error("%s: label_name '%s' needs a header, but header is 0", path, o->label_name), -1;
    if (o->columns && o->n_columns <= 0)
        return tg_error("%s: columns is given with n_columns %lld, expected at least 1", path, (long long)o->n_columns),
               -1;
    if (o->label_names && o->n_label_names <= 0)
        return tg_error("%s: label_names is given with n_label_names %lld, expected at least 1", path,
                        (long long)o->n_label_names),
               -1;
    return 0;
}

/* Given label names become the table (ids in their order); duplicates are errors. */
static int add_given_names(csv_load *s, const tg_csv_opts *o)
{
    for (int64_t i = 0; i < o->n_label_names; i++) {
        const char *name = o->label_names[i];
        if (!name || !*name)
            return tg_error("%s: label_names[%lld] is empty", s->path, (long long)i), -1;
        int64_t id = table_find(&s->labels, name);
        if (id >= 0)
            return tg_error("%s: label_names has '%.*s%s' twice (entries %lld and %lld)", s->path, PREVIEW_ARGS(name),
                            (long long)id, (long long)i),
                   -1;
        if (table_add(&s->labels, name, 0) < 0)
            return -1;
    }
    s->given_names = true;
    return 0;
}

/* The label's column on the first non-blank line (number ln, n cells): none for data to predict, by
 * header name, or by index (negative counts from the end). */
static int find_label_column(csv_load *s, const tg_csv_opts *o, int64_t n, long long ln)
{
    const char *path = s->path;
    char names[320];
    if (o->unlabeled == 1) {
        s->label_col = -1; /* data to predict: every column is a feature */
    } else if (o->label_name) {
        s->label_col = -1;
        for (int64_t c = 0; c < n; c++) {
            if (strcmp(s->fields[c], o->label_name) != 0)
                continue;
            if (s->label_col >= 0)
                return tg_error("%s:%lld: duplicate column: the header names '%.*s%s' twice (columns %lld and %lld)",
                                path, ln, PREVIEW_ARGS(o->label_name), (long long)s->label_col + 1, (long long)c + 1),
                       -1;
            s->label_col = c;
        }
        if (s->label_col < 0)
            return tg_error("%s:%lld: no column named '%.*s%s' in the header; its columns are: %s", path, ln,
                            PREVIEW_ARGS(o->label_name), list_names(names, sizeof names, s->fields, n)),
                   -1;
    } else {
        if (o->label_column < -n || o->label_column >= n)
            return tg_error("%s:%lld: label column %lld is out of range: line %lld has %lld column%s", path, ln,
                            (long long)o->label_column, ln, (long long)n, n == 1 ? "" : "s"),
                   -1;
        s->label_col = o->label_column < 0 ? o->label_column + n : o->label_column;
    }
    return 0;
}

/* The feature columns: opts->columns (checked: in range, not the label, none twice), or every column
 * but the label. */
static int find_feature_columns(csv_load *s, const tg_csv_opts *o, int64_t n, long long ln)
{
    const char *path = s->path;
    s->features = o->columns ? o->n_columns : s->label_col < 0 ? n : n - 1;
    if (s->features == 0)
        return tg_error("%s:%lld: no feature columns: line %lld has only the label column", path, ln, ln), -1;
    if ((uint64_t)s->features > SIZE_MAX / sizeof(int64_t))
        return tg_error("%s: %lld feature columns are too many", path, (long long)s->features), -1;
    s->cols = tg_alloc((size_t)s->features * sizeof(int64_t));
    if (!s->cols)
        return -1;
    for (int64_t c = 0, f = 0; !o->columns && c < n; c++) /* every column but the label */
        if (c != s->label_col)
            s->cols[f++] = c;
    for (int64_t f = 0; o->columns && f < s->features; f++) {
        long long given = (long long)o->columns[f];
        if (o->columns[f] < -n || o->columns[f] >= n)
            return tg_error("%s:%lld: feature column %lld (columns[%lld]) is out of range: line %lld has %lld column%s",
                            path, ln, given, (long long)f, ln, (long long)n, n == 1 ? "" : "s"),
                   -1;
        int64_t c = o->columns[f] < 0 ? o->columns[f] + n : o->columns[f];
        if (c == s->label_col)
            return tg_error("%s:%lld: column %lld (columns[%lld]) is the label column", path, ln, (long long)c + 1,
                            (long long)f),
                   -1;
        for (int64_t g = 0; g < f; g++)
            if (s->cols[g] == c)
                return tg_error(
                           "%s:%lld: duplicate column: column %lld is listed twice (columns[%lld] and columns[%lld])",
                           path, ln, (long long)c + 1, (long long)g, (long long)f),
                       -1;
        s->cols[f] = c;
    }
    return 0;
}

/* Whether the first line is a header (asked for, implied by a label name, or detected: a feature cell
 * that is not a number); a header keeps a copy of its cells, as the line's buffer is reused. */
static int read_header_line(csv_load *s, const tg_csv_opts *o, int64_t n, bool *header)
{
    *header = o->header == 1 || (o->label_name && o->unlabeled != 1); /* a label found by name implies a header */
    for (int64_t f = 0; o->header == -1 && !*header && f < s->features; f++) {
        double unused;
        cell_kind kind = parse_number(s->fields[s->cols[f]], &unused);
        if (kind == CELL_NO_MEMORY)
            return -1;
        *header = kind == CELL_NOT_NUMBER;
    }
    if (!*header)
        return 0;
    size_t bytes = 0;
    for (int64_t c = 0; c < n; c++)
        bytes += strlen(s->fields[c]) + 1;
    s->header = tg_alloc((size_t)n * sizeof(char *));
    s->header_text = s->header ? tg_alloc(bytes) : NULL;
    if (!s->header_text)
        return -1;
    char *p = s->header_text;
    for (int64_t c = 0; c < n; c++) {
        size_t cell = strlen(s->fields[c]) + 1;
        s->header[c] = memcpy(p, s->fields[c], cell);
        p += cell;
    }
    return 0;
}

/* From the first non-blank line (number `line`, n cells): the label and
 * feature columns, whether the line is a header, and the buffers for the rows. */
static int setup_columns(csv_load *s, const tg_csv_opts *o, int64_t n, int64_t line, bool *header)
{
    s->n_fields = n;
    return find_label_column(s, o, n, (long long)line) || find_feature_columns(s, o, n, (long long)line) ||
                   read_header_line(s, o, n, header)
               ? -1
               : 0;
}

static int setup(csv_load *s, const tg_csv_opts *o, int64_t n, int64_t nonblank_lines, int64_t line)
{
    const char *path = s->path;
    long long ln = (long long)line;
    bool header;
    if (setup_columns(s, o, n, line, &header))
        return -1;
    s->rows = nonblank_lines - (header ? 1 : 0);
    if (s->rows == 0)
        return tg_error("%s: no data rows: line %lld is a header and no row follows", path, ln), -1;
    if ((uint64_t)s->rows > SIZE_MAX / sizeof(float) / (uint64_t)s->features)
        return tg_error("%s: %lld rows of %lld features are too many", path, (long long)s->rows,
                        (long long)s->features),
               -1;
    size_t x_bytes = (size_t)s->rows * (size_t)s->features * sizeof(float);
    s->x = tg_alloc(x_bytes);
    s->y = s->x ? tg_alloc((size_t)s->rows * sizeof(int64_t)) : NULL;
    if (!s->x || !s->y)
        return tg_error("%s: out of memory: %lld rows of %lld features need %zu bytes", path, (long long)s->rows,
                        (long long)s->features, x_bytes + (size_t)s->rows * sizeof(int64_t)),
               -1;
    return 0;
}

static int parse_row(csv_load *s, int64_t line, int64_t n, int64_t row)
{
    const char *path = s->path;
    char desc[PREVIEW + 48];
    if (n != s->n_fields)
        return tg_error("%s:%lld: line %lld has %lld field%s, expected %lld", path, (long long)line, (long long)line,
                        (long long)n, n == 1 ? "" : "s", (long long)s->n_fields),
               -1;
    float *x = s->x + row * s->features;
    for (int64_t f = 0; f < s->features; f++) {
        int64_t c = s->cols[f];
        const char *cell = s->fields[c];
        double v = 0;
        const char *problem = NULL;
        switch (parse_number(cell, &v)) {
        case CELL_NUMBER: break;
        case CELL_NO_MEMORY: return -1;
        case CELL_NOT_NUMBER: problem = "is not a number"; break;
        case CELL_OUT_OF_RANGE: problem = "is out of the float32 range"; break;
        case CELL_NAN:
            return tg_error("%s:%lld:%lld: line %lld, %s: NaN is not allowed", path, (long long)line, (long long)c + 1,
                            (long long)line, column_desc(desc, sizeof desc, s, c)),
                   -1;
        case CELL_INF:
            return tg_error("%s:%lld:%lld: line %lld, %s: Inf is not allowed", path, (long long)line, (long long)c + 1,
                            (long long)line, column_desc(desc, sizeof desc, s, c)),
                   -1;
        }
        if (problem)
            return tg_error("%s:%lld:%lld: line %lld, %s: '%.*s%s' %s", path, (long long)line, (long long)c + 1,
                            (long long)line, column_desc(desc, sizeof desc, s, c), PREVIEW_ARGS(cell), problem),
                   -1;
        x[f] = (float)v;
    }

    if (s->label_col < 0) {
        s->y[row] = 0;
        return 0;
    }
    const char *label = s->fields[s->label_col];
    int64_t col = s->label_col + 1;
    if (!*label)
        return tg_error("%s:%lld:%lld: line %lld, %s: the label is empty", path, (long long)line, (long long)col,
                        (long long)line, column_desc(desc, sizeof desc, s, s->label_col)),
               -1;
    if (tg_utf8_first_invalid(label)) /* it would train, then fail to be saved: label names are UTF-8 metadata */
        return tg_error("%s:%lld:%lld: line %lld, %s: the label is not valid UTF-8 (is the file in another encoding?)",
                        path, (long long)line, (long long)col, (long long)line,
                        column_desc(desc, sizeof desc, s, s->label_col)),
               -1;
    int64_t id = table_find(&s->labels, label);
    if (id < 0 && s->given_names) {
        char names[240];
        return tg_error("%s:%lld:%lld: line %lld, %s: unknown label '%.*s%s'; the known labels are: %s", path,
                        (long long)line, (long long)col, (long long)line,
                        column_desc(desc, sizeof desc, s, s->label_col), PREVIEW_ARGS(label),
                        list_names(names, sizeof names, s->labels.names, s->labels.n)),
               -1;
    }
    if (id < 0 && (id = table_add(&s->labels, label, line)) < 0)
        return -1;
    s->y[row] = id;
    return 0;
}

/* Integer labels become class ids and names "0".."max"; other labels keep
 * their order of first appearance. Moves the names into ds. */
static int finish_labels(csv_load *s, tg_dataset *ds)
{
    if (s->label_col < 0)
        return 0; /* unlabeled: no classes, no names */
    int64_t too_large;
    int status = tg_labels_to_classes(&s->labels, s->given_names, s->y, s->rows, ds, &too_large);
    if (status > 0) {
        char desc[PREVIEW + 48];
        const char *name = s->labels.names[too_large];
        long long line = (long long)s->labels.first_line[too_large];
        return tg_error("%s:%lld:%lld: line %lld, %s: the integer label %.*s%s is too large for a class id (at most "
                        "%d); pass label_names to map labels as text",
                        s->path, line, (long long)s->label_col + 1, line,
                        column_desc(desc, sizeof desc, s, s->label_col), PREVIEW_ARGS(name), MAX_CLASS_ID),
               -1;
    }
    return status;
}

/* The first pass: the number of non-blank lines (NUL bytes are refused as they are read). */
static int count_nonblank(csv_load *s, int64_t *count)
{
    char *line;
    size_t len;
    int got;
    *count = 0;
    while ((got = reader_next(&s->reader, &line, &len)) == 1)
        *count += !is_blank(line, len);
    return got < 0 ? -1 : reader_start(&s->reader);
}

/* Splits line number `line` into s->fields (*n cells); a quote error names the place. */
static int split_cells(csv_load *s, char *text, int64_t line, int64_t *n)
{
    switch (split_line(text, s->delim, &s->fields, &s->fields_cap, n)) {
    case SPLIT_OK: return 0;
    case SPLIT_NO_MEMORY: return -1;
    case SPLIT_UNTERMINATED:
        return tg_error("%s:%lld:%lld: line %lld, column %lld: a quoted cell has no closing quote", s->path,
                        (long long)line, (long long)*n + 1, (long long)line, (long long)*n + 1),
               -1;
    case SPLIT_TEXT_AFTER_QUOTE:
        return tg_error("%s:%lld:%lld: line %lld, column %lld: text after a closing quote", s->path, (long long)line,
                        (long long)*n + 1, (long long)line, (long long)*n + 1),
               -1;
    }
    return -1;
}

/* Every line after the count: the first non-blank one sets up columns and buffers, the rest are rows. */
static int read_rows(csv_load *s, const tg_csv_opts *o, int64_t nonblank)
{
    const char *path = s->path;
    char *text;
    size_t len;
    int got;
    int64_t line = 0, row = 0;
    bool first = true;
    while ((got = reader_next(&s->reader, &text, &len)) == 1) {
        line++;
        if (is_blank(text, len))
            continue;
        int64_t n;
        if (split_cells(s, text, line, &n))
            return -1;
        if (first) {
            first = false;
            if (setup(s, o, n, nonblank, line))
                return -1;
            if (s->header)
                continue;
        }
        if (row == s->rows)
            return tg_error("%s:%lld: the file grew while it was read (%lld rows counted)", path, (long long)line,
                            (long long)s->rows),
                   -1;
        if (parse_row(s, line, n, row++))
            return -1;
    }
    if (got < 0)
        return -1;
    if (row != s->rows)
        return tg_error("%s: the file shrank while it was read (%lld of %lld rows)", path, (long long)row,
                        (long long)s->rows),
               -1;
    return 0;
}

/* The header's names of the feature columns into ds (none without a header). */
static int copy_feature_names(const csv_load *s, tg_dataset *ds)
{
    if (!s->header)
        return 0;
    if (!(ds->feature_names = tg_alloc_zeroed((size_t)s->features * sizeof(char *))))
        return -1;
    for (int64_t f = 0; f < s->features; f++)
        if (!(ds->feature_names[f] = tg_strdup(s->header[s->cols[f]])))
            return -1;
    return 0;
}

/* The dataset from what read_rows filled: labels, feature names from the header, and the buffers. */
static tg_dataset *make_dataset(csv_load *s)
{
    tg_dataset *ds = tg_alloc_zeroed(sizeof *ds);
    if (!ds || finish_labels(s, ds))
        goto fail;
    ds->rows = s->rows;
    ds->features = s->features;
    if (copy_feature_names(s, ds))
        goto fail;
    ds->x = s->x;
    ds->y = s->y;
    s->x = NULL;
    s->y = NULL;
    return ds;
fail:
    tg_dataset_free(ds);
    return NULL;
}

tg_dataset *tg_csv_load(const char *path, const tg_csv_opts *opts)
{
    tg_csv_opts defaults = TG_CSV_OPTS_DEFAULT;
    const tg_csv_opts *o = opts ? opts : &defaults;
    csv_load s = { .path = path, .delim = o->delimiter ? o->delimiter : ',' };
    tg_dataset *ds = NULL;
    if (!path)
        return tg_error("csv: path is NULL");
    if (check_opts(path, o))
        return NULL;
    int64_t nonblank = 0;
    if ((o->label_names && add_given_names(&s, o)) || reader_open(&s.reader, path) || count_nonblank(&s, &nonblank))
        goto done;
    if (nonblank == 0) {
        tg_error("%s: the file is empty", path);
        goto done;
    }
    if (!read_rows(&s, o, nonblank))
        ds = make_dataset(&s);
done:
    load_free(&s);
    return ds;
}

/* ---- one rank's part of the file (src/io/shard.c) ---- */

/* Where part `part` of `parts` begins: the first line starting at or after byte `cut` (its offset in *from,
 * the lines before it in *lines; *from = size when none does). Lines starting in [cut(p), cut(p + 1)) are
 * part p's, so the parts split the lines between them whatever their lengths. */
static int part_start(line_reader *r, int64_t cut, int64_t size, int64_t lines_before, int64_t *from, int64_t *lines)
{
    *from = 0;
    *lines = 0;
    if (cut == 0)
        return reader_start(r);
    if (reader_seek(r, cut - 1, lines_before))
        return -1;
    char *text;
    size_t len;
    int got = reader_next(r, &text, &len); /* the rest of the line holding byte cut - 1 */
    if (got < 0)
        return -1;
    *from = got ? r->base + (int64_t)r->start : size;
    *lines = r->line;
    return got ? reader_seek(r, *from, *lines) : 0;
}

/* The file's first non-blank line sets the columns (every part reads it: only one holds it); *at is its
 * offset when it is a header, else -1. */
static int part_columns(csv_load *s, const tg_csv_opts *o, int64_t *at)
{
    line_reader *r = &s->reader;
    char *text;
    size_t len;
    int got;
    *at = -1;
    while ((got = reader_next(r, &text, &len)) == 1) {
        if (is_blank(text, len))
            continue;
        int64_t offset = r->base + (int64_t)(text - r->buf), n;
        bool header;
        if (split_cells(s, text, r->line, &n) || setup_columns(s, o, n, r->line, &header))
            return -1;
        *at = header ? offset : -1;
        return 0;
    }
    return got < 0 ? -1 : (tg_error("%s: the file is empty", s->path), -1);
}

/* The part's rows (non-blank lines starting before `end`, the header skipped): counted when row is NULL,
 * else parsed, *row counting them. */
static int part_rows(csv_load *s, int64_t end, int64_t header_at, int64_t bom, int64_t *row, bool parse)
{
    line_reader *r = &s->reader;
    char *text;
    size_t len;
    int got;
    *row = 0;
    while ((got = reader_next(r, &text, &len)) == 1) {
        int64_t offset = r->base + (int64_t)(text - r->buf), n;
        if ((offset == bom ? 0 : offset) >= end) /* after a byte order mark (bom 3) the first line starts at 0 */
            return 0;
        if (is_blank(text, len) || offset == header_at)
            continue;
        if (parse && (split_cells(s, text, r->line, &n) || parse_row(s, r->line, n, *row)))
            return -1;
        ++*row;
    }
    return got < 0 ? -1 : 0;
}

tg_dataset *tg_csv_load_part(const char *path, const tg_csv_opts *opts, int part, int parts)
{
    tg_csv_opts defaults = TG_CSV_OPTS_DEFAULT;
    const tg_csv_opts *o = opts ? opts : &defaults;
    csv_load s = { .path = path, .delim = o->delimiter ? o->delimiter : ',' };
    tg_dataset *ds = NULL;
    if (!path)
        return tg_error("csv: path is NULL");
    if (parts < 1 || part < 0 || part >= parts)
        return tg_error("%s: part %d of %d", path, part, parts);
    if (check_opts(path, o) || (o->label_names && add_given_names(&s, o)) || reader_open(&s.reader, path))
        goto done;
    line_reader *r = &s.reader;
    int64_t size, header_at, from, lines, counted, parsed;
    if (fseeko(r->f, 0, SEEK_END) != 0 || (size = (int64_t)ftello(r->f)) < 0) {
        tg_error("%s: cannot find its size: %s", path, strerror(errno));
        goto done;
    }
    /* byte cuts size * p / parts, without the product's overflow */
    int64_t cut = size / parts * part + size % parts * part / parts,
            end = size / parts * (part + 1) + size % parts * (part + 1) / parts;
    if (reader_start(r))
        goto done;
    int64_t bom = r->base; /* 3 after a byte order mark, else 0 */
    int64_t before; /* the lines before byte cut - 1 */
    if (part_columns(&s, o, &header_at) || tg_lines_before_byte(r->f, path, cut, end, part, parts, &before) ||
        part_start(r, cut, size, before, &from, &lines))
        goto done;
    if (from < end && part_rows(&s, end, header_at, bom, &counted, false))
        goto done;
    if (from >= end)
        counted = 0;
    if (counted > 0 && (uint64_t)counted > SIZE_MAX / sizeof(float) / (uint64_t)s.features) {
        tg_error("%s: %lld rows of %lld features are too many", path, (long long)counted, (long long)s.features);
        goto done;
    }
    s.rows = counted;
    s.x = tg_alloc((size_t)(counted ? counted : 1) * (size_t)s.features * sizeof(float));
    s.y = s.x ? tg_alloc((size_t)(counted ? counted : 1) * sizeof(int64_t)) : NULL;
    if (!s.y)
        goto done;
    if (counted > 0 && ((from == 0 ? reader_start(r) : reader_seek(r, from, lines)) ||
                        part_rows(&s, end, header_at, bom, &parsed, true)))
        goto done;
    if (counted > 0 && parsed != counted) {
        tg_error("%s: the file changed while it was read (%lld rows counted in bytes %lld to %lld, then %lld)", path,
                 (long long)counted, (long long)from, (long long)end, (long long)parsed);
        goto done;
    }
    if (tg_label_table_merge_ranks(&s.labels, s.y, s.rows))
        goto done;
    ds = make_dataset(&s);
done:
    load_free(&s);
    return ds;
}

int tg_csv_count_columns(const char *path, char delimiter, int64_t *columns)
{
    csv_load s = { .path = path, .delim = delimiter ? delimiter : ',' };
    int status = -1, got;
    char *line;
    size_t len;
    if (!path)
        return tg_error("csv: path is NULL"), -1;
    if (reader_open(&s.reader, path))
        goto done;
    while ((got = reader_next(&s.reader, &line, &len)) == 1) {
        if (is_blank(line, len))
            continue;
        if (split_line(line, s.delim, &s.fields, &s.fields_cap, columns) == SPLIT_NO_MEMORY)
            goto done;
        status = 0;
        break;
    }
    if (status && got == 0)
        tg_error("%s: the file is empty", path);
done:
    load_free(&s);
    return status;
}

/* ---- blocks of rows, for streaming a file larger than memory (src/io/stream.c) ---- */

/* The parser's state (columns, header, labels: the first pass's, then fixed) and where each block of
 * block_rows rows starts: its byte offset and the lines before it, so an error in any block names
 * the file's own line. */
typedef struct {
    csv_load s;
    int64_t block_rows;
    tg_block_index index;
    int64_t *class_of; /* [labels]: the label table's id to the class id */
    tg_dataset *header;
    double *sum, max_abs; /* [features]: the first pass's column sums; the largest |x| */
    uint64_t hash;
} csv_blocks;

static void blocks_close(void *impl)
{
    csv_blocks *b = impl;
    if (!b)
        return;
    load_free(&b->s);
    tg_block_index_free(&b->index);
    tg_dealloc(b->class_of);
    tg_dealloc(b->sum);
    tg_dataset_free(b->header);
    tg_dealloc(b);
}

/* What the first pass adds up from row x (label id y): the column sums, the largest |x|, the hash. */
static void blocks_add_row(csv_blocks *b, const float *x, int64_t y)
{
    int64_t f = b->s.features;
    tg_moments_add_sums(b->sum, x, 1, f);
    const unsigned char *bytes = (const unsigned char *)x, *label = (const unsigned char *)&y;
    for (size_t i = 0; i < (size_t)f * sizeof(float); i++)
        b->hash = (b->hash ^ bytes[i]) * 0x100000001b3u;
    for (size_t i = 0; i < sizeof y; i++)
        b->hash = (b->hash ^ label[i]) * 0x100000001b3u;
    for (int64_t j = 0; j < f; j++)
        b->max_abs = fabs(x[j]) > b->max_abs ? fabs(x[j]) : b->max_abs;
}

/* The first pass: every row parsed (into a one-row buffer), the labels met, where each block starts,
 * and the sums of blocks_add_row. */
static int blocks_index(csv_blocks *b, const tg_csv_opts *o)
{
    csv_load *s = &b->s;
    line_reader *r = &s->reader;
    char *text;
    size_t len;
    int got;
    bool first = true;
    while ((got = reader_next(r, &text, &len)) == 1) {
        int64_t line = r->line, offset = r->base + (int64_t)(text - r->buf), n;
        if (is_blank(text, len))
            continue;
        if (split_cells(s, text, line, &n))
            return -1;
        if (first) {
            bool header;
            first = false;
            if (setup_columns(s, o, n, line, &header) || !(s->x = tg_alloc((size_t)s->features * sizeof(float))) ||
                !(s->y = tg_alloc(sizeof(int64_t))) ||
                !(b->sum = tg_alloc_zeroed((size_t)s->features * sizeof(double))))
                return -1;
            if (header)
                continue;
        }
        if (s->rows % b->block_rows == 0 && tg_block_index_mark(&b->index, offset, line - 1))
            return -1;
        if (parse_row(s, line, n, 0))
            return -1;
        blocks_add_row(b, s->x, s->y[0]);
        s->rows++;
    }
    if (got < 0)
        return -1;
    if (first)
        return tg_error("%s: the file is empty", s->path), -1;
    if (s->rows == 0)
        return tg_error("%s: no data rows: the file holds only its header", s->path), -1;
    return 0;
}

/* The classes the first pass's labels make (as tg_csv_load maps them); the table stays to read blocks. */
static int blocks_classes(csv_blocks *b)
{
    csv_load *s = &b->s;
    int64_t n = s->labels.n, rows = s->rows;
    if (!(b->header = tg_alloc_zeroed(sizeof *b->header)) ||
        !(b->class_of = tg_alloc((size_t)(n ? n : 1) * sizeof *b->class_of)))
        return -1;
    for (int64_t i = 0; i < n; i++)
        b->class_of[i] = i;
    tg_dealloc(s->x); /* the first pass's one-row buffers: blocks are read into the caller's */
    s->x = NULL;
    tg_dealloc(s->y);
    s->y = b->class_of; /* finish_labels rewrites the ids 0..n-1 into their classes */
    s->rows = n;
    int status = finish_labels(s, b->header);
    s->y = NULL;
    s->rows = rows;
    tg_dataset *h = b->header;
    if (status || tg_label_table_keep(&s->labels, &s->given_names, h))
        return -1;
    h->rows = rows;
    h->features = s->features;
    return copy_feature_names(s, h);
}

static int blocks_read(void *impl, int64_t k, float *x, int64_t *y)
{
    csv_blocks *b = impl;
    csv_load *s = &b->s;
    line_reader *r = &s->reader;
    int64_t first = k * b->block_rows, n = s->rows - first < b->block_rows ? s->rows - first : b->block_rows;
    if (reader_seek(r, b->index.offset[k], b->index.lines_before[k]))
        return -1;
    s->x = x;
    s->y = y;
    int64_t row = 0, cells;
    int got = 1, rc = 0;
    char *text;
    size_t len;
    while (!rc && row < n && (got = reader_next(r, &text, &len)) == 1) {
        if (is_blank(text, len))
            continue;
        rc = split_cells(s, text, r->line, &cells) || parse_row(s, r->line, cells, row) ? -1 : 0;
        if (!rc)
            y[row] = b->class_of[y[row]], row++;
    }
    s->x = NULL;
    s->y = NULL;
    if (!rc && row < n)
        rc = got < 0 ? -1
                     : (tg_error("%s: the file changed since it was first read: block %lld (from line %lld) ends "
                                 "after %lld of its %lld rows",
                                 s->path, (long long)k, (long long)b->index.lines_before[k] + 1, (long long)row,
                                 (long long)n),
                        -1);
    return rc;
}

static int blocks_unchanged(void *impl)
{
    csv_blocks *b = impl;
    return tg_block_index_unchanged(&b->index, &b->s.reader);
}

int tg_csv_block_source(const char *path, const tg_csv_opts *opts, int64_t block_rows, tg_block_source *out)
{
    tg_csv_opts defaults = TG_CSV_OPTS_DEFAULT;
    const tg_csv_opts *o = opts ? opts : &defaults;
    *out = (tg_block_source){ 0 };
    if (!path)
        return tg_error("csv: path is NULL"), -1;
    if (block_rows <= 0)
        return tg_error("%s: block_rows is %lld, expected at least 1", path, (long long)block_rows), -1;
    if (check_opts(path, o))
        return -1;
    if (o->unlabeled == 1)
        return tg_error("%s: a stream trains, so it needs a label column (unlabeled is 1)", path), -1;
    csv_blocks *b = tg_alloc_zeroed(sizeof *b);
    if (!b)
        return -1;
    b->s = (csv_load){ .path = path, .delim = o->delimiter ? o->delimiter : ',' };
    b->block_rows = block_rows;
    b->hash = 0xcbf29ce484222325u; /* FNV-1a */
    if ((o->label_names && add_given_names(&b->s, o)) || reader_open(&b->s.reader, path) ||
        tg_block_index_stamp(&b->index, &b->s.reader) || blocks_index(b, o) || blocks_classes(b)) {
        blocks_close(b);
        return -1;
    }
    *out = (tg_block_source){ .impl = b,
                              .header = b->header,
                              .block_rows = block_rows,
                              .blocks = b->index.blocks,
                              .sum = b->sum,
                              .max_abs = b->max_abs,
                              .hash = b->hash,
                              .read = blocks_read,
                              .unchanged = blocks_unchanged,
                              .close = blocks_close };
    return 0;
}

/* ---- shared with the libsvm loader (src/io/libsvm.c) ---- */

int tg_line_reader_open(tg_line_reader *r, const char *path, const char *what) { return reader_open_as(r, path, what); }
int tg_line_reader_next(tg_line_reader *r, char **line, size_t *len) { return reader_next(r, line, len); }
int tg_line_reader_seek(tg_line_reader *r, int64_t offset, int64_t lines_before)
{
    return reader_seek(r, offset, lines_before);
}
void tg_line_reader_close(tg_line_reader *r) { reader_close(r); }

int tg_block_index_mark(tg_block_index *ix, int64_t offset, int64_t lines_before)
{
    if (ix->blocks == ix->cap) {
        int64_t cap = ix->cap ? 2 * ix->cap : 64;
        int64_t *o = tg_realloc(ix->offset, (size_t)cap * sizeof *o);
        if (o)
            ix->offset = o;
        int64_t *l = o ? tg_realloc(ix->lines_before, (size_t)cap * sizeof *l) : NULL;
        if (!l)
            return -1;
        ix->lines_before = l;
        ix->cap = cap;
    }
    ix->offset[ix->blocks] = offset;
    ix->lines_before[ix->blocks] = lines_before;
    ix->blocks++;
    return 0;
}

void tg_block_index_free(tg_block_index *ix)
{
    tg_dealloc(ix->offset);
    tg_dealloc(ix->lines_before);
    *ix = (tg_block_index){ 0 };
}

int tg_block_index_stamp(tg_block_index *ix, const tg_line_reader *r)
{
    struct stat st;
    if (fstat(fileno(r->f), &st) != 0)
        return tg_error("%s: cannot stat: %s", r->path, strerror(errno)), -1;
    ix->size = (int64_t)st.st_size;
    ix->mtime = (int64_t)st.st_mtime;
    return 0;
}

int tg_block_index_unchanged(const tg_block_index *ix, const tg_line_reader *r)
{
    struct stat now;
    if (fstat(fileno(r->f), &now) != 0)
        return tg_error("%s: cannot stat: %s", r->path, strerror(errno)), -1;
    if ((int64_t)now.st_size != ix->size || (int64_t)now.st_mtime != ix->mtime)
        return tg_error("%s: the file changed while it was streamed (size or modification time): restart the run",
                        r->path),
               -1;
    return 0;
}

int tg_label_table_keep(tg_label_table *t, bool *given_names, const tg_dataset *h)
{
    if (!t->names) { /* text labels: the names moved into the header; the table gets copies back */
        if (!(t->names = tg_alloc_zeroed((size_t)h->classes * sizeof(char *))))
            return -1;
        t->n = h->classes;
        for (int64_t c = 0; c < h->classes; c++)
            if (!(t->names[c] = tg_strdup(h->label_names[c])))
                return -1;
    }
    *given_names = true; /* a label the first pass did not meet means the file changed */
    return 0;
}

int64_t tg_label_find(const tg_label_table *t, const char *s) { return table_find(t, s); }
int64_t tg_label_add(tg_label_table *t, const char *s, int64_t line) { return table_add(t, s, line); }
void tg_label_table_free(tg_label_table *t) { table_free(t); }

int tg_labels_to_classes(tg_label_table *t, bool given_names, int64_t *y, int64_t rows, tg_dataset *ds,
                         int64_t *too_large)
{
    bool integers = !given_names;
    int64_t max = -1, max_id = 0;
    for (int64_t id = 0; id < t->n && integers; id++) {
        int64_t v;
        integers = is_class_id(t->names[id], &v);
        if (integers && v > max)
            max = v, max_id = id;
    }
    if (!integers) {
        ds->classes = t->n;
        ds->label_names = t->names;
        t->names = NULL;
        t->n = 0;
        return 0;
    }
    if (max > MAX_CLASS_ID)
        return *too_large = max_id, 1;
    for (int64_t r = 0; r < rows; r++) {
        int64_t v = 0;
        is_class_id(t->names[y[r]], &v);
        y[r] = v;
    }
    ds->label_names = tg_alloc_zeroed((size_t)(max + 1) * sizeof(char *));
    if (!ds->label_names)
        return -1;
    ds->classes = max + 1;
    for (int64_t c = 0; c <= max; c++) {
        char digits[24];
        snprintf(digits, sizeof digits, "%lld", (long long)c);
        if (!(ds->label_names[c] = tg_strdup(digits)))
            return -1;
    }
    return 0;
}

tg_number_kind tg_parse_number(const char *s, double *value)
{
    switch (parse_number(s, value)) {
    case CELL_NUMBER: return TG_NUMBER_OK;
    case CELL_NOT_NUMBER: return TG_NUMBER_NOT;
    case CELL_NAN: return TG_NUMBER_NAN;
    case CELL_INF: return TG_NUMBER_INF;
    case CELL_OUT_OF_RANGE: return TG_NUMBER_OUT_OF_RANGE;
    case CELL_NO_MEMORY: break;
    }
    return TG_NUMBER_NO_MEMORY;
}
