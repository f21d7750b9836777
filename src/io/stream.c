/* Data larger than memory: a training file streamed in windows of blocks.
 * Each epoch shuffles the order of the file's blocks (persisted from epoch to
 * epoch, as the in-memory batcher's row order is), reads shuffle_window
 * blocks at a time into one buffer, shuffles the window's rows and hands them
 * out as batches; a batch may span two windows, so every row is seen once an
 * epoch and every batch but the last is full. All random numbers come from
 * the data seed's generator, drawn as the windows are read, so a run is the
 * same bits from the same seed, and a stopped run resumes from the block
 * order, the window's row order and four counters. When one window holds the
 * whole file it is read once and its row order is reshuffled in place each
 * epoch with the batcher's Fisher-Yates: the batches are then exactly those
 * of tg_train_on_data on the file's rows in file order. The format is behind
 * a tg_block_source (tg_csv_block_source, tg_libsvm_block_source). A sparse
 * (libsvm) source fills the window as CSR rows and the batches are one reused
 * tg_sparse_csr, sized at the start for the largest batch the file can make,
 * so no batch allocates; the order is the dense one's, row for row. */
#include "io/io_internal.h"

#include <stdlib.h>
#include <string.h>

struct tg_stream {
    tg_block_source src;
    int64_t rows, features, block_rows, n_blocks, window_blocks, n_windows;
    int64_t cap; /* rows a window holds */
    float *x; /* [cap, features]: the window's rows */
    int64_t *y, *file_row; /* [cap]: their classes and rows in the file */
    tg_dataset view; /* x and y as a data set, for the gather */
    bool sparse; /* the window is CSR rows (row_ptr, col, val) instead of x */
    int64_t *row_ptr; /* [cap + 1] */
    int32_t *col; /* [nnz_cap] */
    float *val; /* [nnz_cap] */
    int64_t nnz_cap; /* the most values any window of window_blocks blocks stores */
    tg_sparse_csr *csr; /* the sparse batch, reused */
    tg_tensor *y_full, *y_last; /* the sparse batches' labels: [batch] and the epoch's last [rows % batch] */
    int64_t *blocks; /* [n_blocks]: the epoch's block order */
    int64_t *order; /* [cap]: the window's row order (order_n rows, shuffled in place) */
    int64_t order_n;
    int64_t window; /* the window read, -1 before the epoch's first */
    int64_t window_rows, next; /* its rows; the next one (into order) to hand out */
    int64_t done; /* rows handed out this epoch */
    bool whole; /* one window holds the whole file, and it has been read */
    bool swap; /* binary: class c is read as 1 - c */
    float *mean, *std; /* the file's moments (standardize), or NULL */
    float *batch_mean, *batch_std; /* copies of what tg_stream_start was given, or NULL */
    tg_rng *rng; /* the epoch's generator (the caller's) */
    batch_buffers buffers;
    int64_t batch, *batch_rows, batch_n; /* [batch]: the last batch's file rows */
};

void tg_stream_free(tg_stream *s)
{
    if (!s)
        return;
    if (s->src.close)
        s->src.close(s->src.impl);
    tg_dealloc(s->x);
    tg_dealloc(s->y);
    tg_dealloc(s->file_row);
    tg_dealloc(s->blocks);
    tg_dealloc(s->order);
    tg_dealloc(s->mean);
    tg_dealloc(s->std);
    tg_dealloc(s->batch_mean);
    tg_dealloc(s->batch_std);
    tg_batch_buffers_free(&s->buffers);
    tg_dealloc(s->row_ptr);
    tg_dealloc(s->col);
    tg_dealloc(s->val);
    tg_sparse_csr_free(s->csr);
    tg_tensor_free(s->y_full);
    tg_tensor_free(s->y_last);
    tg_dealloc(s->batch_rows);
    tg_dealloc(s);
}

static int64_t block_length(const tg_stream *s, int64_t block)
{
    int64_t first = block * s->block_rows;
    return s->rows - first < s->block_rows ? s->rows - first : s->block_rows;
}

/* Block k into the window from its row `at` (and, sparse, after the values already there). */
static int read_block(tg_stream *s, int64_t k, int64_t at)
{
    if (!s->sparse)
        return s->src.read(s->src.impl, k, s->x + at * s->features, s->y + at);
    if (at == 0)
        s->row_ptr[0] = 0;
    return s->src.read_sparse(s->src.impl, k, s->row_ptr + at, s->col, s->val, s->y + at);
}

/* tg_dataset_moments' second pass, block by block in file order, from the first pass's sums. */
static int moments(tg_stream *s)
{
    int64_t f = s->features;
    double *mean = tg_alloc((size_t)f * sizeof *mean), *squares = tg_alloc_zeroed((size_t)f * sizeof *squares);
    int rc = mean && squares ? 0 : -1;
    for (int64_t j = 0; !rc && j < f; j++)
        mean[j] = s->src.sum[j] / (double)s->rows;
    for (int64_t k = 0; !rc && k < s->n_blocks; k++)
        if (!(rc = read_block(s, k, 0)))
            tg_moments_add_squares(squares, mean, s->x, block_length(s, k), f);
    s->mean = rc ? NULL : tg_alloc((size_t)f * sizeof(float));
    s->std = s->mean ? tg_alloc((size_t)f * sizeof(float)) : NULL;
    if (!s->std)
        rc = -1;
    else
        tg_moments_finish(mean, squares, s->rows, f, s->mean, s->std);
    tg_dealloc(mean);
    tg_dealloc(squares);
    return rc;
}

/* The sparse moments (scaling only), block by block in file order from the first pass's sums and counts:
 * tg_dataset_moments' sums in its order, so its bits. */
static int sparse_moments(tg_stream *s)
{
    int64_t f = s->features;
    double *squares = tg_alloc_zeroed((size_t)f * sizeof *squares);
    int rc = squares ? 0 : -1;
    for (int64_t k = 0; !rc && k < s->n_blocks; k++)
        if (!(rc = read_block(s, k, 0)))
            tg_sparse_moments_add_squares(squares, s->src.sum, s->rows, s->col, s->val, s->row_ptr[block_length(s, k)]);
    s->mean = rc ? NULL : tg_alloc((size_t)f * sizeof(float));
    s->std = s->mean ? tg_alloc((size_t)f * sizeof(float)) : NULL;
    if (!s->std)
        rc = -1;
    else
        tg_sparse_moments_finish(s->src.sum, squares, s->src.stored, s->rows, f, s->mean, s->std);
    tg_dealloc(squares);
    return rc;
}

static int compare_descending(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The sparse window: CSR rows for the `blocks` blocks that store the most values together. */
static int open_sparse_window(tg_stream *s, int64_t blocks)
{
    int64_t *nnz = tg_alloc((size_t)s->n_blocks * sizeof *nnz);
    if (!nnz)
        return -1;
    memcpy(nnz, s->src.block_nnz, (size_t)s->n_blocks * sizeof *nnz);
    qsort(nnz, (size_t)s->n_blocks, sizeof *nnz, compare_descending);
    for (int64_t k = 0; k < blocks; k++)
        s->nnz_cap += nnz[k];
    tg_dealloc(nnz);
    if ((uint64_t)s->nnz_cap > SIZE_MAX / sizeof(float))
        return tg_error("stream: a window of %lld stored values is too large", (long long)s->nnz_cap), -1;
    size_t values = (size_t)(s->nnz_cap ? s->nnz_cap : 1);
    s->row_ptr = tg_alloc((size_t)(s->cap + 1) * sizeof(int64_t));
    s->col = tg_alloc(values * sizeof(int32_t));
    s->val = tg_alloc(values * sizeof(float));
    if (!s->row_ptr || !s->col || !s->val)
        return tg_error("stream: out of memory: a window of %lld rows storing %lld values needs %lld bytes",
                        (long long)s->cap, (long long)s->nnz_cap, (long long)(s->cap * 32 + s->nnz_cap * 8)),
               -1;
    s->view = (tg_dataset){ .rows = s->cap,
                            .features = s->features,
                            .y = s->y,
                            .row_ptr = s->row_ptr,
                            .col = s->col,
                            .val = s->val,
                            .nnz = s->nnz_cap };
    return 0;
}

tg_stream *tg_stream_open(tg_block_source src, int64_t window_blocks, bool standardize)
{
    tg_stream *s = tg_alloc_zeroed(sizeof *s);
    if (!s) {
        src.close(src.impl);
        return NULL;
    }
    s->src = src;
    s->rows = src.header->rows;
    s->features = src.header->features;
    s->block_rows = src.block_rows;
    s->n_blocks = src.blocks;
    s->window_blocks = window_blocks;
    s->window = -1;
    if (window_blocks <= 0) {
        tg_stream_free(s);
        return tg_error("stream: shuffle_window is %lld blocks, expected at least 1", (long long)window_blocks);
    }
    int64_t blocks = window_blocks < s->n_blocks ? window_blocks : s->n_blocks;
    s->n_windows = (s->n_blocks + window_blocks - 1) / window_blocks;
    s->cap = blocks > s->rows / s->block_rows ? s->rows : blocks * s->block_rows;
    s->sparse = !src.read;
    if (!s->sparse && (uint64_t)s->cap > SIZE_MAX / sizeof(float) / (uint64_t)s->features) {
        tg_stream_free(s);
        return tg_error("stream: a window of %lld rows of %lld features is too large", (long long)s->cap,
                        (long long)s->features);
    }
    s->x = s->sparse ? NULL : tg_alloc((size_t)s->cap * (size_t)s->features * sizeof(float));
    s->y = tg_alloc((size_t)s->cap * sizeof(int64_t));
    s->file_row = tg_alloc((size_t)s->cap * sizeof(int64_t));
    s->order = tg_alloc((size_t)s->cap * sizeof(int64_t));
    s->blocks = tg_alloc((size_t)s->n_blocks * sizeof(int64_t));
    if ((!s->x && !s->sparse) || !s->y || !s->file_row || !s->order || !s->blocks) {
        tg_error("stream: out of memory: a window of %lld rows of %lld features needs %lld bytes", (long long)s->cap,
                 (long long)s->features, (long long)(s->cap * (s->features * 4 + 24)));
        tg_stream_free(s);
        return NULL;
    }
    for (int64_t k = 0; k < s->n_blocks; k++)
        s->blocks[k] = k;
    s->view = (tg_dataset){ .rows = s->cap, .features = s->features, .x = s->x, .y = s->y };
    if (s->sparse && open_sparse_window(s, blocks)) {
        tg_stream_free(s);
        return NULL;
    }
    if (standardize && (s->sparse ? sparse_moments(s) : moments(s))) {
        tg_stream_free(s);
        return NULL;
    }
    return s;
}

const tg_dataset *tg_stream_header(const tg_stream *s) { return s->src.header; }
bool tg_stream_sparse(const tg_stream *s) { return s->sparse; }
const float *tg_stream_mean(const tg_stream *s) { return s->mean; }
const float *tg_stream_std(const tg_stream *s) { return s->std; }
double tg_stream_max_abs(const tg_stream *s) { return s->src.max_abs; }
uint64_t tg_stream_hash(const tg_stream *s) { return s->src.hash; }
void tg_stream_swap_binary(tg_stream *s) { s->swap = !s->swap; }

/* The sparse batch, reserved for the `batch` rows that store the most values (from the first pass's count
 * of row lengths), and its labels: no batch allocates. */
static int start_sparse(tg_stream *s, tg_dtype dtype)
{
    int64_t nnz = 0, left = s->batch;
    for (int64_t length = s->src.longest_row; length > 0 && left > 0; length--) {
        int64_t n = s->src.rows_of_length[length] < left ? s->src.rows_of_length[length] : left;
        nnz += n * length;
        left -= n;
    }
    int64_t tail = s->rows % s->batch;
    s->csr = tg_sparse_csr_new(dtype, 0, s->features, 0, NULL, NULL, NULL);
    s->y_full = tg_tensor_new(TG_I64, 1, (int64_t[]){ s->batch });
    s->y_last = tail ? tg_tensor_new(TG_I64, 1, (int64_t[]){ tail }) : NULL;
    if (!s->csr || !s->y_full || (tail && !s->y_last) || tg_sparse_csr_reserve(s->csr, s->batch, nnz))
        return -1;
    return 0;
}

int tg_stream_start(tg_stream *s, int64_t batch_size, tg_dtype dtype, const float *mean, const float *std)
{
    if (batch_size <= 0)
        return tg_error("stream: batch_size is %lld, expected a positive count", (long long)batch_size), -1;
    s->batch = batch_size < s->rows ? batch_size : s->rows;
    size_t bytes = (size_t)s->features * sizeof(float);
    if ((mean && !(s->batch_mean = tg_alloc(bytes))) || (std && !(s->batch_std = tg_alloc(bytes))))
        return -1;
    if (mean)
        memcpy(s->batch_mean, mean, bytes);
    if (std)
        memcpy(s->batch_std, std, bytes);
    if (!(s->batch_rows = tg_alloc((size_t)s->batch * sizeof(int64_t))))
        return -1;
    if (s->sparse)
        return start_sparse(s, dtype);
    return tg_batch_buffers_init(&s->buffers, dtype, s->features, s->batch, s->rows, true);
}

int64_t tg_stream_batches(const tg_stream *s) { return (s->rows + s->batch - 1) / s->batch; }

/* Reads window w of the epoch's block order (unless the one window already holds the file) and, when
 * shuffle, reshuffles its row order: in place when the window has as many rows as the last one. */
static int read_window(tg_stream *s, int64_t w, bool shuffle)
{
    if (w >= s->n_windows)
        return tg_error("stream: window %lld of %lld: the epoch has no more rows", (long long)w + 1,
                        (long long)s->n_windows),
               -1;
    if (!s->whole) {
        int64_t rows = 0, first = w * s->window_blocks;
        int64_t last = first + s->window_blocks < s->n_blocks ? first + s->window_blocks : s->n_blocks;
        for (int64_t k = first; k < last; k++) {
            int64_t b = s->blocks[k], n = block_length(s, b);
            if (read_block(s, b, rows))
                return -1;
            for (int64_t r = 0; r < n; r++) {
                s->file_row[rows + r] = b * s->block_rows + r;
                if (s->swap)
                    s->y[rows + r] = 1 - s->y[rows + r];
            }
            rows += n;
        }
        s->window_rows = rows;
        s->whole = s->n_windows == 1;
    }
    if (shuffle) {
        if (s->order_n != s->window_rows) {
            s->order_n = s->window_rows;
            for (int64_t r = 0; r < s->order_n; r++)
                s->order[r] = r;
        }
        tg_shuffle_order(s->order, s->order_n, s->rng);
    }
    s->window = w;
    s->next = 0;
    return 0;
}

int tg_stream_reset(tg_stream *s, tg_rng *shuffle)
{
    if (s->src.unchanged(s->src.impl))
        return -1;
    s->rng = shuffle;
    if (s->n_windows > 1)
        tg_shuffle_order(s->blocks, s->n_blocks, shuffle);
    s->window = -1;
    s->next = 0;
    s->done = 0;
    return 0;
}

/* Rows rows[0..n) of the sparse window into the batch from its row `at`, scaled by batch_std (in float32, as
 * the in-memory gather divides), in the batch's dtype. */
static void gather_sparse_at(tg_stream *s, const int64_t *rows, int64_t n, tg_tensor *y, int64_t at)
{
    tg_sparse_csr *x = s->csr;
    const float *std = s->batch_std;
    int64_t k = x->row_ptr[at];
    TG_FLOAT_DISPATCH(x->dtype, T, {
        T *val = x->val;
        for (int64_t r = 0; r < n; r++) {
            int64_t a = s->row_ptr[rows[r]], b = s->row_ptr[rows[r] + 1];
            if (b > a)
                memcpy(x->col + k, s->col + a, (size_t)(b - a) * sizeof(int32_t));
            for (int64_t j = a; j < b; j++, k++)
                val[k] = std ? (T)(s->val[j] / std[s->col[j]]) : (T)s->val[j];
            x->row_ptr[at + r + 1] = k;
            ((int64_t *)y->data)[at + r] = s->y[rows[r]];
        }
    });
}

/* The epoch's next batch of n rows, window by window, into x (dense) or the sparse batch with y. */
static int fill_batch(tg_stream *s, int64_t n, tg_tensor *x, tg_tensor *y)
{
    if (s->sparse) {
        s->csr->row_ptr[0] = 0;
        s->csr->rows = n;
    }
    for (int64_t filled = 0; filled < n;) {
        if ((s->window < 0 || s->next == s->window_rows) && read_window(s, s->window + 1, true))
            return -1;
        int64_t k = n - filled < s->window_rows - s->next ? n - filled : s->window_rows - s->next;
        const int64_t *rows = s->order + s->next;
        if (s->sparse)
            gather_sparse_at(s, rows, k, y, filled);
        else
            tg_gather_standardized_at(s->batch_mean, s->batch_std, &s->view, rows, 0, k, x, y, filled);
        for (int64_t r = 0; r < k; r++)
            s->batch_rows[filled + r] = s->file_row[rows[r]];
        filled += k;
        s->next += k;
    }
    if (s->sparse)
        s->csr->nnz = s->csr->row_ptr[n];
    s->done += n;
    s->batch_n = n;
    return 0;
}

int tg_stream_next(tg_stream *s, tg_tensor **x, tg_tensor **y)
{
    *x = *y = NULL;
    if (!s->rng)
        return tg_error("stream: no epoch started (tg_stream_reset)"), -1;
    if (s->sparse)
        return tg_error("stream: the file is sparse (libsvm): its batches come from tg_stream_next_sparse"), -1;
    if (s->done >= s->rows)
        return 0;
    int64_t n = s->rows - s->done < s->batch ? s->rows - s->done : s->batch;
    batch_tensors t = tg_batch_buffers_for(&s->buffers, n);
    if (fill_batch(s, n, t.x, t.y))
        return -1;
    *x = t.x;
    *y = t.y;
    return 1;
}

int tg_stream_next_sparse(tg_stream *s, tg_sparse_csr **x, tg_tensor **y)
{
    *x = NULL;
    *y = NULL;
    if (!s->rng)
        return tg_error("stream: no epoch started (tg_stream_reset)"), -1;
    if (!s->sparse)
        return tg_error("stream: the file is dense: its batches come from tg_stream_next"), -1;
    if (s->done >= s->rows)
        return 0;
    int64_t n = s->rows - s->done < s->batch ? s->rows - s->done : s->batch;
    tg_tensor *labels = n == s->batch ? s->y_full : s->y_last;
    if (fill_batch(s, n, NULL, labels))
        return -1;
    *x = s->csr;
    *y = labels;
    return 1;
}

const int64_t *tg_stream_rows(const tg_stream *s, int64_t *n)
{
    *n = s->batch_n;
    return s->batch_rows;
}

void tg_stream_get_state(tg_stream *s, tg_stream_state *out)
{
    *out = (tg_stream_state){ .blocks = s->blocks,
                              .n_blocks = s->n_blocks,
                              .order = s->order,
                              .n_order = s->cap,
                              .position = { s->window, s->next, s->order_n, s->done } };
}

/* Whether a[0..n) holds each of 0..n-1 once; the first entry that does not, or -1. */
static int64_t first_not_permutation(const int64_t *a, int64_t n, bool *seen)
{
    memset(seen, 0, (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        if (a[i] < 0 || a[i] >= n || seen[a[i]])
            return i;
        seen[a[i]] = true;
    }
    return -1;
}

int tg_stream_restore(tg_stream *s, const int64_t *blocks, const int64_t *order, const int64_t *position,
                      tg_rng *shuffle, const char *path)
{
    int64_t window = position[0], next = position[1], order_n = position[2], done = position[3];
    if (window < -1 || window >= s->n_windows || order_n < 0 || order_n > s->cap || next < 0 || next > order_n ||
        done < 0 || done > s->rows)
        return tg_error("%s: tensor 'training.stream.position' (%lld, %lld, %lld, %lld) is not a position in this "
                        "stream",
                        path, (long long)window, (long long)next, (long long)order_n, (long long)done),
               -1;
    int64_t most = s->n_blocks > s->cap ? s->n_blocks : s->cap;
    bool *seen = tg_alloc((size_t)(most ? most : 1));
    if (!seen)
        return -1;
    int64_t bad_block = first_not_permutation(blocks, s->n_blocks, seen);
    int64_t bad_row = bad_block < 0 ? first_not_permutation(order, order_n, seen) : -1;
    tg_dealloc(seen);
    if (bad_block >= 0 || bad_row >= 0)
        return tg_error("%s: tensor 'training.stream.%s' entry %lld is not part of a permutation", path,
                        bad_block >= 0 ? "blocks" : "order", (long long)(bad_block >= 0 ? bad_block : bad_row)),
               -1;
    memcpy(s->blocks, blocks, (size_t)s->n_blocks * sizeof *blocks);
    memcpy(s->order, order, (size_t)order_n * sizeof *order);
    s->order_n = order_n;
    s->rng = shuffle;
    s->whole = false;
    s->done = done;
    s->window = window;
    if (window >= 0) {
        if (read_window(s, window, false))
            return -1;
        if (s->window_rows != order_n)
            return tg_error("%s: the window holds %lld rows but the checkpoint's order %lld", path,
                            (long long)s->window_rows, (long long)order_n),
                   -1;
        s->next = next;
    }
    return 0;
}
