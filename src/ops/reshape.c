/* A reshape of contiguous data is a new header over the same values. */
#include "elementwise.h"

/* dx += g (same values, x's shape) */
static int reshape_backward(tg_tape *tape, tg_node *node)
{
    tg_tensor *x = node->inputs[0], *g = node->out->grad;
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    if (!gx)
        return failed ? -1 : 0;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        T *dx = gx->data;
        const T *dy = g->data;
        for (int64_t i = 0; i < x->numel; i++)
            dx[i] += dy[i];
    });
    return 0;
}

tg_tensor *tg_reshape(tg_tape *tape, tg_tensor *x, int ndim, const int64_t *shape)
{
    if (!tape)
        return tg_error("reshape: tape is NULL");
    if (!x || !tg_check_live("reshape", "its input", x))
        return NULL;
    if (ndim < 0 || ndim > TG_MAX_DIMS || (ndim > 0 && !shape))
        return tg_error("reshape: %d dimensions requested, expected 0 to %d", ndim, TG_MAX_DIMS);
    int64_t resolved[TG_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        resolved[i] = shape[i];
        if (shape[i] == -1) {
            if (infer >= 0)
                return tg_error("reshape: more than one dimension is -1");
            infer = i;
        } else if (shape[i] < 0) {
            return tg_error("reshape: dimension %d is %lld, expected >= 0 or -1", i, (long long)shape[i]);
        } else {
            if (shape[i] != 0 && known > INT64_MAX / shape[i])
                return tg_error("reshape: requested shape is too large");
            known *= shape[i];
        }
    }
    bool fits = infer < 0 || (known != 0 && x->numel % known == 0);
    if (infer >= 0 && fits)
        resolved[infer] = x->numel / known;
    int64_t numel = 0;
    if (fits && tg_shape_check("reshape", ndim, resolved, &numel))
        return NULL;
    if (!fits || numel != x->numel) {
        char sx[TG_SHAPE_BUF], sr[TG_SHAPE_BUF];
        return tg_error("reshape: cannot view %s (%lld elements) as %s", tg_shape_str(sx, sizeof sx, x->ndim, x->shape),
                        (long long)x->numel, tg_shape_str(sr, sizeof sr, ndim, shape));
    }
    tg_tensor *y = tg_tape_new_header(tape, x->dtype, ndim, resolved, numel);
    if (!y)
        return NULL;
    y->data = x->data;
    if (tg_is_float(x->dtype) && tg_tape_should_record(tape, &x, 1) &&
        !tg_tape_record(tape, "reshape", reshape_backward, y, &x, 1))
        return NULL;
    return y;
}
