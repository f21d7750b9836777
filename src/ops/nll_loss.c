/* Negative log-likelihood over log-probabilities, PyTorch's nn.NLLLoss:
 * log_probs [N, C, d1, ..., dk] (or [K, C], or [C]) with class indices of the
 * input's shape without axis 1; per position p = (n, d1, ..., dk),
 * loss_p = -w[t_p] logp[n, t_p, d1, ..., dk]; the mean divides by the sum of
 * w[t_p] over positions not ignored. With tg_log_softmax(x, 1) it is the
 * composed (unfused) path of tg_cross_entropy. */
#include "loss.h"

typedef struct {
    tg_ce_opts opts;
    tg_loss_shape shape;
    double denominator; /* of the mean */
} nll_saved;

/* dlogp[n, t_p, d] += -w[t_p] r_p, r_p the upstream gradient over the reduction's denominator */
static int nll_loss_backward(tg_tape *tape, tg_node *node)
{
    tg_tensor *x = node->inputs[0], *g = node->out->grad;
    const nll_saved *s = node->saved;
    const tg_tensor *target = node->inputs[1];
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    if (!gx)
        return failed ? -1 : 0;
    if (s->opts.reduction == TG_MEAN && s->denominator == 0)
        return 0;
    const int64_t *labels = target->data;
    for (int64_t p = 0; p < s->shape.positions; p++) {
        int64_t t = labels[p];
        if (t == s->opts.ignore_index)
            continue;
        double r = tg_loss_grad_scale(g, s->opts.reduction, p, s->denominator);
        double w = s->opts.weight ? tg_get(s->opts.weight, t) : 1.0;
        int64_t k = tg_loss_base(&s->shape, p) + t * s->shape.inner;
        tg_set(gx, k, tg_get(gx, k) - w * r);
    }
    return 0;
}

tg_tensor *tg_nll_loss(tg_tape *tape, tg_tensor *log_probs, tg_tensor *target, const tg_ce_opts *opts)
{
    if (!tape)
        return tg_error("nll_loss: tape is NULL");
    nll_saved *s = tg_tape_alloc(tape, sizeof *s);
    if (!s)
        return NULL;
    s->opts = opts ? *opts : TG_CE_OPTS_DEFAULT;
    if (tg_loss_check("nll_loss", log_probs, target, &s->opts, false, &s->shape))
        return NULL;
    if (s->opts.label_smoothing != 0)
        return tg_error("nll_loss: label_smoothing is %g, expected 0 (use tg_cross_entropy for smoothing)",
                        s->opts.label_smoothing);
    tg_tensor *loss = tg_tape_op_output(tape, log_probs->dtype, s->opts.reduction == TG_NONE ? s->shape.out_ndim : 0,
                                        s->shape.out_shape, false);
    if (!loss)
        return NULL;
    const int64_t *labels = target->data;
    double total = 0, denominator = 0;
    for (int64_t p = 0; p < s->shape.positions; p++) {
        int64_t t = labels[p];
        double position_loss = 0;
        if (t != s->opts.ignore_index) {
            double w = s->opts.weight ? tg_get(s->opts.weight, t) : 1.0;
            position_loss = -w * tg_get(log_probs, tg_loss_base(&s->shape, p) + t * s->shape.inner);
            denominator += w;
        }
        if (s->opts.reduction == TG_NONE)
            tg_set(loss, p, position_loss);
        total += position_loss;
    }
    tg_loss_reduce(loss, s->opts.reduction, total, denominator); /* every position ignored: NaN, as in PyTorch */
    s->denominator = denominator;
    tg_tensor *inputs[2] = { log_probs, target }; /* the target is an input too: it shows in DOT */
    if (tg_tape_should_record(tape, inputs, 2)) {
        tg_node *node = tg_tape_record(tape, "nll_loss", nll_loss_backward, loss, inputs, 2);
        if (!node)
            return NULL;
        node->saved = s;
    }
    return loss;
}
