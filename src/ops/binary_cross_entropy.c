/* Binary cross-entropy over probabilities, PyTorch's BCELoss.
 *
 * Per element loss = -w [y max(log p, -100) + (1 - y) max(log1p(-p), -100)]: PyTorch clamps each
 * log at -100 so that a certain wrong answer costs 100 rather than infinity, and so does this op.
 * Its gradient is PyTorch's w (p - y) / max(p (1 - p), 1e-12), which is the exact derivative except
 * within 1e-12 of 0 or 1. */
#include "binary_loss.h"

#include <math.h>
#include <stdio.h>

#define LOG_FLOOR (-100.0)
#define GRAD_EPSILON ((double)1e-12f) /* PyTorch's EPSILON, a float: 9.99999996e-13 in float64 */

typedef struct {
    tg_bce_opts opts;
    tg_binary_loss_layout layout;
} bce_saved;

static double clamped_log(double v) { return fmax(log(v), LOG_FLOOR); }
static double clamped_log1p_neg(double p) { return fmax(log1p(-p), LOG_FLOOR); }

/* Refuses a probability outside [0, 1] (NaN too), naming the first one and where it sits. */
static int check_probabilities(const char *op, const tg_tensor *p)
{
    int64_t bad = -1;
    TG_FLOAT_DISPATCH(p->dtype, T, {
        const T *ps = p->data;
        for (int64_t i = 0; i < p->numel && bad < 0; i++)
            if (!(ps[i] >= 0 && ps[i] <= 1))
                bad = i;
    });
    if (bad < 0)
        return 0;
    char shape[TG_SHAPE_BUF], where[TG_SHAPE_BUF];
    int64_t index[TG_MAX_DIMS], rest = bad;
    for (int ax = p->ndim - 1; ax >= 0; ax--) {
        index[ax] = rest % p->shape[ax];
        rest /= p->shape[ax];
    }
    char at[TG_SHAPE_BUF + 8] = "";
    if (p->ndim > 1)
        snprintf(at, sizeof at, " (at %s)", tg_shape_str(where, sizeof where, p->ndim, index));
    tg_error("%s: input[%lld]%s = %g is not a probability (expected a value in [0, 1]; input shape %s; "
             "from logits, use binary_cross_entropy_with_logits)",
             op, (long long)bad, at, tg_get(p, bad), tg_shape_str(shape, sizeof shape, p->ndim, p->shape));
    return -1;
}

/* dp += r w (p - y) / max(p (1 - p), 1e-12), dy += r w (max(log1p(-p), -100) - max(log p, -100)); r the upstream
 * gradient over the reduction's denominator */
static int bce_backward(tg_tape *tape, tg_node *node)
{
    const bce_saved *s = node->saved;
    const tg_binary_loss_layout *l = &s->layout;
    tg_tensor *p = node->inputs[0], *y = node->inputs[1], *g = node->out->grad;
    bool failed = false;
    tg_tensor *gp = tg_grad_buffer(tape, p, &failed);
    tg_tensor *gy = tg_grad_buffer(tape, y, &failed);
    if (failed)
        return -1;
    bool none = s->opts.reduction == TG_NONE;
    double scale = none ? 0 : tg_loss_grad_scale(g, s->opts.reduction, 0, (double)l->numel);
    const tg_tensor *weight = s->opts.weight;
    TG_FLOAT_DISPATCH(p->dtype, T, {
        const T *ps = p->data, *ys = y->data, *gs = none ? g->data : NULL;
        T *dp = gp ? gp->data : NULL, *dy = gy ? gy->data : NULL;
        for (int64_t row = 0; row < l->rows; row++) {
            const T *w = weight ? (const T *)weight->data + tg_binary_loss_row_offset(l, l->weight_strides, row) : NULL;
            for (int64_t j = 0; j < l->inner; j++) {
                int64_t i = row * l->inner + j;
                double pi = ps[i], rw = (none ? (double)gs[i] : scale) * (w ? (double)w[j * l->weight_inner] : 1.0);
                if (dp)
                    dp[i] += (T)(rw * (pi - (double)ys[i]) / fmax(pi * (1 - pi), GRAD_EPSILON));
                if (dy)
                    dy[i] += (T)(rw * (clamped_log1p_neg(pi) - clamped_log(pi)));
            }
        }
    });
    return 0;
}

tg_tensor *tg_binary_cross_entropy(tg_tape *tape, tg_tensor *probs, tg_tensor *target, const tg_bce_opts *opts)
{
    static const char op[] = "binary_cross_entropy";
    if (!tape)
        return tg_error("%s: tape is NULL", op);
    bce_saved *s = tg_tape_alloc(tape, sizeof *s);
    if (!s)
        return NULL;
    s->opts = opts ? *opts : TG_BCE_OPTS_DEFAULT;
    if (tg_binary_loss_check(op, probs, target, &s->opts, false, &s->layout) || check_probabilities(op, probs))
        return NULL;
    const tg_binary_loss_layout *l = &s->layout;
    tg_tensor *inputs[2] = { probs, target };
    tg_tensor *loss = tg_binary_loss_output(tape, probs->dtype, l, s->opts.reduction);
    if (!loss)
        return NULL;
    bool none = s->opts.reduction == TG_NONE;
    double total = 0;
    const tg_tensor *weight = s->opts.weight;
    TG_FLOAT_DISPATCH(probs->dtype, T, {
        const T *ps = probs->data, *ys = target->data;
        T *out = loss->data;
        for (int64_t row = 0; row < l->rows; row++) {
            const T *w = weight ? (const T *)weight->data + tg_binary_loss_row_offset(l, l->weight_strides, row) : NULL;
            for (int64_t j = 0; j < l->inner; j++) {
                int64_t i = row * l->inner + j;
                double pi = ps[i], yi = ys[i];
                double value = -(w ? (double)w[j * l->weight_inner] : 1.0) *
                               (yi * clamped_log(pi) + (1 - yi) * clamped_log1p_neg(pi));
                if (none)
                    out[i] = (T)value;
                else
                    total += value;
            }
        }
    });
    tg_loss_reduce(loss, s->opts.reduction, total, (double)l->numel);
    if (tg_tape_should_record(tape, inputs, 2)) {
        tg_node *node = tg_tape_record(tape, op, bce_backward, loss, inputs, 2);
        if (!node)
            return NULL;
        node->saved = s;
    }
    return loss;
}
