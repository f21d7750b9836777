/* IDX loading: small files written here, plain and gzipped, with hand-chosen
 * pixels; then every way a file can be wrong. */
#define _POSIX_C_SOURCE 200809L /* mkstemp, mkdtemp */

#include <criterion/criterion.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "helpers.h"

#define IMAGES 0x00000803u
#define LABELS 0x00000801u

static void put_u32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static void temp_name(char *path, size_t size)
{
    snprintf(path, size, "/tmp/tg_idx_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp failed");
    close(fd);
}

/* Header (magic, ndim dims) then payload bytes, plus extra bytes of garbage;
 * gzipped when gz. Returns the file's name in path. */
static void write_idx(char *path, size_t size, uint32_t magic, int ndim, const uint32_t *dims,
                      const unsigned char *payload, size_t n, size_t extra, bool gz)
{
    unsigned char header[16];
    put_u32(header, magic);
    for (int d = 0; d < ndim; d++)
        put_u32(header + 4 + 4 * d, dims[d]);
    size_t header_len = 4 + 4 * (size_t)ndim;
    unsigned char *garbage = calloc(extra + 1, 1);
    cr_assert_not_null(garbage);
    temp_name(path, size);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, header, (unsigned)header_len), (int)header_len);
        if (n)
            cr_assert_eq(gzwrite(f, payload, (unsigned)n), (int)n);
        if (extra)
            cr_assert_eq(gzwrite(f, garbage, (unsigned)extra), (int)extra);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(header, 1, header_len, f), header_len);
        if (n)
            cr_assert_eq(fwrite(payload, 1, n, f), n);
        cr_assert_eq(fwrite(garbage, 1, extra, f), extra);
        cr_assert_eq(fclose(f), 0);
    }
    free(garbage);
}

/* Three 2x2 images and their labels 2, 0, 1. */
static const unsigned char pixels[12] = { 0, 255, 51, 102, 1, 2, 3, 4, 250, 0, 0, 128 };
static const unsigned char digits[3] = { 2, 0, 1 };

static void write_pair(char *images, char *labels, size_t size, bool gz_images, bool gz_labels)
{
    write_idx(images, size, IMAGES, 3, (uint32_t[]){ 3, 2, 2 }, pixels, 12, 0, gz_images);
    write_idx(labels, size, LABELS, 1, (uint32_t[]){ 3 }, digits, 3, 0, gz_labels);
}

static void check_pair(tg_dataset *ds, double scale)
{
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 3);
    cr_assert_eq(ds->features, 4);
    cr_assert_eq(ds->classes, 3);
    cr_assert_null(ds->feature_names);
    for (int c = 0; c < 3; c++) {
        char name[4];
        snprintf(name, sizeof name, "%d", c);
        cr_assert_str_eq(ds->label_names[c], name);
    }
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ds->y[i], digits[i]);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(ds->x[i], (float)(pixels[i] * scale), "pixel %d", i);
}

/* Asserts that loading fails and the message names path and contains piece. */
static void expect_error(const char *images, const char *labels, const char *path, const char *piece)
{
    tg_clear_error();
    tg_dataset *ds = tg_idx_load(images, labels, 1.0);
    const char *msg = tg_last_error();
    cr_assert_null(ds, "expected an error naming '%s'", piece);
    cr_assert_not_null(strstr(msg, path), "the error does not name %s: %s", path, msg);
    cr_assert_not_null(strstr(msg, piece), "expected '%s' in: %s", piece, msg);
}

static void remove_pair(const char *images, const char *labels)
{
    unlink(images);
    unlink(labels);
}

Test(idx, plain_and_gzipped)
{
    char images[64], labels[64];
    const bool gz[4][2] = { { false, false }, { true, true }, { true, false }, { false, true } };
    for (int k = 0; k < 4; k++) {
        write_pair(images, labels, sizeof images, gz[k][0], gz[k][1]);
        tg_dataset *ds = tg_idx_load(images, labels, 1.0 / 255.0);
        check_pair(ds, 1.0 / 255.0);
        cr_assert_eq(ds->x[1], 1.0f);
        cr_assert_eq(ds->x[0], 0.0f);
        tg_dataset_free(ds);
        ds = tg_idx_load(images, labels, 1.0);
        check_pair(ds, 1.0);
        cr_assert_eq(ds->x[11], 128.0f);
        tg_dataset_free(ds);
        remove_pair(images, labels);
    }
}

Test(idx, classes_follow_the_largest_label)
{
    char images[64], labels[64];
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 2, 1, 1 }, (unsigned char[]){ 7, 8 }, 2, 0, false);
    write_idx(labels, sizeof labels, LABELS, 1, (uint32_t[]){ 2 }, (unsigned char[]){ 9, 4 }, 2, 0, true);
    tg_dataset *ds = tg_idx_load(images, labels, 1.0);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->classes, 10);
    cr_assert_str_eq(ds->label_names[9], "9");
    cr_assert_eq(ds->y[0], 9);
    tg_dataset_free(ds);
    remove_pair(images, labels);
}

Test(idx, missing_file_directory_and_scale)
{
    char images[64], labels[64];
    write_pair(images, labels, sizeof images, false, false);
    expect_error("/tmp/tg_no_such_dir/images", labels, "/tmp/tg_no_such_dir/images", "No such file or directory");
    expect_error(images, "/tmp/tg_no_such_dir/labels", "/tmp/tg_no_such_dir/labels", "No such file or directory");
    char dir[] = "/tmp/tg_idx_dir_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    expect_error(dir, labels, dir, "is a directory");
    rmdir(dir);
    cr_assert_null(tg_idx_load(images, labels, NAN));
    cr_assert_not_null(strstr(tg_last_error(), "scale"), "%s", tg_last_error());
    remove_pair(images, labels);
}

Test(idx, wrong_magic)
{
    char images[64], labels[64];
    write_pair(images, labels, sizeof images, false, true);
    expect_error(labels, images, labels, "magic number 0x00000801, expected 0x00000803");
    /* a gzipped file is checked after decompression, the same way */
    char other[64];
    write_idx(other, sizeof other, 0x00000c03u, 3, (uint32_t[]){ 3, 2, 2 }, pixels, 12, 0, true);
    expect_error(other, labels, other, "magic number 0x00000c03");
    unlink(other);
    remove_pair(images, labels);
}

Test(idx, count_mismatch)
{
    char images[64], labels[64];
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 3, 2, 2 }, pixels, 12, 0, false);
    write_idx(labels, sizeof labels, LABELS, 1, (uint32_t[]){ 2 }, digits, 2, 0, false);
    expect_error(images, labels, images, "has 3 images but");
    cr_assert_not_null(strstr(tg_last_error(), "has 2 labels"), "%s", tg_last_error());
    remove_pair(images, labels);
}

Test(idx, truncated)
{
    char images[64], labels[64];
    write_pair(images, labels, sizeof images, false, false);
    unlink(images);
    /* plain: one pixel short, caught from the file size before reading */
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 3, 2, 2 }, pixels, 11, 0, false);
    expect_error(images, labels, images, "truncated: the header declares 12 bytes of images, the file holds 11");
    unlink(images);
    /* gzipped: the same, found while reading */
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 3, 2, 2 }, pixels, 11, 0, true);
    expect_error(images, labels, images, "truncated: the header declares 12 bytes of images, the file holds 11");
    unlink(images);
    /* a header cut short */
    write_idx(images, sizeof images, IMAGES, 0, NULL, NULL, 0, 6, false);
    expect_error(images, labels, images, "truncated header: 10 of 16 bytes");
    unlink(images);
    /* an empty file */
    temp_name(images, sizeof images);
    expect_error(images, labels, images, "truncated header: 0 of 16 bytes");
    remove_pair(images, labels);
}

Test(idx, trailing_bytes)
{
    char images[64], labels[64];
    write_pair(images, labels, sizeof images, false, false);
    unlink(labels);
    write_idx(labels, sizeof labels, LABELS, 1, (uint32_t[]){ 3 }, digits, 3, 1, false);
    expect_error(images, labels, labels, "1 unexpected bytes after the 3-byte payload");
    unlink(labels);
    write_idx(labels, sizeof labels, LABELS, 1, (uint32_t[]){ 3 }, digits, 3, 5, true);
    expect_error(images, labels, labels, "unexpected bytes after the 3-byte payload");
    remove_pair(images, labels);
}

/* Rewrites path keeping only its first keep bytes (keep < 0: all but -keep). */
static void cut_file(const char *path, long keep)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    unsigned char bytes[4096];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    size_t new_len = keep < 0 ? n - (size_t)-keep : (size_t)keep;
    cr_assert(new_len < n);
    f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, new_len, f), new_len);
    fclose(f);
}

Test(idx, truncated_gzip)
{
    char images[64], labels[64];
    /* enough pixels that the deflate stream is longer than its header */
    unsigned char many[600];
    for (int i = 0; i < 600; i++)
        many[i] = (unsigned char)(i * 37 % 251);
    unsigned char six[6] = { 0, 1, 2, 3, 4, 5 };
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 6, 10, 10 }, many, 600, 0, true);
    write_idx(labels, sizeof labels, LABELS, 1, (uint32_t[]){ 6 }, six, 6, 0, false);
    tg_dataset *ds = tg_idx_load(images, labels, 1.0);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->x[599], (float)(599 * 37 % 251));
    tg_dataset_free(ds);

    /* only the 8-byte trailer (CRC and length) cut: every pixel arrives, the stream is still incomplete */
    cut_file(images, -4);
    expect_error(images, labels, images, "truncated gzip stream");
    unlink(images);
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 6, 10, 10 }, many, 600, 0, true);
    cut_file(images, -8);
    expect_error(images, labels, images, "truncated gzip stream");
    unlink(images);
    /* cut in the middle of the pixels */
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 6, 10, 10 }, many, 600, 0, true);
    cut_file(images, 200);
    expect_error(images, labels, images, "truncated: the header declares 600 bytes of images");
    cr_assert_not_null(strstr(tg_last_error(), "(the gzip stream ends early)"), "%s", tg_last_error());
    unlink(images);

    /* a corrupted trailer: the CRC no longer matches */
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 6, 10, 10 }, many, 600, 0, true);
    FILE *f = fopen(images, "r+b");
    cr_assert_not_null(f);
    fseek(f, -8, SEEK_END);
    int c = fgetc(f);
    fseek(f, -8, SEEK_END);
    fputc(c ^ 0xff, f);
    fclose(f);
    expect_error(images, labels, images, "read error: incorrect data check");
    remove_pair(images, labels);
}

Test(idx, declared_sizes_are_checked)
{
    char images[64], labels[64];
    write_pair(images, labels, sizeof images, false, false);
    unlink(images);
    /* 2^32-1 x 2^32-1 x 2^32-1 would overflow 64 bits */
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 0xffffffffu, 0xffffffffu, 0xffffffffu }, pixels, 12, 0,
              false);
    expect_error(images, labels, images, "declare more than 2147483648 bytes");
    unlink(images);
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 3, 0, 2 }, NULL, 0, 0, false);
    expect_error(images, labels, images, "no pixels");
    remove_pair(images, labels);
}

/* ---- allocation: a lying gzip header cannot make the loader allocate what never arrives ---- */

static struct {
    int64_t attempts, fail_at, live;
    size_t largest;
} counts;

static void *counting_malloc(size_t bytes)
{
    if (++counts.attempts == counts.fail_at)
        return NULL;
    void *p = malloc(bytes);
    counts.live += p != NULL;
    counts.largest = bytes > counts.largest ? bytes : counts.largest;
    return p;
}

static void *counting_realloc(void *old, size_t bytes)
{
    if (++counts.attempts == counts.fail_at)
        return NULL;
    void *p = realloc(old, bytes);
    counts.live += p && !old;
    counts.largest = bytes > counts.largest ? bytes : counts.largest;
    return p;
}

static void counting_free(void *p)
{
    counts.live -= p != NULL;
    free(p);
}

Test(idx, gzip_buffers_grow_with_the_data)
{
    /* declares 60000 x 28 x 28 (188 MB as float32) but holds 10 pixels */
    char images[64], labels[64];
    unsigned char *many = calloc(60000, 1);
    cr_assert_not_null(many);
    write_idx(images, sizeof images, IMAGES, 3, (uint32_t[]){ 60000, 28, 28 }, pixels, 10, 0, true);
    write_idx(labels, sizeof labels, LABELS, 1, (uint32_t[]){ 60000 }, many, 60000, 0, true);
    free(many);
    memset(&counts, 0, sizeof counts);
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
    tg_dataset *ds = tg_idx_load(images, labels, 1.0);
    tg_set_allocator(NULL, NULL, NULL);
    cr_assert_null(ds);
    cr_assert_not_null(strstr(tg_last_error(), "truncated"), "%s", tg_last_error());
    cr_assert_lt(counts.largest, (size_t)8 << 20, "largest allocation %zu bytes", counts.largest);
    cr_assert_eq(counts.live, 0);
    remove_pair(images, labels);
}

Test(idx, every_allocation_failure_is_clean)
{
    char images[64], labels[64];
    write_pair(images, labels, sizeof images, true, false);
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
    bool succeeded = false;
    for (int64_t fail_at = 1; fail_at < 100 && !succeeded; fail_at++) {
        counts.attempts = counts.live = 0;
        counts.fail_at = fail_at;
        tg_clear_error();
        tg_dataset *ds = tg_idx_load(images, labels, 1.0);
        if (ds) {
            succeeded = true;
            check_pair(ds, 1.0);
            tg_dataset_free(ds);
        } else {
            cr_assert_not_null(strstr(tg_last_error(), "out of memory"), "attempt %lld: %s", (long long)fail_at,
                               tg_last_error());
        }
        cr_assert_eq(counts.live, 0, "attempt %lld leaves %lld blocks", (long long)fail_at, (long long)counts.live);
    }
    tg_set_allocator(NULL, NULL, NULL);
    remove_pair(images, labels);
    cr_assert(succeeded);
}

/* The real thing, when Debian's dataset-fashion-mnist is installed. */
Test(idx, fashion_mnist)
{
    const char *images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    if (access(images, R_OK) != 0 || access(labels, R_OK) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
    tg_dataset *ds = tg_idx_load(images, labels, 1.0 / 255.0);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 10000);
    cr_assert_eq(ds->features, 784);
    cr_assert_eq(ds->classes, 10);
    tg_dataset_free(ds);
}
