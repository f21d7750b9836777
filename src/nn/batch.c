/* Batches of rows gathered from a dataset into reused tensors, standardized on
 * the way with the model's own mean and std. */
#include "nn/nn_internal.h"

#include <time.h>

double tg_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int batch_tensors_init(batch_tensors *t, tg_dtype dtype, int64_t features, int64_t rows, bool labels)
{
    t->x = features ? tg_tensor_new(dtype, 2, (int64_t[]){ rows, features }) : NULL;
    t->y = labels ? tg_tensor_new(TG_I64, 1, (int64_t[]){ rows }) : NULL;
    return (t->x || !features) && (t->y || !labels) ? 0 : -1;
}

/* The most non-zeros any `size` rows of sparse ds hold (the sum of its `size` longest rows), from a count of
 * the row lengths; -1 on allocation failure. */
static int64_t largest_batch_nnz(const tg_dataset *ds, int64_t size)
{
    int64_t longest = 0, total = 0;
    for (int64_t r = 0; r < ds->rows; r++)
        longest = ds->row_ptr[r + 1] - ds->row_ptr[r] > longest ? ds->row_ptr[r + 1] - ds->row_ptr[r] : longest;
    int64_t *rows_of_length = tg_alloc_zeroed((size_t)(longest + 1) * sizeof *rows_of_length);
    if (!rows_of_length)
        return -1;
    for (int64_t r = 0; r < ds->rows; r++)
        rows_of_length[ds->row_ptr[r + 1] - ds->row_ptr[r]]++;
    for (int64_t length = longest; length > 0 && size > 0; length--) {
        int64_t n = rows_of_length[length] < size ? rows_of_length[length] : size;
        total += n * length;
        size -= n;
    }
    tg_dealloc(rows_of_length);
    return total;
}

/* A sparse batch sized for the largest batch of `size` rows: no gather allocates afterwards. */
static tg_sparse_csr *sparse_batch_for(const tg_dataset *ds, tg_dtype dtype, int64_t size)
{
    int64_t nnz = largest_batch_nnz(ds, size);
    tg_sparse_csr *x = nnz < 0 ? NULL : tg_sparse_csr_new(dtype, 0, 0, 0, NULL, NULL, NULL);
    if (x && tg_sparse_csr_reserve(x, size, nnz)) {
        tg_sparse_csr_free(x);
        return NULL;
    }
    return x;
}

int tg_batch_buffers_init(batch_buffers *b, tg_dtype dtype, int64_t features, int64_t size, int64_t rows, bool labels)
{
    *b = (batch_buffers){ .size = size };
    int64_t tail = size > 0 ? rows % size : 0;
    if (batch_tensors_init(&b->full, dtype, features, size, labels) ||
        (tail && batch_tensors_init(&b->last, dtype, features, tail, labels))) {
        tg_batch_buffers_free(b);
        return -1;
    }
    b->has_last = tail != 0;
    return 0;
}

int tg_batch_buffers_init_data(batch_buffers *b, tg_dtype dtype, const tg_dataset *ds, int64_t size, bool labels)
{
    bool sparse = !ds->x && ds->row_ptr;
    if (tg_batch_buffers_init(b, dtype, sparse ? 0 : ds->features, size, ds->rows, labels))
        return -1;
    if (sparse && !(b->sparse = sparse_batch_for(ds, dtype, size))) {
        tg_batch_buffers_free(b);
        return -1;
    }
    b->full.sparse = b->last.sparse = b->sparse;
    return 0;
}

void tg_batch_buffers_free(batch_buffers *b)
{
    tg_tensor_free(b->full.x);
    tg_tensor_free(b->full.y);
    tg_tensor_free(b->last.x);
    tg_tensor_free(b->last.y);
    tg_sparse_csr_free(b->sparse);
    *b = (batch_buffers){ 0 };
}

batch_tensors tg_batch_buffers_for(const batch_buffers *b, int64_t n)
{
    return n == b->size || !b->has_last ? b->full : b->last;
}

int tg_gather_rows(const tg_model *m, const tg_dataset *ds, const int64_t *idx, int64_t start, int64_t n,
                   batch_tensors t)
{
    return tg_gather_batch(m->mean, m->std, ds, idx, start, n, t);
}

void tg_gather_standardized(const float *mean, const float *std, const tg_dataset *ds, const int64_t *idx,
                            int64_t start, tg_tensor *x, tg_tensor *y)
{
    tg_gather_standardized_at(mean, std, ds, idx, start, x->shape[0], x, y, 0);
}

void tg_gather_standardized_at(const float *mean, const float *std, const tg_dataset *ds, const int64_t *idx,
                               int64_t start, int64_t n, tg_tensor *x, tg_tensor *y, int64_t at)
{
    int64_t f = ds->features;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        for (int64_t r = 0; r < n; r++) {
            int64_t row = idx ? idx[r] : start + r;
            const float *src = ds->x + row * f;
            T *dst = (T *)x->data + (at + r) * f;
            if (mean)
                for (int64_t j = 0; j < f; j++)
                    dst[j] = (T)((src[j] - mean[j]) / std[j]);
            else
                for (int64_t j = 0; j < f; j++)
                    dst[j] = (T)src[j];
            if (y)
                ((int64_t *)y->data)[at + r] = ds->y[row];
        }
    });
}

/* Sparse rows are scaled, never centred (mean is all zeros for them: tg_dataset_moments). */
int tg_gather_batch(const float *mean, const float *std, const tg_dataset *ds, const int64_t *idx, int64_t start,
                    int64_t n, batch_tensors t)
{
    if (!t.sparse) {
        tg_gather_standardized(mean, std, ds, idx, start, t.x, t.y);
        return 0;
    }
    tg_sparse_csr *x = t.sparse;
    if (tg_sparse_csr_gather(x, ds, idx, start, n))
        return -1;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        T *val = x->val;
        for (int64_t k = 0; std && k < x->nnz; k++)
            val[k] = (T)((float)val[k] / std[x->col[k]]); /* in float32, as the dense gather divides */
    });
    for (int64_t r = 0; t.y && r < n; r++)
        ((int64_t *)t.y->data)[r] = ds->y[idx ? idx[r] : start + r];
    return 0;
}
