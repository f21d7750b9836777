/* Data larger than memory (data.stream): a CSV file read in blocks each epoch.
 * The file is generated here with values that name their row (column 1 is
 * the row's index), so every check has its own oracle: each row seen once an
 * epoch (by value, not only by the stream's say-so), the moments against long
 * double sums of the generated values, an error's line and column counted by
 * hand. The equivalence with in-memory training (one window holding the
 * file) and the resume are checked bit for bit against the in-memory
 * trainer and the uninterrupted run. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"
#include "io/io_internal.h"

#define ROWS 300
static const char *const LABELS[3] = { "ant", "bee", "cat" };

/* Row r: i = r, u = (r mod 7) / 4, v = (13 r mod 11) - 5, label from r. Line r + 2 (after the header). */
static double cell_u(int r) { return (r % 7) * 0.25; }
static double cell_v(int r) { return (double)((13 * r) % 11 - 5); }
static int label_of(int r) { return (r * 7 + r / 5) % 3; }

/* Writes the file into dir; bad_row >= 0 puts bad_cell in column u of that row. Caller frees the path. */
static char *write_csv(const char *dir, const char *name, int rows, int bad_row, const char *bad_cell)
{
    char *path = join_path(dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "i,u,v,label\n");
    for (int r = 0; r < rows; r++) {
        if (r == bad_row)
            fprintf(f, "%d,%s,%g,%s\n", r, bad_cell, cell_v(r), LABELS[label_of(r)]);
        else
            fprintf(f, "%d,%g,%g,%s\n", r, cell_u(r), cell_v(r), LABELS[label_of(r)]);
    }
    cr_assert_eq(fclose(f), 0);
    return path;
}

/* A folder with the training file (ROWS rows) and a 40-row test file. */
typedef struct {
    char *dir, *train, *test;
} files;

static files make_files(void)
{
    files f = { .dir = make_temp_dir("tapegrad-stream") };
    f.train = write_csv(f.dir, "train.csv", ROWS, -1, NULL);
    f.test = write_csv(f.dir, "test.csv", 40, -1, NULL);
    return f;
}

static void remove_files(files *f)
{
    unlink(f->train);
    unlink(f->test);
    free(f->train);
    free(f->test);
    rmdir(f->dir);
    free(f->dir);
}

static tg_config *stream_config(const char *train, const char *test, const char *extra_data, const char *rest)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"data\": {\"train\": \"%s\", \"test\": \"%s\", \"stream\": true%s},"
             " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 6}, {\"type\": \"tanh\"},"
             "                          {\"type\": \"linear\", \"out\": 3}]},"
             " %s, \"seed\": 5}",
             train, test, extra_data,
             rest ? rest
                  : "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9},"
                    " \"train\": {\"epochs\": 4, \"batch_size\": 24}");
    tg_config *cfg = tg_config_parse(json, NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    return cfg;
}

static void expect_same_weights(tg_model *a, tg_model *b, const char *what)
{
    cr_assert_eq(tg_model_n_params(a), tg_model_n_params(b));
    for (int i = 0; i < tg_model_n_params(a); i++) {
        const tg_tensor *pa = tg_model_param(a, i), *pb = tg_model_param(b, i);
        size_t bytes = (size_t)tg_numel(pa) * tg_dtype_size(tg_dtype_of(pa));
        cr_assert_eq(memcmp(tg_data(pa), tg_data(pb), bytes), 0, "%s: %s differs", what, tg_model_param_name(a, i));
    }
}

static bool same_weights(tg_model *a, tg_model *b)
{
    for (int i = 0; i < tg_model_n_params(a); i++) {
        const tg_tensor *pa = tg_model_param(a, i), *pb = tg_model_param(b, i);
        if (memcmp(tg_data(pa), tg_data(pb), (size_t)tg_numel(pa) * tg_dtype_size(tg_dtype_of(pa))) != 0)
            return false;
    }
    return true;
}

/* The file rows of every batch of `epochs` epochs of a stream (block_rows, window), checked on the way:
 * each row once an epoch, each batch's values those of the rows it names. */
static void stream_epochs(const char *path, int64_t block_rows, int64_t window, int64_t batch, uint64_t seed,
                          int epochs, int64_t *seen_order)
{
    tg_block_source src;
    cr_assert_eq(tg_csv_block_source(path, NULL, block_rows, &src), 0, "%s", tg_last_error());
    tg_stream *s = tg_stream_open(src, window, false);
    cr_assert_not_null(s, "%s", tg_last_error());
    cr_assert_eq(tg_stream_start(s, batch, TG_F64, NULL, NULL), 0, "%s", tg_last_error());
    cr_assert_eq(tg_stream_batches(s), (ROWS + batch - 1) / batch);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int e = 0; e < epochs; e++) {
        char seen[ROWS] = { 0 };
        int64_t count = 0, batches = 0;
        cr_assert_eq(tg_stream_reset(s, &rng), 0, "%s", tg_last_error());
        tg_tensor *x, *y;
        int got;
        while ((got = tg_stream_next(s, &x, &y)) == 1) {
            int64_t n;
            const int64_t *rows = tg_stream_rows(s, &n);
            cr_assert_eq(n, tg_shape(x)[0]);
            cr_assert(n == batch || count + n == ROWS, "a short batch (%lld rows) before the epoch's end",
                      (long long)n);
            for (int64_t k = 0; k < n; k++) {
                int64_t r = rows[k];
                cr_assert(r >= 0 && r < ROWS);
                cr_assert_eq(tg_get(x, k * 3), (double)r, "batch row %lld holds row %g, the stream says %lld",
                             (long long)k, tg_get(x, k * 3), (long long)r);
                cr_assert_eq(tg_get(x, k * 3 + 1), cell_u((int)r));
                cr_assert_eq(tg_get(x, k * 3 + 2), cell_v((int)r));
                cr_assert_eq(((const int64_t *)tg_data(y))[k], label_of((int)r), "row %lld's class", (long long)r);
                cr_assert_eq(seen[r], 0, "epoch %d: row %lld seen twice", e + 1, (long long)r);
                seen[r] = 1;
                if (seen_order)
                    seen_order[e * ROWS + count + k] = r;
            }
            count += n;
            batches++;
        }
        cr_assert_eq(got, 0, "%s", tg_last_error());
        cr_assert_eq(count, ROWS, "epoch %d saw %lld rows", e + 1, (long long)count);
        cr_assert_eq(batches, tg_stream_batches(s));
    }
    tg_stream_free(s);
}

Test(stream, every_row_once_per_epoch_with_tiny_blocks)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = write_csv(dir, "rows.csv", ROWS, -1, NULL);
    static int64_t a[3 * ROWS], b[3 * ROWS], c[3 * ROWS];
    /* blocks of 7 rows (the last one 6), windows of 3 blocks, batches of 10 that span windows */
    stream_epochs(path, 7, 3, 10, 42, 3, a);
    stream_epochs(path, 7, 3, 10, 42, 3, b);
    stream_epochs(path, 7, 3, 10, 43, 3, c);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "the same seed gave another order");
    cr_assert_neq(memcmp(a, c, sizeof a), 0, "another seed gave the same order");
    cr_assert_neq(memcmp(a, a + ROWS, ROWS * sizeof *a), 0, "two epochs in the same order");
    /* A window holds 21 rows: the first 21 rows of an epoch come from 3 blocks of the file. */
    int blocks_met = 0;
    bool met[ROWS / 7 + 1] = { false };
    for (int k = 0; k < 21; k++)
        if (!met[a[k] / 7])
            met[a[k] / 7] = true, blocks_met++;
    cr_assert_eq(blocks_met, 3, "the first window's rows come from %d blocks", blocks_met);
    /* other shapes: one row a block, one block a window, a window larger than the file */
    stream_epochs(path, 1, 1, 7, 1, 2, NULL);
    stream_epochs(path, 64, 1, 300, 1, 2, NULL);
    stream_epochs(path, 50, 100, 33, 1, 2, NULL);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* The documented order, written out here from docs/data.md (not from src/io/stream.c): Fisher-Yates
 * (from the last entry down, one tg_rng_below(r + 1) each) of the block order, persisted from epoch to
 * epoch, when there is more than one window; then for each window in turn its rows (its blocks' rows, in
 * block order then file order) in a Fisher-Yates order, reshuffled in place when the window has as many
 * rows as the last one shuffled, else shuffled from the identity. */
static void fisher_yates(int64_t *a, int64_t n, tg_rng *rng)
{
    for (int64_t r = n - 1; r > 0; r--) {
        int64_t k = (int64_t)tg_rng_below(rng, (uint64_t)r + 1), t = a[r];
        a[r] = a[k];
        a[k] = t;
    }
}

static void documented_order(int64_t rows, int64_t block_rows, int64_t window, uint64_t seed, int epochs, int64_t *out)
{
    int64_t n_blocks = (rows + block_rows - 1) / block_rows, n_windows = (n_blocks + window - 1) / window;
    int64_t *blocks = malloc((size_t)n_blocks * sizeof *blocks), *order = malloc((size_t)rows * sizeof *order);
    int64_t *pool = malloc((size_t)rows * sizeof *pool), order_n = 0;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int64_t b = 0; b < n_blocks; b++)
        blocks[b] = b;
    for (int e = 0; e < epochs; e++) {
        if (n_windows > 1)
            fisher_yates(blocks, n_blocks, &rng);
        for (int64_t w = 0; w < n_windows; w++) {
            int64_t n = 0;
            for (int64_t k = w * window; k < (w + 1) * window && k < n_blocks; k++)
                for (int64_t r = blocks[k] * block_rows; r < (blocks[k] + 1) * block_rows && r < rows; r++)
                    pool[n++] = r;
            if (order_n != n)
                for (order_n = 0; order_n < n; order_n++)
                    order[order_n] = order_n;
            fisher_yates(order, n, &rng);
            for (int64_t i = 0; i < n; i++)
                *out++ = pool[order[i]];
        }
    }
    free(blocks);
    free(order);
    free(pool);
}

Test(stream, the_order_is_the_documented_one)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = write_csv(dir, "rows.csv", ROWS, -1, NULL);
    static int64_t got[3 * ROWS], want[3 * ROWS];
    const int64_t shapes[][3] = { { 7, 3, 10 }, { 16, 2, 24 }, { 1, 5, 7 }, { 50, 100, 33 }, { 64, 1, 300 } };
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        stream_epochs(path, shapes[k][0], shapes[k][1], shapes[k][2], 11, 3, got);
        documented_order(ROWS, shapes[k][0], shapes[k][1], 11, 3, want);
        cr_assert_eq(memcmp(got, want, sizeof got), 0, "blocks of %lld, windows of %lld: not the documented order",
                     (long long)shapes[k][0], (long long)shapes[k][1]);
    }
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* The same rows written with a byte order mark, CRLF line ends, blank lines, quoted cells and no last
 * newline: the block offsets land on the rows all the same. */
Test(stream, block_offsets_survive_bom_crlf_blank_lines_and_quotes)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = join_path(dir, "odd.csv");
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fprintf(f, "\xEF\xBB\xBFi,u,v,label\r\n\r\n");
    for (int r = 0; r < ROWS; r++)
        fprintf(f, r % 5 == 0 ? "\"%d\", %g ,%g,\"%s\"%s" : "%d,%g,%g,%s%s", r, cell_u(r), cell_v(r),
                LABELS[label_of(r)],
                r + 1 == ROWS ? ""
                : r % 3 == 0  ? "\r\n  \r\n"
                              : "\r\n");
    cr_assert_eq(fclose(f), 0);
    stream_epochs(path, 7, 2, 16, 9, 2, NULL);
    stream_epochs(path, 1, 300, 16, 9, 1, NULL);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* The moments of the generated columns, in long double (one pass for the mean, one for the squares). */
Test(stream, moments_match_long_double)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = write_csv(dir, "m.csv", ROWS, -1, NULL);
    tg_block_source src;
    cr_assert_eq(tg_csv_block_source(path, NULL, 16, &src), 0, "%s", tg_last_error());
    tg_stream *s = tg_stream_open(src, 2, true);
    cr_assert_not_null(s, "%s", tg_last_error());
    const tg_dataset *h = tg_stream_header(s);
    cr_assert_eq(h->rows, ROWS);
    cr_assert_eq(h->features, 3);
    cr_assert_eq(h->classes, 3);
    for (int c = 0; c < 3; c++)
        cr_assert_str_eq(h->label_names[c], LABELS[c]); /* rows 0, 1, 2 have labels 0, 1, 2: first appearance */
    cr_assert_str_eq(h->feature_names[1], "u");
    for (int f = 0; f < 3; f++) {
        long double sum = 0, squares = 0;
        for (int r = 0; r < ROWS; r++)
            sum += f == 0 ? (long double)r : f == 1 ? (long double)cell_u(r) : (long double)cell_v(r);
        long double mean = sum / ROWS;
        for (int r = 0; r < ROWS; r++) {
            long double d = (f == 0 ? (long double)r : f == 1 ? (long double)cell_u(r) : (long double)cell_v(r)) - mean;
            squares += d * d;
        }
        double std = (double)sqrtl(squares / ROWS);
        cr_assert(close_enough(tg_stream_mean(s)[f], (double)mean, 1e-6 * fabs((double)mean) + 1e-7), "mean %d", f);
        cr_assert(close_enough(tg_stream_std(s)[f], std, 1e-6 * std), "std %d: %g against %g", f, tg_stream_std(s)[f],
                  std);
    }
    cr_assert_eq(tg_stream_max_abs(s), ROWS - 1);
    tg_stream_free(s);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* One window holding the whole file: the batches are those of the in-memory trainer on the file's rows in
 * file order (tg_train_on_data), so the weights are the same bits; standardization from the stream's passes
 * equals tg_dataset_moments'. */
Test(stream, one_window_trains_as_in_memory)
{
    files fs = make_files();
    char *train = fs.train, *test = fs.test;
    const char *shapes[] = { ", \"block_rows\": 16, \"shuffle_window\": 19", ", \"block_rows\": 1000",
                             ", \"block_rows\": 7, \"shuffle_window\": 64" };
    tg_dataset *all = tg_csv_load(train, NULL);
    cr_assert_not_null(all, "%s", tg_last_error());
    for (int k = 0; k < 3; k++) {
        tg_config *cfg = stream_config(train, test, shapes[k], NULL);
        tg_training *streamed = tg_train_config(cfg, NULL, NULL);
        cr_assert_not_null(streamed, "%s", tg_last_error());
        tg_training *in_memory = tg_train_on_data(cfg, all, NULL, NULL, NULL);
        cr_assert_not_null(in_memory, "%s", tg_last_error());
        expect_same_weights(streamed->model, in_memory->model, shapes[k]);
        for (int e = 0; e < 4; e++)
            cr_assert_eq(memcmp(&streamed->train_loss[e], &in_memory->train_loss[e], sizeof(double)), 0);
        cr_assert_eq(streamed->train->rows, ROWS);
        cr_assert_null(streamed->train->x); /* the rows stay on disk */
        cr_assert_eq(streamed->test->rows, 40);
        cr_assert_eq(streamed->validation->rows, 0);
        tg_training_free(streamed);
        tg_training_free(in_memory);
        tg_config_free(cfg);
    }
    tg_dataset_free(all);
    remove_files(&fs);
}

/* Windows smaller than the file: the same config and seed give the same bits; another seed other weights. */
Test(stream, reproducible_from_the_seed)
{
    files fs = make_files();
    char *train = fs.train, *test = fs.test;
    tg_config *cfg = stream_config(train, test, ", \"block_rows\": 16, \"shuffle_window\": 3", NULL);
    tg_training *a = tg_train_config(cfg, NULL, NULL), *b = tg_train_config(cfg, NULL, NULL);
    cr_assert(a && b, "%s", tg_last_error());
    expect_same_weights(a->model, b->model, "two runs");
    cfg->data.shuffle_seed = 6;
    tg_training *c = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(c, "%s", tg_last_error());
    cr_assert(!same_weights(a->model, c->model), "another data seed gave the same weights");
    tg_training_free(a);
    tg_training_free(b);
    tg_training_free(c);
    tg_config_free(cfg);
    remove_files(&fs);
}

typedef struct {
    int epoch;
    int64_t step; /* 0: at the epoch's end */
    int calls;
} stop_point;

static int stop_there(const tg_progress *p, void *ctx)
{
    stop_point *at = ctx;
    at->calls++;
    return p->epoch == at->epoch && (at->step == 0 ? p->finished : !p->finished && p->step == at->step);
}

/* Stopped mid-window (and at an epoch's end), saved and resumed: the same bits as the run never stopped. */
Test(stream, resume_is_bit_identical)
{
    files fs = make_files();
    char *dir = fs.dir, *train = fs.train, *test = fs.test;
    char *ckpt = join_path(dir, "run.safetensors");
    tg_config *cfg = stream_config(train, test, ", \"block_rows\": 16, \"shuffle_window\": 2",
                                   "\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01},"
                                   " \"train\": {\"epochs\": 4, \"batch_size\": 20}");
    tg_training *whole = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(whole, "%s", tg_last_error());
    const stop_point stops[] = { { 2, 5, 0 }, { 3, 0, 0 }, { 3, 11, 0 } };
    for (int k = 0; k < 3; k++) {
        stop_point at = stops[k];
        tg_train_opts opts = { .progress = stop_there, .ctx = &at };
        tg_training *part = tg_train_config_opts(cfg, &opts);
        cr_assert_not_null(part, "%s", tg_last_error());
        cr_assert(part->stopped_by_caller);
        cr_assert_eq(tg_training_save(part, ckpt), 0, "%s", tg_last_error());
        tg_training_free(part);
        tg_train_opts again = { .resume = ckpt };
        tg_training *resumed = tg_train_config_opts(cfg, &again);
        cr_assert_not_null(resumed, "stop %d: %s", k, tg_last_error());
        expect_same_weights(whole->model, resumed->model, "resumed");
        for (int e = 0; e < 4; e++)
            cr_assert_eq(memcmp(&whole->train_loss[e], &resumed->train_loss[e], sizeof(double)), 0, "stop %d", k);
        tg_training_free(resumed);
    }
    /* another window size is another run: refused, named */
    tg_config *other = stream_config(train, test, ", \"block_rows\": 16, \"shuffle_window\": 3",
                                     "\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01},"
                                     " \"train\": {\"epochs\": 4, \"batch_size\": 20}");
    tg_train_opts opts = { .resume = ckpt };
    cr_assert_null(tg_train_config_opts(other, &opts));
    cr_assert(strstr(tg_last_error(), "data.shuffle_window"), "%s", tg_last_error());
    tg_config_free(other);
    tg_training_free(whole);
    tg_config_free(cfg);
    unlink(ckpt);
    free(ckpt);
    remove_files(&fs);
}

/* A malformed row in the third block (blocks of 16 rows: rows 32..47) is found by the first pass, before
 * any step: the error names the file, line and column as the in-memory loader does, and no row is lost. */
Test(stream, bad_row_in_block_three_names_line_and_column)
{
    files fs = make_files();
    char *dir = fs.dir, *test = fs.test, *train = write_csv(dir, "bad.csv", ROWS, 40, "x1");
    tg_config *cfg = stream_config(train, test, ", \"block_rows\": 16, \"shuffle_window\": 2", NULL);
    stop_point never = { 0, 0, 0 };
    tg_train_opts opts = { .progress = stop_there, .ctx = &never };
    cr_assert_null(tg_train_config_opts(cfg, &opts));
    char want[600];
    /* row 40 is line 42 (after the header); column u is the second */
    snprintf(want, sizeof want, "%s:42:2: line 42, column 2 ('u'): 'x1' is not a number", train);
    cr_assert_str_eq(tg_last_error(), want);
    cr_assert_eq(never.calls, 0, "training took %d steps before the error", never.calls);
    /* the other bad inputs, each in a later block */
    const struct {
        int row;
        const char *cell, *message;
    } bad[] = {
        { 100, "nan", ":102:2: line 102, column 2 ('u'): NaN is not allowed" },
        { 299, "\"1", ":301:2: line 301, column 2: a quoted cell has no closing quote" },
        { 77, "1,2", ":79: line 79 has 5 fields, expected 4" },
    };
    for (int k = 0; k < 3; k++) {
        char *path = write_csv(dir, "bad2.csv", ROWS, bad[k].row, bad[k].cell);
        tg_block_source src;
        cr_assert_eq(tg_csv_block_source(path, NULL, 16, &src), -1);
        snprintf(want, sizeof want, "%s%s", path, bad[k].message);
        cr_assert_str_eq(tg_last_error(), want);
        unlink(path);
        free(path);
    }
    /* nothing lost: the rows around the bad one, fixed, are all read (block 2 holds rows 32..47) */
    char *fixed = write_csv(dir, "fixed.csv", ROWS, -1, NULL);
    tg_block_source src;
    cr_assert_eq(tg_csv_block_source(fixed, NULL, 16, &src), 0, "%s", tg_last_error());
    cr_assert_eq(src.header->rows, ROWS);
    float x[16 * 3];
    int64_t y[16];
    cr_assert_eq(src.read(src.impl, 2, x, y), 0, "%s", tg_last_error());
    for (int r = 0; r < 16; r++)
        cr_assert_eq(x[r * 3], 32 + r);
    src.close(src.impl);
    unlink(fixed);
    free(fixed);
    tg_config_free(cfg);
    unlink(train);
    free(train);
    remove_files(&fs);
}

/* The file changes between two epochs: the next epoch refuses it instead of training on other rows. */
static int grow_file(const tg_progress *p, void *ctx)
{
    if (p->finished && p->epoch == 1) {
        FILE *f = fopen(ctx, "a");
        fprintf(f, "300,1,1,ant\n");
        fclose(f);
    }
    return 0;
}

Test(stream, a_file_changed_between_epochs_is_refused)
{
    files fs = make_files();
    char *train = fs.train, *test = fs.test;
    tg_config *cfg = stream_config(train, test, ", \"block_rows\": 16", NULL);
    cr_assert_null(tg_train_config(cfg, grow_file, train));
    cr_assert(strstr(tg_last_error(), "the file changed while it was streamed"), "%s", tg_last_error());
    tg_config_free(cfg);
    remove_files(&fs);
}

Test(stream, what_a_stream_cannot_do_is_refused)
{
    const struct {
        const char *data, *rest, *needle;
    } cases[] = {
        { "{'train': 'a.csv', 'stream': true}", NULL, "data.stream: needs data.test" },
        { "{'train': 'a.csv', 'test': 'b.csv', 'stream': true, 'validation_split': 0.1}", NULL,
          "data.validation_split: must be 0 with data.stream" },
        { "{'train': 'a.csv', 'test': 'b.csv', 'block_rows': 10}", NULL, "data.block_rows: given without" },
        { "{'train': 'a.csv', 'test': 'b.csv', 'stream': true, 'block_rows': 0}", NULL, "data.block_rows" },
        { "{'train': 'a.csv', 'test': 'b.csv', 'stream': true, 'shuffle_window': 0}", NULL, "data.shuffle_window" },
        { "{'format': 'idx', 'train': 'a', 'train_labels': 'b', 'stream': true}", NULL, "stream" },
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        char json[1024];
        snprintf(json, sizeof json,
                 "{'data': %s, 'model': {'layers': [{'type': 'linear', 'out': 3}]}, 'optimizer': {'type': 'sgd', "
                 "'lr': 0.1}, 'train': {'epochs': 1, 'batch_size': 4}}",
                 cases[k].data);
        for (char *c = json; *c; c++)
            *c = *c == '\'' ? '"' : *c;
        cr_assert_null(tg_config_parse(json, NULL), "case %zu parsed", k);
        cr_assert(strstr(tg_last_error(), cases[k].needle), "case %zu: %s", k, tg_last_error());
    }
    /* early stopping has no validation set to watch */
    cr_assert_null(tg_config_parse("{\"data\": {\"train\": \"a.csv\", \"test\": \"b.csv\", \"stream\": true},"
                                   " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 3}]},"
                                   " \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1},"
                                   " \"train\": {\"epochs\": 2, \"early_stopping\": {\"patience\": 2}}}",
                                   NULL));
    cr_assert(strstr(tg_last_error(), "train.early_stopping: needs a validation set"), "%s", tg_last_error());
    /* refused when training starts: what needs the rows in memory */
    files fs = make_files();
    char *train = fs.train, *test = fs.test;
    const struct {
        const char *rest, *needle;
    } at_start[] = {
        { "\"optimizer\": {\"type\": \"lbfgs\"}",
          "optimizer.type lbfgs (the full-batch solver) needs the training set in memory" },
        { "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"loss\": {\"class_weight\": \"balanced\"}",
          "\"balanced\" is computed from the training labels" },
    };
    for (size_t k = 0; k < sizeof at_start / sizeof *at_start; k++) {
        tg_config *cfg = stream_config(train, test, "", at_start[k].rest);
        cr_assert_null(tg_train_config(cfg, NULL, NULL), "case %zu trained", k);
        cr_assert(strstr(tg_last_error(), at_start[k].needle), "case %zu: %s", k, tg_last_error());
        tg_config_free(cfg);
    }
    remove_files(&fs);
}

/* ---- every allocation of a streamed run failed in turn: an error with a message, nothing leaked ---- */

static struct {
    long attempts, fail_at, live;
} walk;

static void *walk_malloc(size_t n)
{
    if (++walk.attempts == walk.fail_at)
        return NULL;
    void *p = malloc(n);
    walk.live += p != NULL;
    return p;
}

static void *walk_realloc(void *p, size_t n)
{
    if (!p)
        return walk_malloc(n);
    return ++walk.attempts == walk.fail_at ? NULL : realloc(p, n);
}

static void walk_free(void *p)
{
    walk.live -= p != NULL;
    free(p);
}

/* Parses the config and trains it (one epoch over windows of 2 blocks, with a checkpoint's resume
 * state saved at the end); 0 when all of it succeeded. */
static int streamed_run(const char *json, const char *ckpt)
{
    tg_config *cfg = tg_config_parse(json, NULL);
    tg_training *t = cfg ? tg_train_config(cfg, NULL, NULL) : NULL;
    int rc = t ? tg_training_save(t, ckpt) : -1;
    tg_training_free(t);
    tg_config_free(cfg);
    return rc;
}

Test(stream, every_allocation_failed_in_turn)
{
    files fs = make_files();
    char *ckpt = join_path(fs.dir, "ckpt.safetensors"), json[1024];
    snprintf(json, sizeof json,
             "{\"data\": {\"train\": \"%s\", \"test\": \"%s\", \"stream\": true, \"block_rows\": 32, "
             "\"shuffle_window\": 2}, \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 3}]},"
             " \"loss\": {\"type\": \"cross_entropy\"}, \"optimizer\": {\"type\": \"adam\", \"lr\": 0.01},"
             " \"train\": {\"epochs\": 1, \"batch_size\": 50}}",
             fs.train, fs.test);
    tg_set_allocator(walk_malloc, walk_realloc, walk_free);
    walk.fail_at = 0;
    walk.attempts = 0;
    cr_assert_eq(streamed_run(json, ckpt), 0, "%s", tg_last_error());
    long n = walk.attempts, errors = 0;
    cr_assert_eq(walk.live, 0, "the clean run leaked %ld blocks", walk.live);
    for (long k = 1; k <= n; k++) {
        walk.attempts = 0;
        walk.fail_at = k;
        tg_clear_error();
        if (streamed_run(json, ckpt) != 0) {
            errors++;
            cr_assert_neq(tg_last_error()[0], '\0', "allocation %ld of %ld failed without a message", k, n);
        }
        cr_assert_eq(walk.live, 0, "allocation %ld of %ld failed: %ld blocks leaked (%s)", k, n, walk.live,
                     tg_last_error());
    }
    tg_set_allocator(NULL, NULL, NULL);
    cr_log_info("stream alloc walk: %ld allocations, %ld ended in an error", n, errors);
    cr_assert_gt(errors, n / 2, "only %ld of %ld failed allocations ended in an error", errors, n);
    unlink(ckpt);
    free(ckpt);
    remove_files(&fs);
}
