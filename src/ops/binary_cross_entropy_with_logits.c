/* Fused sigmoid + binary cross-entropy, PyTorch's BCEWithLogitsLoss.
 *
 * Per element, with s = sigmoid(x), weight w and positive weight p,
 *   loss = -w [p y log s + (1 - y) log(1 - s)] = w [p y softplus(-x) + (1 - y) softplus(x)]
 * since -log s = softplus(-x) and -log(1 - s) = softplus(x); both share L = log1p(exp(-|x|)):
 * softplus(x) = max(x, 0) + L, softplus(-x) = max(-x, 0) + L. exp never overflows, so the loss is
 * finite for any finite logit, and no term cancels another (PyTorch's (1 - y) x + softplus(-x)
 * loses the small loss of a right answer, y = 0 at x << 0, to cancellation in float32).
 * The forward walks the logits in blocks that stay in L1: exp(-|x|) of a block in one vectorised pass,
 * then (float32) its log1p in another, then the loss and s(x) (kept for the backward) from the same
 * exps. The backward is one multiply-add per element and never takes a log. */
#include "binary_loss.h"

#include <math.h>
#include <string.h>

enum { BLOCK = 256 };

typedef struct {
    tg_bce_opts opts;
    tg_binary_loss_layout layout;
    void *sigmoid; /* s(x), the logits' dtype; NULL when nothing is recorded */
} bce_logits_saved;

/* sig = s(x) and tail = log1p(exp(-|x|)) over a block of m <= BLOCK, from e = exp(-|x|). */
static void softplus_block_f32(const float *x, float *sig, float *tail, int64_t m)
{
    float e[BLOCK], u[BLOCK], l[BLOCK];
    for (int64_t j = 0; j < m; j++)
        e[j] = -fabsf(x[j]);
    tg_exp_row_f32(e, 0.0f, e, m);
    for (int64_t j = 0; j < m; j++)
        u[j] = 1.0f + e[j];
    tg_log_row_f32(u, l, m); /* u in [1, 2] */
    for (int64_t j = 0; j < m; j++) {
        float inv = 1.0f / u[j];
        /* log1p(e) = log(u) - ((u - 1) - e) / u: the rounding of 1 + e taken back out */
        tail[j] = l[j] - ((u[j] - 1.0f) - e[j]) * inv;
        sig[j] = (x[j] >= 0 ? 1.0f : e[j]) * inv;
    }
}

static void softplus_block_f64(const double *x, double *sig, double *tail, int64_t m)
{
    double e[BLOCK];
    for (int64_t j = 0; j < m; j++)
        e[j] = -fabs(x[j]);
    tg_exp_row_f64(e, 0.0, e, m);
    for (int64_t j = 0; j < m; j++) {
        tail[j] = log1p(e[j]);
        sig[j] = (x[j] >= 0 ? 1.0 : e[j]) / (1.0 + e[j]);
    }
}

/* softplus(x) for one element (the target's gradient) */
static double softplus(double x) { return (x > 0 ? x : 0.0) + log1p(exp(-fabs(x))); }

/* Where row r's weights start in t (NULL when there is no t). */
static const void *row_weights(const tg_binary_loss_layout *l, const tg_tensor *t, const int64_t *strides, int64_t r)
{
    if (!t)
        return NULL;
    return (const char *)t->data + (size_t)tg_binary_loss_row_offset(l, strides, r) * tg_dtype_size(t->dtype);
}

/* out[j] = the weight of element start + j of a row whose weights begin at row and step by stride (0 or 1);
 * 1 without weights. Contiguous, so that the loops that use it vectorise. */
static void block_weights(tg_dtype dtype, const void *row, int64_t stride, int64_t start, int64_t m, void *out)
{
    TG_FLOAT_DISPATCH(dtype, T, {
        const T *w = row;
        T *o = out;
        if (w && stride)
            memcpy(o, w + start, (size_t)m * sizeof(T));
        else
            for (int64_t j = 0; j < m; j++)
                o[j] = w ? w[0] : 1;
    });
}

/* The loss of every element of the logits into out (TG_NONE), or their total in double. */
static double forward(const bce_logits_saved *s, const tg_tensor *x, const tg_tensor *y, tg_tensor *out)
{
    const tg_binary_loss_layout *l = &s->layout;
    const tg_tensor *weight = s->opts.weight, *pos_weight = s->opts.pos_weight;
    double total = 0;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *xs = x->data, *ys = y->data;
        T sig_scratch[BLOCK], tail[BLOCK], loss[BLOCK], wb[BLOCK], pb[BLOCK];
        for (int64_t r = 0; r < l->rows; r++) {
            const void *w = row_weights(l, weight, l->weight_strides, r);
            const void *p = row_weights(l, pos_weight, l->pos_weight_strides, r);
            for (int64_t b = 0; b < l->inner; b += BLOCK) {
                int64_t m = l->inner - b < BLOCK ? l->inner - b : BLOCK, at = r * l->inner + b;
                const T *xb = xs + at, *yb = ys + at;
                T *sig = s->sigmoid ? (T *)s->sigmoid + at : sig_scratch;
                if (sizeof(T) == sizeof(float))
                    softplus_block_f32((const void *)xb, (void *)sig, (void *)tail, m);
                else
                    softplus_block_f64((const void *)xb, (void *)sig, (void *)tail, m);
                T *dst = out ? (T *)out->data + at : loss;
                if (!w && !p)
                    for (int64_t j = 0; j < m; j++) {
                        T pos = xb[j] > 0 ? xb[j] : 0, neg = xb[j] < 0 ? -xb[j] : 0; /* softplus(+-x) - tail */
                        dst[j] = yb[j] * (neg + tail[j]) + (1 - yb[j]) * (pos + tail[j]);
                    }
                else {
                    block_weights(x->dtype, w, l->weight_inner, b, m, wb);
                    block_weights(x->dtype, p, l->pos_weight_inner, b, m, pb);
                    for (int64_t j = 0; j < m; j++) {
                        T pos = xb[j] > 0 ? xb[j] : 0, neg = xb[j] < 0 ? -xb[j] : 0;
                        dst[j] = wb[j] * (pb[j] * yb[j] * (neg + tail[j]) + (1 - yb[j]) * (pos + tail[j]));
                    }
                }
                if (!out)
                    total += sizeof(T) == sizeof(float) ? tg_sum_f32_as_double((const void *)loss, m)
                                                        : tg_sum_f64((const void *)loss, m);
            }
        }
    });
    return total;
}

/* dx += r w ((1 + (p - 1) y) s(x) - p y), dy += r w (p softplus(-x) - softplus(x)); r the upstream gradient over
 * the reduction's denominator */
static int bce_logits_backward(tg_tape *tape, tg_node *node)
{
    const bce_logits_saved *s = node->saved;
    const tg_binary_loss_layout *l = &s->layout;
    tg_tensor *x = node->inputs[0], *y = node->inputs[1], *g = node->out->grad;
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    tg_tensor *gy = tg_grad_buffer(tape, y, &failed);
    if (failed)
        return -1;
    const tg_tensor *weight = s->opts.weight, *pos_weight = s->opts.pos_weight;
    bool none = s->opts.reduction == TG_NONE;
    double scale = none ? 0 : tg_loss_grad_scale(g, s->opts.reduction, 0, (double)l->numel);
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *xs = x->data, *ys = y->data, *sig = s->sigmoid;
        T wb[BLOCK], pb[BLOCK], rb[BLOCK]; /* per element: weight, positive weight, upstream gradient */
        T *dx = gx ? gx->data : NULL, *dy = gy ? gy->data : NULL;
        for (int64_t row = 0; row < l->rows; row++) {
            const void *w = row_weights(l, weight, l->weight_strides, row);
            const void *p = row_weights(l, pos_weight, l->pos_weight_strides, row);
            for (int64_t b = 0; b < l->inner; b += BLOCK) {
                int64_t m = l->inner - b < BLOCK ? l->inner - b : BLOCK, at = row * l->inner + b;
                const T *yb = ys + at, *sb = sig + at;
                if (none)
                    memcpy(rb, (const T *)g->data + at, (size_t)m * sizeof(T));
                else
                    for (int64_t j = 0; j < m; j++)
                        rb[j] = (T)scale;
                block_weights(x->dtype, w, l->weight_inner, b, m, wb);
                if (dx && !w && !p) /* the common case: r (s - y) */
                    for (int64_t j = 0; j < m; j++)
                        dx[at + j] += rb[j] * (sb[j] - yb[j]);
                else if (dx) {
                    block_weights(x->dtype, p, l->pos_weight_inner, b, m, pb);
                    for (int64_t j = 0; j < m; j++)
                        dx[at + j] += rb[j] * wb[j] * ((1 + (pb[j] - 1) * yb[j]) * sb[j] - pb[j] * yb[j]);
                }
                if (dy) {
                    block_weights(x->dtype, p, l->pos_weight_inner, b, m, pb);
                    for (int64_t j = 0; j < m; j++) {
                        double t = xs[at + j];
                        dy[at + j] += rb[j] * wb[j] * (T)(pb[j] * softplus(-t) - softplus(t));
                    }
                }
            }
        }
    });
    return 0;
}

tg_tensor *tg_binary_cross_entropy_with_logits(tg_tape *tape, tg_tensor *logits, tg_tensor *target,
                                               const tg_bce_opts *opts)
{
    static const char op[] = "binary_cross_entropy_with_logits";
    if (!tape)
        return tg_error("%s: tape is NULL", op);
    bce_logits_saved *s = tg_tape_alloc(tape, sizeof *s);
    if (!s)
        return NULL;
    s->opts = opts ? *opts : TG_BCE_OPTS_DEFAULT;
    if (tg_binary_loss_check(op, logits, target, &s->opts, true, &s->layout))
        return NULL;
    tg_tensor *inputs[2] = { logits, target }; /* a target can take a gradient too, as in PyTorch */
    bool record = tg_tape_should_record(tape, inputs, 2);
    tg_tensor *loss = tg_binary_loss_output(tape, logits->dtype, &s->layout, s->opts.reduction);
    if (!loss)
        return NULL;
    s->sigmoid = NULL;
    if (record && !(s->sigmoid = tg_tape_alloc(tape, (size_t)logits->numel * tg_dtype_size(logits->dtype))))
        return NULL;
    double total = forward(s, logits, target, s->opts.reduction == TG_NONE ? loss : NULL);
    tg_loss_reduce(loss, s->opts.reduction, total, (double)s->layout.numel);
    if (record) {
        tg_node *node = tg_tape_record(tape, op, bce_logits_backward, loss, inputs, 2);
        if (!node)
            return NULL;
        node->saved = s;
    }
    return loss;
}
