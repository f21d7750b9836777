/* Files as people hand them over: a checkpoint cut at every byte, every
 * header byte of a checkpoint flipped, paths with spaces and non-ASCII
 * letters, a folder where a file belongs, a file the process may not read,
 * and files longer than their header says. Each is refused with a message
 * that names the file, or works; none crashes, reads out of bounds (the ASan
 * build checks) or leaks (the allocator hooks count). docs/robustness.md
 * lists the messages. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, seteuid */

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "helpers.h"

/* ---- allocator hooks that count live blocks ---- */

static long live_blocks;

static void *counting_malloc(size_t n)
{
    void *p = malloc(n);
    live_blocks += p != NULL;
    return p;
}

static void *counting_realloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    live_blocks += !p && q;
    return q;
}

static void counting_free(void *p)
{
    live_blocks -= p != NULL;
    free(p);
}

/* ---- files ---- */

/* Removes dir and everything under it (two levels are enough here). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *path = join_path(dir, e->d_name);
            if (unlink(path) != 0)
                remove_tree(path);
            free(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* The loader's result was NULL and the message names `names` and holds `piece`. */
static void expect_message(const void *result, const char *what, const char *names, const char *piece)
{
    const char *error = tg_last_error();
    cr_assert_null(result, "%s: accepted (expected '%s')", what, piece);
    cr_assert(strstr(error, names), "%s: the error does not name %s: %s", what, names, error);
    cr_assert(strstr(error, piece), "%s: expected '%s' in: %s", what, piece, error);
    cr_log_info("files: %s: %s", what, error);
}

/* 3 inputs -> linear 4 -> tanh -> linear 2, float32, with labels, standardization and config text. */
static tg_model *small_model(void)
{
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 4, 1 }, { TG_LAYER_TANH, 0, 0 }, { TG_LAYER_LINEAR, 2, 1 } };
    tg_rng rng;
    tg_rng_seed(&rng, 17);
    tg_model *m = tg_model_new(TG_F32, 3, 3, layers, &rng);
    cr_assert_not_null(m, "%s", tg_last_error());
    cr_assert_eq(tg_model_set_labels(m, 2, (char *[]){ "no", "yes" }), 0);
    cr_assert_eq(tg_model_set_standardization(m, (float[]){ 1, 2, 3 }, (float[]){ 0.5f, 1, 2 }), 0);
    cr_assert_eq(tg_model_set_config_json(m, "{\"seed\": 1}"), 0);
    return m;
}

/* RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF. */
static bool utf8_valid(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        int extra = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (extra < 0 || i + (size_t)extra >= n)
            return false;
        uint32_t cp = extra == 0 ? c : (uint32_t)(c & (0x3F >> extra));
        for (int k = 1; k <= extra; k++) {
            if ((p[i + (size_t)k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + (size_t)k] & 0x3F);
        }
        static const uint32_t smallest[4] = { 0, 0x80, 0x800, 0x10000 };
        if (cp < smallest[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += (size_t)extra + 1;
    }
    return true;
}

static bool same_shapes(const tg_model *a, const tg_model *b)
{
    if (tg_model_n_params(a) != tg_model_n_params(b) || tg_model_dtype(a) != tg_model_dtype(b))
        return false;
    for (int i = 0; i < tg_model_n_params(a); i++) {
        const tg_tensor *x = tg_model_param_const(a, i), *y = tg_model_param_const(b, i);
        if (tg_ndim(x) != tg_ndim(y))
            return false;
        for (int d = 0; d < tg_ndim(x); d++)
            if (tg_dim(x, d) != tg_dim(y, d))
                return false;
    }
    return true;
}

/* ---- checkpoints cut short and with a byte changed ---- */

Test(files, checkpoint_truncated_at_every_offset_is_refused)
{
    char *dir = make_temp_dir("tapegrad-files"), *path = join_path(dir, "model.safetensors");
    tg_model *m = small_model();
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    tg_model_free(m);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
    for (size_t cut = 0; cut < size; cut++) {
        write_bytes(path, bytes, cut);
        tg_clear_error();
        tg_model *back = tg_model_load(path);
        cr_assert_null(back, "a checkpoint cut to %zu of %zu bytes was accepted", cut, size);
        cr_assert(strstr(tg_last_error(), path), "cut at %zu: the error does not name the file: %s", cut,
                  tg_last_error());
        cr_assert_eq(live_blocks, 0, "cut at %zu: %ld blocks leaked (%s)", cut, live_blocks, tg_last_error());
        if (cut == 0 || cut == 8 || cut == size - 1)
            cr_log_info("files: checkpoint cut to %zu of %zu bytes: %s", cut, size, tg_last_error());
    }
    /* and the whole file loads */
    write_bytes(path, bytes, size);
    tg_model *back = tg_model_load(path);
    cr_assert_not_null(back, "%s", tg_last_error());
    tg_model_free(back);
    cr_assert_eq(live_blocks, 0);
    tg_set_allocator(NULL, NULL, NULL);
    cr_log_info("files: %zu truncation offsets refused", size);
    free(bytes);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

Test(files, checkpoint_with_any_header_byte_changed_is_refused_or_keeps_its_shapes)
{
    char *dir = make_temp_dir("tapegrad-files"), *path = join_path(dir, "model.safetensors");
    tg_model *m = small_model();
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++)
        header_len |= (uint64_t)bytes[i] << (8 * i);
    cr_assert_lt(8 + header_len, size);
    unsigned char *changed = malloc(size);
    cr_assert_not_null(changed);
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
    long refused = 0, loaded = 0, bad_utf8 = 0, unsaveable = 0;
    char first_bad[128] = "", first_unsaveable[700] = "", *resaved = join_path(dir, "resaved.safetensors");
    for (int how = 0; how < 2; how++) /* xor 0xff, then + 1 */
        for (size_t at = 0; at < 8 + header_len; at++) {
            memcpy(changed, bytes, size);
            changed[at] = how == 0 ? (unsigned char)(changed[at] ^ 0xff) : (unsigned char)(changed[at] + 1);
            write_bytes(path, changed, size);
            tg_clear_error();
            tg_model *back = tg_model_load(path);
            if (back) {
                loaded++;
                cr_assert(same_shapes(back, m), "byte %zu %s: loaded a model with other parameter shapes", at,
                          how == 0 ? "xor 0xff" : "+ 1");
                /* What is accepted must be a valid file: a UTF-8 header, and a model that saves again. */
                if (!utf8_valid(changed + 8, (size_t)header_len) && !bad_utf8++)
                    snprintf(first_bad, sizeof first_bad, "byte %zu '%c' %s -> 0x%02x", at, bytes[at],
                             how == 0 ? "xor 0xff" : "+ 1", changed[at]);
                if (tg_model_save(back, resaved) != 0 && !unsaveable++)
                    snprintf(first_unsaveable, sizeof first_unsaveable, "byte %zu %s: %s", at,
                             how == 0 ? "xor 0xff" : "+ 1", tg_last_error());
                unlink(resaved);
                tg_model_free(back);
            } else {
                refused++;
                cr_assert(strstr(tg_last_error(), path), "byte %zu %s: the error does not name the file: %s", at,
                          how == 0 ? "xor 0xff" : "+ 1", tg_last_error());
            }
            cr_assert_eq(live_blocks, 0, "byte %zu: %ld blocks leaked", at, live_blocks);
        }
    tg_set_allocator(NULL, NULL, NULL);
    cr_log_info("files: %llu header bytes changed two ways: %ld refused, %ld still valid with the same shapes",
                (unsigned long long)(8 + header_len), refused, loaded);
    free(resaved);
    tg_model_free(m);
    free(changed);
    free(bytes);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
    cr_assert_gt(refused, loaded, "most changes to the header must be caught");
    cr_assert(bad_utf8 == 0 && unsaveable == 0,
              "%ld changed headers that are not UTF-8 were loaded (safetensors requires UTF-8 JSON)%s%s; "
              "%ld loaded models cannot be saved again%s%s",
              bad_utf8, bad_utf8 ? ", the first: " : "", first_bad, unsaveable, unsaveable ? ", the first: " : "",
              first_unsaveable);
}

/* ---- paths with spaces, quotes and non-ASCII letters ---- */

static void write_idx(const char *path, uint32_t magic, int ndim, const uint32_t *dims, const unsigned char *payload,
                      size_t n, size_t extra, bool gz)
{
    unsigned char header[16];
    for (int k = 0; k < 4; k++)
        header[k] = (unsigned char)(magic >> (24 - 8 * k));
    for (int d = 0; d < ndim; d++)
        for (int k = 0; k < 4; k++)
            header[4 + 4 * d + k] = (unsigned char)(dims[d] >> (24 - 8 * k));
    size_t header_len = 4 + 4 * (size_t)ndim;
    unsigned char *all = calloc(header_len + n + extra + 1, 1);
    cr_assert_not_null(all);
    memcpy(all, header, header_len);
    memcpy(all + header_len, payload, n);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, all, (unsigned)(header_len + n + extra)), (int)(header_len + n + extra));
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        write_bytes(path, all, header_len + n + extra);
    }
    free(all);
}

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u
static const unsigned char pixels[8] = { 0, 255, 10, 20, 30, 40, 50, 60 }; /* two 2x2 images */
static const unsigned char digit_labels[2] = { 1, 0 };

static const char iris_rows[] = "sepal_length,sepal_width,petal_length,petal_width,species\n"
                                "5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,setosa\n4.7,3.2,1.3,0.2,setosa\n"
                                "7.0,3.2,4.7,1.4,versicolor\n6.4,3.2,4.5,1.5,versicolor\n6.9,3.1,4.9,1.5,versicolor\n"
                                "6.3,3.3,6.0,2.5,virginica\n5.8,2.7,5.1,1.9,virginica\n7.1,3.0,5.9,2.1,virginica\n";

Test(files, paths_with_spaces_and_unicode)
{
    char *root = make_temp_dir("tapegrad-files"), *dir = join_path(root, "dir with space");
    cr_assert_eq(mkdir(dir, 0755), 0);
    char *model_path = join_path(dir, "modèle ü.safetensors");
    char *csv_path = join_path(dir, "données d'été.csv");
    char *config_path = join_path(dir, "réglages 日本.json");
    write_bytes(csv_path, iris_rows, strlen(iris_rows));

    /* CSV */
    tg_dataset *ds = tg_csv_load(csv_path, NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 9);
    cr_assert_eq(ds->classes, 3);
    tg_dataset_free(ds);

    /* a config beside it, naming it by a relative path */
    const char *config =
        "{\"data\": {\"train\": \"données d'été.csv\", \"label\": \"species\","
        " \"test_split\": 0, \"validation_split\": 0},"
        " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 3}]},"
        " \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"train\": {\"epochs\": 2, \"batch_size\": 4}}";
    write_bytes(config_path, config, strlen(config));
    tg_config *cfg = tg_config_load(config_path);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_assert_str_eq(cfg->data.train, csv_path, "the relative data path resolves against the config's folder");
    tg_training *run = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(run, "%s", tg_last_error());

    /* a checkpoint saved there, over itself, and loaded */
    for (int again = 0; again < 2; again++)
        cr_assert_eq(tg_model_save(run->model, model_path), 0, "%s", tg_last_error());
    tg_model *back = tg_model_load(model_path);
    cr_assert_not_null(back, "%s", tg_last_error());
    cr_assert(same_shapes(back, run->model));
    cr_assert_str_eq(tg_model_label(back, 2), "virginica");
    for (int i = 0; i < tg_model_n_params(back); i++)
        for (int64_t k = 0; k < tg_numel(tg_model_param(back, i)); k++)
            cr_assert_eq(tg_get(tg_model_param(back, i), k), tg_get(tg_model_param(run->model, i), k));
    tg_model_free(back);

    /* data for the model by the same path (the eval and predict commands' loader) */
    ds = tg_load_data_for_model(run->model, csv_path, NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    tg_dataset_free(ds);
    tg_training_free(run);
    tg_config_free(cfg);

    /* IDX, plain and gzipped, under such names */
    char *images = join_path(dir, "images à l'été.idx"), *labels = join_path(dir, "étiquettes.idx.gz");
    write_idx(images, IDX_IMAGES, 3, (uint32_t[]){ 2, 2, 2 }, pixels, 8, 0, false);
    write_idx(labels, IDX_LABELS, 1, (uint32_t[]){ 2 }, digit_labels, 2, 0, true);
    ds = tg_idx_load(images, labels, 1.0 / 255);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 2);
    cr_assert_eq(ds->features, 4);
    tg_dataset_free(ds);

    /* a message names such a path as given */
    char *missing = join_path(dir, "manqué €.csv");
    tg_clear_error();
    expect_message(tg_csv_load(missing, NULL), "a missing CSV with a non-ASCII name", missing,
                   "cannot open: No such file or directory");

    free(missing);
    free(images);
    free(labels);
    free(config_path);
    free(csv_path);
    free(model_path);
    free(dir);
    remove_tree(root);
    free(root);
}

/* ---- a folder where a file belongs ---- */

Test(files, a_directory_where_a_file_is_expected)
{
    char *dir = make_temp_dir("tapegrad-files"), *folder = join_path(dir, "a folder"),
         *images = join_path(dir, "images.idx");
    cr_assert_eq(mkdir(folder, 0755), 0);
    write_idx(images, IDX_IMAGES, 3, (uint32_t[]){ 2, 2, 2 }, pixels, 8, 0, false);

    tg_clear_error();
    expect_message(tg_config_load(folder), "config is a folder", folder, "is a directory, expected a JSON config file");
    expect_message(tg_csv_load(folder, NULL), "CSV is a folder", folder, "is a directory, expected a CSV file");
    expect_message(tg_idx_load(folder, images, 1.0), "IDX images are a folder", folder,
                   "is a directory, expected an IDX images file");
    expect_message(tg_idx_load(images, folder, 1.0), "IDX labels are a folder", folder,
                   "is a directory, expected an IDX labels file");
    expect_message(tg_model_load(folder), "checkpoint is a folder", folder,
                   "is a directory, expected a safetensors file");

    /* saving onto an (empty) folder: refused before anything is written, nothing is left behind */
    tg_model *m = small_model();
    tg_clear_error();
    cr_assert_neq(tg_model_save(m, folder), 0);
    expect_message(NULL, "checkpoint saved onto a folder", folder, "is a folder");
    struct stat st;
    cr_assert_eq(stat(folder, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));)
        entries += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    cr_assert_eq(entries, 2, "a temporary file was left next to the folder");
    tg_model_free(m);

    /* a config whose data names a folder: the error comes from training */
    char *config_path = join_path(dir, "train-folder.json");
    const char *config = "{\"data\": {\"train\": \"a folder\"}, \"model\": {\"layers\": [{\"type\": \"linear\","
                         " \"out\": 3}]}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}}";
    write_bytes(config_path, config, strlen(config));
    tg_config *cfg = tg_config_load(config_path);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_clear_error();
    expect_message(tg_train_config(cfg, NULL, NULL), "config's data.train is a folder", folder,
                   "is a directory, expected a CSV file");
    tg_config_free(cfg);

    free(config_path);
    free(images);
    free(folder);
    remove_tree(dir);
    free(dir);
}

/* ---- a file the process may not read ---- */

/* Root reads anything, so as root the test drops to nobody (65534) for the
 * loads; Criterion runs each test in its own process, and the ids are put
 * back before cleaning up. */
static bool drop_privileges(void)
{
    if (geteuid() != 0)
        return false;
    cr_assert_eq(setegid(65534), 0, "setegid");
    cr_assert_eq(seteuid(65534), 0, "seteuid");
    return true;
}

static void restore_privileges(bool dropped)
{
    if (!dropped)
        return;
    cr_assert_eq(seteuid(0), 0);
    cr_assert_eq(setegid(0), 0);
}

Test(files, unreadable_files_say_permission_denied)
{
    char *dir = make_temp_dir("tapegrad-files");
    cr_assert_eq(chmod(dir, 0755), 0, "others must reach the files to be refused by their own mode");
    char *config_path = join_path(dir, "locked.json"), *csv_path = join_path(dir, "locked.csv");
    char *images = join_path(dir, "locked-images.idx"), *labels = join_path(dir, "labels.idx");
    char *model_path = join_path(dir, "locked.safetensors");
    char *read_only = join_path(dir, "read-only"), *new_model = join_path(read_only, "new.safetensors");
    cr_assert_eq(mkdir(read_only, 0755), 0);
    cr_assert_eq(chmod(read_only, 0555), 0);
    const char *config = "{\"data\": {\"train\": \"locked.csv\"}, \"model\": {\"layers\": [{\"type\": \"linear\","
                         " \"out\": 3}]}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}}";
    write_bytes(config_path, config, strlen(config));
    write_bytes(csv_path, iris_rows, strlen(iris_rows));
    write_idx(images, IDX_IMAGES, 3, (uint32_t[]){ 2, 2, 2 }, pixels, 8, 0, false);
    write_idx(labels, IDX_LABELS, 1, (uint32_t[]){ 2 }, digit_labels, 2, 0, false);
    tg_model *m = small_model();
    cr_assert_eq(tg_model_save(m, model_path), 0, "%s", tg_last_error());
    /* a readable config that names the locked CSV */
    char *open_config = join_path(dir, "open.json");
    write_bytes(open_config, config, strlen(config));
    cr_assert_eq(chmod(open_config, 0644), 0);
    cr_assert_eq(chmod(labels, 0644), 0);
    const char *locked[] = { config_path, csv_path, images, model_path };
    for (size_t i = 0; i < sizeof locked / sizeof *locked; i++)
        cr_assert_eq(chmod(locked[i], 0), 0);

    bool dropped = drop_privileges();
    tg_clear_error();
    expect_message(tg_config_load(config_path), "unreadable config", config_path, "Permission denied");
    expect_message(tg_csv_load(csv_path, NULL), "unreadable CSV", csv_path, "Permission denied");
    expect_message(tg_idx_load(images, labels, 1.0), "unreadable IDX", images, "Permission denied");
    expect_message(tg_model_load(model_path), "unreadable checkpoint", model_path, "Permission denied");
    tg_config *cfg = tg_config_load(open_config);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    expect_message(tg_train_config(cfg, NULL, NULL), "config naming an unreadable CSV", csv_path, "Permission denied");
    tg_config_free(cfg);
    /* and a folder it may not write in: no temporary file can be made */
    int saved = tg_model_save(m, new_model);
    restore_privileges(dropped);
    cr_assert_neq(saved, 0, "saved into a folder without write permission");
    expect_message(NULL, "checkpoint saved into a read-only folder", new_model, "Permission denied");
    cr_assert_neq(access(new_model, F_OK), 0);

    tg_model_free(m);
    chmod(read_only, 0755);
    const char *all[] = { config_path, csv_path, images, labels, model_path, open_config, new_model, read_only };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free((void *)all[i]);
    remove_tree(dir);
    free(dir);
}

/* ---- files longer than their header says ---- */

Test(files, checkpoint_with_trailing_bytes_is_refused)
{
    char *dir = make_temp_dir("tapegrad-files"), *path = join_path(dir, "model.safetensors");
    tg_model *m = small_model();
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    tg_model_free(m);
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    unsigned char *longer = calloc(size + 4096, 1);
    cr_assert_not_null(longer);
    memcpy(longer, bytes, size);
    static const size_t extras[] = { 1, 4, 8, 4096 };
    for (size_t i = 0; i < sizeof extras / sizeof *extras; i++) {
        write_bytes(path, longer, size + extras[i]);
        tg_clear_error();
        char what[64];
        snprintf(what, sizeof what, "checkpoint with %zu trailing bytes", extras[i]);
        expect_message(tg_model_load(path), what, path, "but the file has");
    }
    free(longer);
    free(bytes);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

Test(files, idx_with_trailing_bytes_is_refused)
{
    char *dir = make_temp_dir("tapegrad-files"), *images = join_path(dir, "images.idx"),
         *labels = join_path(dir, "labels.idx");
    for (int gz = 0; gz < 2; gz++) {
        /* images with one byte too many, then labels with one byte too many */
        write_idx(images, IDX_IMAGES, 3, (uint32_t[]){ 2, 2, 2 }, pixels, 8, 1, gz);
        write_idx(labels, IDX_LABELS, 1, (uint32_t[]){ 2 }, digit_labels, 2, 0, gz);
        tg_clear_error();
        expect_message(tg_idx_load(images, labels, 1.0),
                       gz ? "gzipped IDX images with a trailing byte" : "IDX images with a trailing byte", images,
                       "unexpected bytes after the 8-byte payload");
        write_idx(images, IDX_IMAGES, 3, (uint32_t[]){ 2, 2, 2 }, pixels, 8, 0, gz);
        write_idx(labels, IDX_LABELS, 1, (uint32_t[]){ 2 }, digit_labels, 2, 3, gz);
        tg_clear_error();
        expect_message(tg_idx_load(images, labels, 1.0),
                       gz ? "gzipped IDX labels with trailing bytes" : "IDX labels with trailing bytes", labels,
                       "unexpected bytes after the 2-byte payload");
    }
    unlink(images);
    unlink(labels);
    free(images);
    free(labels);
    rmdir(dir);
    free(dir);
}

/* Plain and gzipped IDX images cut at every byte: each refused, nothing leaked. */
Test(files, idx_truncated_at_every_offset_is_refused)
{
    char *dir = make_temp_dir("tapegrad-files"), *whole = join_path(dir, "whole.idx"), *cut = join_path(dir, "cut.idx"),
         *labels = join_path(dir, "labels.idx");
    write_idx(labels, IDX_LABELS, 1, (uint32_t[]){ 2 }, digit_labels, 2, 0, false);
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
    long refused = 0;
    for (int gz = 0; gz < 2; gz++) {
        write_idx(whole, IDX_IMAGES, 3, (uint32_t[]){ 2, 2, 2 }, pixels, 8, 0, gz);
        size_t size;
        unsigned char *bytes = read_bytes(whole, &size);
        for (size_t n = 0; n < size; n++) {
            write_bytes(cut, bytes, n);
            tg_clear_error();
            tg_dataset *ds = tg_idx_load(cut, labels, 1.0);
            cr_assert_null(ds, "%s IDX cut to %zu of %zu bytes was accepted", gz ? "gzipped" : "plain", n, size);
            cr_assert(strstr(tg_last_error(), cut), "cut at %zu: %s", n, tg_last_error());
            cr_assert_eq(live_blocks, 0, "cut at %zu: %ld blocks leaked", n, live_blocks);
            refused++;
        }
        free(bytes);
    }
    tg_set_allocator(NULL, NULL, NULL);
    cr_log_info("files: %ld truncated IDX files (plain and gzipped) refused", refused);
    free(whole);
    free(cut);
    free(labels);
    remove_tree(dir);
    free(dir);
}

/* ---- text in another encoding ---- */

/* A CSV saved in Latin-1 ("été" as the bytes e9 74 e9) is common. Its labels
 * cannot go into a checkpoint (a safetensors header is UTF-8 JSON), so the run
 * must either be refused when the data are read, naming the line, or save:
 * never train to the end and then fail to save. */
Test(files, labels_that_are_not_utf8_are_refused_before_training)
{
    char *dir = make_temp_dir("tapegrad-files"), *csv_path = join_path(dir, "latin1.csv"),
         *model_path = join_path(dir, "latin1.safetensors");
    const char rows[] = "x,saison\n1,\351t\351\n2,hiver\n3,\351t\351\n4,hiver\n";
    write_bytes(csv_path, rows, strlen(rows));
    const char *json = "{\"data\": {\"train\": \"latin1.csv\", \"test_split\": 0, \"validation_split\": 0},"
                       " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 2}]},"
                       " \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"train\": {\"epochs\": 1}}";
    tg_config *cfg = tg_config_parse(json, dir);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_clear_error();
    tg_training *run = tg_train_config(cfg, NULL, NULL);
    char outcome[600];
    int saved = -1;
    if (run) {
        saved = tg_model_save(run->model, model_path);
        snprintf(outcome, sizeof outcome, "%s", tg_last_error());
    } else {
        snprintf(outcome, sizeof outcome, "%s", tg_last_error());
    }
    tg_training_free(run);
    tg_config_free(cfg);
    unlink(model_path);
    unlink(csv_path);
    rmdir(dir);
    free(model_path);
    free(csv_path);
    free(dir);
    if (!run) {
        cr_assert(strstr(outcome, "latin1.csv") && strstr(outcome, "UTF-8"),
                  "refused, but the message names neither the file nor the encoding: %s", outcome);
        cr_log_info("files: a Latin-1 label: %s", outcome);
    } else {
        cr_assert_eq(saved, 0, "trained on labels that are not UTF-8, then could not save: %s", outcome);
    }
}

/* The same for the config text, which the checkpoint carries along: a config
 * written in Latin-1, naming a file "données.csv" spelled in Latin-1 bytes (a
 * valid Linux name). */
Test(files, a_config_that_is_not_utf8_is_refused_before_training)
{
    char *dir = make_temp_dir("tapegrad-files"), *csv_path = join_path(dir, "donn\351es.csv"); /* Latin-1 é */
    char *config_path = join_path(dir, "latin1.json"), *model_path = join_path(dir, "latin1.safetensors");
    const char rows[] = "x,label\n1,a\n2,b\n3,a\n4,b\n";
    write_bytes(csv_path, rows, strlen(rows));
    const char *json = "{\"data\": {\"train\": \"donn\351es.csv\", \"test_split\": 0, \"validation_split\": 0},"
                       " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 2}]},"
                       " \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"train\": {\"epochs\": 1}}";
    write_bytes(config_path, json, strlen(json));
    tg_clear_error();
    tg_config *cfg = tg_config_load(config_path);
    tg_training *run = cfg ? tg_train_config(cfg, NULL, NULL) : NULL;
    int saved = run ? tg_model_save(run->model, model_path) : -1;
    char outcome[600];
    snprintf(outcome, sizeof outcome, "%s", tg_last_error());
    bool refused = !cfg || !run;
    tg_training_free(run);
    tg_config_free(cfg);
    unlink(model_path);
    unlink(config_path);
    unlink(csv_path);
    rmdir(dir);
    free(model_path);
    free(config_path);
    free(csv_path);
    free(dir);
    if (refused) {
        cr_assert(strstr(outcome, "latin1.json") && strstr(outcome, "UTF-8"),
                  "refused, but the message names neither the file nor the encoding: %s", outcome);
        cr_log_info("files: a Latin-1 config: %s", outcome);
    } else {
        cr_assert_eq(saved, 0, "trained from a config that is not UTF-8, then could not save: %s", outcome);
    }
}
