/* tg_linear with a sparse left operand: y = x W^T + b for x [m, F] in CSR,
 * W [out, F] (nn.Linear's layout), b [out]. Both directions walk the batch's
 * non-zeros only, so a step costs O(nnz * out) whatever F is. x is data: it
 * gets no gradient, and the node keeps a pointer to it (the caller keeps it
 * unchanged until the backward has run). */
#include "ops/ops.h"

#include <string.h>

typedef struct {
    const tg_sparse_csr *x;
} sparse_linear_saved;

/* dW[:, c] += sum_i G[i, :] x[i, c] over the stored (i, c) only; db += column sums of G */
static int sparse_linear_backward(tg_tape *tape, tg_node *node)
{
    const sparse_linear_saved *s = node->saved;
    const tg_sparse_csr *x = s->x;
    tg_tensor *w = node->inputs[0], *bias = node->inputs[1], *g = node->out->grad;
    bool failed = false, was_dense = w->grad_dense;
    tg_tensor *gw = tg_grad_buffer(tape, w, &failed);
    w->grad_dense = was_dense; /* this op adds into the batch's columns only */
    tg_tensor *gb = tg_grad_buffer(tape, bias, &failed);
    if (failed)
        return -1;
    if (gw) {
        if (tg_col_set_add(w, x, 1))
            return -1;
        int64_t out = w->shape[0], features = w->shape[1];
        TG_FLOAT_DISPATCH(w->dtype, T, {
            T *dw = gw->data;
            const T *grad = g->data, *val = x->val;
            for (int64_t i = 0; i < x->rows; i++)
                for (int64_t k = x->row_ptr[i]; k < x->row_ptr[i + 1]; k++) {
                    const T v = val[k];
                    T *column = dw + x->col[k];
                    for (int64_t o = 0; o < out; o++)
                        column[o * features] += grad[i * out + o] * v;
                }
        });
    }
    if (gb)
        tg_unbroadcast_add(gb, g);
    return 0;
}

static void sparse_linear_forward(const tg_sparse_csr *x, const tg_tensor *w, const tg_tensor *bias, tg_tensor *y)
{
    int64_t out = w->shape[0], features = w->shape[1];
    TG_FLOAT_DISPATCH(w->dtype, T, {
        const T *weight = w->data, *val = x->val, *b = bias ? bias->data : NULL;
        T *dst = y->data;
        /* One thread: the loop is bound by memory latency, and an OpenMP team woken here would spin beside the
         * single-threaded backward and optimizer step (it doubled a training run's CPU time). */
        for (int64_t i = 0; i < x->rows; i++) {
            T *row = dst + i * out;
            for (int64_t o = 0; o < out; o++)
                row[o] = b ? b[o] : 0;
            for (int64_t k = x->row_ptr[i]; k < x->row_ptr[i + 1]; k++) {
                const T v = val[k];
                const T *column = weight + x->col[k];
                for (int64_t o = 0; o < out; o++)
                    row[o] += v * column[o * features];
            }
        }
    });
}

tg_tensor *tg_sparse_linear(tg_tape *tape, const tg_sparse_csr *x, tg_tensor *weight, tg_tensor *bias)
{
    if (!tape)
        return tg_error("sparse_linear: tape is NULL");
    if (!x)
        return tg_error("sparse_linear: the sparse input is NULL");
    if (!tg_check_float_input("sparse_linear", weight) || (bias && !tg_check_float_pair("sparse_linear", weight, bias)))
        return NULL;
    if (x->dtype != weight->dtype)
        return tg_error("sparse_linear: the sparse input is %s and the weight %s; float32 and float64 do not mix",
                        tg_dtype_name(x->dtype), tg_dtype_name(weight->dtype));
    if (weight->ndim != 2 || x->cols != weight->shape[1] ||
        (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))) {
        char sw[TG_SHAPE_BUF], sb[TG_SHAPE_BUF] = "none";
        if (bias)
            tg_shape_str(sb, sizeof sb, bias->ndim, bias->shape);
        return tg_error("sparse_linear: input [%lld, %lld] (sparse), weight %s, bias %s; expected [m, in], [out, in], "
                        "[out]",
                        (long long)x->rows, (long long)x->cols,
                        tg_shape_str(sw, sizeof sw, weight->ndim, weight->shape), sb);
    }
    tg_tensor *y = tg_tape_op_output(tape, weight->dtype, 2, (int64_t[]){ x->rows, weight->shape[0] }, false);
    if (!y)
        return NULL;
    sparse_linear_forward(x, weight, bias, y);
    tg_tensor *inputs[2] = { weight, bias };
    if (!tg_tape_should_record(tape, inputs, 2))
        return y;
    sparse_linear_saved *s = tg_tape_alloc(tape, sizeof *s);
    tg_node *node = s ? tg_tape_record(tape, "sparse_linear", sparse_linear_backward, y, inputs, 2) : NULL;
    if (!node)
        return NULL;
    s->x = x;
    node->saved = s;
    return y;
}
