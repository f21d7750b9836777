/* Fused softmax + cross-entropy over logits, PyTorch's nn.CrossEntropyLoss.
 *
 * Per row, with log-softmax l_c = x_c - lse(x) and an effective target q
 * (class weights and label smoothing folded in), the loss is -sum_c q_c l_c.
 *   class index t:  q_c = (1 - eps) w_t [c = t] + (eps / C) w_c
 *   probabilities:  q_c = w_c ((1 - eps) y_c + eps / C)
 * The mean divides by sum of w_t over rows not ignored (index targets) or by
 * the number of rows (probability targets), as PyTorch does.
 * The row's softmax is kept for the backward, which never takes a log. */
#include "loss.h"

#include <tgmath.h>

typedef struct {
    tg_ce_opts opts;
    tg_loss_shape shape;
    tg_tensor *target;
    void *softmax; /* [K, C], the logits' dtype */
    double *lse; /* [K], log sum exp of each row */
    double denominator; /* of the mean */
} ce_saved;

/* The weighted, smoothed target of row i, into q[C]; returns sum_c q_c. 0 for an ignored row. */
static double effective_target(const ce_saved *s, int64_t i, double *q)
{
    int64_t classes = s->shape.classes;
    double eps = s->opts.label_smoothing;
    const tg_tensor *w = s->opts.weight;
    double total = 0;
    if (s->shape.class_targets) {
        int64_t t = ((const int64_t *)s->target->data)[i];
        if (t == s->opts.ignore_index) {
            for (int64_t c = 0; c < classes; c++)
                q[c] = 0;
            return 0;
        }
        for (int64_t c = 0; c < classes; c++)
            q[c] = eps / (double)classes * (w ? tg_get(w, c) : 1.0);
        q[t] += (1 - eps) * (w ? tg_get(w, t) : 1.0);
    } else {
        for (int64_t c = 0; c < classes; c++)
            q[c] = (w ? tg_get(w, c) : 1.0) *
                   ((1 - eps) * tg_get(s->target, i * classes + c) + eps / (double)classes);
    }
    for (int64_t c = 0; c < classes; c++)
        total += q[c];
    return total;
}

/* dx_i += r_i (softmax(x_i) sum(q_i) - q_i), r_i the upstream gradient over the reduction's denominator;
 * for probability targets also dy_ic += -r_i w_c (1 - eps) log softmax(x_i)_c */
static int cross_entropy_backward(tg_tape *tape, tg_node *node)
{
    const ce_saved *s = node->saved;
    tg_tensor *x = node->inputs[0], *g = node->out->grad;
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    tg_tensor *gy = s->shape.class_targets ? NULL : tg_grad_buffer(tape, node->inputs[1], &failed);
    if (failed)
        return -1;
    int64_t rows = s->shape.rows, classes = s->shape.classes;
    double *q = tg_tape_alloc(tape, (size_t)classes * sizeof *q);
    if (!q)
        return -1;
    if (s->opts.reduction == TG_MEAN && s->denominator == 0)
        return 0; /* every row ignored: nothing depends on x */
    const tg_tensor *w = s->opts.weight;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *probs = s->softmax, *gs = g->data, *xs = x->data;
        for (int64_t i = 0; i < rows; i++) {
            double r = s->opts.reduction == TG_NONE ? gs[i]
                       : s->opts.reduction == TG_SUM ? gs[0]
                                                     : gs[0] / s->denominator;
            if (gy) {
                T *dy = (T *)gy->data + i * classes;
                for (int64_t c = 0; c < classes; c++)
                    dy[c] -= (T)(r * (w ? tg_get(w, c) : 1.0) * (1 - s->opts.label_smoothing) *
                                 ((double)xs[i * classes + c] - s->lse[i]));
            }
            double q_total = effective_target(s, i, q);
            if (!gx || q_total == 0)
                continue;
            const T *p = probs + i * classes;
            T *d = (T *)gx->data + i * classes;
            for (int64_t c = 0; c < classes; c++)
                d[c] += (T)(r * ((double)p[c] * q_total - q[c]));
        }
    });
    return 0;
}

tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, tg_tensor *target, const tg_ce_opts *opts)
{
    if (!tape)
        return tg_error("cross_entropy: tape is NULL");
    ce_saved *s = tg_tape_alloc(tape, sizeof *s);
    if (!s)
        return NULL;
    s->opts = opts ? *opts : TG_CE_OPTS_DEFAULT;
    if (tg_loss_check("cross_entropy", logits, target, &s->opts, true, &s->shape))
        return NULL;
    s->target = target;
    int64_t rows = s->shape.rows, classes = s->shape.classes;
    tg_tensor *inputs[2] = { logits, target }; /* a probability target can take a gradient too */
    bool record = tg_tape_should_record(tape, inputs, 2);
    tg_tensor *loss = tg_tape_new_tensor(tape, logits->dtype, s->opts.reduction == TG_NONE ? s->shape.out_ndim : 0,
                                         (int64_t[]){ rows }, false);
    double *q = tg_tape_alloc(tape, (size_t)classes * sizeof *q);
    s->softmax = record ? tg_tape_alloc(tape, (size_t)(rows * classes) * tg_dtype_size(logits->dtype)) : NULL;
    s->lse = record ? tg_tape_alloc(tape, (size_t)rows * sizeof *s->lse) : NULL;
    if (!loss || !q || (record && (!s->softmax || !s->lse)))
        return NULL;
    double total = 0, denominator = 0;
    TG_FLOAT_DISPATCH(logits->dtype, T, {
        const T *xs = logits->data;
        T *probs = s->softmax, *losses = loss->data;
        for (int64_t i = 0; i < rows; i++) {
            const T *x = xs + i * classes;
            T max = -INFINITY;
            for (int64_t c = 0; c < classes; c++)
                max = x[c] > max ? x[c] : max;
            double sum_exp = 0;
            for (int64_t c = 0; c < classes; c++)
                sum_exp += exp(x[c] - max);
            double lse = (double)max + log(sum_exp);
            if (s->lse)
                s->lse[i] = lse;
            if (probs)
                for (int64_t c = 0; c < classes; c++)
                    probs[i * classes + c] = (T)(exp(x[c] - max) / sum_exp);
            double q_total = effective_target(s, i, q), row_loss = 0;
            for (int64_t c = 0; c < classes && q_total != 0; c++)
                if (q[c] != 0)
                    row_loss += q[c] * (lse - (double)x[c]);
            if (s->shape.class_targets) {
                int64_t t = ((const int64_t *)target->data)[i];
                if (t != s->opts.ignore_index)
                    denominator += s->opts.weight ? tg_get(s->opts.weight, t) : 1.0;
            }
            if (s->opts.reduction == TG_NONE)
                losses[i] = (T)row_loss;
            total += row_loss;
        }
        if (!s->shape.class_targets)
            denominator = (double)rows;
        if (s->opts.reduction == TG_SUM)
            losses[0] = (T)total;
        else if (s->opts.reduction == TG_MEAN)
            /* No target weight at all (every row ignored, or zero weights): NaN, as PyTorch's 0/0 nll term. */
            losses[0] = (T)(denominator == 0 ? NAN : total / denominator);
    });
    s->denominator = denominator;
    if (record) {
        tg_node *node = tg_tape_record(tape, "cross_entropy", cross_entropy_backward, loss, inputs, 2);
        if (!node)
            return NULL;
        node->saved = s;
    }
    return loss;
}
