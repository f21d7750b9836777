/* Shared driver for the elementwise ops (see elementwise.h). */
#include "elementwise.h"

bool tg_check_float_input(const char *op, const tg_tensor *x)
{
    if (!x)
        return false; /* keep the error of whatever produced the NULL */
    if (!tg_check_live(op, "its input", x))
        return false;
    if (!tg_is_float(x->dtype)) {
        tg_error("%s: input is %s, expected float32 or float64", op, tg_dtype_name(x->dtype));
        return false;
    }
    return true;
}

bool tg_check_float_pair(const char *op, const tg_tensor *a, const tg_tensor *b)
{
    if (!a || !b)
        return false;
    if (!tg_check_live(op, "its first input", a) || !tg_check_live(op, "its second input", b))
        return false;
    if (!tg_check_float_input(op, a) || !tg_check_float_input(op, b))
        return false;
    if (a->dtype != b->dtype) {
        tg_error("%s: inputs are %s and %s; float32 and float64 do not mix (convert one first)", op,
                 tg_dtype_name(a->dtype), tg_dtype_name(b->dtype));
        return false;
    }
    return true;
}

static void run_unary(const tg_unary_kernel *k, const tg_tensor *x, const tg_tensor *y, const tg_tensor *g,
                      tg_tensor *out)
{
    if (x->dtype == TG_F32)
        k->f32(x->data, y ? y->data : NULL, g ? g->data : NULL, out->data, out->numel);
    else
        k->f64(x->data, y ? y->data : NULL, g ? g->data : NULL, out->data, out->numel);
}

tg_tensor *tg_unary_op(tg_tape *tape, const char *op, tg_tensor *x, const tg_unary_kernel *forward,
                       tg_backward_fn backward)
{
    if (!tape)
        return tg_error("%s: tape is NULL", op);
    if (!tg_check_float_input(op, x))
        return NULL;
    tg_tensor *y = tg_tape_op_output(tape, x->dtype, x->ndim, x->shape, false);
    if (!y)
        return NULL;
    run_unary(forward, x, NULL, NULL, y);
    if (tg_tape_should_record(tape, &x, 1) && !tg_tape_record(tape, op, backward, y, &x, 1))
        return NULL;
    return y;
}

int tg_unary_backward(tg_tape *tape, tg_node *node, const tg_unary_kernel *kernel)
{
    bool failed = false;
    tg_tensor *x = node->inputs[0];
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    if (!gx)
        return failed ? -1 : 0;
    run_unary(kernel, x, node->out, node->out->grad, gx);
    return 0;
}

/* out[i] = kernel(a, b, y, g) over out's shape, a and b read through broadcast strides. */
static void run_binary(const tg_binary_kernel *k, const tg_tensor *a, const tg_tensor *b, const tg_tensor *y,
                       const tg_tensor *g, tg_tensor *out)
{
    int ndim = out->ndim;
    int64_t sa[TG_MAX_DIMS] = { 0 }, sb[TG_MAX_DIMS] = { 0 }, counter[TG_MAX_DIMS] = { 0 };
    tg_broadcast_strides(a, ndim, out->shape, sa);
    tg_broadcast_strides(b, ndim, out->shape, sb);
    if (out->numel == 0)
        return;
    int64_t inner = ndim ? out->shape[ndim - 1] : 1;
    int64_t ia = ndim ? sa[ndim - 1] : 0, ib = ndim ? sb[ndim - 1] : 0;
    int64_t rows = out->numel / inner, oa = 0, ob = 0;
    size_t es = tg_dtype_size(out->dtype);
    for (int64_t r = 0; r < rows; r++) {
        const char *pa = (const char *)a->data + (size_t)oa * es, *pb = (const char *)b->data + (size_t)ob * es;
        size_t row = (size_t)(r * inner) * es;
        const void *py = y ? (const char *)y->data + row : NULL, *pg = g ? (const char *)g->data + row : NULL;
        void *po = (char *)out->data + row;
        if (out->dtype == TG_F32)
            k->f32((const float *)pa, ia, (const float *)pb, ib, py, pg, po, inner);
        else
            k->f64((const double *)pa, ia, (const double *)pb, ib, py, pg, po, inner);
        for (int ax = ndim - 2; ax >= 0; ax--) {
            oa += sa[ax];
            ob += sb[ax];
            if (++counter[ax] < out->shape[ax])
                break;
            oa -= sa[ax] * counter[ax];
            ob -= sb[ax] * counter[ax];
            counter[ax] = 0;
        }
    }
}

tg_tensor *tg_binary_op(tg_tape *tape, const char *op, tg_tensor *a, tg_tensor *b, const tg_binary_kernel *forward,
                        tg_backward_fn backward)
{
    if (!tape)
        return tg_error("%s: tape is NULL", op);
    if (!tg_check_float_pair(op, a, b))
        return NULL;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    if (tg_broadcast_shape(op, a, b, &ndim, shape))
        return NULL;
    tg_tensor *y = tg_tape_op_output(tape, a->dtype, ndim, shape, false);
    if (!y)
        return NULL;
    run_binary(forward, a, b, NULL, NULL, y);
    tg_tensor *inputs[2] = { a, b };
    if (tg_tape_should_record(tape, inputs, 2) && !tg_tape_record(tape, op, backward, y, inputs, 2))
        return NULL;
    return y;
}

TG_BINARY_FUNCTIONS_(upstream, G)
const tg_binary_kernel tg_upstream_grad = { upstream_f32, upstream_f64 };

int tg_binary_backward(tg_tape *tape, tg_node *node, const tg_binary_kernel *grad_a, const tg_binary_kernel *grad_b)
{
    const tg_binary_kernel *kernels[2] = { grad_a, grad_b };
    tg_tensor *a = node->inputs[0], *b = node->inputs[1], *y = node->out;
    for (int i = 0; i < 2; i++) {
        bool failed = false;
        tg_tensor *gi = kernels[i] ? tg_grad_buffer(tape, node->inputs[i], &failed) : NULL;
        if (failed)
            return -1;
        if (!gi)
            continue;
        if (kernels[i] == &tg_upstream_grad) {
            tg_unbroadcast_add(gi, y->grad);
            continue;
        }
        /* The partial over the broadcast shape, then summed back to the input's shape. */
        tg_tensor *full = tg_tape_op_output(tape, y->dtype, y->ndim, y->shape, false);
        if (!full)
            return -1;
        run_binary(kernels[i], a, b, y, y->grad, full);
        tg_unbroadcast_add(gi, full);
    }
    return 0;
}
