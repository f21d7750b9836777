/* MNIST's IDX format, read through zlib's gz* functions, which read gzipped
 * and plain files alike. A declared size is never trusted: a plain file must
 * be exactly as long as its header says before anything is allocated, and
 * since a gzip stream has no length bound, the payload is capped and the
 * buffers grow only as decompressed bytes actually arrive. */
#define _POSIX_C_SOURCE 200809L /* stat */

#include "io/io_internal.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_IMAGES_MAGIC 0x00000803u /* unsigned bytes, 3 dimensions */
#define IDX_LABELS_MAGIC 0x00000801u /* unsigned bytes, 1 dimension */
/* The largest payload accepted, in bytes (pixels): 2^31, i.e. 8 GiB of float32.
 * Fashion-MNIST's training images are 47 million. */
#define IDX_MAX_PAYLOAD ((uint64_t)1 << 31)
#define IDX_CHUNK (1u << 20)
/* Deflate cannot expand a byte into more than about 1032: a gzip file declaring more than this
 * many payload bytes per byte of its own is lying, and is refused before anything is read. */
#define GZIP_MAX_RATIO 1100

typedef struct {
    const char *path;
    const char *what; /* "images" or "labels" */
    gzFile gz;
    int ndim;
    uint32_t dims[3];
    uint64_t payload; /* bytes after the header */
    bool plain; /* not gzipped, and a regular file whose size was checked */
} idx_file;

static uint32_t big_endian_u32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* The bytes read, or -1 with the error set (gzread returns short counts at the end). */
static int read_some(idx_file *f, void *buf, unsigned n)
{
    int got = gzread(f->gz, buf, n);
    if (got < 0) {
        int code;
        const char *msg = gzerror(f->gz, &code);
        size_t path_len = strlen(f->path);
        if (strncmp(msg, f->path, path_len) == 0 && strncmp(msg + path_len, ": ", 2) == 0)
            msg += path_len + 2; /* zlib's message starts with the path too */
        tg_error("%s: read error: %s", f->path, code == Z_ERRNO ? strerror(errno) : msg);
    }
    return got;
}

/* Whether the last short read was a gzip stream cut off in the middle. */
static const char *gzip_cut_note(idx_file *f)
{
    int code;
    gzerror(f->gz, &code);
    return code == Z_BUF_ERROR ? " (the gzip stream ends early)" : "";
}

/* Opens path and reads and checks its header: magic, dimensions, and for a
 * plain file its exact length. */
static int idx_open(idx_file *f, const char *path, uint32_t magic, const char *what)
{
    f->path = path;
    f->what = what;
    f->ndim = (int)(magic & 0xff);
    struct stat st;
    if (!path)
        return tg_error("idx: the %s path is NULL", what), -1;
    if (stat(path, &st) != 0)
        return tg_error("%s: cannot open: %s", path, strerror(errno)), -1;
    if (S_ISDIR(st.st_mode))
        return tg_error("%s: is a directory, expected an IDX %s file", path, what), -1;
    if (!S_ISREG(st.st_mode)) /* a device or FIFO could stream forever */
        return tg_error("%s: not a regular file (%s), expected an IDX %s file", path, tg_file_kind(st.st_mode), what),
               -1;
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        return tg_error("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory"), -1;
    gzbuffer(f->gz, 1u << 17);

    unsigned char header[16];
    int header_len = 4 + 4 * f->ndim;
    int got = read_some(f, header, (unsigned)header_len);
    if (got < 0)
        return -1;
    if (got >= 4 && big_endian_u32(header) != magic)
        return tg_error("%s: magic number 0x%08x, expected 0x%08x (IDX %s: unsigned bytes, %d dimension%s)", path,
                        (unsigned)big_endian_u32(header), (unsigned)magic, what, f->ndim, f->ndim == 1 ? "" : "s"),
               -1;
    if (got < header_len)
        return tg_error("%s: truncated header: %d of %d bytes%s", path, got, header_len, gzip_cut_note(f)), -1;

    /* Each factor is below 2^32 and the product stops growing past the cap: no overflow. */
    uint64_t payload = 1;
    for (int d = 0; d < f->ndim; d++) {
        f->dims[d] = big_endian_u32(header + 4 + 4 * d);
        if (payload <= IDX_MAX_PAYLOAD)
            payload *= f->dims[d];
    }
    if (payload > IDX_MAX_PAYLOAD) {
        char dims[48];
        if (f->ndim == 3)
            snprintf(dims, sizeof dims, "%u x %u x %u", (unsigned)f->dims[0], (unsigned)f->dims[1],
                     (unsigned)f->dims[2]);
        else
            snprintf(dims, sizeof dims, "%u", (unsigned)f->dims[0]);
        return tg_error("%s: dimensions %s declare more than %llu bytes of %s, the loader's limit", path, dims,
                        (unsigned long long)IDX_MAX_PAYLOAD, what),
               -1;
    }
    f->payload = payload;

    f->plain = gzdirect(f->gz);
    uint64_t file_size = (uint64_t)st.st_size;
    if (!f->plain && payload / GZIP_MAX_RATIO > file_size)
        return tg_error("%s: the header declares %llu bytes of %s but a %llu-byte gzip file holds at most about "
                        "%llu (deflate expands at most %dx): the file is truncated or crafted",
                        path, (unsigned long long)payload, what, (unsigned long long)file_size,
                        (unsigned long long)file_size * GZIP_MAX_RATIO, GZIP_MAX_RATIO),
               -1;
    if (f->plain) {
        uint64_t expected = (uint64_t)header_len + payload, size = (uint64_t)st.st_size;
        if (size < expected)
            return tg_error("%s: truncated: the header declares %llu bytes of %s, the file holds %llu", path,
                            (unsigned long long)payload, what,
                            (unsigned long long)(size > (uint64_t)header_len ? size - (uint64_t)header_len : 0)),
                   -1;
        if (size > expected)
            return tg_error("%s: %llu unexpected bytes after the %llu-byte payload", path,
                            (unsigned long long)(size - expected), (unsigned long long)payload),
                   -1;
    }
    return 0;
}

/* Closes f; a gzip stream that ended in the middle is reported only here. */
static int idx_close(idx_file *f)
{
    int rc = gzclose(f->gz);
    f->gz = NULL;
    if (rc == Z_OK)
        return 0;
    if (rc == Z_BUF_ERROR)
        return tg_error("%s: truncated gzip stream: it ends in the middle of a member", f->path), -1;
    if (rc == Z_ERRNO)
        return tg_error("%s: closing failed: %s", f->path, strerror(errno)), -1;
    return tg_error("%s: closing failed (zlib error %d)", f->path, rc), -1;
}

/* Reads f's payload in chunks, keeping elements [lo, hi) in *out: int64 labels (scale ignored) or float
 * pixels times scale (the largest label is of every label, kept or not). *out grows only as bytes arrive,
 * up to the kept size; then nothing may follow the payload. */
static int read_payload(idx_file *f, unsigned char *chunk, void **out, bool labels, double scale, int64_t *max_label,
                        uint64_t lo, uint64_t hi)
{
    size_t elem = labels ? sizeof(int64_t) : sizeof(float);
    uint64_t total = f->payload, done = 0, cap = 0, keep = hi - lo;
    if (keep > SIZE_MAX / elem)
        return tg_error("%s: %llu %s do not fit in memory", f->path, (unsigned long long)keep, f->what), -1;
    if (keep == 0 && !(*out = tg_alloc(elem))) /* a rank's part with no rows */
        return -1;
    while (done < total) {
        unsigned want = total - done < IDX_CHUNK ? (unsigned)(total - done) : IDX_CHUNK;
        uint64_t a = done > lo ? done : lo, b = done + want < hi ? done + want : hi; /* this chunk's kept part */
        if (b > a && b - lo > cap) {
            uint64_t new_cap = f->plain ? keep : cap * 2 > b - lo ? cap * 2 : b - lo;
            if (new_cap > keep)
                new_cap = keep;
            void *grown = tg_realloc(*out, (size_t)new_cap * elem);
            if (!grown)
                return tg_error("%s: out of memory: growing the %s to %llu bytes failed (%llu of %llu read)", f->path,
                                f->what, (unsigned long long)new_cap * elem, (unsigned long long)done,
                                (unsigned long long)total),
                       -1;
            *out = grown;
            cap = new_cap;
        }
        int got = read_some(f, chunk, want);
        if (got < 0)
            return -1;
        uint64_t stop = done + (uint64_t)got < b ? done + (uint64_t)got : b;
        if (labels) {
            for (int i = 0; i < got; i++)
                if (chunk[i] > *max_label)
                    *max_label = chunk[i];
            for (uint64_t k = a; k < stop; k++)
                ((int64_t *)*out)[k - lo] = chunk[k - done];
        } else {
            for (uint64_t k = a; k < stop; k++)
                ((float *)*out)[k - lo] = (float)(chunk[k - done] * scale);
        }
        done += (uint64_t)got;
        if ((unsigned)got < want)
            return tg_error("%s: truncated: the header declares %llu bytes of %s, the file holds %llu%s", f->path,
                            (unsigned long long)total, f->what, (unsigned long long)done, gzip_cut_note(f)),
                   -1;
    }
    int extra = read_some(f, chunk, 1);
    if (extra < 0)
        return -1;
    if (extra > 0)
        return tg_error("%s: unexpected bytes after the %llu-byte payload", f->path, (unsigned long long)total), -1;
    return 0;
}

tg_dataset *tg_idx_load(const char *images_path, const char *labels_path, double scale)
{
    return tg_idx_load_part(images_path, labels_path, scale, 0, 1);
}

tg_dataset *tg_idx_load_part(const char *images_path, const char *labels_path, double scale, int part, int parts)
{
    idx_file images = { 0 }, labels = { 0 };
    tg_dataset *ds = NULL;
    unsigned char *chunk = NULL;
    void *x = NULL, *y = NULL;
    if (!isfinite(scale))
        return tg_error("idx: scale is %g, expected a finite number", scale);
    if (parts < 1 || part < 0 || part >= parts)
        return tg_error("idx: part %d of %d", part, parts);
    if (idx_open(&images, images_path, IDX_IMAGES_MAGIC, "images") ||
        idx_open(&labels, labels_path, IDX_LABELS_MAGIC, "labels"))
        goto fail;
    if (images.dims[0] != labels.dims[0]) {
        tg_error("idx: %s has %u images but %s has %u labels", images_path, (unsigned)images.dims[0], labels_path,
                 (unsigned)labels.dims[0]);
        goto fail;
    }
    if (images.payload == 0) {
        tg_error("%s: no pixels: dimensions %u x %u x %u", images_path, (unsigned)images.dims[0],
                 (unsigned)images.dims[1], (unsigned)images.dims[2]);
        goto fail;
    }
    /* What the data set will hold: float32 pixels and int64 labels. More than the machine has fails
     * now, not after gigabytes were read. */
    uint64_t count = images.dims[0], pixels = (uint64_t)images.dims[1] * images.dims[2];
    uint64_t first = count * (uint64_t)part / (uint64_t)parts, end = count * (uint64_t)(part + 1) / (uint64_t)parts;
    /* a part: its own rows (every rank checks its own share of the file against its own memory) */
    uint64_t need = (end - first) * (pixels * sizeof(float) + sizeof(int64_t)), memory = tg_physical_memory();
    if (memory && need > memory) {
        char n[32], m[32];
        tg_error("idx: %s and %s declare %u images of %u x %u pixels: %s as float32 pixels and int64 labels, more than "
                 "this machine's %s of memory",
                 images_path, labels_path, (unsigned)images.dims[0], (unsigned)images.dims[1], (unsigned)images.dims[2],
                 tg_bytes_str(n, sizeof n, (double)need), tg_bytes_str(m, sizeof m, (double)memory));
        goto fail;
    }
    int64_t max_label = -1;
    if (!(chunk = tg_alloc(IDX_CHUNK)) || read_payload(&labels, chunk, &y, true, 0.0, &max_label, first, end) ||
        idx_close(&labels) || read_payload(&images, chunk, &x, false, scale, NULL, first * pixels, end * pixels) ||
        idx_close(&images))
        goto fail;

    if (!(ds = tg_alloc_zeroed(sizeof *ds)))
        goto fail;
    ds->rows = (int64_t)(end - first);
    ds->features = (int64_t)images.dims[1] * images.dims[2];
    ds->x = x;
    ds->y = y;
    x = y = NULL;
    if (!(ds->label_names = tg_alloc_zeroed((size_t)(max_label + 1) * sizeof(char *))))
        goto fail;
    ds->classes = max_label + 1;
    for (int64_t c = 0; c < ds->classes; c++) {
        char digits[8];
        snprintf(digits, sizeof digits, "%d", (int)c);
        if (!(ds->label_names[c] = tg_strdup(digits)))
            goto fail;
    }
    tg_dealloc(chunk);
    return ds;
fail:
    if (images.gz)
        gzclose(images.gz); /* the first error stands */
    if (labels.gz)
        gzclose(labels.gz);
    tg_dealloc(chunk);
    tg_dealloc(x);
    tg_dealloc(y);
    tg_dataset_free(ds);
    return NULL;
}
