/* The libsvm / svmlight text format: `label index:value ...` a line, indices
 * 1-based and strictly increasing, `#` to the end of a line a comment. The
 * file is read into one buffer; a first pass counts rows and tokens so the
 * CSR arrays are allocated once (and shrunk if pairs were dropped); the second
 * splits each line in place. Values go through the CSV loader's number
 * grammar, so they never depend on the process's locale. */
#include "dist/dist.h"
#include "io/io_internal.h"

#include <math.h>
#include <string.h>

/* Characters of a token quoted in an error message. */
#define PREVIEW 40
#define PREVIEW_ARGS(s) (strlen(s) > PREVIEW ? PREVIEW : (int)strlen(s)), (s), (strlen(s) > PREVIEW ? "..." : "")

typedef struct {
    const char *path;
    const tg_libsvm_opts *opts;
    char *text;
    size_t len;
    tg_label_table labels;
    bool given_names;
    int64_t rows, nnz, nnz_cap, max_index;
    int64_t lines_before; /* a part of the file (tg_libsvm_load_part): the lines before its text */
    int64_t *y; /* while loading: ids into labels */
    int64_t *row_ptr;
    int32_t *col;
    float *val;
} libsvm_load;

static void load_free(libsvm_load *s)
{
    tg_dealloc(s->text);
    tg_label_table_free(&s->labels);
    tg_dealloc(s->y);
    tg_dealloc(s->row_ptr);
    tg_dealloc(s->col);
    tg_dealloc(s->val);
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The next line from *pos as [*start, *end): without its "\n", and cut at a '#'. */
static bool next_line(const char *text, size_t len, size_t *pos, size_t *start, size_t *end)
{
    if (*pos >= len)
        return false;
    const char *newline = memchr(text + *pos, '\n', len - *pos);
    size_t e = newline ? (size_t)(newline - text) : len;
    *start = *pos;
    *pos = newline ? e + 1 : len;
    const char *hash = memchr(text + *start, '#', e - *start);
    *end = hash ? (size_t)(hash - text) : e;
    return true;
}

/* Whitespace-separated tokens in [a, b). */
static int64_t count_tokens(const char *text, size_t a, size_t b)
{
    int64_t n = 0;
    for (size_t i = a; i < b; i++)
        n += !is_space(text[i]) && (i == a || is_space(text[i - 1]));
    return n;
}

/* Rows (lines with a token) and an upper bound on the pairs (their tokens but the label). */
static int count_rows(libsvm_load *s, size_t from, int64_t *pairs)
{
    const char *nul = memchr(s->text, '\0', s->len);
    if (nul) {
        int64_t line = s->lines_before + 1;
        for (const char *p = s->text; p < nul; p++)
            line += *p == '\n';
        return tg_error("%s:%lld: line %lld has a NUL byte; expected a text file", s->path, (long long)line,
                        (long long)line),
               -1;
    }
    size_t pos = from, a, b;
    *pairs = 0;
    while (next_line(s->text, s->len, &pos, &a, &b)) {
        int64_t tokens = count_tokens(s->text, a, b);
        if (tokens) {
            s->rows++;
            *pairs += tokens - 1;
        }
    }
    return 0;
}

static int set_up(libsvm_load *s, int64_t pairs)
{
    if ((uint64_t)s->rows >= SIZE_MAX / sizeof(int64_t) || (uint64_t)pairs > SIZE_MAX / sizeof(float))
        return tg_error("%s: %lld rows with %lld pairs are too many", s->path, (long long)s->rows, (long long)pairs),
               -1;
    s->nnz_cap = pairs;
    s->y = tg_alloc((size_t)(s->rows ? s->rows : 1) * sizeof(int64_t)); /* a rank's part may have no row */
    s->row_ptr = tg_alloc((size_t)(s->rows + 1) * sizeof(int64_t));
    s->col = tg_alloc((size_t)(pairs ? pairs : 1) * sizeof(int32_t));
    s->val = tg_alloc((size_t)(pairs ? pairs : 1) * sizeof(float));
    if (!s->y || !s->row_ptr || !s->col || !s->val)
        return -1;
    s->row_ptr[0] = 0;
    return 0;
}

/* The label (first token) of row `row`: a name, an id into the table. */
static int parse_label(libsvm_load *s, const char *token, int64_t line, int64_t column, int64_t row)
{
    const char *path = s->path;
    long long ln = (long long)line, cn = (long long)column;
    if (strchr(token, ':'))
        return tg_error("%s:%lld:%lld: '%.*s%s' is an index:value pair where the label should be; a line starts with "
                        "its label",
                        path, ln, cn, PREVIEW_ARGS(token)),
               -1;
    if (tg_utf8_first_invalid(token)) /* it would train, then fail to be saved: label names are UTF-8 metadata */
        return tg_error("%s:%lld:%lld: the label is not valid UTF-8 (is the file in another encoding?)", path, ln, cn),
               -1;
    int64_t id = tg_label_find(&s->labels, token);
    if (id < 0 && s->given_names)
        return tg_error("%s:%lld:%lld: unknown label '%.*s%s' (label_names gives %lld labels)", path, ln, cn,
                        PREVIEW_ARGS(token), (long long)s->labels.n),
               -1;
    if (id < 0 && (id = tg_label_add(&s->labels, token, line)) < 0)
        return -1;
    s->y[row] = id;
    return 0;
}

/* One index:value token; *prev is the row's last index (0 before the first). */
static int parse_pair(libsvm_load *s, char *token, int64_t line, int64_t column, int64_t *prev)
{
    const char *path = s->path;
    long long ln = (long long)line, cn = (long long)column;
    if (strncmp(token, "qid:", 4) == 0)
        return tg_error("%s:%lld:%lld: '%.*s%s': qid (query ids of ranking data) is not supported; remove the qid "
                        "tokens for classification",
                        path, ln, cn, PREVIEW_ARGS(token)),
               -1;
    char *colon = strchr(token, ':');
    if (!colon)
        return tg_error("%s:%lld:%lld: '%.*s%s' is not an index:value pair", path, ln, cn, PREVIEW_ARGS(token)), -1;
    int64_t index = 0;
    const char *p = token;
    for (; is_digit(*p); p++)
        index = index > INT64_MAX / 10 - 9 ? INT64_MAX : index * 10 + (*p - '0');
    if (p == token || p != colon)
        return tg_error("%s:%lld:%lld: '%.*s%s': the index is not a positive decimal integer", path, ln, cn,
                        PREVIEW_ARGS(token)),
               -1;
    if (index == 0)
        return tg_error("%s:%lld:%lld: '%.*s%s': index 0; indices start at 1", path, ln, cn, PREVIEW_ARGS(token)), -1;
    if (index > INT32_MAX)
        return tg_error("%s:%lld:%lld: '%.*s%s': the index is above 2147483647 (2^31 - 1)", path, ln, cn,
                        PREVIEW_ARGS(token)),
               -1;
    if (index <= *prev)
        return tg_error("%s:%lld:%lld: '%.*s%s': index %lld %s index %lld; indices must increase along a line", path,
                        ln, cn, PREVIEW_ARGS(token), (long long)index, index == *prev ? "repeats" : "comes after",
                        (long long)*prev),
               -1;
    *prev = index;
    double v = 0;
    const char *problem = NULL;
    switch (tg_parse_number(colon + 1, &v)) {
    case TG_NUMBER_OK: break;
    case TG_NUMBER_NO_MEMORY: return -1;
    case TG_NUMBER_NOT: problem = "the value is not a number"; break;
    case TG_NUMBER_NAN: problem = "NaN is not allowed"; break;
    case TG_NUMBER_INF: problem = "Inf is not allowed"; break;
    case TG_NUMBER_OUT_OF_RANGE: problem = "the value is out of the float32 range"; break;
    }
    if (problem)
        return tg_error("%s:%lld:%lld: '%.*s%s': %s", path, ln, cn, PREVIEW_ARGS(token), problem), -1;
    int64_t limit = s->opts->features;
    if (limit > 0 && index > limit) {
        if (s->opts->skip_unknown_features)
            return 0;
        return tg_error("%s:%lld:%lld: '%.*s%s': index %lld is above the feature count %lld (set "
                        "skip_unknown_features, or data.unseen_features \"ignore\" in a config, to drop such pairs)",
                        path, ln, cn, PREVIEW_ARGS(token), (long long)index, (long long)limit),
               -1;
    }
    if (s->nnz >= s->nnz_cap) /* the first pass counted every token: cannot happen */
        return tg_error("%s:%lld: more pairs than counted", path, ln), -1;
    s->col[s->nnz] = (int32_t)(index - 1);
    s->val[s->nnz] = (float)v;
    s->nnz++;
    if (index > s->max_index)
        s->max_index = index;
    return 0;
}

/* Splits line [a, b) of text in place into its label and pairs (row `row`): the one line parser of the
 * whole-file loader and the block source. */
static int parse_line(libsvm_load *s, char *text, size_t a, size_t b, int64_t line, int64_t row)
{
    text[b] = '\0'; /* the '#', the '\n' or the end of the buffer (tg_read_file NUL-terminates) */
    int64_t prev = 0;
    bool label = true;
    for (size_t i = a; i < b;) {
        while (i < b && is_space(text[i]))
            i++;
        if (i == b)
            break;
        size_t start = i;
        while (i < b && !is_space(text[i]))
            i++;
        text[i] = '\0';
        int64_t column = (int64_t)(start - a) + 1;
        int failed =
            label ? parse_label(s, text + start, line, column, row) : parse_pair(s, text + start, line, column, &prev);
        if (failed)
            return -1;
        label = false;
        i++;
    }
    s->row_ptr[row + 1] = s->nnz;
    return 0;
}

/* Labels to class ids as tg_csv_load maps them (tg_labels_to_classes). */
static int finish_labels(libsvm_load *s, tg_dataset *ds)
{
    int64_t too_large;
    int status = tg_labels_to_classes(&s->labels, s->given_names, s->y, s->rows, ds, &too_large);
    if (status > 0)
        return tg_error("%s:%lld:1: the integer label %.*s%s is too large for a class id (at most %d); pass "
                        "label_names to map labels as text",
                        s->path, (long long)s->labels.first_line[too_large], PREVIEW_ARGS(s->labels.names[too_large]),
                        TG_MAX_CLASS_ID),
               -1;
    return status;
}

static int check_opts(const char *path, const tg_libsvm_opts *o)
{
    if (o->features < 0 || o->features > INT32_MAX)
        return tg_error("%s: features is %lld, expected 0 (from the data) or 1 .. 2147483647", path,
                        (long long)o->features),
               -1;
    if (o->label_names && o->n_label_names <= 0)
        return tg_error("%s: label_names is given with n_label_names %lld, expected at least 1", path,
                        (long long)o->n_label_names),
               -1;
    if (!o->label_names && o->n_label_names != 0)
        return tg_error("%s: n_label_names is %lld but label_names is NULL", path, (long long)o->n_label_names), -1;
    return 0;
}

static int add_given_names(libsvm_load *s, const tg_libsvm_opts *o)
{
    for (int64_t i = 0; i < o->n_label_names; i++) {
        const char *name = o->label_names[i];
        if (!name || !*name)
            return tg_error("%s: label_names[%lld] is empty", s->path, (long long)i), -1;
        int64_t id = tg_label_find(&s->labels, name);
        if (id >= 0)
            return tg_error("%s: label_names has '%.*s%s' twice (entries %lld and %lld)", s->path, PREVIEW_ARGS(name),
                            (long long)id, (long long)i),
                   -1;
        if (tg_label_add(&s->labels, name, 0) < 0)
            return -1;
    }
    s->given_names = true;
    return 0;
}

/* Moves the loaded arrays into a new data set, giving back what dropped pairs left unused. */
static tg_dataset *finish(libsvm_load *s, bool part)
{
    int64_t features = s->opts->features > 0 ? s->opts->features : s->max_index;
    if (features == 0 && !(part && s->rows == 0)) /* across ranks the largest index is every rank's */
        return tg_error("%s: no feature: no line has an index:value pair (set features to load such a file)", s->path);
    tg_dataset *ds = tg_alloc_zeroed(sizeof *ds);
    if (!ds || finish_labels(s, ds)) {
        tg_dataset_free(ds);
        return NULL;
    }
    if (s->nnz < s->nnz_cap && s->nnz > 0) {
        int32_t *col = tg_realloc(s->col, (size_t)s->nnz * sizeof(int32_t));
        if (col)
            s->col = col;
        float *val = tg_realloc(s->val, (size_t)s->nnz * sizeof(float));
        if (val)
            s->val = val;
        tg_clear_error(); /* a refused shrink is harmless */
    }
    ds->rows = s->rows;
    ds->features = features;
    ds->y = s->y;
    ds->row_ptr = s->row_ptr;
    ds->col = s->col;
    ds->val = s->val;
    ds->nnz = s->nnz;
    s->y = NULL;
    s->row_ptr = NULL;
    s->col = NULL;
    s->val = NULL;
    return ds;
}

/* Parses s->text from pos, its first line numbered `lines` + 1: every row, then (part of a file read across
 * ranks) the labels and the feature count agreed with the other ranks' parts, then the data set. */
static tg_dataset *parse_text(libsvm_load *s, size_t pos, int64_t lines, bool part)
{
    int64_t pairs;
    if (count_rows(s, pos, &pairs))
        return NULL;
    if (s->rows == 0 && !part)
        return tg_error("%s: the file is empty (no line with a label)", s->path);
    if (set_up(s, pairs))
        return NULL;
    size_t a, b;
    int64_t line = lines, row = 0;
    while (next_line(s->text, s->len, &pos, &a, &b)) {
        line++;
        if (count_tokens(s->text, a, b) == 0)
            continue;
        if (parse_line(s, s->text, a, b, line, row++))
            return NULL;
    }
    if (part && (tg_label_table_merge_ranks(&s->labels, s->y, s->rows) || tg_dist_max(&s->max_index)))
        return NULL;
    return finish(s, part);
}

tg_dataset *tg_libsvm_load(const char *path, const tg_libsvm_opts *opts)
{
    tg_libsvm_opts defaults = TG_LIBSVM_OPTS_DEFAULT;
    libsvm_load s = { .path = path, .opts = opts ? opts : &defaults };
    tg_dataset *ds = NULL;
    if (!path)
        return tg_error("libsvm: path is NULL");
    if (check_opts(path, s.opts))
        return NULL;
    if ((!s.opts->label_names || !add_given_names(&s, s.opts)) &&
        (s.text = tg_read_file(path, "a libsvm file", 0, &s.len))) {
        size_t pos = s.len >= 3 && memcmp(s.text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* a UTF-8 byte order mark */
        ds = parse_text(&s, pos, 0, false);
    }
    load_free(&s);
    return ds;
}

tg_dataset *tg_libsvm_load_part(const char *path, const tg_libsvm_opts *opts, int part, int parts)
{
    tg_libsvm_opts defaults = TG_LIBSVM_OPTS_DEFAULT;
    libsvm_load s = { .path = path, .opts = opts ? opts : &defaults };
    tg_dataset *ds = NULL;
    if (!path)
        return tg_error("libsvm: path is NULL");
    if (parts < 1 || part < 0 || part >= parts)
        return tg_error("%s: part %d of %d", path, part, parts);
    if (check_opts(path, s.opts))
        return NULL;
    int64_t lines;
    if ((!s.opts->label_names || !add_given_names(&s, s.opts)) &&
        (s.text = tg_read_file_part(path, "a libsvm file", part, parts, &s.len, &lines))) {
        s.lines_before = lines;
        size_t pos = lines == 0 && s.len >= 3 && memcmp(s.text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
        ds = parse_text(&s, pos, lines, true);
    }
    load_free(&s);
    return ds;
}

/* ---- blocks of rows, for streaming a file larger than memory (src/io/stream.c) ---- */

/* The loader's state (labels: the first pass's, then fixed; the rules of opts) and where each block of
 * block_rows rows starts: its byte offset and the lines before it, so an error in any block names the
 * file's own line. */
typedef struct {
    libsvm_load s;
    tg_libsvm_opts opts; /* the caller's; after the first pass, features is the file's count */
    tg_line_reader reader;
    int64_t block_rows;
    tg_block_index index;
    int64_t *block_nnz; /* [index.cap]: each block's stored values */
    int64_t *class_of; /* [labels]: the label table's id to the class id */
    int64_t *rows_of_length, longest, lengths; /* [lengths >= longest + 1] */
    double *sum, max_abs; /* [columns]: the stored values' sums; the largest |value| */
    int64_t *stored, columns; /* [columns]: stored values per column; columns the arrays hold */
    uint64_t hash;
    tg_dataset *header;
} libsvm_blocks;

static void blocks_close(void *impl)
{
    libsvm_blocks *b = impl;
    if (!b)
        return;
    b->s.y = NULL; /* the first pass's one-row col and val are freed with s; its y and row_ptr were on the stack */
    b->s.row_ptr = NULL;
    load_free(&b->s);
    tg_line_reader_close(&b->reader);
    tg_block_index_free(&b->index);
    tg_dealloc(b->block_nnz);
    tg_dealloc(b->class_of);
    tg_dealloc(b->rows_of_length);
    tg_dealloc(b->sum);
    tg_dealloc(b->stored);
    tg_dataset_free(b->header);
    tg_dealloc(b);
}

/* Grows the zero-filled array of 8-byte entries at *arrayp (an int64_t * or a double *) from *n to at least
 * need entries, doubling. The pointer is copied with memcpy: it is read and written as the type it is. */
static int grow_zeroed(void *arrayp, int64_t *n, int64_t need)
{
    if (need <= *n)
        return 0;
    int64_t cap = *n ? *n : 64;
    while (cap < need)
        cap *= 2;
    void *array;
    memcpy(&array, arrayp, sizeof array);
    char *grown = tg_realloc(array, (size_t)cap * 8);
    if (!grown)
        return -1;
    memset(grown + (size_t)*n * 8, 0, (size_t)(cap - *n) * 8);
    memcpy(arrayp, &grown, sizeof grown);
    *n = cap;
    return 0;
}

/* The next block starts here: the index, and its count of stored values. */
static int blocks_mark(libsvm_blocks *b, int64_t offset, int64_t lines_before)
{
    int64_t cap = b->index.cap;
    if (tg_block_index_mark(&b->index, offset, lines_before))
        return -1;
    if (b->index.cap != cap) {
        int64_t *nnz = tg_realloc(b->block_nnz, (size_t)b->index.cap * sizeof *nnz);
        if (!nnz)
            return -1;
        b->block_nnz = nnz;
    }
    b->block_nnz[b->index.blocks - 1] = 0;
    return 0;
}

/* What the first pass adds up from the row just parsed (label id y): its block's and its length's count,
 * the column sums and counts, the largest |value|, an FNV-1a hash of its columns, values and label. */
static int blocks_add_row(libsvm_blocks *b, int64_t y)
{
    const libsvm_load *s = &b->s;
    int64_t n = s->nnz, columns = b->columns;
    if (grow_zeroed(&b->sum, &columns, s->max_index) || grow_zeroed(&b->stored, &b->columns, s->max_index) ||
        grow_zeroed(&b->rows_of_length, &b->lengths, n + 1))
        return -1;
    b->longest = n > b->longest ? n : b->longest;
    b->block_nnz[b->index.blocks - 1] += n;
    b->rows_of_length[n]++;
    tg_sparse_moments_add_sums(b->sum, b->stored, s->col, s->val, n);
    const unsigned char *cols = (const unsigned char *)s->col, *vals = (const unsigned char *)s->val;
    const unsigned char *label = (const unsigned char *)&y;
    for (size_t i = 0; i < (size_t)n * sizeof(int32_t); i++)
        b->hash = (b->hash ^ cols[i]) * 0x100000001b3u;
    for (size_t i = 0; i < (size_t)n * sizeof(float); i++)
        b->hash = (b->hash ^ vals[i]) * 0x100000001b3u;
    for (size_t i = 0; i < sizeof y; i++)
        b->hash = (b->hash ^ label[i]) * 0x100000001b3u;
    for (int64_t k = 0; k < n; k++)
        b->max_abs = fabs(s->val[k]) > b->max_abs ? fabs(s->val[k]) : b->max_abs;
    return 0;
}

/* The one-row buffers of the first pass, grown to a line of `pairs` pairs. */
static int blocks_row_buffers(libsvm_blocks *b, int64_t pairs)
{
    libsvm_load *s = &b->s;
    s->nnz = 0;
    if (pairs <= s->nnz_cap)
        return 0;
    if ((uint64_t)pairs > SIZE_MAX / sizeof(float))
        return tg_error("%s: a line of %lld pairs is too long", s->path, (long long)pairs), -1;
    int32_t *col = tg_realloc(s->col, (size_t)pairs * sizeof(int32_t));
    if (col)
        s->col = col;
    float *val = col ? tg_realloc(s->val, (size_t)pairs * sizeof(float)) : NULL;
    if (!val)
        return -1;
    s->val = val;
    s->nnz_cap = pairs;
    return 0;
}

/* The line's text before a '#': its length. */
static size_t uncommented(const char *text, size_t len)
{
    const char *hash = memchr(text, '#', len);
    return hash ? (size_t)(hash - text) : len;
}

/* The first pass: every line parsed with the loader's rules (into one-row buffers), the labels met, where
 * each block starts, and what blocks_add_row adds up. */
static int blocks_index(libsvm_blocks *b)
{
    libsvm_load *s = &b->s;
    tg_line_reader *r = &b->reader;
    int64_t y, row_ptr[2];
    char *text;
    size_t len;
    int got;
    s->y = &y;
    s->row_ptr = row_ptr;
    while ((got = tg_line_reader_next(r, &text, &len)) == 1) {
        int64_t line = r->line, offset = r->base + (int64_t)(text - r->buf);
        size_t end = uncommented(text, len);
        int64_t tokens = count_tokens(text, 0, end);
        if (tokens == 0)
            continue;
        if ((s->rows % b->block_rows == 0 && blocks_mark(b, offset, line - 1)) || blocks_row_buffers(b, tokens - 1) ||
            parse_line(s, text, 0, end, line, 0) || blocks_add_row(b, y))
            return -1;
        s->rows++;
    }
    s->y = NULL;
    s->row_ptr = NULL;
    if (got < 0)
        return -1;
    if (s->rows == 0)
        return tg_error("%s: the file is empty (no line with a label)", s->path), -1;
    int64_t features = b->opts.features > 0 ? b->opts.features : s->max_index;
    if (features == 0)
        return tg_error("%s: no feature: no line has an index:value pair (set features to load such a file)", s->path),
               -1;
    int64_t columns = b->columns;
    if (grow_zeroed(&b->sum, &columns, features) || grow_zeroed(&b->stored, &b->columns, features))
        return -1;
    b->opts.features = features; /* a changed file's new index is refused, or dropped as before */
    return 0;
}

/* The classes the first pass's labels make (as tg_libsvm_load maps them); the table stays to read blocks. */
static int blocks_classes(libsvm_blocks *b)
{
    libsvm_load *s = &b->s;
    int64_t n = s->labels.n, rows = s->rows;
    if (!(b->header = tg_alloc_zeroed(sizeof *b->header)) ||
        !(b->class_of = tg_alloc((size_t)(n ? n : 1) * sizeof *b->class_of)))
        return -1;
    for (int64_t i = 0; i < n; i++)
        b->class_of[i] = i;
    s->y = b->class_of; /* finish_labels rewrites the ids 0..n-1 into their classes */
    s->rows = n;
    int status = finish_labels(s, b->header);
    s->y = NULL;
    s->rows = rows;
    tg_dataset *h = b->header;
    if (status || tg_label_table_keep(&s->labels, &s->given_names, h))
        return -1;
    h->rows = rows;
    h->features = b->opts.features;
    return 0;
}

static int blocks_read_sparse(void *impl, int64_t k, int64_t *row_ptr, int32_t *col, float *val, int64_t *y)
{
    libsvm_blocks *b = impl;
    libsvm_load *s = &b->s;
    tg_line_reader *r = &b->reader;
    int64_t first = k * b->block_rows, n = s->rows - first < b->block_rows ? s->rows - first : b->block_rows;
    if (tg_line_reader_seek(r, b->index.offset[k], b->index.lines_before[k]))
        return -1;
    int32_t *one_col = s->col;
    float *one_val = s->val;
    int64_t one_cap = s->nnz_cap;
    s->y = y;
    s->row_ptr = row_ptr;
    s->col = col;
    s->val = val;
    s->nnz = row_ptr[0];
    s->nnz_cap = row_ptr[0] + b->block_nnz[k];
    int64_t row = 0;
    int got = 1, rc = 0;
    char *text;
    size_t len;
    while (!rc && row < n && (got = tg_line_reader_next(r, &text, &len)) == 1) {
        size_t end = uncommented(text, len);
        if (count_tokens(text, 0, end) == 0)
            continue;
        rc = parse_line(s, text, 0, end, r->line, row);
        if (!rc)
            y[row] = b->class_of[y[row]], row++;
    }
    s->y = NULL;
    s->row_ptr = NULL;
    s->col = one_col;
    s->val = one_val;
    s->nnz_cap = one_cap;
    if (!rc && (row < n || row_ptr[n] != row_ptr[0] + b->block_nnz[k]))
        rc = got < 0 ? -1
                     : (tg_error("%s: the file changed since it was first read: block %lld (from line %lld) holds "
                                 "%lld of its %lld rows and %lld of its %lld values",
                                 s->path, (long long)k, (long long)b->index.lines_before[k] + 1, (long long)row,
                                 (long long)n, (long long)(row_ptr[row] - row_ptr[0]), (long long)b->block_nnz[k]),
                        -1);
    return rc;
}

static int blocks_unchanged(void *impl)
{
    libsvm_blocks *b = impl;
    return tg_block_index_unchanged(&b->index, &b->reader);
}

int tg_libsvm_block_source(const char *path, const tg_libsvm_opts *opts, int64_t block_rows, tg_block_source *out)
{
    tg_libsvm_opts defaults = TG_LIBSVM_OPTS_DEFAULT;
    *out = (tg_block_source){ 0 };
    if (!path)
        return tg_error("libsvm: path is NULL"), -1;
    if (block_rows <= 0)
        return tg_error("%s: block_rows is %lld, expected at least 1", path, (long long)block_rows), -1;
    if (check_opts(path, opts ? opts : &defaults))
        return -1;
    libsvm_blocks *b = tg_alloc_zeroed(sizeof *b);
    if (!b)
        return -1;
    b->opts = opts ? *opts : defaults;
    b->s = (libsvm_load){ .path = path, .opts = &b->opts };
    b->block_rows = block_rows;
    b->hash = 0xcbf29ce484222325u; /* FNV-1a */
    if ((b->opts.label_names && add_given_names(&b->s, &b->opts)) ||
        tg_line_reader_open(&b->reader, path, "a libsvm file") || tg_block_index_stamp(&b->index, &b->reader) ||
        blocks_index(b) || blocks_classes(b)) {
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
                              .block_nnz = b->block_nnz,
                              .rows_of_length = b->rows_of_length,
                              .stored = b->stored,
                              .longest_row = b->longest,
                              .read_sparse = blocks_read_sparse,
                              .unchanged = blocks_unchanged,
                              .close = blocks_close };
    return 0;
}
