/* Reading checkpoints: every length, offset and shape checked against the
 * file before anything is allocated or copied; the header read as strictly as
 * the reference reader; the model rebuilt from __metadata__. */
#define _XOPEN_SOURCE 700 /* mkstemp, fsync, fdopen, fseeko, realpath, XSI strerror_r */
#define _FILE_OFFSET_BITS 64

#include "io/safetensors.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ======================================================================== */
/* Reading                                                                   */
/* ======================================================================== */

typedef struct {
    const char *name; /* points into the parsed JSON */
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t begin, end;
} entry;

static int by_name(const void *a, const void *b) { return strcmp(((const entry *)a)->name, ((const entry *)b)->name); }
static int by_offset(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* A JSON number that is an integer in [0, 2^53]. */
static bool json_count(const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= MAX_JSON_INTEGER) || v != floor(v))
        return false;
    *out = (int64_t)v;
    return true;
}

static const char *json_type_name(const cJSON *item)
{
    if (!item)
        return "missing";
    if (cJSON_IsString(item))
        return "a string";
    if (cJSON_IsNumber(item))
        return "a number";
    if (cJSON_IsArray(item))
        return "an array";
    if (cJSON_IsObject(item))
        return "an object";
    if (cJSON_IsBool(item))
        return "a boolean";
    return "null";
}

/* Checks one tensor entry of the header and fills e. */
static int parse_entry(const char *path, const cJSON *item, entry *e)
{
    char s[TG_SHAPE_BUF];
    e->name = item->string;
    if (!cJSON_IsObject(item))
        return tg_error("%s: tensor '%s' is %s, expected an object with dtype, shape and data_offsets", path, e->name,
                        json_type_name(item)),
               -1;
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype))
        return tg_error("%s: tensor '%s' dtype is %s, expected a string", path, e->name, json_type_name(dtype)), -1;
    if (strcmp(dtype->valuestring, "F32") == 0)
        e->dtype = TG_F32;
    else if (strcmp(dtype->valuestring, "F64") == 0)
        e->dtype = TG_F64;
    else if (strcmp(dtype->valuestring, "I64") == 0 && tg_st_is_training_name(e->name))
        e->dtype = TG_I64; /* a training checkpoint's row order and step counts */
    else
        return tg_error("%s: tensor '%s' has dtype '%.40s', expected F32 or F64", path, e->name, dtype->valuestring),
               -1;
    if (!cJSON_IsArray(shape))
        return tg_error("%s: tensor '%s' shape is %s, expected an array", path, e->name, json_type_name(shape)), -1;
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > TG_MAX_DIMS)
        return tg_error("%s: tensor '%s' has %d dimensions, at most %d supported", path, e->name, ndim, TG_MAX_DIMS),
               -1;
    e->ndim = 0;
    int64_t numel = 1;
    bool overflow = false;
    for (const cJSON *dim = shape->child; dim; dim = dim->next) {
        int64_t n;
        if (!json_count(dim, &n))
            return tg_error("%s: tensor '%s' shape entry %d is not a non-negative integer", path, e->name, e->ndim), -1;
        e->shape[e->ndim++] = n;
        if (n && numel > INT64_MAX / n)
            overflow = true;
        else
            numel *= n;
    }
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 || !json_count(offsets->child, &e->begin) ||
        !json_count(offsets->child->next, &e->end))
        return tg_error("%s: tensor '%s' data_offsets must be two non-negative integers [begin, end]", path, e->name),
               -1;
    if (e->begin > e->end)
        return tg_error("%s: tensor '%s' data_offsets [%lld, %lld] end before they begin", path, e->name,
                        (long long)e->begin, (long long)e->end),
               -1;
    int64_t size = (int64_t)tg_dtype_size(e->dtype);
    if (overflow || numel > INT64_MAX / size || numel * size != e->end - e->begin)
        return tg_error("%s: tensor '%s' data_offsets [%lld, %lld] but shape %s %s needs %s%lld bytes", path, e->name,
                        (long long)e->begin, (long long)e->end, tg_shape_str(s, sizeof s, e->ndim, e->shape),
                        tg_dtype_name(e->dtype), overflow || numel > INT64_MAX / size ? "more than " : "",
                        overflow || numel > INT64_MAX / size ? (long long)INT64_MAX : (long long)(numel * size)),
               -1;
    return 0;
}

/* Every tensor entry checked; sorted by offset they must tile the data section exactly. */
static entry *parse_entries(const char *path, const cJSON *root, uint64_t data_bytes, int *n_out,
                            const cJSON **meta_out)
{
    int n = 0, n_meta = 0;
    const cJSON *meta = NULL;
    for (const cJSON *item = root->child; item; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0)
            meta = item, n_meta++;
        else
            n++;
    }
    if (n_meta > 1)
        return tg_error("%s: key '__metadata__' appears %d times", path, n_meta);
    entry *entries = tg_alloc_zeroed((size_t)n * sizeof *entries);
    const entry **order = tg_alloc((size_t)n * sizeof *order);
    if (!entries || !order)
        goto fail;
    int i = 0;
    for (const cJSON *item = root->child; item; item = item->next)
        if (item != meta && parse_entry(path, item, &entries[i++]))
            goto fail;
    qsort(entries, (size_t)n, sizeof *entries, by_name);
    for (i = 1; i < n; i++)
        if (strcmp(entries[i - 1].name, entries[i].name) == 0) {
            tg_error("%s: tensor '%s' appears more than once", path, entries[i].name);
            goto fail;
        }
    /* The model's tensors share one dtype; a training checkpoint's extra tensors may differ. */
    const entry *first = NULL;
    for (i = 0; i < n; i++) {
        if (tg_st_is_training_name(entries[i].name))
            continue;
        if (!first)
            first = &entries[i];
        else if (entries[i].dtype != first->dtype) {
            tg_error("%s: tensor '%s' is %s but tensor '%s' is %s, expected one dtype", path, entries[i].name,
                     tg_st_safetensors_dtype(entries[i].dtype), first->name, tg_st_safetensors_dtype(first->dtype));
            goto fail;
        }
    }
    for (i = 0; i < n; i++)
        order[i] = &entries[i];
    qsort(order, (size_t)n, sizeof *order, by_offset);
    int64_t end = 0;
    const char *previous = NULL;
    for (i = 0; i < n; i++) {
        if (order[i]->begin != end) {
            if (!previous)
                tg_error("%s: tensor '%s' data_offsets begin at %lld, expected the first tensor at 0", path,
                         order[i]->name, (long long)order[i]->begin);
            else
                tg_error("%s: tensor '%s' data_offsets begin at %lld but tensor '%s' ends at %lld (%s)", path,
                         order[i]->name, (long long)order[i]->begin, previous, (long long)end,
                         order[i]->begin > end ? "a hole" : "an overlap");
            goto fail;
        }
        end = order[i]->end;
        previous = order[i]->name;
    }
    if ((uint64_t)end != data_bytes) {
        tg_error("%s: the tensors' data_offsets end at byte %lld but the file has %llu bytes of data after the header",
                 path, (long long)end, (unsigned long long)data_bytes);
        goto fail;
    }
    tg_dealloc(order);
    *n_out = n;
    *meta_out = meta;
    return entries;
fail:
    tg_dealloc(entries);
    tg_dealloc(order);
    return NULL;
}

static const char *meta_text(const cJSON *meta, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* A decimal integer, nothing else. */
static bool parse_int64_text(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    bool negative = *s == '-';
    const char *p = s + negative;
    if (!*p)
        return false;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > ((uint64_t)INT64_MAX - (uint64_t)(*p - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = negative ? -(int64_t)v : (int64_t)v;
    return true;
}

/* Parses a metadata value that holds JSON text. */
static cJSON *meta_json(const char *path, const char *key, const char *text)
{
    const char *end = NULL;
    tg_json_begin();
    cJSON *json = cJSON_ParseWithLengthOpts(text, strlen(text) + 1, &end, 1); /* + 1: the NUL it requires */
    if (!json && tg_json_out_of_memory())
        return tg_error("%s: out of memory parsing __metadata__ '%s'", path, key);
    if (!json)
        return tg_error("%s: __metadata__ '%s' is not valid JSON (at character %lld)", path, key,
                        (long long)(end ? end - text : 0));
    if (!cJSON_IsArray(json)) {
        cJSON_Delete(json);
        return tg_error("%s: __metadata__ '%s' is not a JSON array", path, key);
    }
    return json;
}

static tg_layer_spec *parse_layers(const char *path, const char *text, int *n_out)
{
    tg_layer_spec *specs = NULL;
    cJSON *list = meta_json(path, "layers", text);
    if (!list)
        return NULL;
    int n = cJSON_GetArraySize(list);
    if (n < 1 || n > INT_MAX / 4) {
        tg_error("%s: __metadata__ 'layers' has %d entries, expected 1 to %d", path, n, INT_MAX / 4);
        goto fail;
    }
    if (!(specs = tg_alloc_zeroed((size_t)n * sizeof *specs)))
        goto fail;
    int i = 0;
    for (const cJSON *layer = list->child; layer; layer = layer->next, i++) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(layer, "type");
        if (!cJSON_IsObject(layer) || !cJSON_IsString(type)) {
            tg_error("%s: __metadata__ 'layers' entry %d must be an object with a string 'type'", path, i);
            goto fail;
        }
        int kind = tg_layer_type_from_name(type->valuestring);
        if (kind < 0) {
            tg_error("%s: __metadata__ 'layers' entry %d has type '%.40s', expected linear, relu, sigmoid or tanh",
                     path, i, type->valuestring);
            goto fail;
        }
        specs[i].type = (tg_layer_type)kind;
        if (kind == TG_LAYER_LINEAR) {
            const cJSON *bias = cJSON_GetObjectItemCaseSensitive(layer, "bias");
            if (!json_count(cJSON_GetObjectItemCaseSensitive(layer, "out"), &specs[i].out) || specs[i].out < 1) {
                tg_error("%s: __metadata__ 'layers' entry %d (linear): 'out' must be a positive integer", path, i);
                goto fail;
            }
            if (!cJSON_IsBool(bias)) {
                tg_error("%s: __metadata__ 'layers' entry %d (linear): 'bias' must be true or false", path, i);
                goto fail;
            }
            specs[i].bias = cJSON_IsTrue(bias);
        }
    }
    cJSON_Delete(list);
    *n_out = n;
    return specs;
fail:
    cJSON_Delete(list);
    tg_dealloc(specs);
    return NULL;
}

/* Bytes of parameters the layers need, or -1 past INT64_MAX (checked before
 * anything is allocated, so a hostile layer list cannot ask for more memory
 * than the file holds). */
static int64_t parameter_bytes(tg_dtype dtype, int64_t inputs, int n, const tg_layer_spec *specs)
{
    int64_t total = 0, width = inputs, size = (int64_t)tg_dtype_size(dtype);
    for (int i = 0; i < n; i++) {
        if (specs[i].type != TG_LAYER_LINEAR)
            continue;
        int64_t out = specs[i].out;
        if (width <= 0 || out <= 0)
            return 0; /* tg_model_new says what is wrong */
        if (width > INT64_MAX / out || width * out > INT64_MAX - out)
            return -1;
        int64_t count = width * out + (specs[i].bias ? out : 0);
        if (count > (INT64_MAX - total) / size)
            return -1;
        total += count * size;
        width = out;
    }
    return total;
}

static int restore_labels(const char *path, tg_model *m, const char *text)
{
    char **names = NULL;
    int rc = -1;
    cJSON *list = meta_json(path, "labels", text);
    if (!list)
        return -1;
    int n = cJSON_GetArraySize(list);
    if (n != m->classes && !(n == 2 && m->classes == 1)) { /* two labels, one output: a binary model */
        tg_error("%s: __metadata__ 'labels' has %d names for %lld classes", path, n, (long long)m->classes);
        goto done;
    }
    if (!(names = tg_alloc((size_t)n * sizeof *names)))
        goto done;
    int i = 0;
    for (const cJSON *name = list->child; name; name = name->next, i++) {
        if (!cJSON_IsString(name)) {
            tg_error("%s: __metadata__ 'labels' entry %d is %s, expected a string", path, i, json_type_name(name));
            goto done;
        }
        names[i] = name->valuestring;
    }
    rc = tg_model_set_labels(m, n, names);
done:
    tg_dealloc(names);
    cJSON_Delete(list);
    return rc;
}

static float *parse_floats(const char *path, const char *key, const char *text, int64_t n)
{
    float *v = NULL;
    cJSON *list = meta_json(path, key, text);
    if (!list)
        return NULL;
    if (cJSON_GetArraySize(list) != n) {
        tg_error("%s: __metadata__ '%s' has %d values for %lld inputs", path, key, cJSON_GetArraySize(list),
                 (long long)n);
        goto done;
    }
    if (!(v = tg_alloc((size_t)n * sizeof *v)))
        goto done;
    int64_t i = 0;
    for (const cJSON *x = list->child; x; x = x->next, i++) {
        /* FLT_MAX plus half an ulp is where rounding to float gives infinity */
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) >= 0x1.ffffffp127) {
            tg_error("%s: __metadata__ '%s' entry %lld is not a finite float32 number", path, key, (long long)i);
            tg_dealloc(v);
            v = NULL;
            goto done;
        }
        double value = x->valuedouble; /* rounds to +-FLT_MAX when just past it: no out-of-range cast */
        v[i] = value > FLT_MAX ? FLT_MAX : value < -FLT_MAX ? -FLT_MAX : (float)value;
    }
done:
    cJSON_Delete(list);
    return v;
}

static int restore_standardization(const char *path, tg_model *m, const cJSON *meta)
{
    const char *mean_text = meta_text(meta, "standardize_mean"), *std_text = meta_text(meta, "standardize_std");
    if (!mean_text && !std_text)
        return 0;
    if (!mean_text || !std_text)
        return tg_error("%s: __metadata__ has '%s' without '%s'", path,
                        mean_text ? "standardize_mean" : "standardize_std",
                        mean_text ? "standardize_std" : "standardize_mean"),
               -1;
    float *mean = parse_floats(path, "standardize_mean", mean_text, m->inputs);
    float *std = mean ? parse_floats(path, "standardize_std", std_text, m->inputs) : NULL;
    int rc = mean && std && !tg_check_standardization(path, m->inputs, mean, std)
                 ? tg_model_set_standardization(m, mean, std)
                 : -1;
    tg_dealloc(mean);
    tg_dealloc(std);
    return rc;
}

/* Rebuilds the (zero-weight) model that __metadata__ describes, with what rides along. */
static tg_model *model_from_metadata(const char *path, const cJSON *meta, tg_dtype file_dtype, int n_entries,
                                     uint64_t data_bytes)
{
    tg_model *m = NULL;
    tg_layer_spec *specs = NULL;
    if (!meta)
        return tg_error("%s: no __metadata__, so no layer list to rebuild the model from (not saved by "
                        "tg_model_save?)",
                        path);
    if (!cJSON_IsObject(meta))
        return tg_error("%s: __metadata__ is %s, expected an object", path, json_type_name(meta));
    for (const cJSON *item = meta->child; item; item = item->next)
        if (!cJSON_IsString(item))
            return tg_error("%s: __metadata__ '%s' is %s, expected a string (safetensors metadata maps strings to "
                            "strings)",
                            path, item->string, json_type_name(item));
    static const char *const required[] = { "layers", "inputs", "dtype" };
    for (size_t k = 0; k < sizeof required / sizeof *required; k++)
        if (!meta_text(meta, required[k]))
            return tg_error("%s: __metadata__ has no '%s' (tapegrad needs layers, inputs and dtype)", path,
                            required[k]);
    const char *dtype_text = meta_text(meta, "dtype");
    tg_dtype dtype;
    if (strcmp(dtype_text, "float32") == 0)
        dtype = TG_F32;
    else if (strcmp(dtype_text, "float64") == 0)
        dtype = TG_F64;
    else
        return tg_error("%s: __metadata__ 'dtype' is '%.40s', expected float32 or float64", path, dtype_text);
    if (n_entries > 0 && file_dtype != dtype)
        return tg_error("%s: __metadata__ 'dtype' is %s but the tensors are %s", path, dtype_text,
                        tg_st_safetensors_dtype(file_dtype));
    int64_t inputs;
    if (!parse_int64_text(meta_text(meta, "inputs"), &inputs) || inputs < 1)
        return tg_error("%s: __metadata__ 'inputs' is '%.40s', expected a positive integer", path,
                        meta_text(meta, "inputs"));
    int n_layers;
    if (!(specs = parse_layers(path, meta_text(meta, "layers"), &n_layers)))
        return NULL;
    int64_t needed = parameter_bytes(dtype, inputs, n_layers, specs);
    if (needed < 0 || (uint64_t)needed > data_bytes) {
        tg_error("%s: the layers in __metadata__ need %s%lld bytes of parameters but the file holds %llu", path,
                 needed < 0 ? "more than " : "", needed < 0 ? (long long)INT64_MAX : (long long)needed,
                 (unsigned long long)data_bytes);
        goto fail;
    }
    if (!(m = tg_model_new(dtype, inputs, n_layers, specs, NULL))) {
        char why[512];
        snprintf(why, sizeof why, "%s", tg_last_error());
        tg_error("%s: the layers in __metadata__ do not make a model: %s", path, why);
        goto fail;
    }
    const char *classes_text = meta_text(meta, "classes");
    int64_t classes;
    if (classes_text && (!parse_int64_text(classes_text, &classes) ||
                         (classes != m->classes && !(classes == 2 && m->classes == 1 && meta_text(meta, "labels"))))) {
        tg_error("%s: __metadata__ 'classes' is '%.40s' but the layers give %lld", path, classes_text,
                 (long long)m->classes);
        goto fail;
    }
    const char *labels = meta_text(meta, "labels"), *config = meta_text(meta, "config");
    if ((labels && restore_labels(path, m, labels)) || restore_standardization(path, m, meta) ||
        (config && tg_model_set_config_json(m, config)))
        goto fail;
    tg_dealloc(specs);
    return m;
fail:
    tg_dealloc(specs);
    tg_model_free(m);
    return NULL;
}

/* Checks names and shapes against the model before copying any byte. */
static int match_parameters(const char *path, const tg_model *m, const entry *entries, int n, bool training)
{
    char want[TG_SHAPE_BUF], got[TG_SHAPE_BUF];
    for (int i = 0; i < m->n_params; i++) {
        const tg_tensor *t = m->params[i];
        entry key = { .name = m->param_names[i] };
        const entry *e = bsearch(&key, entries, (size_t)n, sizeof *entries, by_name);
        if (!e)
            return tg_error("%s: tensor '%s' is missing (the layers in __metadata__ need it, shape %s)", path, key.name,
                            tg_shape_str(want, sizeof want, t->ndim, t->shape)),
                   -1;
        if (e->ndim != t->ndim || memcmp(e->shape, t->shape, (size_t)t->ndim * sizeof *t->shape) != 0)
            return tg_error("%s: tensor '%s' has shape %s but the layers in __metadata__ need %s", path, key.name,
                            tg_shape_str(got, sizeof got, e->ndim, e->shape),
                            tg_shape_str(want, sizeof want, t->ndim, t->shape)),
                   -1;
    }
    int others = 0; /* a training checkpoint's extra tensors, when its metadata says it is one */
    for (int k = 0; training && k < n; k++)
        others += tg_st_is_training_name(entries[k].name);
    if (n == m->n_params + others)
        return 0;
    /* Every parameter was found once, so some entry is not a parameter: name the first. */
    bool *matched = tg_alloc_zeroed((size_t)n * sizeof *matched);
    if (!matched)
        return -1;
    for (int i = 0; i < m->n_params; i++) {
        entry key = { .name = m->param_names[i] };
        matched[(const entry *)bsearch(&key, entries, (size_t)n, sizeof *entries, by_name) - entries] = true;
    }
    int k = 0;
    while (matched[k] || (training && tg_st_is_training_name(entries[k].name)))
        k++;
    tg_dealloc(matched);
    tg_error("%s: tensor '%s' is not a parameter of the model in __metadata__ (which has %d)", path, entries[k].name,
             m->n_params);
    return -1;
}

static int read_parameters(const char *path, FILE *f, uint64_t data_start, tg_model *m, const entry *entries, int n)
{
    char why[128];
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *t = m->params[i];
        entry key = { .name = m->param_names[i] };
        const entry *e = bsearch(&key, entries, (size_t)n, sizeof *entries, by_name);
        size_t count = (size_t)t->numel, size = tg_dtype_size(t->dtype);
        if (fseeko(f, (off_t)(data_start + (uint64_t)e->begin), SEEK_SET) != 0)
            return tg_error("%s: cannot seek to tensor '%s': %s", path, key.name,
                            tg_st_errno_text(errno, why, sizeof why)),
                   -1;
        if (fread(t->data, size, count, f) != count)
            return tg_error("%s: reading tensor '%s' failed: %s", path, key.name,
                            ferror(f) ? tg_st_errno_text(errno, why, sizeof why) : "the file ended early"),
                   -1;
        if (!tg_st_host_is_little_endian())
            tg_st_swap_bytes(t->data, count, size);
    }
    return 0;
}

void tg_checkpoint_extras_free(tg_checkpoint_extras *x)
{
    if (!x)
        return;
    for (int i = 0; i < x->n; i++) {
        tg_dealloc(x->names[i]);
        tg_tensor_free(x->tensors[i]);
    }
    tg_dealloc(x->names);
    tg_dealloc(x->tensors);
    tg_dealloc(x->meta);
    memset(x, 0, sizeof *x);
}

/* Reads every training tensor (names starting TG_TRAINING_PREFIX) into x, and the "training" metadata. */
static int read_extras(const char *path, FILE *f, uint64_t data_start, const cJSON *meta, const entry *entries, int n,
                       tg_checkpoint_extras *x)
{
    char why[128];
    const char *text = meta_text(meta, "training");
    if (!text)
        return tg_error("%s: not a training checkpoint (no __metadata__ 'training'; a plain model cannot be "
                        "resumed)",
                        path),
               -1;
    if (!(x->meta = tg_strdup(text)) || !(x->names = tg_alloc_zeroed((size_t)(n + 1) * sizeof *x->names)) ||
        !(x->tensors = tg_alloc_zeroed((size_t)(n + 1) * sizeof *x->tensors)))
        return -1;
    for (int i = 0; i < n; i++) {
        const entry *e = &entries[i];
        if (!tg_st_is_training_name(e->name))
            continue;
        tg_tensor *t = tg_tensor_new(e->dtype, e->ndim, e->shape);
        if (!t || !(x->names[x->n] = tg_strdup(e->name))) {
            tg_tensor_free(t);
            return -1;
        }
        x->tensors[x->n++] = t;
        size_t count = (size_t)t->numel, size = tg_dtype_size(t->dtype);
        if (fseeko(f, (off_t)(data_start + (uint64_t)e->begin), SEEK_SET) != 0 ||
            fread(t->data, size, count, f) != count)
            return tg_error("%s: reading tensor '%s' failed: %s", path, e->name,
                            ferror(f) ? tg_st_errno_text(errno, why, sizeof why) : "the file ended early"),
                   -1;
        if (!tg_st_host_is_little_endian())
            tg_st_swap_bytes(t->data, count, size);
    }
    return 0;
}

tg_model *tg_model_load(const char *path) { return tg_checkpoint_load(path, NULL); }

/* Opens path (a regular file) and reads its 8-byte length and the header after it, NUL-terminated,
 * checked for size, UTF-8 and the '{' it must start with. */
static char *read_header(const char *path, FILE **f, uint64_t *file_size, uint64_t *header_len)
{
    char why[128];
    struct stat st;
    unsigned char length_bytes[8];
    if (!(*f = fopen(path, "rb")))
        return tg_error("%s: cannot open: %s", path, tg_st_errno_text(errno, why, sizeof why));
    if (fstat(fileno(*f), &st) != 0)
        return tg_error("%s: cannot stat: %s", path, tg_st_errno_text(errno, why, sizeof why));
    if (!S_ISREG(st.st_mode))
        return tg_error("%s: %s, expected a safetensors file", path,
                        S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file");
    *file_size = (uint64_t)st.st_size;
    if (*file_size < 8 || fread(length_bytes, 1, 8, *f) != 8)
        return tg_error("%s: %llu bytes, too short for the 8-byte header length", path, (unsigned long long)*file_size);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)length_bytes[i] << (8 * i);
    *header_len = n;
    if (n >= MAX_HEADER_BYTES && length_bytes[0] == '{')
        return tg_error("%s: this is JSON text (a config?), not a safetensors checkpoint, which starts with an "
                        "8-byte header length",
                        path);
    if (n >= MAX_HEADER_BYTES)
        return tg_error("%s: header length %llu, expected less than %u (not a safetensors file?)", path,
                        (unsigned long long)n, MAX_HEADER_BYTES);
    if (n > *file_size - 8)
        return tg_error("%s: header length %llu but only %llu bytes follow it (truncated?)", path,
                        (unsigned long long)n, (unsigned long long)(*file_size - 8));
    char *header = tg_alloc((size_t)n + 1);
    if (!header)
        return NULL;
    if (fread(header, 1, (size_t)n, *f) != n) {
        tg_error("%s: reading the %llu-byte header failed: %s", path, (unsigned long long)n,
                 ferror(*f) ? tg_st_errno_text(errno, why, sizeof why) : "the file ended early");
        tg_dealloc(header);
        return NULL;
    }
    header[n] = '\0';
    const char *bad = n == 0 || header[0] != '{' || memchr(header, '\0', (size_t)n) ? header : NULL;
    if (bad)
        tg_error("%s: the header is not a JSON object (it must start with '{' and hold no NUL byte)", path);
    else if ((bad = tg_utf8_first_invalid(header)))
        tg_error("%s: the header is not valid UTF-8 (byte %lld of the file)", path, (long long)(bad - header) + 8);
    if (bad) {
        tg_dealloc(header);
        return NULL;
    }
    return header;
}

/* The header as cJSON reads it: one object, only white space after it. */
static cJSON *parse_header(const char *path, const char *header, uint64_t header_len)
{
    const char *end = NULL;
    tg_json_begin();
    cJSON *root = cJSON_ParseWithLengthOpts(header, (size_t)header_len, &end, 0);
    if (!root && tg_json_out_of_memory())
        return tg_error("%s: out of memory parsing the %llu-byte header", path, (unsigned long long)header_len);
    if (!root)
        return tg_error("%s: the header is not valid JSON (at byte %lld of the header)", path,
                        (long long)(end ? end - header : 0));
    for (const char *p = end; p < header + header_len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            tg_error("%s: unexpected text after the header's JSON object, at byte %lld of the header", path,
                     (long long)(p - header));
            cJSON_Delete(root);
            return NULL;
        }
    if (!cJSON_IsObject(root)) {
        tg_error("%s: the header is %s, expected a JSON object", path, json_type_name(root));
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* cJSON is more lenient than the reference reader: what it let through that the reference refuses
 * (a repeated key, a raw control character, 2e0 for an integer, \\u0000) is refused here, after the
 * checks that can name the tensor, before anything is sized from the header. */
static int check_header_strictly(const char *path, const char *header, uint64_t header_len)
{
    size_t fault_at = 0;
    switch (tg_json_strict_object(header, (size_t)header_len, true, &fault_at)) {
    case JSON_OK: return 0;
    case JSON_NO_MEMORY: return -1; /* the error is set */
    case JSON_DUPLICATE_KEY:
        tg_error("%s: the header repeats a key at byte %zu of the file", path, fault_at + 8);
        break;
    case JSON_NOT_UNSIGNED:
        tg_error("%s: a shape or data_offsets entry at byte %zu of the file is not an unsigned integer", path,
                 fault_at + 8);
        break;
    case JSON_NUL_IN_STRING:
        tg_error("%s: a string in the header holds \\u0000 (byte %zu of the file)", path, fault_at + 8);
        break;
    case JSON_SYNTAX:
        tg_error("%s: the header is not JSON as the safetensors reference reads it, at byte %zu of the file", path,
                 fault_at + 8);
        break;
    }
    return -1;
}

tg_model *tg_checkpoint_load(const char *path, tg_checkpoint_extras *extras)
{
    FILE *f = NULL;
    cJSON *root = NULL;
    entry *entries = NULL;
    tg_model *m = NULL;
    uint64_t file_size = 0, header_len = 0;
    if (extras)
        memset(extras, 0, sizeof *extras);
    if (!path || !path[0])
        return tg_error("model load: path is NULL or empty");
    char *header = read_header(path, &f, &file_size, &header_len);
    if (!header || !(root = parse_header(path, header, header_len)))
        goto fail;
    uint64_t data_start = 8 + header_len, data_bytes = file_size - data_start;
    int n = 0;
    const cJSON *meta = NULL;
    if (!(entries = parse_entries(path, root, data_bytes, &n, &meta)) ||
        check_header_strictly(path, header, header_len))
        goto fail;
    bool training = meta && meta_text(meta, "training");
    int first = 0; /* the first of the model's tensors (the training ones may have other dtypes) */
    while (training && first < n && tg_st_is_training_name(entries[first].name))
        first++;
    if (!(m = model_from_metadata(path, meta, first < n ? entries[first].dtype : TG_F32, n - first, data_bytes)))
        goto fail;
    if (match_parameters(path, m, entries, n, training) || read_parameters(path, f, data_start, m, entries, n) ||
        (extras && read_extras(path, f, data_start, meta, entries, n, extras)))
        goto fail;
    fclose(f);
    tg_dealloc(header);
    tg_dealloc(entries);
    cJSON_Delete(root);
    return m;
fail:
    tg_st_name_the_file(path);
    if (f)
        fclose(f);
    tg_dealloc(header);
    tg_dealloc(entries);
    cJSON_Delete(root);
    tg_model_free(m);
    tg_checkpoint_extras_free(extras);
    return NULL;
}
