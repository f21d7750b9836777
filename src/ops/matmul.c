#include "elementwise.h"

/* dA += G B^T, dB += A^T G */
static int matmul_backward(tg_tape *tape, tg_node *node)
{
    tg_tensor *a = node->inputs[0], *b = node->inputs[1], *g = node->out->grad;
    int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    bool failed = false;
    tg_tensor *ga = tg_grad_buffer(tape, a, &failed);
    tg_tensor *gb = tg_grad_buffer(tape, b, &failed);
    if (failed)
        return -1;
    if (ga)
        tg_gemm_any_layout(a->dtype, false, true, m, k, n, g->data, b->data, ga->data, true);
    if (gb)
        tg_gemm_any_layout(a->dtype, true, false, k, n, m, a->data, g->data, gb->data, true);
    return 0;
}

tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    if (!tape)
        return tg_error("matmul: tape is NULL");
    if (!tg_check_float_pair("matmul", a, b))
        return NULL;
    if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[0]) {
        char sa[TG_SHAPE_BUF], sb[TG_SHAPE_BUF];
        return tg_error("matmul: shapes %s and %s, expected [m, k] and [k, n]",
                        tg_shape_str(sa, sizeof sa, a->ndim, a->shape), tg_shape_str(sb, sizeof sb, b->ndim, b->shape));
    }
    int64_t m = a->shape[0], k = a->shape[1], n = b->shape[1];
    tg_tensor *y = tg_tape_op_output(tape, a->dtype, 2, (int64_t[]){ m, n }, false);
    if (!y)
        return NULL;
    tg_gemm_any_layout(a->dtype, false, false, m, n, k, a->data, b->data, y->data, false);
    tg_tensor *inputs[2] = { a, b };
    if (tg_tape_should_record(tape, inputs, 2) && !tg_tape_record(tape, "matmul", matmul_backward, y, inputs, 2))
        return NULL;
    return y;
}
