/* Swapping two axes copies into a contiguous tensor: every op downstream can
 * then assume row-major data. */
#include "elementwise.h"

#include <string.h>

/* dst (src's shape with axes a0 and a1 swapped) = or += src permuted. */
static void swap_axes(const tg_tensor *src, tg_tensor *dst, int a0, int a1, bool accumulate)
{
    int ndim = src->ndim;
    int64_t src_strides[TG_MAX_DIMS], read_strides[TG_MAX_DIMS], counter[TG_MAX_DIMS] = { 0 };
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        src_strides[i] = stride;
        stride *= src->shape[i];
    }
    /* Walking dst in order, axis i of dst steps through src along the swapped axis. */
    memcpy(read_strides, src_strides, sizeof read_strides);
    read_strides[a0] = src_strides[a1];
    read_strides[a1] = src_strides[a0];
    int64_t offset = 0;
    size_t es = tg_dtype_size(src->dtype);
    for (int64_t k = 0; k < dst->numel; k++) {
        if (src->dtype == TG_F32) {
            float v = ((const float *)src->data)[offset];
            float *d = (float *)dst->data + k;
            *d = accumulate ? *d + v : v;
        } else if (src->dtype == TG_F64) {
            double v = ((const double *)src->data)[offset];
            double *d = (double *)dst->data + k;
            *d = accumulate ? *d + v : v;
        } else {
            memcpy((char *)dst->data + (size_t)k * es, (const char *)src->data + (size_t)offset * es, es);
        }
        for (int ax = ndim - 1; ax >= 0; ax--) {
            offset += read_strides[ax];
            if (++counter[ax] < dst->shape[ax])
                break;
            offset -= read_strides[ax] * counter[ax];
            counter[ax] = 0;
        }
    }
}

typedef struct {
    int axis0, axis1; /* normalised */
} transpose_saved;

/* dx += transpose(g): the same swap undoes itself */
static int transpose_backward(tg_tape *tape, tg_node *node)
{
    tg_tensor *x = node->inputs[0];
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    if (!gx)
        return failed ? -1 : 0;
    const transpose_saved *s = node->saved;
    swap_axes(node->out->grad, gx, s->axis0, s->axis1, true);
    return 0;
}

tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x, int axis0, int axis1)
{
    if (!tape)
        return tg_error("transpose: tape is NULL");
    if (!x || !tg_check_live("transpose", "its input", x))
        return NULL;
    int a0 = tg_axis(axis0, x->ndim), a1 = tg_axis(axis1, x->ndim);
    if (a0 < 0 || a1 < 0) {
        char s[TG_SHAPE_BUF];
        return tg_error("transpose: axes %d and %d, expected each in [-%d, %d) for shape %s", axis0, axis1, x->ndim,
                        x->ndim, tg_shape_str(s, sizeof s, x->ndim, x->shape));
    }
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[a0] = x->shape[a1];
    shape[a1] = x->shape[a0];
    tg_tensor *y = tg_tape_op_output(tape, x->dtype, x->ndim, shape, false);
    if (!y)
        return NULL;
    swap_axes(x, y, a0, a1, false);
    if (tg_is_float(x->dtype) && tg_tape_should_record(tape, &x, 1)) {
        tg_node *node = tg_tape_record(tape, "transpose", transpose_backward, y, &x, 1);
        transpose_saved *s = node ? tg_tape_alloc(tape, sizeof *s) : NULL;
        if (!s)
            return NULL;
        *s = (transpose_saved){ a0, a1 };
        node->saved = s;
    }
    return y;
}
