/* The loader calls behind the fuzz targets and the regression test. Each input
 * goes to the loaders through files in a per-process scratch folder (the
 * loaders take paths); whatever a loader returns is checked against what the
 * header promises and freed, so a leak is the library's. This is test code:
 * it may print and abort, the library may not. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include "fuzz_inputs.h"

#include <tapegrad.h>

#include <cjson/cJSON.h>
#include <jansson.h>

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- the scratch folder ---- */

enum {
    CONFIG_FILE,
    CSV_FILE,
    IMAGES_FILE,
    LABELS_FILE,
    IMAGES_GZ_FILE,
    LABELS_GZ_FILE,
    MODEL_FILE,
    RESAVED_FILE,
    LIBSVM_FILE,
    N_FILES
};
static const char *const file_names[N_FILES] = { "config.json", "data.csv", "images.idx", "labels.idx", "images.gz",
                                                 "labels.gz",   "model.st", "resaved.st", "data.svm" };

static char scratch_dir[512];
static const char *input_name;
static char scratch_paths[N_FILES][600];

static void harness_fail(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

/* The harness itself could not run (a temporary file could not be written). */
static void harness_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz harness%s%s: ", input_name ? ": " : "", input_name ? input_name : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* A loader accepted an input and returned something its documentation rules out. */
#define violated(...) harness_fail("accepted but wrong: " __VA_ARGS__)

void fuzz_name_input(const char *name) { input_name = name; }

void fuzz_scratch_open(void)
{
    if (scratch_dir[0])
        return;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0])
        tmp = "/tmp";
    snprintf(scratch_dir, sizeof scratch_dir, "%s/tapegrad-fuzz-XXXXXX", tmp);
    if (!mkdtemp(scratch_dir))
        harness_fail("cannot make a scratch folder %s", scratch_dir);
    for (int i = 0; i < N_FILES; i++)
        snprintf(scratch_paths[i], sizeof scratch_paths[i], "%s/%s", scratch_dir, file_names[i]);
}

void fuzz_scratch_close(void)
{
    if (!scratch_dir[0])
        return;
    for (int i = 0; i < N_FILES; i++)
        unlink(scratch_paths[i]);
    rmdir(scratch_dir);
    scratch_dir[0] = '\0';
}

static const char *scratch(int file)
{
    fuzz_scratch_open();
    return scratch_paths[file];
}

/* A new file each time: rewriting one in place makes ext4 flush it on close
 * (its replace-by-truncate heuristic), which costs more than the loader. */
static void write_file(int file, const uint8_t *data, size_t size)
{
    const char *path = scratch(file);
    unlink(path);
    FILE *f = fopen(path, "wb");
    if (!f)
        harness_fail("cannot create %s", path);
    bool ok = fwrite(data, 1, size, f) == size;
    if (fclose(f) != 0 || !ok)
        harness_fail("cannot write %s", path);
}

static void write_gzip_file(int file, const uint8_t *data, size_t size)
{
    const char *path = scratch(file);
    unlink(path);
    gzFile f = gzopen(path, "wb");
    if (!f)
        harness_fail("cannot create %s", path);
    bool ok = size == 0 || gzwrite(f, data, (unsigned)size) == (int)size;
    if (gzclose(f) != Z_OK || !ok)
        harness_fail("cannot write %s", path);
}

/* ---- bookkeeping ---- */

static void start_call(void) { tg_clear_error(); }

static void end_call(fuzz_outcome *o, bool accepted)
{
    o->calls++;
    if (accepted)
        o->accepted++;
    else if (!tg_last_error()[0])
        o->silent++;
}

/* Where touch leaves its sum, so the compiler keeps the reads. */
static volatile unsigned touched;

/* Reads every byte of a block so AddressSanitizer sees a short allocation. */
static void touch(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += b[i];
    touched = sum;
}

static void check_strings(const char *what, char *const *names, int64_t n)
{
    if (n > 0 && !names)
        violated("%s is NULL for %lld entries", what, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        if (!names[i])
            violated("%s[%lld] is NULL", what, (long long)i);
        touch(names[i], strlen(names[i]) + 1);
    }
}

/* ---- JSON judged by an independent parser ----
 *
 * The oracle is Jansson (Debian's libjansson), not a second copy of our own
 * strict reader: a copy would share its bugs. Jansson reads RFC 8259 strictly
 * (no trailing bytes, no leading zeros, no raw control characters), refuses a
 * repeated key with JSON_REJECT_DUPLICATES and \u0000 unless asked, and tells
 * integers from reals, which is what the safetensors reference (serde_json)
 * requires of shape and data_offsets. Where Jansson cannot judge (an integer
 * beyond 2^63, which serde's u64 still reads; "-0", which it reads as 0), the
 * rule is left to the regression tests. */

typedef enum {
    JSON_OK,
    JSON_SYNTAX,
    JSON_DUPLICATE_KEY,
    JSON_NOT_UNSIGNED,
    JSON_NUL_IN_STRING,
    JSON_UNJUDGED
} json_fault;

static json_fault jansson_fault(const json_error_t *err)
{
    switch (json_error_code(err)) {
    case json_error_duplicate_key: return JSON_DUPLICATE_KEY;
    case json_error_null_character:
    case json_error_null_byte_in_key: return JSON_NUL_IN_STRING;
    case json_error_numeric_overflow: return JSON_UNJUDGED;
    default: return JSON_SYNTAX;
    }
}

/* A checkpoint header's tensor entries hold shape and data_offsets: arrays of unsigned integers. */
static json_fault check_unsigned_arrays(json_t *root)
{
    const char *name;
    json_t *entry;
    json_object_foreach(root, name, entry)
    {
        if (strcmp(name, "__metadata__") == 0 || !json_is_object(entry))
            continue;
        static const char *const fields[] = { "shape", "data_offsets" };
        for (int f = 0; f < 2; f++) {
            json_t *array = json_object_get(entry, fields[f]), *v;
            size_t i;
            if (!json_is_array(array))
                continue;
            json_array_foreach(array, i, v)
            {
                if (!json_is_integer(v) || json_integer_value(v) < 0)
                    return JSON_NOT_UNSIGNED;
            }
        }
    }
    return JSON_OK;
}

/* JSON_OK when text[0..n) is one JSON object and only white space after it; a
 * checkpoint header also has no \u0000 and unsigned shapes and offsets. */
static json_fault read_json_object(const char *text, size_t n, bool checkpoint, size_t *fault_at)
{
    json_error_t err;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES | (checkpoint ? 0 : JSON_ALLOW_NUL), &err);
    *fault_at = 0;
    if (!root) {
        *fault_at = (size_t)err.position;
        return jansson_fault(&err);
    }
    json_fault fault = !json_is_object(root) ? JSON_SYNTAX : checkpoint ? check_unsigned_arrays(root) : JSON_OK;
    json_decref(root);
    return fault;
}

static const char *json_fault_name(json_fault fault)
{
    switch (fault) {
    case JSON_OK: break;
    case JSON_SYNTAX: return "invalid JSON (RFC 8259, as serde_json reads it)";
    case JSON_DUPLICATE_KEY: return "a duplicate key";
    case JSON_NOT_UNSIGNED: return "a number that is not an unsigned integer (shape or data_offsets)";
    case JSON_NUL_IN_STRING: return "a \\u0000 in a string, which a C string cannot hold";
    case JSON_UNJUDGED: return "an integer beyond what the oracle reads";
    }
    return "no fault";
}

/* ---- configs ---- */

static void check_config(tg_config *cfg)
{
    if (!cfg->json || !cfg->data.format || !cfg->data.train)
        violated("config: json, data.format or data.train is NULL");
    bool idx = strcmp(cfg->data.format, "idx") == 0;
    if (!idx && strcmp(cfg->data.format, "csv") != 0)
        violated("config: data.format is \"%s\"", cfg->data.format);
    if (idx && !cfg->data.train_labels)
        violated("config: idx without data.train_labels");
    touch(cfg->data.train, strlen(cfg->data.train));
    if (cfg->data.columns)
        touch(cfg->data.columns, (size_t)cfg->data.n_columns * sizeof *cfg->data.columns);
    int n = cfg->model.n_layers;
    if (n < 1 || !cfg->model.layers)
        violated("config: %d layers", n);
    for (int i = 0; i < n; i++)
        if (cfg->model.layers[i].type == TG_LAYER_LINEAR && cfg->model.layers[i].out < 1)
            violated("config: model.layers[%d].out is %lld", i, (long long)cfg->model.layers[i].out);
    if (cfg->model.layers[n - 1].type != TG_LAYER_LINEAR)
        violated("config: the last layer is not linear");
    if (cfg->loss.class_weights && cfg->loss.n_class_weights != cfg->model.layers[n - 1].out)
        violated("config: %lld class weights for %lld classes", (long long)cfg->loss.n_class_weights,
                 (long long)cfg->model.layers[n - 1].out);
    if (!(cfg->optimizer.lr > 0) || !isfinite(cfg->optimizer.lr))
        violated("config: optimizer.lr is %g", cfg->optimizer.lr);
    if (cfg->train.epochs < 1 || cfg->train.batch_size < 1)
        violated("config: epochs %d, batch_size %lld", cfg->train.epochs, (long long)cfg->train.batch_size);
    for (int epoch = 0; epoch < 3; epoch++)
        (void)tg_config_lr_at(cfg, epoch);
    /* Duplicate keys are refused at every level. cJSON reads a little more than
     * RFC 8259 (leading zeros, "1.", raw tabs in strings): where the text is
     * not strict JSON, the rule cannot be judged here. */
    size_t at;
    if (read_json_object(cfg->json, strlen(cfg->json), false, &at) == JSON_DUPLICATE_KEY)
        violated("config: a duplicate key at byte %zu", at);
}

fuzz_outcome fuzz_config(const uint8_t *data, size_t size)
{
    fuzz_outcome o = { 0 };
    char *text = malloc(size + 1);
    if (!text)
        harness_fail("out of memory copying %zu bytes", size);
    memcpy(text, data, size);
    text[size] = '\0';
    start_call();
    tg_config *cfg = tg_config_parse(text, "base");
    end_call(&o, cfg != NULL);
    if (cfg)
        check_config(cfg);
    tg_config_free(cfg);
    free(text);

    write_file(CONFIG_FILE, data, size);
    start_call();
    cfg = tg_config_load(scratch(CONFIG_FILE));
    end_call(&o, cfg != NULL);
    if (cfg)
        check_config(cfg);
    tg_config_free(cfg);
    return o;
}

/* ---- data sets (CSV and IDX) ---- */

/* labeled: whether the data set has a label column (classes >= 1); max_x: the
 * largest feature value possible (INFINITY: any finite value). */
static void check_dataset(const char *loader, const tg_dataset *ds, bool labeled, float max_x)
{
    if (ds->rows < 1 || ds->features < 1 || !ds->x || !ds->y)
        violated("%s: %lld rows of %lld features, x %p, y %p", loader, (long long)ds->rows, (long long)ds->features,
                 (void *)ds->x, (void *)ds->y);
    for (int64_t i = 0; i < ds->rows * ds->features; i++)
        if (!isfinite(ds->x[i]) || !(fabsf(ds->x[i]) <= max_x))
            violated("%s: x[%lld] is %g", loader, (long long)i, (double)ds->x[i]);
    if (labeled ? ds->classes < 1 : ds->classes != 0)
        violated("%s: %lld classes", loader, (long long)ds->classes);
    for (int64_t r = 0; r < ds->rows; r++)
        if (ds->y[r] < 0 || (labeled ? ds->y[r] >= ds->classes : ds->y[r] != 0))
            violated("%s: y[%lld] is %lld with %lld classes", loader, (long long)r, (long long)ds->y[r],
                     (long long)ds->classes);
    check_strings("label_names", ds->label_names, ds->classes);
    if (ds->feature_names)
        check_strings("feature_names", ds->feature_names, ds->features);
}

static void load_csv(fuzz_outcome *o, const tg_csv_opts *opts, int64_t given_classes)
{
    start_call();
    tg_dataset *ds = tg_csv_load(scratch(CSV_FILE), opts);
    end_call(o, ds != NULL);
    if (ds) {
        check_dataset("csv", ds, opts->unlabeled != 1, INFINITY);
        if (given_classes && ds->classes != given_classes)
            violated("csv: %lld classes with %lld label names given", (long long)ds->classes, (long long)given_classes);
    }
    tg_dataset_free(ds);
}

fuzz_outcome fuzz_csv(const uint8_t *data, size_t size)
{
    static char *const given[] = { "a", "b", "c" };
    static const int64_t columns[] = { 0, -1 };
    const tg_csv_opts defaults = TG_CSV_OPTS_DEFAULT;
    enum { VARIANTS = 6 };
    tg_csv_opts variants[VARIANTS] = { defaults, defaults, defaults, defaults, defaults, defaults };
    variants[1].label_column = 0;
    variants[1].header = 0;
    variants[2].label_name = "label";
    variants[3].label_names = given;
    variants[3].n_label_names = 3;
    variants[4].delimiter = '\t';
    variants[4].header = 1;
    variants[4].label_column = 1;
    variants[4].columns = columns;
    variants[4].n_columns = 2;
    variants[5].delimiter = ';';
    variants[5].unlabeled = 1;
    fuzz_outcome o = { 0 };
    write_file(CSV_FILE, data, size);
    for (int i = 0; i < VARIANTS; i++)
        load_csv(&o, &variants[i], variants[i].n_label_names);
    return o;
}

/* ---- libsvm ---- */

/* A sparse data set as the header promises: row_ptr from 0 to nnz, non-decreasing; columns in [0, features),
 * strictly increasing within a row (and below limit when a feature count was given); finite values; labels
 * in range. Then the dataset functions that take sparse data run on it: a subset, moments and standardization
 * (the values stay finite), and a gather into a CSR batch. */
static void check_sparse(const tg_dataset *ds, int64_t limit)
{
    if (ds->x || !ds->row_ptr || !ds->col || !ds->val || ds->rows < 1 || ds->features < 1 || ds->nnz < 0)
        violated("libsvm: x %p, row_ptr %p, col %p, val %p, %lld rows, %lld features, nnz %lld", (void *)ds->x,
                 (void *)ds->row_ptr, (void *)ds->col, (void *)ds->val, (long long)ds->rows, (long long)ds->features,
                 (long long)ds->nnz);
    if (limit && ds->features != limit)
        violated("libsvm: %lld features with features %lld given", (long long)ds->features, (long long)limit);
    if (ds->row_ptr[0] != 0 || ds->row_ptr[ds->rows] != ds->nnz)
        violated("libsvm: row_ptr runs from %lld to %lld, nnz %lld", (long long)ds->row_ptr[0],
                 (long long)ds->row_ptr[ds->rows], (long long)ds->nnz);
    for (int64_t r = 0; r < ds->rows; r++) {
        if (ds->row_ptr[r + 1] < ds->row_ptr[r])
            violated("libsvm: row_ptr decreases at row %lld", (long long)r);
        for (int64_t k = ds->row_ptr[r]; k < ds->row_ptr[r + 1]; k++) {
            if (ds->col[k] < 0 || ds->col[k] >= ds->features || (k > ds->row_ptr[r] && ds->col[k] <= ds->col[k - 1]))
                violated("libsvm: col[%lld] is %d (row %lld, %lld features)", (long long)k, ds->col[k], (long long)r,
                         (long long)ds->features);
            if (!isfinite(ds->val[k]))
                violated("libsvm: val[%lld] is %g", (long long)k, (double)ds->val[k]);
        }
        if (ds->classes < 1 || ds->y[r] < 0 || ds->y[r] >= ds->classes)
            violated("libsvm: y[%lld] is %lld with %lld classes", (long long)r, (long long)ds->y[r],
                     (long long)ds->classes);
    }
    check_strings("label_names", ds->label_names, ds->classes);
}

/* The dataset functions on an accepted sparse data set (features kept small enough for [features] scratch). */
static void exercise_sparse(const tg_dataset *ds)
{
    int64_t rows[2] = { ds->rows - 1, 0 };
    tg_dataset *sub = tg_dataset_subset(ds, rows, 2);
    if (!sub)
        harness_fail("dataset_subset of an accepted libsvm file: %s", tg_last_error());
    check_sparse(sub, 0);
    if (ds->features <= 4096) {
        float mean[4096], std[4096];
        if (tg_dataset_moments(sub, mean, std))
            harness_fail("dataset_moments: %s", tg_last_error());
        tg_dataset_standardize(sub, mean, std);
        check_sparse(sub, 0);
    }
    tg_sparse_csr *batch = tg_sparse_csr_new(TG_F32, 0, 0, 0, NULL, NULL, NULL);
    if (!batch || tg_sparse_csr_gather(batch, ds, rows, 0, 2) || tg_sparse_csr_rows(batch) != 2 ||
        tg_sparse_csr_nnz(batch) != sub->nnz)
        harness_fail("sparse_csr_gather of an accepted libsvm file: %s", tg_last_error());
    tg_sparse_csr_free(batch);
    tg_dataset_free(sub);
}

static void load_libsvm(fuzz_outcome *o, const tg_libsvm_opts *opts)
{
    start_call();
    tg_dataset *ds = tg_libsvm_load(scratch(LIBSVM_FILE), opts);
    end_call(o, ds != NULL);
    if (ds) {
        check_sparse(ds, opts->features);
        if (opts->label_names && ds->classes != opts->n_label_names)
            violated("libsvm: %lld classes with %lld label names given", (long long)ds->classes,
                     (long long)opts->n_label_names);
        exercise_sparse(ds);
    }
    tg_dataset_free(ds);
}

fuzz_outcome fuzz_libsvm(const uint8_t *data, size_t size)
{
    static char *const given[] = { "+1", "-1", "0", "1", "2" };
    enum { VARIANTS = 4 };
    tg_libsvm_opts variants[VARIANTS] = { TG_LIBSVM_OPTS_DEFAULT, TG_LIBSVM_OPTS_DEFAULT, TG_LIBSVM_OPTS_DEFAULT,
                                          TG_LIBSVM_OPTS_DEFAULT };
    variants[1].features = 8;
    variants[2].features = 8;
    variants[2].skip_unknown_features = 1;
    variants[3].label_names = given;
    variants[3].n_label_names = 5;
    fuzz_outcome o = { 0 };
    write_file(LIBSVM_FILE, data, size);
    for (int i = 0; i < VARIANTS; i++)
        load_libsvm(&o, &variants[i]);
    return o;
}

static uint32_t big_endian(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* An IDX pair as its bytes define it, judged without the loader. */
typedef struct {
    bool valid;
    uint64_t count, features;
    const uint8_t *labels, *pixels;
} idx_pair;

static idx_pair judge_idx(const uint8_t *labels, size_t labels_len, const uint8_t *images, size_t images_len)
{
    idx_pair pair = { .valid = false };
    if (labels_len < 8 || images_len < 16 || big_endian(labels) != 0x801 || big_endian(images) != 0x803)
        return pair;
    uint64_t count = big_endian(labels + 4), rows = big_endian(images + 8), cols = big_endian(images + 12);
    uint64_t payload = images_len - 16;
    if (big_endian(images + 4) != count || labels_len - 8 != count || count == 0 || payload % count != 0 ||
        payload / count != rows * cols || payload == 0 || payload > (uint64_t)1 << 31)
        return pair;
    return (idx_pair){ true, count, rows * cols, labels + 8, images + 16 };
}

static bool starts_gzip(const uint8_t *b, size_t n) { return n >= 2 && b[0] == 0x1f && b[1] == 0x8b; }

/* expected: what the files hold, or NULL when zlib would read them as gzip. */
static void load_idx(fuzz_outcome *o, int images, int labels, const idx_pair *expected)
{
    start_call();
    tg_dataset *ds = tg_idx_load(scratch(images), scratch(labels), 1.0 / 255.0);
    end_call(o, ds != NULL);
    if (expected && expected->valid != (ds != NULL))
        violated("idx: %s a pair that is %s", ds ? "accepted" : "refused", expected->valid ? "valid" : "invalid");
    if (ds) {
        check_dataset("idx", ds, true, 1.0f);
        if (ds->feature_names)
            violated("idx: feature names");
    }
    if (ds && expected) {
        if ((uint64_t)ds->rows != expected->count || (uint64_t)ds->features != expected->features)
            violated("idx: %lld rows of %lld pixels, the files hold %llu of %llu", (long long)ds->rows,
                     (long long)ds->features, (unsigned long long)expected->count,
                     (unsigned long long)expected->features);
        int64_t max_label = 0;
        for (int64_t r = 0; r < ds->rows; r++) {
            if (ds->y[r] != expected->labels[r])
                violated("idx: y[%lld] is %lld, the file says %d", (long long)r, (long long)ds->y[r],
                         expected->labels[r]);
            max_label = ds->y[r] > max_label ? ds->y[r] : max_label;
        }
        if (ds->classes != max_label + 1)
            violated("idx: %lld classes for labels up to %lld", (long long)ds->classes, (long long)max_label);
        for (int64_t c = 0; c < ds->classes; c++) {
            char digits[24];
            snprintf(digits, sizeof digits, "%lld", (long long)c);
            if (strcmp(ds->label_names[c], digits) != 0)
                violated("idx: class %lld is named '%s'", (long long)c, ds->label_names[c]);
        }
        for (int64_t i = 0; i < ds->rows * ds->features; i++)
            if (ds->x[i] != (float)(expected->pixels[i] * (1.0 / 255.0)))
                violated("idx: x[%lld] is %g for pixel %d", (long long)i, (double)ds->x[i], expected->pixels[i]);
    }
    tg_dataset_free(ds);
}

fuzz_outcome fuzz_idx(const uint8_t *data, size_t size)
{
    fuzz_outcome o = { 0 };
    size_t rest = size ? size - 1 : 0, labels_len = size ? data[0] : 0;
    const uint8_t *labels = size ? data + 1 : data;
    if (labels_len > rest)
        labels_len = rest;
    const uint8_t *images = labels + labels_len;
    size_t images_len = rest - labels_len;
    /* Both loads must agree with the bytes: the gzipped files hold exactly
     * them, and so do the raw ones unless zlib sees a gzip stream there. */
    idx_pair expected = judge_idx(labels, labels_len, images, images_len);
    bool raw_is_gzip = starts_gzip(labels, labels_len) || starts_gzip(images, images_len);
    write_file(LABELS_FILE, labels, labels_len);
    write_file(IMAGES_FILE, images, images_len);
    load_idx(&o, IMAGES_FILE, LABELS_FILE, raw_is_gzip ? NULL : &expected);
    write_gzip_file(LABELS_GZ_FILE, labels, labels_len);
    write_gzip_file(IMAGES_GZ_FILE, images, images_len);
    load_idx(&o, IMAGES_GZ_FILE, LABELS_GZ_FILE, &expected);
    return o;
}

/* ---- checkpoints ---- */

static void check_model(tg_model *m)
{
    int64_t inputs = tg_model_inputs(m), classes = tg_model_classes(m);
    int n_layers = tg_model_n_layers(m);
    if (inputs < 1 || classes < 1 || n_layers < 1)
        violated("model: %lld inputs, %lld classes, %d layers", (long long)inputs, (long long)classes, n_layers);
    const tg_layer_spec *last = tg_model_layer(m, n_layers - 1);
    if (!last || last->type != TG_LAYER_LINEAR || last->out != classes)
        violated("model: the last layer is not linear with %lld outputs", (long long)classes);
    for (int i = 0; i < tg_model_n_params(m); i++) {
        tg_tensor *t = tg_model_param(m, i);
        const char *name = tg_model_param_name(m, i);
        if (!t || !name)
            violated("model: parameter %d or its name is NULL", i);
        touch(tg_data(t), (size_t)tg_numel(t) * tg_dtype_size(tg_dtype_of(t)));
    }
    for (int64_t c = 0; c < classes; c++) {
        const char *label = tg_model_label(m, c);
        if (label)
            touch(label, strlen(label) + 1);
    }
    const float *mean = tg_model_mean(m), *std = tg_model_std(m);
    if (!mean != !std)
        violated("model: standardization mean without std or the reverse");
    if (mean) {
        touch(mean, (size_t)inputs * sizeof *mean);
        touch(std, (size_t)inputs * sizeof *std);
    }
    const char *config = tg_model_config_json(m);
    if (config)
        touch(config, strlen(config) + 1);

    /* A loaded model runs: one row of zeros gives [1, classes] logits. */
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_new(tg_model_dtype(m), 2, (const int64_t[]){ 1, inputs });
    if (!tape || !x)
        harness_fail("out of memory for a forward pass");
    tg_tensor *logits = tg_model_forward(m, tape, x);
    if (!logits || tg_ndim(logits) != 2 || tg_dim(logits, 0) != 1 || tg_dim(logits, 1) != classes)
        violated("model: the forward pass failed: %s", tg_last_error());
    tg_tensor_free(x);
    tg_tape_free(tape);
}

static bool same_text(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static bool same_floats(const float *a, const float *b, int64_t n)
{
    return (!a && !b) || (a && b && memcmp(a, b, (size_t)n * sizeof *a) == 0);
}

/* What was loaded saves, and loads back the same: no checkpoint the loader
 * accepts is one the library cannot write again. */
static void check_round_trip(const tg_model *m)
{
    const char *path = scratch(RESAVED_FILE);
    if (tg_model_save(m, path) != 0)
        violated("model: saving the loaded model failed: %s", tg_last_error());
    tg_model *again = tg_model_load(path);
    if (!again)
        violated("model: the loaded model, saved again, is refused: %s", tg_last_error());
    int64_t inputs = tg_model_inputs(m), classes = tg_model_classes(m);
    if (tg_model_inputs(again) != inputs || tg_model_classes(again) != classes ||
        tg_model_dtype(again) != tg_model_dtype(m) || tg_model_n_layers(again) != tg_model_n_layers(m) ||
        tg_model_n_params(again) != tg_model_n_params(m))
        violated("model: saved and loaded again, its shape changed");
    for (int i = 0; i < tg_model_n_layers(m); i++) {
        const tg_layer_spec *a = tg_model_layer(m, i), *b = tg_model_layer(again, i);
        if (a->type != b->type || (a->type == TG_LAYER_LINEAR && (a->out != b->out || a->bias != b->bias)))
            violated("model: saved and loaded again, layer %d changed", i);
    }
    for (int i = 0; i < tg_model_n_params(m); i++) {
        const tg_tensor *a = tg_model_param_const(m, i), *b = tg_model_param_const(again, i);
        if (strcmp(tg_model_param_name(m, i), tg_model_param_name(again, i)) != 0 || tg_ndim(a) != tg_ndim(b) ||
            memcmp(tg_shape(a), tg_shape(b), (size_t)tg_ndim(a) * sizeof(int64_t)) != 0 ||
            memcmp(tg_data(a), tg_data(b), (size_t)tg_numel(a) * tg_dtype_size(tg_dtype_of(a))) != 0)
            violated("model: saved and loaded again, parameter %s changed", tg_model_param_name(m, i));
    }
    for (int64_t c = 0; c < classes; c++)
        if (!same_text(tg_model_label(m, c), tg_model_label(again, c)))
            violated("model: saved and loaded again, label %lld changed", (long long)c);
    if (!same_floats(tg_model_mean(m), tg_model_mean(again), inputs) ||
        !same_floats(tg_model_std(m), tg_model_std(again), inputs))
        violated("model: saved and loaded again, its standardization changed");
    if (!same_text(tg_model_config_json(m), tg_model_config_json(again)))
        violated("model: saved and loaded again, its config text changed");
    tg_model_free(again);
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 4;
        if (extra == 4 || extra >= n - i)
            return false;
        uint32_t cp = extra == 0 ? c : c & (0x3F >> extra);
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t smallest[4] = { 0, 0x80, 0x800, 0x10000 };
        if (cp < smallest[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += extra + 1;
    }
    return true;
}

typedef struct {
    int64_t begin, end;
} byte_range;

static int by_begin(const void *a, const void *b)
{
    const byte_range *x = a, *y = b;
    return x->begin != y->begin ? (x->begin > y->begin) - (x->begin < y->begin) : (x->end > y->end) - (x->end < y->end);
}

/* An accepted checkpoint keeps every rule of the reference reader
 * (safetensors/src/tensor.rs), checked here from the bytes: the header length
 * below 100,000,000 and inside the file, UTF-8, one JSON object with no
 * repeated key (the rule on top of the reference's), shape and
 * data_offsets unsigned integers, each tensor's bytes numel x dtype size, and
 * the tensors tiling the data from 0 to the file's end. */
static void check_checkpoint_rules(const uint8_t *data, size_t size)
{
    if (size < 8)
        violated("checkpoint: %zu bytes, no room for the header length", size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)data[i] << (8 * i);
    if (n >= 100000000 || n > size - 8)
        violated("checkpoint: header length %llu in a %zu-byte file", (unsigned long long)n, size);
    const char *header = (const char *)data + 8;
    if (!utf8_valid((const unsigned char *)header, (size_t)n))
        violated("checkpoint: the header is not UTF-8");
    size_t at;
    json_fault fault = read_json_object(header, (size_t)n, true, &at);
    if (fault != JSON_OK && fault != JSON_UNJUDGED)
        violated("checkpoint: the header has %s at byte %zu: %.*s", json_fault_name(fault), at + 8,
                 (int)((size_t)n - at < 40 ? (size_t)n - at : 40), header + at);

    cJSON *root = cJSON_ParseWithLength(header, (size_t)n);
    if (!root)
        harness_fail("cJSON cannot read a header that is strict JSON");
    byte_range *ranges = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *ranges);
    int count = 0;
    if (!ranges)
        harness_fail("out of memory");
    for (const cJSON *t = root->child; t; t = t->next) {
        if (strcmp(t->string, "__metadata__") == 0)
            continue;
        const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(t, "dtype");
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
        const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        int64_t item = !cJSON_IsString(dtype)                   ? 0
                       : strcmp(dtype->valuestring, "F32") == 0 ? 4
                       : strcmp(dtype->valuestring, "F64") == 0 ? 8
                                                                : 0;
        if (!item || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
            violated("checkpoint: tensor '%s' lacks a float dtype, a shape or two data_offsets", t->string);
        double bytes = (double)item; /* exact below 2^53, and far past any file here above it */
        for (const cJSON *d = shape->child; d; d = d->next)
            bytes *= d->valuedouble;
        double begin = offsets->child->valuedouble, end = offsets->child->next->valuedouble;
        if (!(begin >= 0 && end <= 9007199254740992.0))
            violated("checkpoint: tensor '%s' has data_offsets [%g, %g]", t->string, begin, end);
        byte_range range = { (int64_t)begin, (int64_t)end };
        if (range.end < range.begin || (double)(range.end - range.begin) != bytes)
            violated("checkpoint: tensor '%s' spans [%lld, %lld] for %.17g bytes", t->string, (long long)range.begin,
                     (long long)range.end, bytes);
        ranges[count++] = range;
    }
    qsort(ranges, (size_t)count, sizeof *ranges, by_begin);
    int64_t end = 0;
    for (int i = 0; i < count; i++) {
        if (ranges[i].begin != end)
            violated("checkpoint: a tensor begins at %lld where the one before ends at %lld",
                     (long long)ranges[i].begin, (long long)end);
        end = ranges[i].end;
    }
    if ((uint64_t)end != size - 8 - n)
        violated("checkpoint: the tensors end at %lld, the data has %llu bytes", (long long)end,
                 (unsigned long long)(size - 8 - n));
    free(ranges);
    cJSON_Delete(root);
}

fuzz_outcome fuzz_safetensors(const uint8_t *data, size_t size)
{
    fuzz_outcome o = { 0 };
    write_file(MODEL_FILE, data, size);
    start_call();
    tg_model *m = tg_model_load(scratch(MODEL_FILE));
    end_call(&o, m != NULL);
    if (m) {
        check_checkpoint_rules(data, size);
        check_model(m);
        check_round_trip(m);
    }
    tg_model_free(m);
    return o;
}
