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
    t->x = tg_tensor_new(dtype, 2, (int64_t[]){ rows, features });
    t->y = labels ? tg_tensor_new(TG_I64, 1, (int64_t[]){ rows }) : NULL;
    return t->x && (t->y || !labels) ? 0 : -1;
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
    return 0;
}

void tg_batch_buffers_free(batch_buffers *b)
{
    tg_tensor_free(b->full.x);
    tg_tensor_free(b->full.y);
    tg_tensor_free(b->last.x);
    tg_tensor_free(b->last.y);
    *b = (batch_buffers){ 0 };
}

batch_tensors tg_batch_buffers_for(const batch_buffers *b, int64_t n)
{
    return n == b->size || !b->last.x ? b->full : b->last;
}

void tg_gather_rows(const tg_model *m, const tg_dataset *ds, const int64_t *idx, int64_t start, tg_tensor *x,
                    tg_tensor *y)
{
    tg_gather_standardized(m->mean, m->std, ds, idx, start, x, y);
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
