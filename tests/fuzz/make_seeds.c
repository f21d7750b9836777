/* Writes the binary seeds of the fuzz corpus: tests/fuzz/corpus/idx/ (an
 * images and a labels file packed as fuzz_idx reads them) and
 * tests/fuzz/corpus/safetensors/ (checkpoints from tg_model_save, whole, cut
 * short and with a byte changed). The text seeds (configs, CSV) are written
 * by hand. Run from the build: fuzz_make_seeds tests/fuzz/corpus
 * Names starting with "ok-" must load; the regression test checks that. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <tapegrad.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, detail);
    exit(1);
}

static void write_seed(const char *dir, const char *kind, const char *name, const unsigned char *bytes, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", dir, kind, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0)
        die("cannot write", path);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open", path);
    size_t cap = 1 << 16;
    unsigned char *bytes = malloc(cap);
    if (!bytes)
        die("out of memory", path);
    *n = fread(bytes, 1, cap, f);
    if (*n == cap || ferror(f))
        die("cannot read (or larger than 64 KiB)", path);
    fclose(f);
    return bytes;
}

/* ---- IDX: byte 0 is the labels file's length, then labels, then images ---- */

typedef struct {
    unsigned char bytes[4096];
    size_t n;
} buffer;

static void put(buffer *b, const void *p, size_t n)
{
    if (b->n + n > sizeof b->bytes)
        die("buffer", "full");
    if (n)
        memcpy(b->bytes + b->n, p, n);
    b->n += n;
}

static void put_u32(buffer *b, uint32_t v)
{
    unsigned char be[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                            (unsigned char)v };
    put(b, be, 4);
}

/* An IDX file: magic, dims, then payload (n bytes). */
static buffer idx_file(uint32_t magic, int ndim, const uint32_t *dims, const unsigned char *payload, size_t n)
{
    buffer b = { .n = 0 };
    put_u32(&b, magic);
    for (int d = 0; d < ndim; d++)
        put_u32(&b, dims[d]);
    put(&b, payload, n);
    return b;
}

/* f gzipped (through a temporary file, with zlib's gz* calls as a user would). */
static buffer gzipped(const buffer *f, const char *tmp_dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/seed.gz", tmp_dir);
    gzFile gz = gzopen(path, "wb9");
    if (!gz || gzwrite(gz, f->bytes, (unsigned)f->n) != (int)f->n || gzclose(gz) != Z_OK)
        die("cannot gzip into", path);
    buffer b = { .n = 0 };
    size_t n;
    unsigned char *bytes = read_all(path, &n);
    put(&b, bytes, n);
    free(bytes);
    unlink(path);
    return b;
}

/* An IDX file too large for a buffer, gzipped as it is written. */
static buffer gzipped_idx(uint32_t magic, int ndim, const uint32_t *dims, const unsigned char *payload, size_t n,
                          const char *tmp_dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/seed.gz", tmp_dir);
    buffer header = idx_file(magic, ndim, dims, NULL, 0);
    gzFile gz = gzopen(path, "wb9");
    if (!gz || gzwrite(gz, header.bytes, (unsigned)header.n) != (int)header.n ||
        gzwrite(gz, payload, (unsigned)n) != (int)n || gzclose(gz) != Z_OK)
        die("cannot gzip into", path);
    buffer b = { .n = 0 };
    size_t size;
    unsigned char *bytes = read_all(path, &size);
    put(&b, bytes, size);
    free(bytes);
    unlink(path);
    return b;
}

static void idx_seed(const char *dir, const char *name, const buffer *images, const buffer *labels)
{
    if (labels->n > 255)
        die("labels file longer than 255 bytes", name);
    buffer b = { .n = 0 };
    unsigned char length = (unsigned char)labels->n;
    put(&b, &length, 1);
    put(&b, labels->bytes, labels->n);
    put(&b, images->bytes, images->n);
    write_seed(dir, "idx", name, b.bytes, b.n);
}

static void idx_seeds(const char *dir, const char *tmp_dir)
{
    const uint32_t images_magic = 0x803, labels_magic = 0x801;
    const unsigned char pixels[3 * 2 * 3] = { 0, 255, 128, 1, 2, 3, 10, 20, 30, 40, 50, 60, 255, 254, 0, 0, 7, 9 };
    const unsigned char labels3[3] = { 0, 2, 1 };
    buffer images = idx_file(images_magic, 3, (const uint32_t[]){ 3, 2, 3 }, pixels, sizeof pixels);
    buffer labels = idx_file(labels_magic, 1, (const uint32_t[]){ 3 }, labels3, 3);
    idx_seed(dir, "ok-3x2x3", &images, &labels);
    buffer images_gz = gzipped(&images, tmp_dir), labels_gz = gzipped(&labels, tmp_dir);
    idx_seed(dir, "ok-3x2x3-gzip", &images_gz, &labels_gz);
    idx_seed(dir, "ok-3x2x3-gzip-images-only", &images_gz, &labels);

    buffer one = idx_file(images_magic, 3, (const uint32_t[]){ 1, 1, 1 }, (const unsigned char[]){ 9 }, 1);
    buffer one_label = idx_file(labels_magic, 1, (const uint32_t[]){ 1 }, (const unsigned char[]){ 9 }, 1);
    idx_seed(dir, "ok-1x1x1-label9", &one, &one_label);

    buffer two_labels = idx_file(labels_magic, 1, (const uint32_t[]){ 2 }, labels3, 2);
    idx_seed(dir, "count-mismatch", &images, &two_labels);
    idx_seed(dir, "swapped", &labels, &images);
    buffer short_images = images;
    short_images.n -= 1;
    idx_seed(dir, "truncated-images", &short_images, &labels);
    buffer long_labels = labels;
    put(&long_labels, "x", 1);
    idx_seed(dir, "trailing-byte", &images, &long_labels);
    buffer huge = idx_file(images_magic, 3, (const uint32_t[]){ 3, 0xffffffffu, 0xffffffffu }, pixels, 4);
    idx_seed(dir, "huge-dims", &huge, &labels);
    buffer empty = idx_file(images_magic, 3, (const uint32_t[]){ 0, 28, 28 }, NULL, 0);
    buffer no_labels = idx_file(labels_magic, 1, (const uint32_t[]){ 0 }, NULL, 0);
    idx_seed(dir, "zero-images", &empty, &no_labels);
    buffer cut_gz = images_gz;
    cut_gz.n -= 6; /* the gzip trailer and a little of the stream */
    idx_seed(dir, "truncated-gzip", &cut_gz, &labels_gz);
    /* 1 MiB and 1 KiB of pixels from 1 KB of gzip: more than one of the
     * loader's 1 MiB chunks, so its buffers grow as the stream decompresses. */
    const uint32_t big_dims[3] = { 1, 1025, 1024 };
    unsigned char *zeros = calloc(1025 * 1024, 1);
    if (!zeros)
        die("out of memory", "seeds");
    buffer big_labels = idx_file(labels_magic, 1, (const uint32_t[]){ 1 }, labels3, 1);
    buffer big_labels_gz = gzipped(&big_labels, tmp_dir);
    buffer big_gz = gzipped_idx(images_magic, 3, big_dims, zeros, 1025 * 1024, tmp_dir);
    idx_seed(dir, "ok-1x1025x1024-gzip", &big_gz, &big_labels_gz);
    big_gz.n -= big_gz.n / 3;
    idx_seed(dir, "truncated-gzip-1MiB", &big_gz, &big_labels_gz);
    free(zeros);
    buffer header_only = images;
    header_only.n = 10;
    idx_seed(dir, "truncated-header", &header_only, &labels);
}

/* ---- safetensors ---- */

static unsigned char *saved(tg_model *m, const char *tmp_dir, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/seed.st", tmp_dir);
    if (!m || tg_model_save(m, path) != 0)
        die("cannot save a model", tg_last_error());
    unsigned char *bytes = read_all(path, n);
    unlink(path);
    tg_model_free(m);
    return bytes;
}

static void safetensors_seeds(const char *dir, const char *tmp_dir)
{
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    size_t n;

    const tg_layer_spec linear[] = { { TG_LAYER_LINEAR, 2, 1 } };
    unsigned char *bytes = saved(tg_model_new(TG_F32, 3, 1, linear, &rng), tmp_dir, &n);
    write_seed(dir, "safetensors", "ok-linear-f32.st", bytes, n);
    free(bytes);

    const tg_layer_spec activations[] = { { TG_LAYER_LINEAR, 2, 1 },
                                          { TG_LAYER_TANH, 0, 0 },
                                          { TG_LAYER_LINEAR, 2, 0 },
                                          { TG_LAYER_SIGMOID, 0, 0 },
                                          { TG_LAYER_LINEAR, 3, 1 } };
    bytes = saved(tg_model_new(TG_F32, 2, 5, activations, &rng), tmp_dir, &n);
    write_seed(dir, "safetensors", "ok-tanh-sigmoid-f32.st", bytes, n);
    free(bytes);

    /* Everything a checkpoint can carry: labels, standardization, config text. */
    const tg_layer_spec mlp[] = { { TG_LAYER_LINEAR, 3, 1 }, { TG_LAYER_RELU, 0, 0 }, { TG_LAYER_LINEAR, 2, 0 } };
    tg_model *m = tg_model_new(TG_F64, 2, 3, mlp, &rng);
    char *const labels[] = { "cat", "d\xc3\xb6g" };
    const float mean[] = { 0.5f, -1.25f }, std[] = { 2.0f, 0.125f };
    if (!m || tg_model_set_labels(m, 2, labels) || tg_model_set_standardization(m, mean, std) ||
        tg_model_set_config_json(m, "{\"seed\": 1}"))
        die("cannot build the model", tg_last_error());
    bytes = saved(m, tmp_dir, &n);
    write_seed(dir, "safetensors", "ok-mlp-f64-metadata.st", bytes, n);

    /* Near misses of the last one: cut short, and one byte changed. */
    size_t header_len = bytes[0] | (size_t)bytes[1] << 8;
    const struct {
        const char *name;
        size_t len;
    } cuts[] = { { "cut-in-length.st", 5 },
                 { "cut-in-header.st", 8 + header_len / 2 },
                 { "cut-after-header.st", 8 + header_len },
                 { "cut-last-byte.st", n - 1 } };
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++)
        write_seed(dir, "safetensors", cuts[i].name, bytes, cuts[i].len);
    unsigned char *changed = malloc(n + 1);
    if (!changed)
        die("out of memory", "seeds");
    const struct {
        const char *name;
        size_t at;
        unsigned char value;
    } flips[] = { { "length-plus-one.st", 0, (unsigned char)(bytes[0] + 1) },
                  { "length-high-byte.st", 4, 0x10 },
                  { "header-not-object.st", 8, '[' },
                  { "header-quote.st", 9, 'x' },
                  { "data-byte.st", n - 1, (unsigned char)(bytes[n - 1] ^ 0x80) } };
    for (size_t i = 0; i < sizeof flips / sizeof *flips; i++) {
        memcpy(changed, bytes, n);
        changed[flips[i].at] = flips[i].value;
        write_seed(dir, "safetensors", flips[i].name, changed, n);
    }
    memcpy(changed, bytes, n);
    changed[n] = 0;
    write_seed(dir, "safetensors", "extra-byte.st", changed, n + 1);
    free(changed);
    free(bytes);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    char tmp_dir[] = "/tmp/tapegrad-seeds-XXXXXX";
    if (!mkdtemp(tmp_dir))
        die("cannot make a folder", tmp_dir);
    idx_seeds(argv[1], tmp_dir);
    safetensors_seeds(argv[1], tmp_dir);
    rmdir(tmp_dir);
    return 0;
}
