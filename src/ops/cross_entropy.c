/* Fused softmax + cross-entropy over logits, PyTorch's nn.CrossEntropyLoss.
 *
 * Per row, with log-softmax l_c = x_c - lse(x) and an effective target q
 * (class weights and label smoothing folded in), the loss is -sum_c q_c l_c.
 *   class index t:  q_c = (1 - eps) w_t [c = t] + (eps / C) w_c
 *   probabilities:  q_c = w_c ((1 - eps) y_c + eps / C)
 * The mean divides by sum of w_t over rows not ignored (index targets) or by
 * the number of rows (probability targets), as PyTorch does.
 * One pass over each row's logits computes its exps (vectorised for float32)
 * and keeps the row's softmax for the backward, which never takes a log. */
#include "loss.h"

#include <tgmath.h>

typedef struct {
    tg_ce_opts opts;
    tg_loss_shape shape;
    tg_tensor *target;
    void *softmax; /* [K, C], the logits' dtype */
    double *row_max, *log_sum; /* [K] each: lse(x_i) = row_max + log_sum, kept apart so that
                                  (lse - x_c) = (row_max - x_c) + log_sum loses nothing when the max is huge */
    double weight_total; /* sum of the class weights (C without weights) */
    double denominator; /* of the mean */
} ce_saved;

static double class_weight(const ce_saved *s, int64_t c) { return s->opts.weight ? tg_get(s->opts.weight, c) : 1.0; }

/* The probability target's effective q for row i, into q[C]; returns sum_c q_c. */
static double probability_target(const ce_saved *s, int64_t i, double *q)
{
    int64_t classes = s->shape.classes;
    double eps = s->opts.label_smoothing, total = 0;
    for (int64_t c = 0; c < classes; c++) {
        q[c] = class_weight(s, c) * ((1 - eps) * tg_get(s->target, i * classes + c) + eps / (double)classes);
        total += q[c];
    }
    return total;
}

/* The upstream gradient of row i over the reduction's denominator. */
static double row_scale(const ce_saved *s, const tg_tensor *g, int64_t i)
{
    switch (s->opts.reduction) {
    case TG_NONE: return tg_get(g, i);
    case TG_SUM: return tg_get(g, 0);
    case TG_MEAN: break;
    }
    return tg_get(g, 0) / s->denominator;
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
    double eps = s->opts.label_smoothing, *q = NULL;
    if (!s->shape.class_targets && !(q = tg_tape_alloc(tape, (size_t)classes * sizeof *q)))
        return -1;
    if (s->opts.reduction == TG_MEAN && s->denominator == 0)
        return 0; /* no target weight: nothing depends on x */
    const int64_t *labels = s->shape.class_targets ? s->target->data : NULL;
    /* Rows are independent; probability targets share the q scratch, so they stay on one thread. */
    int threads = labels ? tg_threads_for(rows * classes) : 1;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *probs = s->softmax, *xs = x->data;
        TG_FOR_ROWS(threads, i, rows, {
            double r = row_scale(s, g, i);
            const T *p = probs + i * classes;
            T *d = gx ? (T *)gx->data + i * classes : NULL;
            if (labels) {
                int64_t t = labels[i];
                if (t == s->opts.ignore_index || !d)
                    continue;
                double wt = class_weight(s, t), q_total = (1 - eps) * wt + eps / (double)classes * s->weight_total;
                const T scale = (T)(r * q_total);
                for (int64_t c = 0; c < classes; c++)
                    d[c] += scale * p[c];
                if (eps != 0)
                    for (int64_t c = 0; c < classes; c++)
                        d[c] -= (T)(r * eps / (double)classes * class_weight(s, c));
                d[t] -= (T)(r * (1 - eps) * wt);
                continue;
            }
            if (gy) {
                T *dy = (T *)gy->data + i * classes;
                for (int64_t c = 0; c < classes; c++)
                    dy[c] -= (T)(r * class_weight(s, c) * (1 - eps) * ((double)xs[i * classes + c] - s->row_max[i] - s->log_sum[i]));
            }
            double q_total = probability_target(s, i, q);
            for (int64_t c = 0; d && c < classes; c++)
                d[c] += (T)(r * ((double)p[c] * q_total - q[c]));
        });
    });
    return 0;
}

/* e = exp(x - max(x)) over one row of n; returns the sum of e, and the max in *max. */
static double row_exps(tg_dtype dtype, const void *x, void *e, int64_t n, double *max)
{
    double sum = 0;
    TG_FLOAT_DISPATCH(dtype, T, {
        const T *xs = x;
        T m = -INFINITY;
        if (sizeof(T) == sizeof(float))
            m = (T)tg_max_row_f32(x, n);
        else
            for (int64_t c = 0; c < n; c++)
                m = xs[c] > m ? xs[c] : m;
        *max = m;
        sum = sizeof(T) == sizeof(float) ? (double)tg_exp_row_f32(x, (float)m, e, n)
                                         : tg_exp_row_f64(x, (double)m, e, n);
    });
    return sum;
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
    size_t es = tg_dtype_size(logits->dtype);
    tg_tensor *loss = tg_tape_new_tensor(tape, logits->dtype, s->opts.reduction == TG_NONE ? s->shape.out_ndim : 0,
                                         (int64_t[]){ rows }, false);
    double *q = s->shape.class_targets ? NULL : tg_tape_alloc(tape, (size_t)classes * sizeof *q);
    /* Every row's softmax is kept for the backward (and is each thread's scratch without one); each row's
     * loss and target weight are summed in row order afterwards, so any thread count gives the same bits. */
    s->softmax = tg_tape_alloc(tape, (size_t)(rows * classes) * es);
    s->row_max = tg_tape_alloc(tape, (size_t)rows * sizeof *s->row_max);
    s->log_sum = tg_tape_alloc(tape, (size_t)rows * sizeof *s->log_sum);
    double *row_loss = tg_tape_alloc(tape, (size_t)rows * sizeof *row_loss);
    double *row_weight = tg_tape_alloc(tape, (size_t)rows * sizeof *row_weight);
    if (!loss || (!s->shape.class_targets && !q) || !s->softmax || !s->row_max || !s->log_sum || !row_loss || !row_weight)
        return NULL;
    double eps = s->opts.label_smoothing, total = 0, denominator = 0;
    s->weight_total = 0;
    for (int64_t c = 0; c < classes; c++)
        s->weight_total += class_weight(s, c);
    const int64_t *labels = s->shape.class_targets ? target->data : NULL;
    int threads = labels ? tg_threads_for(rows * classes) : 1; /* probability rows share q */
    /* Rows narrower than a vector would each pay a whole exp's latency for a few lanes: shift every row
     * by its max first, then take the exps of the whole block in one vectorised pass. */
    bool narrow = classes < 32;
    if (narrow) {
        TG_FLOAT_DISPATCH(logits->dtype, T, {
            const T *xs = logits->data;
            T *e = s->softmax;
            for (int64_t i = 0; i < rows; i++) {
                T max = -INFINITY;
                for (int64_t c = 0; c < classes; c++)
                    max = xs[i * classes + c] > max ? xs[i * classes + c] : max;
                s->row_max[i] = max;
                for (int64_t c = 0; c < classes; c++)
                    e[i * classes + c] = xs[i * classes + c] - max;
            }
        });
        if (logits->dtype == TG_F32)
            tg_exp_row_f32(s->softmax, 0.0f, s->softmax, rows * classes);
        else
            tg_exp_row_f64(s->softmax, 0.0, s->softmax, rows * classes);
    }
    /* And in float32 the rows' logs in one vectorised pass too (libm's logf per row was a tenth of a
     * 32x10 call). */
    float *narrow_sums = NULL;
    if (narrow && logits->dtype == TG_F32) {
        if (!(narrow_sums = tg_tape_alloc(tape, (size_t)(2 * rows) * sizeof(float))))
            return NULL;
        const float *e = s->softmax;
        for (int64_t i = 0; i < rows; i++) {
            float sum = 0;
            for (int64_t c = 0; c < classes; c++)
                sum += e[i * classes + c];
            narrow_sums[i] = sum;
        }
        tg_log_row_f32(narrow_sums, narrow_sums + rows, rows);
    }
    TG_FLOAT_DISPATCH(logits->dtype, T, {
        const T *xs = logits->data;
        TG_FOR_ROWS(threads, i, rows, {
            const T *x = xs + i * classes;
            T *e = (T *)s->softmax + i * classes;
            double max = s->row_max[i], sum = 0, log_sum;
            if (narrow_sums) {
                sum = narrow_sums[i];
                log_sum = narrow_sums[rows + i];
            } else {
                if (narrow)
                    for (int64_t c = 0; c < classes; c++)
                        sum += e[c];
                else
                    sum = row_exps(logits->dtype, x, e, classes, &max);
                log_sum = sizeof(T) == sizeof(float) ? (double)log((float)sum) : log(sum); /* logf for float32 */
            }
            s->row_max[i] = max;
            s->log_sum[i] = log_sum;
            const T inv = (T)(1 / sum);
            for (int64_t c = 0; c < classes; c++)
                e[c] *= inv;
            double value = 0, weight = 0;
            if (labels) {
                int64_t t = labels[i];
                if (t != s->opts.ignore_index) {
                    weight = class_weight(s, t);
                    value = (1 - eps) * weight * ((max - (double)x[t]) + log_sum);
                    for (int64_t c = 0; eps != 0 && c < classes; c++)
                        value += eps / (double)classes * class_weight(s, c) * ((max - (double)x[c]) + log_sum);
                }
            } else {
                double q_total = probability_target(s, i, q);
                for (int64_t c = 0; c < classes && q_total != 0; c++)
                    if (q[c] != 0)
                        value += q[c] * ((max - (double)x[c]) + log_sum);
            }
            row_loss[i] = value;
            row_weight[i] = weight;
        });
        T *losses = loss->data;
        for (int64_t i = 0; i < rows; i++) {
            if (s->opts.reduction == TG_NONE)
                losses[i] = (T)row_loss[i];
            total += row_loss[i];
            denominator += row_weight[i];
        }
    });
    if (!labels)
        denominator = (double)rows;
    if (s->opts.reduction == TG_SUM)
        tg_set(loss, 0, total);
    else if (s->opts.reduction == TG_MEAN) /* no target weight at all: NaN, as PyTorch's 0/0 nll term */
        tg_set(loss, 0, denominator == 0 ? NAN : total / denominator);
    s->denominator = denominator;
    if (record) {
        tg_node *node = tg_tape_record(tape, "cross_entropy", cross_entropy_backward, loss, inputs, 2);
        if (!node)
            return NULL;
        node->saved = s;
    }
    return loss;
}
