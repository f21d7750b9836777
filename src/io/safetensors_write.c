/* Writing checkpoints: the header (tensor entries and __metadata__), the
 * tensors' little-endian bytes, all into a temporary file that is flushed,
 * synced and renamed over the target, so the old file survives any failure. */
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
/* Writing                                                                   */
/* ======================================================================== */

/* "[0.5,-1.25]" with %.9g (enough for any float to round-trip). Whatever the
 * locale calls its decimal point is written as '.', so the text is JSON even
 * if the program called setlocale (the library never does). */
static char *float_array_text(const char *what, const float *v, int64_t n)
{
    if ((uint64_t)n > (SIZE_MAX - 3) / 32)
        return tg_error("%s has too many values (%lld)", what, (long long)n);
    char *text = tg_alloc((size_t)n * 32 + 3);
    if (!text)
        return NULL;
    size_t used = 0;
    text[used++] = '[';
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            tg_dealloc(text);
            return tg_error("%s[%lld] is %g, expected a finite number (JSON has no NaN or Inf)", what, (long long)i,
                            (double)v[i]);
        }
        char number[32];
        snprintf(number, sizeof number, "%.9g", (double)v[i]);
        if (i)
            text[used++] = ',';
        for (const char *c = number; *c;) {
            if ((*c >= '0' && *c <= '9') || *c == '-' || *c == '+' || *c == 'e' || *c == 'E') {
                text[used++] = *c++;
                continue;
            }
            text[used++] = '.'; /* the decimal point, possibly several bytes long */
            while (*c && !((*c >= '0' && *c <= '9') || *c == '-' || *c == '+' || *c == 'e' || *c == 'E'))
                c++;
        }
    }
    text[used++] = ']';
    text[used] = '\0';
    return text;
}

/* The metadata value: a JSON array of strings (labels) or layer objects. */
static char *layers_text(const tg_model *m)
{
    char *text = NULL;
    cJSON *list = cJSON_CreateArray();
    if (!list)
        goto fail;
    for (int i = 0; i < m->n_layers; i++) {
        const char *type = tg_layer_type_name(m->layers[i].type);
        cJSON *layer = cJSON_CreateObject();
        if (!layer || !cJSON_AddItemToArray(list, layer)) {
            cJSON_Delete(layer);
            goto fail;
        }
        if (!type) {
            tg_error("layer %d has unknown type %d", i, (int)m->layers[i].type);
            goto fail;
        }
        if (!cJSON_AddStringToObject(layer, "type", type))
            goto fail;
        if (m->layers[i].type == TG_LAYER_LINEAR && (!cJSON_AddNumberToObject(layer, "out", (double)m->layers[i].out) ||
                                                     !cJSON_AddBoolToObject(layer, "bias", m->layers[i].bias != 0)))
            goto fail;
    }
    text = cJSON_PrintUnformatted(list);
fail:
    cJSON_Delete(list);
    return text;
}

static char *labels_text(const tg_model *m)
{
    char *text = NULL;
    cJSON *list = cJSON_CreateArray();
    if (!list)
        goto fail;
    for (int64_t i = 0; i < m->n_labels; i++) {
        if (tg_utf8_first_invalid(m->labels[i])) {
            tg_error("label %lld is not valid UTF-8 (a safetensors header must be)", (long long)i);
            goto fail;
        }
        cJSON *name = cJSON_CreateString(m->labels[i]);
        if (!name || !cJSON_AddItemToArray(list, name)) {
            cJSON_Delete(name);
            goto fail;
        }
    }
    text = cJSON_PrintUnformatted(list);
fail:
    cJSON_Delete(list);
    return text;
}

static bool add_meta(cJSON *meta, const char *key, const char *value)
{
    return value && cJSON_AddStringToObject(meta, key, value);
}

/* {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]} */
static cJSON *tensor_json(const tg_tensor *t, uint64_t begin, uint64_t end)
{
    cJSON *entry = cJSON_CreateObject(), *shape = NULL;
    if (!entry || !cJSON_AddStringToObject(entry, "dtype", tg_st_safetensors_dtype(t->dtype)) ||
        !(shape = cJSON_AddArrayToObject(entry, "shape")))
        goto fail;
    for (int d = 0; d < t->ndim; d++) {
        cJSON *dim = cJSON_CreateNumber((double)t->shape[d]);
        if (!dim || !cJSON_AddItemToArray(shape, dim)) {
            cJSON_Delete(dim);
            goto fail;
        }
    }
    const double offsets[2] = { (double)begin, (double)end };
    cJSON *range = cJSON_CreateDoubleArray(offsets, 2);
    if (!range || !cJSON_AddItemToObject(entry, "data_offsets", range)) {
        cJSON_Delete(range);
        goto fail;
    }
    return entry;
fail:
    cJSON_Delete(entry);
    return NULL;
}

/* Adds one tensor entry per tensor at *offset onwards. */
static bool add_entries(cJSON *root, int n, const tg_tensor *const *tensors, const char *const *names, uint64_t *offset)
{
    for (int i = 0; i < n; i++) {
        const tg_tensor *t = tensors[i];
        uint64_t bytes = (uint64_t)t->numel * tg_dtype_size(t->dtype);
        if (bytes > (uint64_t)MAX_JSON_INTEGER - *offset) {
            tg_error("the tensors exceed 2^53 bytes");
            return false;
        }
        cJSON *entry = tensor_json(t, *offset, *offset + bytes);
        if (!entry || !cJSON_AddItemToObject(root, names[i], entry)) {
            cJSON_Delete(entry);
            return false;
        }
        *offset += bytes;
    }
    return true;
}

/* What a save writes: the model's description, its weights (the model's own or others of the same
 * shapes), and for a training checkpoint the extra tensors and the "training" metadata. */
typedef struct {
    const tg_model *model;
    const tg_tensor *const *weights; /* [model->n_params] */
    const tg_tensor *const *extras;
    const char *const *extra_names;
    int n_extras;
    const char *training_meta;
} save_content;

/* The header JSON, padded with spaces to a multiple of 8 bytes. */
static char *build_header(const save_content *c, size_t *length)
{
    const tg_model *m = c->model;
    char *padded = NULL, *json = NULL, *layers = NULL, *labels = NULL, *mean = NULL, *std = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = root ? cJSON_AddObjectToObject(root, "__metadata__") : NULL;
    if (!meta)
        goto fail;
    char version[32], inputs[32], classes[32];
    snprintf(version, sizeof version, "%d.%d.%d", TG_VERSION_MAJOR, TG_VERSION_MINOR, TG_VERSION_PATCH);
    snprintf(inputs, sizeof inputs, "%lld", (long long)m->inputs);
    snprintf(classes, sizeof classes, "%lld", (long long)m->classes);
    if (!(layers = layers_text(m)))
        goto fail;
    if (!add_meta(meta, "format", "pt") || !add_meta(meta, "tapegrad_version", version) ||
        !add_meta(meta, "layers", layers) || !add_meta(meta, "inputs", inputs) || !add_meta(meta, "classes", classes) ||
        !add_meta(meta, "dtype", tg_dtype_name(m->dtype)))
        goto fail;
    if (m->labels && (!(labels = labels_text(m)) || !add_meta(meta, "labels", labels)))
        goto fail;
    if (m->mean && m->std) {
        if (!(mean = float_array_text("standardization mean", m->mean, m->inputs)) ||
            !(std = float_array_text("standardization std", m->std, m->inputs)) ||
            !add_meta(meta, "standardize_mean", mean) || !add_meta(meta, "standardize_std", std))
            goto fail;
    }
    if (m->config_json) {
        if (tg_utf8_first_invalid(m->config_json)) {
            tg_error("the config text is not valid UTF-8 (a safetensors header must be)");
            goto fail;
        }
        if (!add_meta(meta, "config", m->config_json))
            goto fail;
    }
    if (c->training_meta && !add_meta(meta, "training", c->training_meta))
        goto fail;
    uint64_t offset = 0;
    if (!add_entries(root, m->n_params, c->weights, (const char *const *)m->param_names, &offset) ||
        !add_entries(root, c->n_extras, c->extras, c->extra_names, &offset))
        goto fail;
    if (!(json = cJSON_PrintUnformatted(root)))
        goto fail;
    size_t used = strlen(json), total = (used + 7) / 8 * 8;
    if (!(padded = tg_alloc(total + 1)))
        goto fail;
    memcpy(padded, json, used);
    memset(padded + used, ' ', total - used);
    padded[total] = '\0';
    *length = total;
fail: /* every failure above set the error (cJSON allocates through tg_alloc) */
    cJSON_free(json);
    cJSON_free(layers);
    cJSON_free(labels);
    tg_dealloc(mean);
    tg_dealloc(std);
    cJSON_Delete(root);
    return padded;
}

/* Writes n elements of `size` bytes in little-endian order. */
static bool write_little_endian(FILE *f, const void *data, size_t n, size_t size)
{
    if (tg_st_host_is_little_endian())
        return tg_io_write(data, size, n, f) == n;
    unsigned char chunk[4096];
    const unsigned char *p = data;
    size_t per_chunk = sizeof chunk / size;
    while (n) {
        size_t k = n < per_chunk ? n : per_chunk;
        memcpy(chunk, p, k * size);
        tg_st_swap_bytes(chunk, k, size);
        if (tg_io_write(chunk, size, k, f) != k)
            return false;
        p += k * size;
        n -= k;
    }
    return true;
}

/* Makes the rename durable; best effort, since the file is already in place. */
static void sync_directory_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? tg_alloc((size_t)(slash - path) + 2) : NULL;
    if (slash && !dir)
        return;
    if (dir) {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir ? dir : ".", O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    tg_dealloc(dir);
}

static int save_target(const char *path, char **target);

static const char *file_kind(mode_t mode)
{
    return S_ISDIR(mode)    ? "a folder"
           : S_ISCHR(mode)  ? "a character device"
           : S_ISBLK(mode)  ? "a block device"
           : S_ISFIFO(mode) ? "a FIFO"
           : S_ISSOCK(mode) ? "a socket"
                            : "not a regular file";
}

/* The file a save replaces: path itself, or the file a symbolic link there points to. The link is
 * followed (as torch.save and a shell's > do) so that it survives and its target gets the new bytes;
 * renaming over the link would silently turn it into a regular file. Anything that exists and is not a
 * regular file (a device, FIFO, socket or folder) is refused: the rename would replace the node itself.
 * A link to a missing file is refused too. Caller frees *target with tg_dealloc. */
int tg_check_save_path(const char *path)
{
    if (!path || !path[0]) {
        tg_error("save path: NULL or empty");
        return -1;
    }
    char *target = NULL;
    int rc = save_target(path, &target);
    tg_dealloc(target);
    if (rc)
        tg_st_name_the_file(path);
    return rc;
}

static int save_target(const char *path, char **target)
{
    char why[128];
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT)
            return tg_error("cannot stat: %s", tg_st_errno_text(errno, why, sizeof why)), -1;
        return (*target = tg_strdup(path)) ? 0 : -1;
    }
    if (!S_ISLNK(st.st_mode)) {
        if (!S_ISREG(st.st_mode))
            return tg_error("is %s; only a regular file or a new path is written", file_kind(st.st_mode)), -1;
        return (*target = tg_strdup(path)) ? 0 : -1;
    }
    char *resolved = realpath(path, NULL); /* the C library's malloc */
    if (!resolved)
        return tg_error("is a symbolic link whose target cannot be reached (%s); refusing to replace the link",
                        tg_st_errno_text(errno, why, sizeof why)),
               -1;
    int rc = 0;
    if (stat(resolved, &st) != 0 || !S_ISREG(st.st_mode))
        rc = (tg_error("is a symbolic link to %s, which is %s; only a regular file or a new path is written", resolved,
                       file_kind(st.st_mode)),
              -1);
    else if (!(*target = tg_strdup(resolved)))
        rc = -1;
    free(resolved);
    return rc;
}

/* Writes the length, header and every tensor's bytes to f. */
static bool write_content(FILE *f, const save_content *c, const char *header, size_t header_len)
{
    unsigned char length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
    bool written = tg_io_write(length, 1, 8, f) == 8 && tg_io_write(header, 1, header_len, f) == header_len;
    for (int i = 0; written && i < c->model->n_params + c->n_extras; i++) {
        const tg_tensor *t = i < c->model->n_params ? c->weights[i] : c->extras[i - c->model->n_params];
        written = write_little_endian(f, t->data, (size_t)t->numel, tg_dtype_size(t->dtype));
    }
    return written;
}

/* A temporary file next to target, flushed, synced and renamed over it: the old file survives any
 * failure, and no temporary file is left behind on any path that returns. */
static int save_file(const save_content *c, const char *path)
{
    char why[128];
    char *header = NULL, *tmp = NULL, *target = NULL;
    FILE *f = NULL;
    int fd = -1;
    bool created = false;
    tg_json_begin();
    size_t header_len = 0;
    if (save_target(path, &target) || !(header = build_header(c, &header_len)))
        goto fail;
    static const char suffix[] = ".tmp.XXXXXX";
    size_t target_len = strlen(target);
    if (!(tmp = tg_alloc(target_len + sizeof suffix)))
        goto fail;
    memcpy(tmp, target, target_len);
    memcpy(tmp + target_len, suffix, sizeof suffix);
    if ((fd = mkstemp(tmp)) < 0) {
        tg_error("cannot create a temporary file next to it: %s", tg_st_errno_text(errno, why, sizeof why));
        goto fail;
    }
    created = true;
    /* mkstemp makes the file 0600; keep the mode of the file being replaced, else 0644. */
    struct stat old;
    mode_t mode = stat(target, &old) == 0 ? (old.st_mode & 07777) : 0644;
    if (fchmod(fd, mode) != 0) {
        tg_error("cannot set the mode of %s: %s", tmp, tg_st_errno_text(errno, why, sizeof why));
        goto fail;
    }
    if (!(f = fdopen(fd, "wb"))) {
        tg_error("cannot open %s for writing: %s", tmp, tg_st_errno_text(errno, why, sizeof why));
        goto fail;
    }
    fd = -1; /* f owns it now */
    if (!write_content(f, c, header, header_len) || tg_io_flush(f) != 0 || ferror(f)) {
        tg_error("writing %s failed: %s", tmp, tg_st_errno_text(errno, why, sizeof why));
        goto fail;
    }
    if (tg_io_sync(fileno(f)) != 0) {
        tg_error("fsync of %s failed: %s", tmp, tg_st_errno_text(errno, why, sizeof why));
        goto fail;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        tg_error("closing %s failed: %s", tmp, tg_st_errno_text(errno, why, sizeof why));
        goto fail;
    }
    if (tg_io_rename(tmp, target) != 0) {
        tg_error("cannot rename %s over it: %s", tmp, tg_st_errno_text(errno, why, sizeof why));
        goto fail;
    }
    sync_directory_of(target);
    tg_dealloc(header);
    tg_dealloc(tmp);
    tg_dealloc(target);
    return 0;
fail:
    tg_st_name_the_file(path);
    if (f)
        fclose(f);
    else if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    tg_dealloc(header);
    tg_dealloc(tmp);
    tg_dealloc(target);
    return -1;
}

int tg_model_save(const tg_model *model, const char *path)
{
    if (!model || !path || !path[0]) {
        tg_error("model save: %s is NULL or empty", !model ? "model" : "path");
        return -1;
    }
    save_content c = { .model = model, .weights = (const tg_tensor *const *)model->params };
    return save_file(&c, path);
}

int tg_checkpoint_save(const tg_model *model, const tg_tensor *const *weights, const tg_named_tensor *extras,
                       int n_extras, const char *training_meta, const char *path)
{
    if (!model || !path || !path[0]) {
        tg_error("checkpoint save: %s is NULL or empty", !model ? "model" : "path");
        return -1;
    }
    const tg_tensor **tensors = tg_alloc((size_t)(n_extras + 1) * sizeof *tensors);
    const char **names = tg_alloc((size_t)(n_extras + 1) * sizeof *names);
    int rc = -1;
    if (tensors && names) {
        for (int i = 0; i < n_extras; i++) {
            tensors[i] = extras[i].tensor;
            names[i] = extras[i].name;
        }
        save_content c = { .model = model,
                           .weights = weights ? weights : (const tg_tensor *const *)model->params,
                           .extras = tensors,
                           .extra_names = names,
                           .n_extras = n_extras,
                           .training_meta = training_meta };
        rc = save_file(&c, path);
    }
    tg_dealloc(tensors);
    tg_dealloc(names);
    return rc;
}
