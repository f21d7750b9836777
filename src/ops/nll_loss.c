/* Negative log-likelihood over log-probabilities, PyTorch's nn.NLLLoss:
 * loss_i = -w[t_i] logp[i, t_i]; the mean divides by the sum of w[t_i] over
 * rows not ignored. With tg_log_softmax it is the composed (unfused) path of
 * tg_cross_entropy. */
#include "loss.h"

/* dlogp[i, t_i] += -w[t_i] r_i, r_i the upstream gradient over the reduction's denominator */
static int nll_loss_backward(tg_tape *tape, tg_node *node)
{
    tg_tensor *x = node->inputs[0], *g = node->out->grad;
    const tg_ce_opts *opts = node->saved;
    const tg_tensor *target = node->inputs[1];
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    if (!gx)
        return failed ? -1 : 0;
    int64_t rows = node->iarg[0], classes = node->iarg[1];
    double denominator = node->darg[0];
    if (opts->reduction == TG_MEAN && denominator == 0)
        return 0;
    const int64_t *labels = target->data;
    for (int64_t i = 0; i < rows; i++) {
        int64_t t = labels[i];
        if (t == opts->ignore_index)
            continue;
        double r = opts->reduction == TG_NONE  ? tg_get(g, i)
                   : opts->reduction == TG_SUM ? tg_get(g, 0)
                                               : tg_get(g, 0) / denominator;
        double w = opts->weight ? tg_get(opts->weight, t) : 1.0;
        int64_t k = i * classes + t;
        tg_set(gx, k, tg_get(gx, k) - w * r);
    }
    return 0;
}

tg_tensor *tg_nll_loss(tg_tape *tape, tg_tensor *log_probs, tg_tensor *target, const tg_ce_opts *opts)
{
    if (!tape)
        return tg_error("nll_loss: tape is NULL");
    tg_ce_opts *o = tg_tape_alloc(tape, sizeof *o);
    if (!o)
        return NULL;
    *o = opts ? *opts : TG_CE_OPTS_DEFAULT;
    tg_loss_shape shape;
    if (tg_loss_check("nll_loss", log_probs, target, o, false, &shape))
        return NULL;
    if (o->label_smoothing != 0)
        return tg_error("nll_loss: label_smoothing is %g, expected 0 (use tg_cross_entropy for smoothing)",
                        o->label_smoothing);
    int64_t rows = shape.rows, classes = shape.classes;
    tg_tensor *loss = tg_tape_new_tensor(tape, log_probs->dtype, o->reduction == TG_NONE ? shape.out_ndim : 0,
                                         (int64_t[]){ rows }, false);
    if (!loss)
        return NULL;
    const int64_t *labels = target->data;
    double total = 0, denominator = 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t t = labels[i];
        double row_loss = 0;
        if (t != o->ignore_index) {
            double w = o->weight ? tg_get(o->weight, t) : 1.0;
            row_loss = -w * tg_get(log_probs, i * classes + t);
            denominator += w;
        }
        if (o->reduction == TG_NONE)
            tg_set(loss, i, row_loss);
        total += row_loss;
    }
    if (o->reduction == TG_SUM)
        tg_set(loss, 0, total);
    else if (o->reduction == TG_MEAN)
        tg_set(loss, 0, total / denominator); /* 0/0 = NaN when every row is ignored, as in PyTorch */
    tg_tensor *inputs[2] = { log_probs, target }; /* the target is an input too: it shows in DOT */
    if (tg_tape_should_record(tape, inputs, 2)) {
        tg_node *node = tg_tape_record(tape, "nll_loss", nll_loss_backward, loss, inputs, 2);
        if (!node)
            return NULL;
        node->iarg[0] = rows;
        node->iarg[1] = classes;
        node->darg[0] = denominator;
        node->saved = o;
    }
    return loss;
}
