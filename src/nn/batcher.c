/* The public minibatch helper: a data set's rows in (optionally shuffled)
 * batches, gathered into tensors made once in tg_batcher_new, standardized on
 * the way. The trainer draws its batches from it; evaluation shares its core
 * (batch_buffers and gather_standardized in batch.c). */
#include "nn/nn_internal.h"

#include <string.h>

struct tg_batcher {
    const tg_dataset *ds;
    batch_buffers buffers;
    int64_t *order; /* the epoch's row order, shuffled in place by each reset with an rng */
    float *mean, *std; /* copies, or NULL */
    int64_t next_row; /* first row (into order) of the next batch */
    int64_t rows, size; /* the rows ordered, and a full batch's */
};

tg_batcher *tg_batcher_new(const tg_dataset *ds, int64_t batch_size, tg_dtype dtype, const tg_batcher_opts *opts)
{
    if (ds && !ds->x && ds->row_ptr)
        return tg_error("batcher: the data set is sparse (CSR, from a libsvm file): gather its batches with "
                        "tg_sparse_csr_gather");
    return tg_batcher_open(ds, batch_size, dtype, opts);
}

tg_batcher *tg_batcher_open(const tg_dataset *ds, int64_t batch_size, tg_dtype dtype, const tg_batcher_opts *opts)
{
    if (!ds)
        return tg_error("batcher: data set is NULL");
    if (batch_size <= 0)
        return tg_error("batcher: batch_size is %lld, expected a positive count", (long long)batch_size);
    if (dtype != TG_F32 && dtype != TG_F64)
        return tg_error("batcher: dtype %s, expected float32 or float64", tg_dtype_name(dtype));
    if (ds->rows <= 0 || ds->features <= 0)
        return tg_error("batcher: the data set has %lld rows of %lld features, expected at least one of each",
                        (long long)ds->rows, (long long)ds->features);
    const float *mean = opts ? opts->mean : NULL, *std = opts ? opts->std : NULL;
    if (!mean != !std)
        return tg_error("batcher: opts.%s is NULL but opts.%s is not: give both or neither", mean ? "std" : "mean",
                        mean ? "mean" : "std");
    tg_batcher *b = tg_alloc_zeroed(sizeof *b);
    if (!b)
        return NULL;
    b->ds = ds;
    int64_t size = batch_size < ds->rows ? batch_size : ds->rows;
    b->rows = ds->rows;
    b->size = size;
    size_t bytes = (size_t)ds->features * sizeof(float);
    b->order = tg_alloc((size_t)ds->rows * sizeof *b->order);
    if (mean) {
        b->mean = tg_alloc(bytes);
        b->std = tg_alloc(bytes);
    }
    if (!b->order || (mean && (!b->mean || !b->std)) ||
        tg_batch_buffers_init_data(&b->buffers, dtype, ds, size, true)) {
        tg_batcher_free(b);
        return NULL;
    }
    if (mean) {
        memcpy(b->mean, mean, bytes);
        memcpy(b->std, std, bytes);
    }
    for (int64_t r = 0; r < ds->rows; r++)
        b->order[r] = r;
    return b;
}

tg_batcher *tg_batcher_open_order(int64_t rows, int64_t batch_size)
{
    if (rows <= 0 || batch_size <= 0)
        return tg_error("batcher: %lld rows in batches of %lld, expected positive counts", (long long)rows,
                        (long long)batch_size);
    tg_batcher *b = tg_alloc_zeroed(sizeof *b);
    if (!b || !(b->order = tg_alloc((size_t)rows * sizeof *b->order))) {
        tg_dealloc(b);
        return NULL;
    }
    b->rows = rows;
    b->size = batch_size < rows ? batch_size : rows;
    for (int64_t r = 0; r < rows; r++)
        b->order[r] = r;
    return b;
}

void tg_batcher_free(tg_batcher *b)
{
    if (!b)
        return;
    tg_batch_buffers_free(&b->buffers);
    tg_dealloc(b->order);
    tg_dealloc(b->mean);
    tg_dealloc(b->std);
    tg_dealloc(b);
}

/* Fisher-Yates from the last row down, one tg_rng_below(r + 1) per row: the
 * stream tapegrad train has always drawn, so its checkpoints do not change. */
void tg_batcher_reset(tg_batcher *b, tg_rng *shuffle)
{
    if (!b)
        return;
    b->next_row = 0;
    if (!shuffle)
        return;
    tg_shuffle_order(b->order, b->rows, shuffle);
}

void tg_shuffle_order(int64_t *order, int64_t n, tg_rng *rng)
{
    for (int64_t r = n - 1; r > 0; r--) {
        int64_t k = (int64_t)tg_rng_below(rng, (uint64_t)r + 1), tmp = order[r];
        order[r] = order[k];
        order[k] = tmp;
    }
}

int tg_batcher_next_batch(tg_batcher *b, batch_tensors *out)
{
    int64_t rows = b->rows, start = b->next_row, size = b->size;
    if (!b->ds)
        return tg_error("batcher: it orders rows it does not hold (tg_batcher_open_order)"), -1;
    if (start >= rows)
        return 0;
    int64_t n = rows - start < size ? rows - start : size;
    *out = tg_batch_buffers_for(&b->buffers, n);
    if (tg_gather_batch(b->mean, b->std, b->ds, b->order + start, 0, n, *out))
        return -1;
    b->next_row = start + n;
    return 1;
}

int tg_batcher_next(tg_batcher *b, tg_tensor **x, tg_tensor **y)
{
    if (x)
        *x = NULL;
    if (y)
        *y = NULL;
    if (!b || !x) {
        tg_error("batcher_next: %s is NULL", b ? "x" : "batcher");
        return -1;
    }
    batch_tensors t;
    int status = tg_batcher_next_batch(b, &t); /* dense data only: tg_batcher_new refuses sparse */
    if (status == 1) {
        *x = t.x;
        if (y)
            *y = t.y;
    }
    return status;
}

int64_t tg_batcher_batches(const tg_batcher *b) { return b ? (b->rows + b->size - 1) / b->size : 0; }

int64_t tg_batcher_batch_size(const tg_batcher *b) { return b ? b->size : 0; }

const int64_t *tg_batcher_rows(const tg_batcher *b, int64_t *n)
{
    if (!b) {
        if (n)
            *n = 0;
        return NULL;
    }
    int64_t size = b->size, end = b->next_row, start = end == 0 ? 0 : end - ((end - 1) % size + 1);
    if (n)
        *n = end - start;
    return b->order + start;
}

/* ---- for training checkpoints (src/train/train_state.c) ---- */

int64_t *tg_batcher_order(tg_batcher *b) { return b->order; }

void tg_batcher_seek(tg_batcher *b, int64_t batch)
{
    int64_t row = batch * b->size;
    b->next_row = row < b->rows ? row : b->rows;
}
