/* The affine layer as one node: y = x W^T + b, with W in PyTorch's [out, in]
 * layout so checkpoints map onto nn.Linear directly. One node instead of
 * matmul + transpose + add saves a [m, out] round trip through memory and
 * never materialises W^T. */
#include "elementwise.h"

#include <string.h>

/* dx += G W, dW += G^T x, db += column sums of G */
static int linear_backward(tg_tape *tape, tg_node *node)
{
    tg_tensor *x = node->inputs[0], *w = node->inputs[1], *bias = node->inputs[2], *g = node->out->grad;
    int64_t m = x->shape[0], in = x->shape[1], out = w->shape[0];
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    tg_tensor *gw = tg_grad_buffer(tape, w, &failed);
    tg_tensor *gb = tg_grad_buffer(tape, bias, &failed);
    if (failed)
        return -1;
    if (gx)
        tg_gemm(x->dtype, false, false, m, in, out, g->data, w->data, gx->data, true);
    if (gw)
        tg_gemm(x->dtype, true, false, out, in, m, g->data, x->data, gw->data, true);
    if (gb)
        tg_unbroadcast_add(gb, g);
    return 0;
}

tg_tensor *tg_linear(tg_tape *tape, tg_tensor *x, tg_tensor *weight, tg_tensor *bias)
{
    if (!tape)
        return tg_error("linear: tape is NULL");
    if (!tg_check_float_pair("linear", x, weight) || (bias && !tg_check_float_pair("linear", x, bias)))
        return NULL;
    if (x->ndim != 2 || weight->ndim != 2 || x->shape[1] != weight->shape[1] ||
        (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))) {
        char sx[TG_SHAPE_BUF], sw[TG_SHAPE_BUF], sb[TG_SHAPE_BUF] = "none";
        if (bias)
            tg_shape_str(sb, sizeof sb, bias->ndim, bias->shape);
        return tg_error("linear: input %s, weight %s, bias %s; expected [m, in], [out, in], [out]",
                        tg_shape_str(sx, sizeof sx, x->ndim, x->shape),
                        tg_shape_str(sw, sizeof sw, weight->ndim, weight->shape), sb);
    }
    int64_t m = x->shape[0], in = x->shape[1], out = weight->shape[0];
    tg_tensor *y = tg_tape_op_output(tape, x->dtype, 2, (int64_t[]){ m, out }, false);
    if (!y)
        return NULL;
    if (bias) {
        /* Start each row from the bias, then accumulate the product into it. */
        size_t row = (size_t)out * tg_dtype_size(x->dtype);
        for (int64_t i = 0; i < m; i++)
            memcpy((char *)y->data + (size_t)i * row, bias->data, row);
    }
    tg_gemm(x->dtype, false, true, m, out, in, x->data, weight->data, y->data, bias != NULL);
    tg_tensor *inputs[3] = { x, weight, bias };
    if (tg_tape_should_record(tape, inputs, 3) && !tg_tape_record(tape, "linear", linear_backward, y, inputs, 3))
        return NULL;
    return y;
}
