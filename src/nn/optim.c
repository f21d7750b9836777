/* Optimizers with torch.optim's update rules, so a config tuned in PyTorch
 * behaves the same here. State (momentum buffers, moments) is allocated once
 * in tg_optimizer_new: a step never allocates. Updates run in double and are
 * stored in the parameter's dtype. */
#include "internal.h"

#include <math.h>
#include <string.h>

struct tg_optimizer {
    tg_optim_opts opts;
    int n_params;
    tg_tensor **params;
    double **first; /* SGD momentum buffer, or Adam's first moment; [numel] per param */
    double **second; /* Adam's second moment */
    int64_t steps;
};

static int check_opts(const tg_optim_opts *o)
{
    const char *why = NULL;
    if (o->type != TG_OPTIM_SGD && o->type != TG_OPTIM_ADAM && o->type != TG_OPTIM_ADAMW)
        why = "type must be TG_OPTIM_SGD, TG_OPTIM_ADAM or TG_OPTIM_ADAMW";
    else if (!(o->lr > 0) || !isfinite(o->lr))
        why = "lr must be a finite number > 0";
    else if (!(o->weight_decay >= 0))
        why = "weight_decay must be >= 0";
    else if (o->type == TG_OPTIM_SGD && !(o->momentum >= 0))
        why = "momentum must be >= 0";
    else if (o->type == TG_OPTIM_SGD && o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        why = "nesterov needs momentum > 0 and dampening 0";
    else if (o->type != TG_OPTIM_SGD && !(o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1))
        why = "betas must be in [0, 1)";
    else if (o->type != TG_OPTIM_SGD && !(o->eps > 0))
        why = "eps must be > 0";
    if (why)
        tg_error("optimizer: %s", why);
    return why ? -1 : 0;
}

tg_optimizer *tg_optimizer_new(const tg_optim_opts *opts, int n_params, tg_tensor *const *params)
{
    if (!opts || (n_params > 0 && !params) || n_params < 0)
        return tg_error("optimizer: opts and params are required");
    if (check_opts(opts))
        return NULL;
    for (int i = 0; i < n_params; i++)
        if (!params[i] || !tg_is_float(params[i]->dtype))
            return tg_error("optimizer: parameter %d is %s, expected a float tensor", i,
                            params[i] ? tg_dtype_name(params[i]->dtype) : "NULL");
    tg_optimizer *o = tg_alloc_zeroed(sizeof *o);
    if (!o)
        return NULL;
    o->opts = *opts;
    o->n_params = n_params;
    size_t slots = (size_t)(n_params ? n_params : 1);
    o->params = tg_alloc(slots * sizeof *o->params);
    o->first = tg_alloc_zeroed(slots * sizeof *o->first);
    o->second = tg_alloc_zeroed(slots * sizeof *o->second);
    if (!o->params || !o->first || !o->second)
        goto fail;
    bool needs_first = opts->type != TG_OPTIM_SGD || opts->momentum > 0, needs_second = opts->type != TG_OPTIM_SGD;
    for (int i = 0; i < n_params; i++) {
        o->params[i] = params[i];
        size_t bytes = (size_t)params[i]->numel * sizeof(double);
        if ((needs_first && !(o->first[i] = tg_alloc_zeroed(bytes))) ||
            (needs_second && !(o->second[i] = tg_alloc_zeroed(bytes))))
            goto fail;
    }
    return o;
fail:
    tg_optimizer_free(o);
    return NULL;
}

void tg_optimizer_free(tg_optimizer *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n_params; i++) {
        if (o->first)
            tg_dealloc(o->first[i]);
        if (o->second)
            tg_dealloc(o->second[i]);
    }
    tg_dealloc(o->first);
    tg_dealloc(o->second);
    tg_dealloc(o->params);
    tg_dealloc(o);
}

void tg_optimizer_set_lr(tg_optimizer *o, double lr) { o->opts.lr = lr; }
double tg_optimizer_lr(const tg_optimizer *o) { return o->opts.lr; }

void tg_optimizer_zero_grad(tg_optimizer *o)
{
    for (int i = 0; i < o->n_params; i++)
        tg_zero_grad(o->params[i]);
}

/* torch.optim.SGD: d = g + wd p; buf = mu buf + (1 - dampening) d (buf = d on the first step);
 * d = d + mu buf (nesterov) or buf; p -= lr d */
static void sgd_update(const tg_optim_opts *o, bool first_step, double *buf, tg_tensor *p, const tg_tensor *g)
{
    TG_FLOAT_DISPATCH(p->dtype, T, {
        T *w = p->data;
        const T *grad = g->data;
        for (int64_t k = 0; k < p->numel; k++) {
            double d = (double)grad[k] + o->weight_decay * (double)w[k];
            if (buf) {
                buf[k] = first_step ? d : o->momentum * buf[k] + (1 - o->dampening) * d;
                d = o->nesterov ? d + o->momentum * buf[k] : buf[k];
            }
            w[k] = (T)((double)w[k] - o->lr * d);
        }
    });
}

/* torch.optim.Adam / AdamW: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps); Adam adds wd p to g,
 * AdamW first shrinks p by (1 - lr wd) */
static void adam_update(const tg_optim_opts *o, int64_t t, double *m, double *v, tg_tensor *p, const tg_tensor *g)
{
    double bias1 = 1 - pow(o->beta1, (double)t), bias2 = 1 - pow(o->beta2, (double)t);
    double step_size = o->lr / bias1, bias2_sqrt = sqrt(bias2);
    bool decoupled = o->type == TG_OPTIM_ADAMW;
    TG_FLOAT_DISPATCH(p->dtype, T, {
        T *w = p->data;
        const T *grad = g->data;
        for (int64_t k = 0; k < p->numel; k++) {
            double wk = w[k], gk = grad[k];
            if (decoupled)
                wk *= 1 - o->lr * o->weight_decay;
            else
                gk += o->weight_decay * wk;
            m[k] = o->beta1 * m[k] + (1 - o->beta1) * gk;
            v[k] = o->beta2 * v[k] + (1 - o->beta2) * gk * gk;
            wk -= step_size * m[k] / (sqrt(v[k]) / bias2_sqrt + o->eps);
            w[k] = (T)wk;
        }
    });
}

int tg_optimizer_step(tg_optimizer *o)
{
    if (!o) {
        tg_error("optimizer step: optimizer is NULL");
        return -1;
    }
    o->steps++;
    for (int i = 0; i < o->n_params; i++) {
        tg_tensor *p = o->params[i];
        if (!p->grad)
            continue;
        if (o->opts.type == TG_OPTIM_SGD)
            sgd_update(&o->opts, o->steps == 1, o->first[i], p, p->grad);
        else
            adam_update(&o->opts, o->steps, o->first[i], o->second[i], p, p->grad);
    }
    return 0;
}

double tg_clip_grad_norm(tg_tensor *const *params, int n_params, double max_norm)
{
    double total = 0;
    for (int i = 0; i < n_params; i++) {
        const tg_tensor *g = params[i] ? params[i]->grad : NULL;
        for (int64_t k = 0; g && k < g->numel; k++) {
            double v = tg_get(g, k);
            total += v * v;
        }
    }
    double norm = sqrt(total);
    /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1 */
    double scale = max_norm / (norm + 1e-6);
    if (scale < 1)
        for (int i = 0; i < n_params; i++) {
            tg_tensor *g = params[i] ? params[i]->grad : NULL;
            for (int64_t k = 0; g && k < g->numel; k++)
                tg_set(g, k, tg_get(g, k) * scale);
        }
    return norm;
}
