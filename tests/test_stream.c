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

/* ---- libsvm: the same stream over sparse rows ----
 * Row r of the generated file names itself again (index 1 holds r, an explicit 0 for row 0) and stores 1 to 4
 * values, so blocks store different counts; each batch is checked against these formulas, not the loader. */

#define SVM_FEATURES 25

/* Row r's pairs (0-based columns, increasing) and their count. */
static int svm_pairs(int r, int32_t *col, double *val)
{
    int n = 0;
    col[n] = 0, val[n++] = r;
    if (r % 3 != 0)
        col[n] = 2 + r % 5, val[n++] = cell_u(r) - 0.5;
    if (r % 4 == 1)
        col[n] = 11, val[n++] = cell_v(r);
    if (r % 10 == 7)
        col[n] = 19 + r % 6, val[n++] = 1.5;
    return n;
}

/* Writes the file (a comment line first, so row r is line r + 2); bad_row >= 0 ends that row with bad_pair.
 * Caller frees the path. */
static char *write_svm(const char *dir, const char *name, int rows, int bad_row, const char *bad_pair)
{
    char *path = join_path(dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "# generated by test_stream.c\n");
    for (int r = 0; r < rows; r++) {
        int32_t col[4];
        double val[4];
        int n = svm_pairs(r, col, val);
        fprintf(f, "%s", LABELS[label_of(r)]);
        for (int k = 0; k < n; k++)
            fprintf(f, " %d:%g", col[k] + 1, val[k]);
        fprintf(f, r == bad_row ? " %s\n" : r % 9 == 4 ? "  # a comment\n" : "\n", bad_pair);
    }
    cr_assert_eq(fclose(f), 0);
    return path;
}

static tg_stream *open_svm(const char *path, const tg_libsvm_opts *o, int64_t block_rows, int64_t window,
                           bool standardize)
{
    tg_block_source src;
    cr_assert_eq(tg_libsvm_block_source(path, o, block_rows, &src), 0, "%s", tg_last_error());
    tg_stream *s = tg_stream_open(src, window, standardize);
    cr_assert_not_null(s, "%s", tg_last_error());
    return s;
}

/* The file rows of every batch of `epochs` epochs of a libsvm stream, each batch's CSR rows checked against
 * svm_pairs (divided by std when given) and each row seen once an epoch. */
static void svm_epochs(tg_stream *s, int64_t batch, const float *std, uint64_t seed, int epochs, int64_t *seen_order)
{
    cr_assert_eq(tg_stream_start(s, batch, TG_F64, NULL, std), 0, "%s", tg_last_error());
    cr_assert_eq(tg_stream_batches(s), (ROWS + batch - 1) / batch);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int e = 0; e < epochs; e++) {
        char seen[ROWS] = { 0 };
        int64_t count = 0;
        cr_assert_eq(tg_stream_reset(s, &rng), 0, "%s", tg_last_error());
        tg_sparse_csr *x;
        tg_tensor *y;
        int got;
        while ((got = tg_stream_next_sparse(s, &x, &y)) == 1) {
            int64_t n;
            const int64_t *rows = tg_stream_rows(s, &n);
            cr_assert_eq(tg_sparse_csr_rows(x), n);
            cr_assert_eq(tg_sparse_csr_cols(x), SVM_FEATURES);
            cr_assert_eq(tg_shape(y)[0], n);
            cr_assert(n == batch || count + n == ROWS, "a short batch (%lld rows) before the epoch's end",
                      (long long)n);
            const double *val = x->val;
            for (int64_t k = 0; k < n; k++) {
                int64_t r = rows[k], a = x->row_ptr[k];
                cr_assert(r >= 0 && r < ROWS);
                double named = std ? (double)((float)r / std[0]) : (double)r;
                cr_assert_eq(val[a], named, "batch row %lld holds %g, the stream says row %lld", (long long)k, val[a],
                             (long long)r);
                int32_t col[4];
                double want[4];
                int m = svm_pairs((int)r, col, want);
                cr_assert_eq(x->row_ptr[k + 1] - a, m, "row %lld stores %lld values, expected %d", (long long)r,
                             (long long)(x->row_ptr[k + 1] - a), m);
                for (int j = 0; j < m; j++) {
                    cr_assert_eq(x->col[a + j], col[j], "row %lld pair %d", (long long)r, j);
                    double expected = std ? (double)((float)want[j] / std[col[j]]) : (double)(float)want[j];
                    cr_assert_eq(val[a + j], expected, "row %lld column %d: %.9g, expected %.9g", (long long)r, col[j],
                                 val[a + j], expected);
                }
                cr_assert_eq(((const int64_t *)tg_data(y))[k], label_of((int)r), "row %lld's class", (long long)r);
                cr_assert_eq(seen[r], 0, "epoch %d: row %lld seen twice", e + 1, (long long)r);
                seen[r] = 1;
                if (seen_order)
                    seen_order[e * ROWS + count + k] = r;
            }
            cr_assert_eq(x->row_ptr[n], tg_sparse_csr_nnz(x));
            count += n;
        }
        cr_assert_eq(got, 0, "%s", tg_last_error());
        cr_assert_eq(count, ROWS, "epoch %d saw %lld rows", e + 1, (long long)count);
    }
}

/* Every row once an epoch, in the documented order (the CSV stream's), for several block, window and batch
 * shapes; the same seed gives the same order and another seed another. */
Test(stream_libsvm, every_row_once_per_epoch_in_the_documented_order)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = write_svm(dir, "rows.svm", ROWS, -1, NULL);
    static int64_t got[3 * ROWS], want[3 * ROWS], again[3 * ROWS];
    const int64_t shapes[][3] = { { 7, 3, 10 }, { 16, 2, 24 }, { 1, 5, 7 }, { 50, 100, 33 }, { 64, 1, 300 } };
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        tg_stream *s = open_svm(path, NULL, shapes[k][0], shapes[k][1], false);
        const tg_dataset *h = tg_stream_header(s);
        cr_assert_eq(h->rows, ROWS);
        cr_assert_eq(h->features, SVM_FEATURES);
        cr_assert_eq(h->classes, 3);
        cr_assert_null(h->x);
        for (int c = 0; c < 3; c++)
            cr_assert_str_eq(h->label_names[c], LABELS[c]);
        svm_epochs(s, shapes[k][2], NULL, 11, 3, got);
        tg_stream_free(s);
        documented_order(ROWS, shapes[k][0], shapes[k][1], 11, 3, want);
        cr_assert_eq(memcmp(got, want, sizeof got), 0, "blocks of %lld, windows of %lld: not the documented order",
                     (long long)shapes[k][0], (long long)shapes[k][1]);
    }
    tg_stream *s = open_svm(path, NULL, 7, 3, false);
    svm_epochs(s, 10, NULL, 12, 3, again);
    tg_stream_free(s);
    documented_order(ROWS, 7, 3, 11, 3, want);
    cr_assert_neq(memcmp(again, want, sizeof want), 0, "another seed gave the same order");
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* One window holding the file, in file order: the header, the scaling (std) and every batch are the bits of
 * the file loaded whole (tg_libsvm_load, tg_dataset_moments, tg_sparse_csr_gather of the same rows). */
Test(stream_libsvm, one_window_is_the_file_loaded_whole)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = write_svm(dir, "whole.svm", ROWS, -1, NULL);
    tg_dataset *ds = tg_libsvm_load(path, NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    float mean[SVM_FEATURES], std[SVM_FEATURES];
    cr_assert_eq(tg_dataset_moments(ds, mean, std), 0, "%s", tg_last_error());
    /* std against long double: the population deviation over every row, implicit zeros counted */
    for (int f = 0; f < SVM_FEATURES; f++) {
        long double sum = 0, squares = 0;
        for (int r = 0; r < ROWS; r++) {
            int32_t col[4];
            double val[4];
            for (int j = 0, m = svm_pairs(r, col, val); j < m; j++)
                sum += col[j] == f ? (long double)(float)val[j] : 0;
        }
        for (int r = 0; r < ROWS; r++) {
            int32_t col[4];
            double val[4];
            long double v = 0;
            for (int j = 0, m = svm_pairs(r, col, val); j < m; j++)
                v = col[j] == f ? (long double)(float)val[j] : v;
            squares += (v - sum / ROWS) * (v - sum / ROWS);
        }
        double expected = squares == 0 ? 1.0 : (double)sqrtl(squares / ROWS);
        cr_assert(fabs(std[f] - expected) <= 1e-6 * expected, "column %d: std %.9g, expected %.9g", f, std[f],
                  expected);
    }
    for (int64_t block_rows = 16; block_rows <= 300; block_rows += 284) {
        tg_stream *s = open_svm(path, NULL, block_rows, 100, true);
        const tg_dataset *h = tg_stream_header(s);
        cr_assert_eq(h->features, ds->features);
        cr_assert_eq(h->classes, ds->classes);
        for (int f = 0; f < SVM_FEATURES; f++) {
            cr_assert_eq(tg_stream_mean(s)[f], 0.0f, "scaling only: no centring");
            cr_assert_eq(memcmp(&tg_stream_std(s)[f], &std[f], sizeof(float)), 0, "std[%d]: %.9g, loaded whole %.9g", f,
                         tg_stream_std(s)[f], std[f]);
        }
        cr_assert_eq(tg_stream_start(s, 32, TG_F32, tg_stream_mean(s), tg_stream_std(s)), 0, "%s", tg_last_error());
        tg_sparse_csr *whole = tg_sparse_csr_new(TG_F32, 0, 0, 0, NULL, NULL, NULL);
        int64_t order[ROWS];
        for (int r = 0; r < ROWS; r++)
            order[r] = r;
        tg_rng rng, mirror;
        tg_rng_seed(&rng, 3);
        tg_rng_seed(&mirror, 3);
        for (int e = 0; e < 2; e++) {
            cr_assert_eq(tg_stream_reset(s, &rng), 0, "%s", tg_last_error());
            fisher_yates(order, ROWS, &mirror); /* the batcher's epoch order (docs/data.md), in place */
            tg_sparse_csr *x;
            tg_tensor *y;
            for (int64_t done = 0; tg_stream_next_sparse(s, &x, &y) == 1;) {
                int64_t n;
                const int64_t *rows = tg_stream_rows(s, &n);
                cr_assert_eq(memcmp(rows, order + done, (size_t)n * sizeof *rows), 0,
                             "epoch %d: not the batcher's order", e + 1);
                cr_assert_eq(tg_sparse_csr_gather(whole, ds, rows, 0, n), 0, "%s", tg_last_error());
                float *wv = whole->val;
                for (int64_t k = 0; k < whole->nnz; k++)
                    wv[k] /= std[whole->col[k]];
                cr_assert_eq(x->nnz, whole->nnz);
                cr_assert_eq(memcmp(x->row_ptr, whole->row_ptr, (size_t)(n + 1) * sizeof(int64_t)), 0);
                cr_assert_eq(memcmp(x->col, whole->col, (size_t)x->nnz * sizeof(int32_t)), 0);
                cr_assert_eq(memcmp(x->val, whole->val, (size_t)x->nnz * sizeof(float)), 0, "epoch %d: values differ",
                             e + 1);
                for (int64_t k = 0; k < n; k++)
                    cr_assert_eq(((const int64_t *)tg_data(y))[k], ds->y[rows[k]]);
                done += n;
            }
        }
        tg_sparse_csr_free(whole);
        tg_stream_free(s);
    }
    tg_dataset_free(ds);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* Several windows, scaled: every batch value is the file's value divided by the whole file's std in float32. */
Test(stream_libsvm, scaled_batches_over_many_windows)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = write_svm(dir, "scaled.svm", ROWS, -1, NULL);
    tg_dataset *ds = tg_libsvm_load(path, NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    float mean[SVM_FEATURES], std[SVM_FEATURES];
    cr_assert_eq(tg_dataset_moments(ds, mean, std), 0, "%s", tg_last_error());
    tg_stream *s = open_svm(path, NULL, 9, 2, true);
    cr_assert_eq(memcmp(tg_stream_std(s), std, sizeof std), 0);
    svm_epochs(s, 20, std, 8, 2, NULL);
    tg_stream_free(s);
    tg_dataset_free(ds);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* A malformed pair in block 3 (rows 14 .. 20 with blocks of 7): the first pass stops there, before any batch,
 * with the loader's message naming file, line and column. Row r is line r + 2; its first pair starts at
 * column 5 (after a 3-letter label and a space). */
Test(stream_libsvm, a_bad_line_in_block_three_is_named_before_any_batch)
{
    char *dir = make_temp_dir("tapegrad-stream");
    static const struct {
        const char *pair, *want; /* want: after "path:" */
    } cases[] = {
        { "30:abc", "17:%d: '30:abc': the value is not a number" },
        { "0:1", "17:%d: '0:1': index 0; indices start at 1" },
        { "qid:3", "17:%d: 'qid:3': qid (query ids of ranking data) is not supported" },
        { "1:1", "17:%d: '1:1': index 1 repeats index 1" },
        { "30:nan", "17:%d: '30:nan': NaN is not allowed" },
        { "30", "17:%d: '30' is not an index:value pair" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char *path = write_svm(dir, "bad.svm", ROWS, 15, cases[c].pair);
        /* row 15's pairs before the bad one: "1:15", then u's (15 % 3 == 0: none), v's (15 % 4 != 1: none) */
        int column = 5 + (int)strlen("1:15") + 1;
        char want[512], fmt[256];
        snprintf(fmt, sizeof fmt, "%%s:%s", cases[c].want);
        snprintf(want, sizeof want, fmt, path, column);
        tg_block_source src;
        cr_assert_eq(tg_libsvm_block_source(path, NULL, 7, &src), -1, "case %zu opened", c);
        cr_assert_eq(strncmp(tg_last_error(), want, strlen(want)), 0, "case %zu: '%s', expected '%s...'", c,
                     tg_last_error(), want);
        char streamed[1024];
        snprintf(streamed, sizeof streamed, "%s", tg_last_error());
        cr_assert_null(tg_libsvm_load(path, NULL));
        cr_assert_str_eq(streamed, tg_last_error(), "case %zu: the stream's message is not the loader's", c);
        unlink(path);
        free(path);
    }
    /* a count fixed below the file's indices: refused as the loader refuses, or dropped with skip */
    char *path = write_svm(dir, "fixed.svm", ROWS, -1, NULL);
    tg_libsvm_opts o = { .features = 12 };
    tg_block_source src;
    cr_assert_eq(tg_libsvm_block_source(path, &o, 7, &src), -1);
    char streamed[1024];
    snprintf(streamed, sizeof streamed, "%s", tg_last_error());
    char want[512];
    snprintf(want, sizeof want, "%s:9:", path); /* row 7 (line 9) is the first with an index above 12 */
    cr_assert_eq(strncmp(streamed, want, strlen(want)), 0, "%s", streamed);
    cr_assert_null(tg_libsvm_load(path, &o));
    cr_assert_str_eq(streamed, tg_last_error());
    o.skip_unknown_features = 1;
    tg_dataset *ds = tg_libsvm_load(path, &o);
    cr_assert_not_null(ds, "%s", tg_last_error());
    tg_stream *s = open_svm(path, &o, 7, 3, true);
    cr_assert_eq(tg_stream_header(s)->features, 12);
    float mean[12], std[12];
    cr_assert_eq(tg_dataset_moments(ds, mean, std), 0);
    cr_assert_eq(memcmp(tg_stream_std(s), std, sizeof std), 0);
    cr_assert_eq(tg_stream_start(s, 50, TG_F32, NULL, NULL), 0);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    cr_assert_eq(tg_stream_reset(s, &rng), 0);
    tg_sparse_csr *x;
    tg_tensor *y;
    int64_t nnz = 0;
    while (tg_stream_next_sparse(s, &x, &y) == 1)
        for (int64_t k = 0; k < x->nnz; k++, nnz++)
            cr_assert_lt(x->col[k], 12);
    cr_assert_eq(nnz, ds->nnz, "the stream kept %lld values, the loader %lld", (long long)nnz, (long long)ds->nnz);
    tg_stream_free(s);
    tg_dataset_free(ds);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* Stopped mid-window (and at a window's edge), its state taken and restored into a new stream with a copy of
 * the generator: the batches that follow, into the next epoch, are the bits of the stream never stopped. */
Test(stream_libsvm, resume_mid_window_is_bit_identical)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = write_svm(dir, "resume.svm", ROWS, -1, NULL);
    enum { BATCH = 16, EPOCHS = 2, PER_EPOCH = (ROWS + BATCH - 1) / BATCH };
    /* the whole run's batches: rows, values and labels, in order */
    static int64_t rows_of[EPOCHS * PER_EPOCH][BATCH], labels_of[EPOCHS * PER_EPOCH][BATCH];
    static float vals_of[EPOCHS * PER_EPOCH][4 * BATCH];
    tg_stream *s = open_svm(path, NULL, 10, 4, true);
    cr_assert_eq(tg_stream_start(s, BATCH, TG_F32, NULL, tg_stream_std(s)), 0);
    tg_rng rng;
    tg_rng_seed(&rng, 77);
    tg_sparse_csr *x;
    tg_tensor *y;
    for (int e = 0, b = 0; e < EPOCHS; e++) {
        cr_assert_eq(tg_stream_reset(s, &rng), 0);
        for (; tg_stream_next_sparse(s, &x, &y) == 1; b++) {
            int64_t n;
            const int64_t *rows = tg_stream_rows(s, &n);
            memcpy(rows_of[b], rows, (size_t)n * sizeof(int64_t));
            memcpy(labels_of[b], tg_data(y), (size_t)n * sizeof(int64_t));
            memcpy(vals_of[b], x->val, (size_t)x->nnz * sizeof(float));
        }
    }
    tg_stream_free(s);
    const int stops[] = { 3, 5, 9, PER_EPOCH - 1, PER_EPOCH + 7 }; /* batches done when stopped */
    for (size_t k = 0; k < sizeof stops / sizeof *stops; k++) {
        s = open_svm(path, NULL, 10, 4, true);
        cr_assert_eq(tg_stream_start(s, BATCH, TG_F32, NULL, tg_stream_std(s)), 0);
        tg_rng_seed(&rng, 77);
        int b = 0;
        for (int e = 0; b < stops[k]; e++) {
            cr_assert_eq(tg_stream_reset(s, &rng), 0);
            while (b < stops[k] && tg_stream_next_sparse(s, &x, &y) == 1)
                b++;
        }
        tg_stream_state st;
        tg_stream_get_state(s, &st);
        int64_t *blocks = malloc((size_t)st.n_blocks * sizeof *blocks),
                *order = malloc((size_t)st.n_order * sizeof *order);
        memcpy(blocks, st.blocks, (size_t)st.n_blocks * sizeof *blocks);
        memcpy(order, st.order, (size_t)st.n_order * sizeof *order);
        int64_t position[4];
        memcpy(position, st.position, sizeof position);
        tg_rng saved = rng;
        tg_stream_free(s);
        s = open_svm(path, NULL, 10, 4, true);
        cr_assert_eq(tg_stream_start(s, BATCH, TG_F32, NULL, tg_stream_std(s)), 0);
        cr_assert_eq(tg_stream_restore(s, blocks, order, position, &saved, "ckpt"), 0, "%s", tg_last_error());
        free(blocks);
        free(order);
        for (int e = b / PER_EPOCH; e < EPOCHS; e++) {
            for (; b < (e + 1) * PER_EPOCH; b++) {
                cr_assert_eq(tg_stream_next_sparse(s, &x, &y), 1, "stop %d: batch %d: %s", stops[k], b,
                             tg_last_error());
                int64_t n;
                const int64_t *rows = tg_stream_rows(s, &n);
                cr_assert_eq(memcmp(rows, rows_of[b], (size_t)n * sizeof(int64_t)), 0, "stop %d: batch %d's rows",
                             stops[k], b);
                cr_assert_eq(memcmp(tg_data(y), labels_of[b], (size_t)n * sizeof(int64_t)), 0);
                cr_assert_eq(memcmp(x->val, vals_of[b], (size_t)x->nnz * sizeof(float)), 0,
                             "stop %d: batch %d's values", stops[k], b);
            }
            cr_assert_eq(tg_stream_next_sparse(s, &x, &y), 0);
            if (e + 1 < EPOCHS)
                cr_assert_eq(tg_stream_reset(s, &saved), 0);
        }
        tg_stream_free(s);
    }
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

static long counted_allocations;
static void *counting_malloc(size_t n) { return counted_allocations++, malloc(n); }
static void *counting_realloc(void *p, size_t n) { return counted_allocations++, realloc(p, n); }

/* After tg_stream_start, epochs of sparse batches over many windows allocate nothing: the window and the batch
 * were sized from the first pass's counts (the blocks storing the most values, the longest rows). */
Test(stream_libsvm, batches_allocate_nothing)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = write_svm(dir, "alloc.svm", ROWS, -1, NULL);
    tg_set_allocator(counting_malloc, counting_realloc, free);
    tg_stream *s = open_svm(path, NULL, 8, 3, true);
    cr_assert_eq(tg_stream_start(s, 40, TG_F32, NULL, tg_stream_std(s)), 0);
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    counted_allocations = 0;
    int64_t batches = 0;
    for (int e = 0; e < 3; e++) {
        cr_assert_eq(tg_stream_reset(s, &rng), 0);
        tg_sparse_csr *x;
        tg_tensor *y;
        while (tg_stream_next_sparse(s, &x, &y) == 1)
            batches++;
    }
    long during = counted_allocations;
    tg_stream_free(s);
    tg_set_allocator(NULL, NULL, NULL);
    cr_assert_eq(batches, 3 * 8);
    cr_assert_eq(during, 0, "%ld allocations in 3 epochs of batches", during);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* Every allocation of opening, scaling and streaming a libsvm file failed in turn: an error with a message,
 * nothing leaked. */
static int svm_run(const char *path)
{
    tg_block_source src;
    if (tg_libsvm_block_source(path, NULL, 16, &src))
        return -1;
    tg_stream *s = tg_stream_open(src, 2, true);
    int rc = s && !tg_stream_start(s, 50, TG_F32, NULL, tg_stream_std(s)) ? 0 : -1;
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    tg_sparse_csr *x;
    tg_tensor *y;
    int got = 1;
    if (!rc && !(rc = tg_stream_reset(s, &rng)))
        while ((got = tg_stream_next_sparse(s, &x, &y)) == 1)
            ;
    tg_stream_free(s);
    return rc || got < 0 ? -1 : 0;
}

Test(stream_libsvm, every_allocation_failed_in_turn)
{
    char *dir = make_temp_dir("tapegrad-stream"), *path = write_svm(dir, "walk.svm", ROWS, -1, NULL);
    tg_set_allocator(walk_malloc, walk_realloc, walk_free);
    walk.fail_at = 0;
    walk.attempts = 0;
    cr_assert_eq(svm_run(path), 0, "%s", tg_last_error());
    long n = walk.attempts;
    cr_assert_eq(walk.live, 0, "the clean run leaked %ld blocks", walk.live);
    for (long k = 1; k <= n; k++) {
        walk.attempts = 0;
        walk.fail_at = k;
        tg_clear_error();
        cr_assert_eq(svm_run(path), -1, "allocation %ld of %ld failed and the run succeeded", k, n);
        cr_assert_neq(tg_last_error()[0], '\0', "allocation %ld of %ld failed without a message", k, n);
        cr_assert_eq(walk.live, 0, "allocation %ld of %ld failed: %ld blocks leaked (%s)", k, n, walk.live,
                     tg_last_error());
    }
    tg_set_allocator(NULL, NULL, NULL);
    unlink(path);
    free(path);
    rmdir(dir);
    free(dir);
}

/* ---- libsvm through the trainer: tapegrad train with "format": "libsvm", "stream": true ---- */

static tg_config *svm_config(const char *train, const char *test, const char *extra_data, const char *rest)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"data\": {\"format\": \"libsvm\", \"train\": \"%s\", \"test\": \"%s\", \"stream\": true%s%s},"
             " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 6}, {\"type\": \"tanh\"},"
             "                          {\"type\": \"linear\", \"out\": 3}]},"
             " %s, \"seed\": 5}",
             train, test, strstr(extra_data, "standardize") ? "" : ", \"standardize\": \"scale\"", extra_data,
             rest ? rest
                  : "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9},"
                    " \"train\": {\"epochs\": 4, \"batch_size\": 24}");
    tg_config *cfg = tg_config_parse(json, NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    return cfg;
}

/* One window holding the file: the sparse batches are those of the in-memory trainer on tg_libsvm_load's
 * rows (tg_train_on_data), so the weights and losses are the same bits, for SGD, lazy Adam and a one-layer
 * model without scaling. */
Test(stream_libsvm, one_window_trains_as_in_memory)
{
    char *dir = make_temp_dir("tapegrad-stream"), *train = write_svm(dir, "train.svm", ROWS, -1, NULL),
         *test = write_svm(dir, "test.svm", 40, -1, NULL);
    tg_dataset *all = tg_libsvm_load(train, NULL);
    cr_assert_not_null(all, "%s", tg_last_error());
    const struct {
        const char *data, *rest;
    } runs[] = {
        { ", \"block_rows\": 16, \"shuffle_window\": 19", NULL },
        { ", \"block_rows\": 1000",
          "\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01, \"lazy\": true}, \"train\": {\"epochs\": 3, "
          "\"batch_size\": 32}" },
        { ", \"block_rows\": 7, \"shuffle_window\": 64, \"standardize\": false",
          "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.01, \"lazy\": true}, \"train\": {\"epochs\": 2, "
          "\"batch_size\": 50}" },
    };
    for (size_t k = 0; k < sizeof runs / sizeof *runs; k++) {
        tg_config *cfg = svm_config(train, test, runs[k].data, runs[k].rest);
        tg_training *streamed = tg_train_config(cfg, NULL, NULL);
        cr_assert_not_null(streamed, "run %zu: %s", k, tg_last_error());
        tg_training *in_memory = tg_train_on_data(cfg, all, NULL, NULL, NULL);
        cr_assert_not_null(in_memory, "run %zu: %s", k, tg_last_error());
        expect_same_weights(streamed->model, in_memory->model, runs[k].data);
        for (int e = 0; e < cfg->train.epochs; e++)
            cr_assert_eq(memcmp(&streamed->train_loss[e], &in_memory->train_loss[e], sizeof(double)), 0,
                         "run %zu epoch %d", k, e + 1);
        cr_assert_eq(streamed->train->rows, ROWS);
        cr_assert_null(streamed->train->x); /* the rows stay on disk */
        cr_assert_null(streamed->train->row_ptr);
        cr_assert_eq(streamed->test->rows, 40);
        tg_training_free(streamed);
        tg_training_free(in_memory);
        tg_config_free(cfg);
    }
    tg_dataset_free(all);
    unlink(train);
    unlink(test);
    free(train);
    free(test);
    rmdir(dir);
    free(dir);
}

/* Windows smaller than the file: the same seed the same bits, another seed other weights; stopped mid-window,
 * saved and resumed: the bits of the run never stopped. */
Test(stream_libsvm, reproducible_and_resumed_mid_window)
{
    char *dir = make_temp_dir("tapegrad-stream"), *train = write_svm(dir, "train.svm", ROWS, -1, NULL),
         *test = write_svm(dir, "test.svm", 40, -1, NULL), *ckpt = join_path(dir, "run.safetensors");
    const char *rest = "\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01, \"lazy\": true},"
                       " \"train\": {\"epochs\": 4, \"batch_size\": 20}";
    tg_config *cfg = svm_config(train, test, ", \"block_rows\": 16, \"shuffle_window\": 2", rest);
    tg_training *whole = tg_train_config(cfg, NULL, NULL), *again = tg_train_config(cfg, NULL, NULL);
    cr_assert(whole && again, "%s", tg_last_error());
    expect_same_weights(whole->model, again->model, "two runs");
    tg_training_free(again);
    tg_config *seeded =
        svm_config(train, test, ", \"block_rows\": 16, \"shuffle_window\": 2, \"shuffle_seed\": 6", rest);
    tg_training *other = tg_train_config(seeded, NULL, NULL);
    cr_assert_not_null(other, "%s", tg_last_error());
    cr_assert(!same_weights(whole->model, other->model), "another data seed gave the same weights");
    tg_training_free(other);
    tg_config_free(seeded);
    const stop_point stops[] = { { 2, 5, 0 }, { 3, 0, 0 }, { 3, 11, 0 } };
    for (int k = 0; k < 3; k++) {
        stop_point at = stops[k];
        tg_train_opts opts = { .progress = stop_there, .ctx = &at };
        tg_training *part = tg_train_config_opts(cfg, &opts);
        cr_assert_not_null(part, "%s", tg_last_error());
        cr_assert(part->stopped_by_caller);
        cr_assert_eq(tg_training_save(part, ckpt), 0, "%s", tg_last_error());
        tg_training_free(part);
        tg_train_opts resume = { .resume = ckpt };
        tg_training *resumed = tg_train_config_opts(cfg, &resume);
        cr_assert_not_null(resumed, "stop %d: %s", k, tg_last_error());
        expect_same_weights(whole->model, resumed->model, "resumed");
        for (int e = 0; e < 4; e++)
            cr_assert_eq(memcmp(&whole->train_loss[e], &resumed->train_loss[e], sizeof(double)), 0, "stop %d", k);
        tg_training_free(resumed);
    }
    tg_training_free(whole);
    tg_config_free(cfg);
    unlink(ckpt);
    unlink(train);
    unlink(test);
    free(ckpt);
    free(train);
    free(test);
    rmdir(dir);
    free(dir);
}

/* A malformed pair in block 3 stops the run before any step, with file, line and column. */
Test(stream_libsvm, training_stops_at_a_bad_line_in_block_three_before_any_step)
{
    char *dir = make_temp_dir("tapegrad-stream"), *train = write_svm(dir, "bad.svm", ROWS, 40, "30:x1"),
         *test = write_svm(dir, "test.svm", 40, -1, NULL);
    tg_config *cfg = svm_config(train, test, ", \"block_rows\": 16, \"shuffle_window\": 2", NULL);
    stop_point never = { 0, 0, 0 };
    tg_train_opts opts = { .progress = stop_there, .ctx = &never };
    cr_assert_null(tg_train_config_opts(cfg, &opts));
    char want[600];
    /* row 40 is line 42 (after the comment line); "cat 1:40 2:0.75 12:2 " puts the pair at column 22 */
    int32_t col[4];
    double val[4];
    cr_assert_eq(svm_pairs(40, col, val), 2);
    snprintf(want, sizeof want, "%s:42:%d: '30:x1': the value is not a number", train,
             5 + (int)strlen("1:40 3:") + snprintf(NULL, 0, "%g", val[1]) + 1);
    cr_assert_str_eq(tg_last_error(), want);
    cr_assert_eq(never.calls, 0, "training took %d steps before the error", never.calls);
    tg_config_free(cfg);
    unlink(train);
    unlink(test);
    free(train);
    free(test);
    rmdir(dir);
    free(dir);
}

/* The stream keys in a libsvm config: taken with stream, refused without it, and a test file required. */
Test(stream_libsvm, config_keys)
{
    tg_config *cfg = tg_config_parse("{\"data\": {\"format\": \"libsvm\", \"train\": \"a.svm\", \"test\": \"b.svm\", "
                                     "\"stream\": true, \"block_rows\": 100, \"shuffle_window\": 3}, \"model\": "
                                     "{\"layers\": [{\"type\": \"linear\", \"out\": 2}]}, \"optimizer\": {\"type\": "
                                     "\"sgd\", \"lr\": 0.1}}",
                                     NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_expect_eq(cfg->data.stream, 1);
    cr_expect_eq(cfg->data.block_rows, 100);
    cr_expect_eq(cfg->data.shuffle_window, 3);
    cr_expect_eq(cfg->data.validation_split, 0);
    tg_config_free(cfg);
    const char *refused[][2] = {
        { "\"block_rows\": 100", "data.block_rows: given without \"stream\": true" },
        { "\"stream\": true", "data.stream: needs data.test" },
    };
    for (size_t k = 0; k < 2; k++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"data\": {\"format\": \"libsvm\", \"train\": \"a.svm\", %s}, \"model\": {\"layers\": [{\"type\": "
                 "\"linear\", \"out\": 2}]}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}}",
                 refused[k][0]);
        cr_expect_null(tg_config_parse(json, NULL), "%s accepted", refused[k][0]);
        cr_expect(strstr(tg_last_error(), refused[k][1]), "'%s' lacks '%s'", tg_last_error(), refused[k][1]);
    }
}

/* The file changes under the stream: grown between epochs, refused by the next; rewritten in place with the same
 * size (a pair commented out), refused by the epoch's check or by the block that no longer holds what the first
 * pass counted. */
static int grow_svm(const tg_progress *p, void *ctx)
{
    if (p->finished && p->epoch == 1) {
        FILE *f = fopen(ctx, "a");
        fprintf(f, "ant 1:300\n");
        fclose(f);
    }
    return 0;
}

Test(stream_libsvm, a_file_changed_under_the_stream_is_refused)
{
    char *dir = make_temp_dir("tapegrad-stream"), *train = write_svm(dir, "train.svm", ROWS, -1, NULL),
         *test = write_svm(dir, "test.svm", 40, -1, NULL);
    tg_config *cfg = svm_config(train, test, ", \"block_rows\": 16", NULL);
    cr_assert_null(tg_train_config(cfg, grow_svm, train));
    cr_assert(strstr(tg_last_error(), "the file changed while it was streamed"), "%s", tg_last_error());
    tg_config_free(cfg);
    unlink(train);
    free(train);

    train = write_svm(dir, "train.svm", ROWS, -1, NULL);
    tg_stream *s = open_svm(train, NULL, 7, 100, false);
    cr_assert_eq(tg_stream_start(s, 10, TG_F32, NULL, NULL), 0);
    long size;
    FILE *f = fopen(train, "r+");
    cr_assert_not_null(f);
    char text[16384];
    size = (long)fread(text, 1, sizeof text - 1, f);
    text[size] = '\0';
    char *pair = strstr(text, "ant 1:5 3:0.75 12:5\n"); /* row 5 (svm_pairs), in block 0 */
    cr_assert_not_null(pair);
    pair[strlen("ant 1:5 3:0.75")] = '#';
    rewind(f);
    cr_assert_eq(fwrite(text, 1, (size_t)size, f), (size_t)size);
    cr_assert_eq(fclose(f), 0);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_sparse_csr *x;
    tg_tensor *y;
    if (tg_stream_reset(s, &rng) == 0) { /* the same size and, within a second, the same time: the block says it */
        cr_assert_eq(tg_stream_next_sparse(s, &x, &y), -1);
        cr_assert(strstr(tg_last_error(), "the file changed since it was first read: block 0 (from line 2) holds 7 "
                                          "of its 7 rows and"),
                  "%s", tg_last_error());
    } else {
        cr_assert(strstr(tg_last_error(), "the file changed while it was streamed"), "%s", tg_last_error());
    }
    tg_stream_free(s);
    unlink(train);
    unlink(test);
    free(train);
    free(test);
    rmdir(dir);
    free(dir);
}

/* Two classes and a one-output model (binary cross-entropy, whose positive class may swap the labels as the
 * stream reads them): one window is still the in-memory run's bits, with labels "no" and "yes" (text, so the
 * swap is decided on the names). */
Test(stream_libsvm, a_binary_model_trains_as_in_memory)
{
    char *dir = make_temp_dir("tapegrad-stream"), *train = join_path(dir, "binary.svm"),
         *test = join_path(dir, "t.svm");
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(k ? test : train, "w");
        cr_assert_not_null(f);
        for (int r = 0; r < (k ? 40 : ROWS); r++) {
            int32_t col[4];
            double val[4];
            int n = svm_pairs(r, col, val);
            fprintf(f, "%s", (r * 7 + r / 5) % 2 ? "yes" : "no");
            for (int j = 0; j < n; j++)
                fprintf(f, " %d:%g", col[j] + 1, val[j]);
            fprintf(f, "\n");
        }
        cr_assert_eq(fclose(f), 0);
    }
    tg_dataset *all = tg_libsvm_load(train, NULL);
    cr_assert_not_null(all, "%s", tg_last_error());
    char json[1024];
    snprintf(json, sizeof json,
             "{\"data\": {\"format\": \"libsvm\", \"train\": \"%s\", \"test\": \"%s\", \"stream\": true, "
             "\"standardize\": \"scale\", \"block_rows\": 32, \"shuffle_window\": 10}, \"model\": {\"layers\": "
             "[{\"type\": \"linear\", \"out\": 1}]}, \"loss\": {\"type\": \"binary_cross_entropy\"}, \"optimizer\": "
             "{\"type\": \"sgd\", \"lr\": 0.05, \"lazy\": true}, \"train\": {\"epochs\": 3, \"batch_size\": 16}, "
             "\"seed\": 4}",
             train, test);
    tg_config *cfg = tg_config_parse(json, NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_training *streamed = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(streamed, "%s", tg_last_error());
    tg_training *in_memory = tg_train_on_data(cfg, all, NULL, NULL, NULL);
    cr_assert_not_null(in_memory, "%s", tg_last_error());
    expect_same_weights(streamed->model, in_memory->model, "binary");
    for (int c = 0; c < 2; c++)
        cr_assert_str_eq(streamed->train->label_names[c], in_memory->train->label_names[c]);
    tg_training_free(streamed);
    tg_training_free(in_memory);
    tg_config_free(cfg);
    tg_dataset_free(all);
    unlink(train);
    unlink(test);
    free(train);
    free(test);
    rmdir(dir);
    free(dir);
}
