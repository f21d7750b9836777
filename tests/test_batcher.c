/* The minibatch helper: batches cover every row once per epoch, the last one
 * shorter; nothing is allocated once the batcher exists; the shuffle follows
 * the documented Fisher-Yates stream from the seed; standardization is
 * (x - mean) / std. References are written out by hand below. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "helpers.h"

enum { ROWS = 10, FEATURES = 3 };

/* Row r is (r, 10 r, -r) with label r % 4: every value says which row it came from. */
static float values[ROWS * FEATURES];
static int64_t labels[ROWS];

static tg_dataset make_rows(void)
{
    for (int r = 0; r < ROWS; r++) {
        values[r * FEATURES + 0] = (float)r;
        values[r * FEATURES + 1] = (float)(10 * r);
        values[r * FEATURES + 2] = (float)-r;
        labels[r] = r % 4;
    }
    return (tg_dataset){ .rows = ROWS, .features = FEATURES, .classes = 4, .x = values, .y = labels };
}

/* The data set row that x's row i holds (the first feature is the row id). */
static int64_t row_of(const tg_tensor *x, int64_t i) { return (int64_t)tg_get(x, i * FEATURES); }

Test(batcher, batches_of_four_over_ten_rows_end_with_a_batch_of_two)
{
    tg_dataset ds = make_rows();
    tg_batcher *b = tg_batcher_new(&ds, 4, TG_F64, NULL);
    cr_assert_not_null(b, "%s", tg_last_error());
    cr_assert_eq(tg_batcher_batches(b), 3);
    cr_assert_eq(tg_batcher_batch_size(b), 4);
    static const int64_t sizes[3] = { 4, 4, 2 };
    for (int epoch = 0; epoch < 2; epoch++) {
        int64_t next_row = 0;
        for (int k = 0; k < 3; k++) {
            tg_tensor *x, *y;
            cr_assert_eq(tg_batcher_next(b, &x, &y), 1, "epoch %d batch %d: %s", epoch, k, tg_last_error());
            cr_assert_eq(tg_ndim(x), 2);
            cr_assert_eq(tg_dim(x, 0), sizes[k]);
            cr_assert_eq(tg_dim(x, 1), FEATURES);
            cr_assert_eq(tg_dtype_of(x), TG_F64);
            cr_assert_eq(tg_dtype_of(y), TG_I64);
            cr_assert_eq(tg_dim(y, 0), sizes[k]);
            int64_t n;
            const int64_t *rows = tg_batcher_rows(b, &n);
            cr_assert_eq(n, sizes[k]);
            for (int64_t i = 0; i < sizes[k]; i++, next_row++) {
                cr_assert_eq(rows[i], next_row);
                cr_assert_eq(tg_get(x, i * FEATURES + 0), (double)next_row);
                cr_assert_eq(tg_get(x, i * FEATURES + 1), 10.0 * (double)next_row);
                cr_assert_eq(tg_get(x, i * FEATURES + 2), -(double)next_row);
                cr_assert_eq(tg_get(y, i), (double)(next_row % 4));
            }
        }
        tg_tensor *x = (tg_tensor *)1, *y = (tg_tensor *)1;
        cr_assert_eq(tg_batcher_next(b, &x, &y), 0, "the epoch has ended");
        cr_assert_null(x);
        cr_assert_null(y);
        cr_assert_eq(tg_batcher_next(b, &x, NULL), 0, "and stays ended until a reset");
        tg_batcher_reset(b, NULL); /* the same order again */
    }
    tg_batcher_free(b);
}

Test(batcher, a_batch_larger_than_the_data_is_one_batch_of_every_row)
{
    tg_dataset ds = make_rows();
    tg_batcher *b = tg_batcher_new(&ds, 64, TG_F32, NULL);
    cr_assert_not_null(b, "%s", tg_last_error());
    cr_assert_eq(tg_batcher_batches(b), 1);
    tg_tensor *x;
    cr_assert_eq(tg_batcher_next(b, &x, NULL), 1);
    cr_assert_eq(tg_dim(x, 0), ROWS);
    cr_assert_eq(tg_dtype_of(x), TG_F32);
    cr_assert_eq(tg_batcher_next(b, &x, NULL), 0);
    tg_batcher_free(b);
}

/* The documented stream, written out: Fisher-Yates from the last row down,
 * one tg_rng_below(rng, r + 1) per row, over the previous epoch's order. */
static void documented_shuffle(int64_t *order, tg_rng *rng)
{
    for (int64_t r = ROWS - 1; r > 0; r--) {
        int64_t k = (int64_t)tg_rng_below(rng, (uint64_t)r + 1), swap = order[r];
        order[r] = order[k];
        order[k] = swap;
    }
}

Test(batcher, the_shuffle_is_the_documented_stream_from_the_seed)
{
    tg_dataset ds = make_rows();
    tg_batcher *b = tg_batcher_new(&ds, 3, TG_F32, NULL);
    cr_assert_not_null(b, "%s", tg_last_error());
    tg_rng rng, reference;
    tg_rng_seed(&rng, 7);
    tg_rng_seed(&reference, 7);
    int64_t order[ROWS];
    for (int r = 0; r < ROWS; r++)
        order[r] = r;
    bool moved = false;
    for (int epoch = 0; epoch < 3; epoch++) {
        tg_batcher_reset(b, &rng);
        documented_shuffle(order, &reference);
        int seen[ROWS] = { 0 };
        int64_t i = 0;
        tg_tensor *x, *y;
        while (tg_batcher_next(b, &x, &y) == 1)
            for (int64_t j = 0; j < tg_dim(x, 0); j++, i++) {
                int64_t row = row_of(x, j);
                cr_assert_eq(row, order[i], "epoch %d, position %lld: row %lld, expected %lld", epoch, (long long)i,
                             (long long)row, (long long)order[i]);
                cr_assert_eq(tg_get(y, j), (double)(row % 4), "the label travels with its row");
                seen[row]++;
                moved |= row != i;
            }
        cr_assert_eq(i, ROWS);
        for (int r = 0; r < ROWS; r++)
            cr_assert_eq(seen[r], 1, "epoch %d: row %d seen %d times", epoch, r, seen[r]);
    }
    cr_assert(moved, "the shuffle left every row in place");
    /* The generator has advanced exactly as far as the reference: they still agree. */
    cr_assert_eq(tg_rng_next(&rng), tg_rng_next(&reference));
    tg_batcher_free(b);
}

Test(batcher, standardizes_with_the_given_mean_and_std)
{
    tg_dataset ds = make_rows();
    const float mean[FEATURES] = { 4.5f, 45.0f, -4.5f }, std[FEATURES] = { 2.0f, 0.5f, 4.0f };
    tg_batcher *b = tg_batcher_new(&ds, 4, TG_F64, &(tg_batcher_opts){ .mean = mean, .std = std });
    cr_assert_not_null(b, "%s", tg_last_error());
    /* Row r standardized by hand: ((r - 4.5) / 2, (10 r - 45) / 0.5, (-r + 4.5) / 4), all exact in float32. */
    tg_tensor *x;
    int64_t r = 0;
    while (tg_batcher_next(b, &x, NULL) == 1)
        for (int64_t i = 0; i < tg_dim(x, 0); i++, r++) {
            cr_assert_eq(tg_get(x, i * FEATURES + 0), ((double)r - 4.5) / 2);
            cr_assert_eq(tg_get(x, i * FEATURES + 1), (10.0 * (double)r - 45) / 0.5);
            cr_assert_eq(tg_get(x, i * FEATURES + 2), (-(double)r + 4.5) / 4);
        }
    cr_assert_eq(r, ROWS);
    tg_batcher_free(b);
}

/* ---- allocation: none after tg_batcher_new ---- */

static int64_t allocations;
static void *counting_malloc(size_t bytes)
{
    allocations++;
    return malloc(bytes);
}
static void *counting_realloc(void *old, size_t bytes)
{
    allocations += old == NULL;
    return realloc(old, bytes);
}

Test(batcher, epochs_allocate_nothing_after_the_first_batch)
{
    tg_set_allocator(counting_malloc, counting_realloc, free);
    tg_dataset ds = make_rows();
    const float mean[FEATURES] = { 1, 2, 3 }, std[FEATURES] = { 1, 1, 1 };
    tg_batcher *b = tg_batcher_new(&ds, 4, TG_F32, &(tg_batcher_opts){ .mean = mean, .std = std });
    cr_assert_not_null(b, "%s", tg_last_error());
    cr_assert_gt(allocations, 0, "the hooks are not in use");
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x, *y;
    cr_assert_eq(tg_batcher_next(b, &x, &y), 1);
    int64_t after_first = allocations, batches = 1;
    for (int epoch = 0; epoch < 5; epoch++) {
        while (tg_batcher_next(b, &x, &y) == 1)
            batches++;
        tg_batcher_reset(b, &rng);
    }
    cr_assert_eq(batches, 1 + 2 + 4 * 3, "the first epoch's three batches, then four more epochs of three");
    cr_assert_eq(allocations, after_first, "%lld allocations after the first batch",
                 (long long)(allocations - after_first));
    tg_batcher_free(b);
    tg_set_allocator(NULL, NULL, NULL);
}

Test(batcher, refuses_what_it_cannot_batch)
{
    tg_dataset ds = make_rows();
    const float mean[FEATURES] = { 0 };
    cr_assert_null(tg_batcher_new(&ds, 0, TG_F32, NULL));
    cr_assert(strstr(tg_last_error(), "batch_size is 0"), "%s", tg_last_error());
    cr_assert_null(tg_batcher_new(&ds, 4, TG_I64, NULL));
    cr_assert(strstr(tg_last_error(), "dtype int64"), "%s", tg_last_error());
    cr_assert_null(tg_batcher_new(&ds, 4, TG_F32, &(tg_batcher_opts){ .mean = mean }));
    cr_assert(strstr(tg_last_error(), "opts.std is NULL"), "%s", tg_last_error());
    cr_assert_null(tg_batcher_new(NULL, 4, TG_F32, NULL));
    tg_dataset empty = { .features = FEATURES };
    cr_assert_null(tg_batcher_new(&empty, 4, TG_F32, NULL));
    cr_assert(strstr(tg_last_error(), "0 rows"), "%s", tg_last_error());
    tg_tensor *x;
    cr_assert_eq(tg_batcher_next(NULL, &x, NULL), -1);
}
