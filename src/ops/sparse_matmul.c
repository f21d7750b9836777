/* y = x W for a sparse x [m, F] in CSR and a dense W [F, out]: tg_matmul with
 * a sparse left operand. W's layout puts one feature's `out` weights side by
 * side, so a non-zero reads and updates one contiguous row of W (and of its
 * gradient and optimizer moments) where tg_sparse_linear's [out, F] touches
 * `out` rows F apart: the faster layout when F is large. O(nnz * out) both
 * ways; x gets no gradient and must stay unchanged until the backward. */
#include "ops/ops.h"

typedef struct {
    const tg_sparse_csr *x;
} sparse_matmul_saved;

/* dW[c, :] += x[i, c] G[i, :] over the stored (i, c) only */
static int sparse_matmul_backward(tg_tape *tape, tg_node *node)
{
    const sparse_matmul_saved *s = node->saved;
    const tg_sparse_csr *x = s->x;
    tg_tensor *w = node->inputs[0], *g = node->out->grad;
    bool failed = false, was_dense = w->grad_dense;
    tg_tensor *gw = tg_grad_buffer(tape, w, &failed);
    w->grad_dense = was_dense; /* this op adds into the batch's rows of W only */
    if (failed)
        return -1;
    if (!gw)
        return 0;
    if (tg_col_set_add(w, x, 0))
        return -1;
    int64_t out = w->shape[1];
    TG_FLOAT_DISPATCH(w->dtype, T, {
        T *dw = gw->data;
        const T *grad = g->data, *val = x->val;
        for (int64_t i = 0; i < x->rows; i++)
            for (int64_t k = x->row_ptr[i]; k < x->row_ptr[i + 1]; k++) {
                const T v = val[k];
                T *row = dw + (int64_t)x->col[k] * out;
                for (int64_t o = 0; o < out; o++)
                    row[o] += v * grad[i * out + o];
            }
    });
    return 0;
}

static void sparse_matmul_forward(const tg_sparse_csr *x, const tg_tensor *w, tg_tensor *y)
{
    int64_t out = w->shape[1];
    TG_FLOAT_DISPATCH(w->dtype, T, {
        const T *weight = w->data, *val = x->val;
        T *dst = y->data;
        /* One thread: the loop is bound by memory latency, and an OpenMP team woken here would spin beside the
         * single-threaded backward and optimizer step (it doubled a training run's CPU time). */
        for (int64_t i = 0; i < x->rows; i++) {
            T *row = dst + i * out;
            for (int64_t o = 0; o < out; o++)
                row[o] = 0;
            for (int64_t k = x->row_ptr[i]; k < x->row_ptr[i + 1]; k++) {
                const T v = val[k];
                const T *wrow = weight + (int64_t)x->col[k] * out;
                for (int64_t o = 0; o < out; o++)
                    row[o] += v * wrow[o];
            }
        }
    });
}

tg_tensor *tg_sparse_matmul(tg_tape *tape, const tg_sparse_csr *x, tg_tensor *w)
{
    if (!tape)
        return tg_error("sparse_matmul: tape is NULL");
    if (!x)
        return tg_error("sparse_matmul: the sparse input is NULL");
    if (!tg_check_float_input("sparse_matmul", w))
        return NULL;
    if (x->dtype != w->dtype)
        return tg_error("sparse_matmul: the sparse input is %s and the weight %s; float32 and float64 do not mix",
                        tg_dtype_name(x->dtype), tg_dtype_name(w->dtype));
    if (w->ndim != 2 || x->cols != w->shape[0]) {
        char sw[TG_SHAPE_BUF];
        return tg_error("sparse_matmul: input [%lld, %lld] (sparse) times %s; expected [m, k] times [k, n]",
                        (long long)x->rows, (long long)x->cols, tg_shape_str(sw, sizeof sw, w->ndim, w->shape));
    }
    tg_tensor *y = tg_tape_op_output(tape, w->dtype, 2, (int64_t[]){ x->rows, w->shape[1] }, false);
    if (!y)
        return NULL;
    sparse_matmul_forward(x, w, y);
    tg_tensor *inputs[1] = { w };
    if (!tg_tape_should_record(tape, inputs, 1))
        return y;
    sparse_matmul_saved *s = tg_tape_alloc(tape, sizeof *s);
    tg_node *node = s ? tg_tape_record(tape, "sparse_matmul", sparse_matmul_backward, y, inputs, 1) : NULL;
    if (!node)
        return NULL;
    s->x = x;
    node->saved = s;
    return y;
}
