/* softmax along any axis: y_i = e^{x_i - max} / sum_j e^{x_j - max}.
 * Subtracting the max changes nothing mathematically and keeps every exp in
 * (0, 1], so no logit is too large. Each "line" is one softmax: the tensor is
 * viewed as [outer, n, inner] and line (o, i) holds x[o, :, i]. */
#include "elementwise.h"

#include <tgmath.h>

static void softmax_lines(const tg_tensor *x, tg_tensor *y, int64_t outer, int64_t n, int64_t inner)
{
    /* contiguous rows take the vectorised exp kernel; strided lines libm's */
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *xs = x->data;
        T *ys = y->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const T *xl = xs + o * n * inner + i;
                T *yl = ys + o * n * inner + i;
                double max;
                double total = inner == 1 ? tg_row_exps(x->dtype, xl, yl, n, &max)
                                          : tg_line_exps(x->dtype, xl, n, inner, yl, &max);
                T inv = (T)(1.0 / total);
                for (int64_t j = 0; j < n; j++)
                    yl[j * inner] *= inv;
            }
    });
}

/* dx = y * (g - <g, y>) per line: J^T g without forming J */
static int softmax_backward(tg_tape *tape, tg_node *node)
{
    tg_tensor *x = node->inputs[0], *y = node->out, *g = y->grad;
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    if (!gx)
        return failed ? -1 : 0;
    const tg_axis_lines *lines = node->saved;
    int64_t outer = lines->outer, n = lines->n, inner = lines->inner;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *ys = y->data, *gs = g->data;
        T *dx = gx->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t base = o * n * inner + i;
                double dot = 0;
                for (int64_t j = 0; j < n; j++)
                    dot += (double)gs[base + j * inner] * ys[base + j * inner];
                for (int64_t j = 0; j < n; j++)
                    dx[base + j * inner] += ys[base + j * inner] * (gs[base + j * inner] - (T)dot);
            }
    });
    return 0;
}

tg_tensor *tg_softmax(tg_tape *tape, tg_tensor *x, int axis)
{
    if (!tape)
        return tg_error("softmax: tape is NULL");
    if (!tg_check_float_input("softmax", x))
        return NULL;
    int a = tg_resolve_axis("softmax", x, axis);
    if (a < 0)
        return NULL;
    int64_t outer, n, inner;
    tg_axis_split(x, a, &outer, &n, &inner);
    tg_tensor *y = tg_tape_op_output(tape, x->dtype, x->ndim, x->shape, false);
    if (!y)
        return NULL;
    softmax_lines(x, y, outer, n, inner);
    if (tg_tape_should_record(tape, &x, 1)) {
        tg_node *node = tg_tape_record(tape, "softmax", softmax_backward, y, &x, 1);
        tg_axis_lines *lines = node ? tg_tape_alloc(tape, sizeof *lines) : NULL;
        if (!lines)
            return NULL;
        *lines = (tg_axis_lines){ outer, n, inner };
        node->saved = lines;
    }
    return y;
}

tg_tensor *tg_softmax_jacobian(tg_tape *tape, tg_tensor *x, int axis)
{
    if (!tape)
        return tg_error("softmax_jacobian: tape is NULL");
    if (!tg_check_float_input("softmax_jacobian", x))
        return NULL;
    int a = tg_resolve_axis("softmax_jacobian", x, axis);
    if (a < 0)
        return NULL;
    if (x->ndim + 1 > TG_MAX_DIMS)
        return tg_error("softmax_jacobian: the Jacobian of a %d-dimensional tensor would need %d dimensions (max %d)",
                        x->ndim, x->ndim + 1, TG_MAX_DIMS);
    int64_t outer, n, inner, shape[TG_MAX_DIMS];
    tg_axis_split(x, a, &outer, &n, &inner);
    int ndim = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i != a)
            shape[ndim++] = x->shape[i];
    shape[ndim++] = n;
    shape[ndim++] = n;
    tg_tensor *y = tg_tape_op_output(tape, x->dtype, x->ndim, x->shape, false);
    tg_tensor *jac = y ? tg_tape_op_output(tape, x->dtype, ndim, shape, false) : NULL;
    if (!jac)
        return NULL;
    softmax_lines(x, y, outer, n, inner);
    /* Line (o, i) of x becomes the n x n block number o * inner + i. */
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *ys = y->data;
        T *js = jac->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const T *yl = ys + o * n * inner + i;
                T *block = js + (o * inner + i) * n * n;
                for (int64_t r = 0; r < n; r++)
                    for (int64_t c = 0; c < n; c++)
                        block[r * n + c] = yl[r * inner] * ((r == c ? 1 : 0) - yl[c * inner]);
            }
    });
    return jac;
}
