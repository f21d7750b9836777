/* numpy broadcasting: the index math shared by every elementwise op, and the
 * one "unbroadcast" sum that every elementwise backward uses (a broadcast in
 * the forward is a sum over the broadcast axes in the backward). */
#include "tensor/tensor_internal.h"

int tg_broadcast_shape(const char *op, const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = a->ndim - n + i, ib = b->ndim - n + i;
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[TG_SHAPE_BUF], sb[TG_SHAPE_BUF];
            tg_error("%s: shapes %s and %s do not broadcast (dimension %d: %lld vs %lld)", op,
                     tg_shape_str(sa, sizeof sa, a->ndim, a->shape), tg_shape_str(sb, sizeof sb, b->ndim, b->shape), i,
                     (long long)da, (long long)db);
            return -1;
        }
        shape[i] = da == 1 ? db : da;
    }
    *ndim = n;
    return 0;
}

void tg_broadcast_strides(const tg_tensor *t, int out_ndim, const int64_t *out_shape, int64_t *strides)
{
    int64_t stride = 1;
    for (int i = out_ndim - 1; i >= 0; i--) {
        int it = t->ndim - out_ndim + i;
        int64_t d = it >= 0 ? t->shape[it] : 1;
        strides[i] = (d == 1 && out_shape[i] != 1) ? 0 : stride;
        stride *= d;
    }
}

void tg_unbroadcast_add(tg_tensor *dst, const tg_tensor *src)
{
    int64_t strides[TG_MAX_DIMS] = { 0 };
    int ndim = src->ndim;
    tg_broadcast_strides(dst, ndim, src->shape, strides);
    if (src->numel == 0)
        return;
    if (tg_same_shape(dst, src)) {
        TG_FLOAT_DISPATCH(dst->dtype, T, {
            T *d = dst->data;
            const T *s = src->data;
            for (int64_t i = 0; i < src->numel; i++)
                d[i] += s[i];
        });
        return;
    }
    /* Walk src row by row (the last axis), carrying dst's offset with an odometer. */
    int64_t inner = ndim ? src->shape[ndim - 1] : 1, inner_stride = ndim ? strides[ndim - 1] : 0;
    int64_t rows = src->numel / inner;
    int64_t counter[TG_MAX_DIMS] = { 0 };
    int64_t offset = 0;
    TG_FLOAT_DISPATCH(dst->dtype, T, {
        T *d = dst->data;
        const T *s = src->data;
        for (int64_t r = 0; r < rows; r++) {
            const T *row = s + r * inner;
            if (inner_stride == 0) {
                T acc = 0;
                for (int64_t j = 0; j < inner; j++)
                    acc += row[j];
                d[offset] += acc;
            } else {
                for (int64_t j = 0; j < inner; j++)
                    d[offset + j] += row[j];
            }
            for (int ax = ndim - 2; ax >= 0; ax--) {
                offset += strides[ax];
                if (++counter[ax] < src->shape[ax])
                    break;
                offset -= strides[ax] * counter[ax];
                counter[ax] = 0;
            }
        }
    });
}
