/* Sums over one axis or all of them. float32 sums accumulate in double:
 * a 60000-row float sum would otherwise lose digits. */
#include "elementwise.h"

typedef struct {
    tg_axis_lines lines;
    double scale; /* 1, or 1/n for the mean */
} reduce_saved;

/* dx[o, j, i] += scale * g[o, i]: the upstream gradient broadcast back over the reduced axis */
static int reduce_backward(tg_tape *tape, tg_node *node)
{
    tg_tensor *x = node->inputs[0], *g = node->out->grad;
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    if (!gx)
        return failed ? -1 : 0;
    const reduce_saved *s = node->saved;
    int64_t outer = s->lines.outer, n = s->lines.n, inner = s->lines.inner;
    double scale = s->scale;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        T *dx = gx->data;
        const T *dy = g->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t j = 0; j < n; j++)
                for (int64_t i = 0; i < inner; i++)
                    dx[(o * n + j) * inner + i] += (T)(scale * dy[o * inner + i]);
    });
    return 0;
}

tg_tensor *tg_reduce_sum(tg_tape *tape, const char *op, tg_tensor *x, int axis, bool mean)
{
    if (!tape)
        return tg_error("%s: tape is NULL", op);
    if (!tg_check_float_input(op, x))
        return NULL;
    int64_t outer, n, inner, shape[TG_MAX_DIMS];
    int out_ndim = 0;
    if (axis == TG_ALL) {
        outer = 1;
        n = x->numel;
        inner = 1;
    } else {
        int a = tg_resolve_axis(op, x, axis);
        if (a < 0)
            return NULL;
        tg_axis_split(x, a, &outer, &n, &inner);
        for (int i = 0; i < x->ndim; i++)
            if (i != a)
                shape[out_ndim++] = x->shape[i];
    }
    tg_tensor *y = tg_tape_op_output(tape, x->dtype, out_ndim, shape, false);
    if (!y)
        return NULL;
    /* mean of nothing is NaN (0/0), as in PyTorch */
    double scale = mean ? 1.0 / (double)n : 1.0;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *xs = x->data;
        T *ys = y->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                double acc = 0;
                for (int64_t j = 0; j < n; j++)
                    acc += xs[(o * n + j) * inner + i];
                ys[o * inner + i] = (T)(mean ? acc / (double)n : acc);
            }
    });
    if (tg_tape_should_record(tape, &x, 1)) {
        tg_node *node = tg_tape_record(tape, op, reduce_backward, y, &x, 1);
        reduce_saved *s = node ? tg_tape_alloc(tape, sizeof *s) : NULL;
        if (!s)
            return NULL;
        *s = (reduce_saved){ { outer, n, inner }, scale };
        node->saved = s;
    }
    return y;
}

tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x, int axis) { return tg_reduce_sum(tape, "sum", x, axis, false); }
