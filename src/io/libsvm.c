/* The libsvm / svmlight text format: `label index:value ...` a line, indices
 * 1-based and strictly increasing, `#` to the end of a line a comment. The
 * file is read into one buffer; a first pass counts rows and tokens so the
 * CSR arrays are allocated once (and shrunk if pairs were dropped); the second
 * splits each line in place. Values go through the CSV loader's number
 * grammar, so they never depend on the process's locale. */
#include "io/io_internal.h"

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
        int64_t line = 1;
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
    s->y = tg_alloc((size_t)s->rows * sizeof(int64_t));
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

/* Splits line [a, b) in place into its label and pairs (row `row`). */
static int parse_line(libsvm_load *s, size_t a, size_t b, int64_t line, int64_t row)
{
    char *text = s->text;
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
static tg_dataset *finish(libsvm_load *s)
{
    int64_t features = s->opts->features > 0 ? s->opts->features : s->max_index;
    if (features == 0)
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

tg_dataset *tg_libsvm_load(const char *path, const tg_libsvm_opts *opts)
{
    tg_libsvm_opts defaults = TG_LIBSVM_OPTS_DEFAULT;
    libsvm_load s = { .path = path, .opts = opts ? opts : &defaults };
    tg_dataset *ds = NULL;
    if (!path)
        return tg_error("libsvm: path is NULL");
    if (check_opts(path, s.opts))
        return NULL;
    if (s.opts->label_names && add_given_names(&s, s.opts))
        goto done;
    if (!(s.text = tg_read_file(path, "a libsvm file", 0, &s.len)))
        goto done;
    size_t pos = s.len >= 3 && memcmp(s.text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0; /* a UTF-8 byte order mark */
    int64_t pairs;
    if (count_rows(&s, pos, &pairs))
        goto done;
    if (s.rows == 0) {
        tg_error("%s: the file is empty (no line with a label)", path);
        goto done;
    }
    if (set_up(&s, pairs))
        goto done;
    size_t a, b;
    int64_t line = 0, row = 0;
    while (next_line(s.text, s.len, &pos, &a, &b)) {
        line++;
        if (count_tokens(s.text, a, b) == 0)
            continue;
        if (parse_line(&s, a, b, line, row++))
            goto done;
    }
    ds = finish(&s);
done:
    load_free(&s);
    return ds;
}
