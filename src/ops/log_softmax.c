/* log_softmax along any axis: y_i = x_i - max - log sum_j e^{x_j - max}
 * (log-sum-exp), finite for any finite x, where log(softmax(x)) underflows
 * to log(0) = -inf once a logit trails the max by ~100 (float) or ~750. */
#include "elementwise.h"

#include <tgmath.h>

/* dx = g - softmax(x) * sum(g) per line, softmax(x) = exp(y) */
static int log_softmax_backward(tg_tape *tape, tg_node *node)
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
                double total = 0;
                for (int64_t j = 0; j < n; j++)
                    total += gs[base + j * inner];
                for (int64_t j = 0; j < n; j++)
                    dx[base + j * inner] += gs[base + j * inner] - exp(ys[base + j * inner]) * (T)total;
            }
    });
    return 0;
}

tg_tensor *tg_log_softmax(tg_tape *tape, tg_tensor *x, int axis)
{
    if (!tape)
        return tg_error("log_softmax: tape is NULL");
    if (!tg_check_float_input("log_softmax", x))
        return NULL;
    int a = tg_resolve_axis("log_softmax", x, axis);
    if (a < 0)
        return NULL;
    int64_t outer, n, inner;
    tg_axis_split(x, a, &outer, &n, &inner);
    tg_tensor *y = tg_tape_op_output(tape, x->dtype, x->ndim, x->shape, false);
    if (!y)
        return NULL;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *xs = x->data;
        T *ys = y->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                const T *xl = xs + o * n * inner + i;
                T *yl = ys + o * n * inner + i;
                double line_max;
                double total = tg_line_exps(x->dtype, xl, n, inner, NULL, &line_max);
                T max = (T)line_max;
                /* (x - max) - log(sum), never x - (max + log(sum)): at a max of 1e30 the log would vanish. */
                T log_total = (T)log(total);
                for (int64_t j = 0; j < n; j++)
                    yl[j * inner] = (xl[j * inner] - max) - log_total;
            }
    });
    if (tg_tape_should_record(tape, &x, 1)) {
        tg_node *node = tg_tape_record(tape, "log_softmax", log_softmax_backward, y, &x, 1);
        tg_axis_lines *lines = node ? tg_tape_alloc(tape, sizeof *lines) : NULL;
        if (!lines)
            return NULL;
        *lines = (tg_axis_lines){ outer, n, inner };
        node->saved = lines;
    }
    return y;
}
