/* Optimizers with torch.optim's update rules, so a config tuned in PyTorch
 * behaves the same here. State (momentum buffers, moments) is allocated once
 * in tg_optimizer_new, in the parameter's dtype as PyTorch keeps it: a step
 * never allocates, and its loops are plain arithmetic the compiler vectorises. */
#include "nn/nn_internal.h"

#include <float.h>
#include <tgmath.h>
#include <string.h>

struct tg_optimizer {
    tg_optim_opts opts;
    int n_params;
    tg_tensor **params;
    void **first; /* SGD momentum buffer, or Adam's first moment; [numel] per param, the param's dtype */
    void **second; /* Adam's second moment */
    int64_t *steps; /* per parameter, as torch.optim's state["step"]: a step without a gradient does not count */
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
    o->steps = tg_alloc_zeroed(slots * sizeof *o->steps);
    if (!o->params || !o->first || !o->second || !o->steps)
        goto fail;
    bool needs_first = opts->type != TG_OPTIM_SGD || opts->momentum > 0, needs_second = opts->type != TG_OPTIM_SGD;
    for (int i = 0; i < n_params; i++) {
        o->params[i] = params[i];
        size_t bytes = (size_t)params[i]->numel * tg_dtype_size(params[i]->dtype);
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
    tg_dealloc(o->steps);
    tg_dealloc(o->params);
    tg_dealloc(o);
}

/* The constructor's rule for lr, so a schedule cannot set what tg_optimizer_new refuses. */
int tg_optimizer_set_lr(tg_optimizer *o, double lr)
{
    if (!o || !(lr > 0) || !isfinite(lr)) {
        if (o)
            tg_error("optimizer: lr must be a finite number > 0, got %g (the rate stays %g)", lr, o->opts.lr);
        else
            tg_error("tg_optimizer_set_lr: optimizer is NULL");
        return -1;
    }
    o->opts.lr = lr;
    return 0;
}

double tg_optimizer_lr(const tg_optimizer *o)
{
    if (!o)
        return tg_error("tg_optimizer_lr: optimizer is NULL"), NAN;
    return o->opts.lr;
}

void tg_optimizer_zero_grad(tg_optimizer *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n_params; i++)
        tg_zero_grad(o->params[i]);
}

/* torch.optim.SGD: d = g + wd p; buf = mu buf + (1 - dampening) d (buf = d on the first step);
 * d = d + mu buf (nesterov) or buf; p -= lr d */
static void sgd_update(const tg_optim_opts *o, bool first_step, void *momentum, tg_tensor *p, const tg_tensor *g)
{
    TG_FLOAT_DISPATCH(p->dtype, T, {
        T *restrict w = p->data, *restrict buf = momentum;
        const T *restrict grad = g->data;
        const T lr = (T)o->lr, wd = (T)o->weight_decay, mu = (T)o->momentum, keep = (T)(1 - o->dampening);
        int64_t n = p->numel;
        if (!buf) {
            for (int64_t k = 0; k < n; k++)
                w[k] -= lr * (grad[k] + wd * w[k]);
        } else {
            for (int64_t k = 0; k < n; k++) {
                T d = grad[k] + wd * w[k];
                buf[k] = first_step ? d : mu * buf[k] + keep * d;
                w[k] -= lr * (o->nesterov ? d + mu * buf[k] : buf[k]);
            }
        }
    });
}

/* torch.optim.Adam / AdamW: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr (m / (1 - b1^t)) / (sqrt(v) / sqrt(1 - b2^t) + eps); Adam adds wd p to g,
 * AdamW first shrinks p by (1 - lr wd) */
static void adam_update(const tg_optim_opts *o, int64_t t, void *first, void *second, tg_tensor *p,
                        const tg_tensor *g)
{
    double bias1 = 1 - pow(o->beta1, (double)t), bias2 = 1 - pow(o->beta2, (double)t);
    bool decoupled = o->type == TG_OPTIM_ADAMW;
    TG_FLOAT_DISPATCH(p->dtype, T, {
        T *restrict w = p->data, *restrict m = first, *restrict v = second;
        const T *restrict grad = g->data;
        const T b1 = (T)o->beta1, b2 = (T)o->beta2, eps = (T)o->eps, step_size = (T)(o->lr / bias1);
        const T bias2_sqrt = (T)sqrt(bias2), tiny = sizeof(T) == sizeof(float) ? (T)FLT_MIN : (T)DBL_MIN;
        const T shrink = (T)(decoupled ? 1 - o->lr * o->weight_decay : 1), l2 = (T)(decoupled ? 0 : o->weight_decay);
        int64_t n = p->numel;
        /* One thread: an OpenMP team here would spin beside OpenBLAS's threads in every MLP step. */
        for (int64_t k = 0; k < n; k++) {
            T wk = w[k] * shrink, gk = grad[k] + l2 * w[k];
            /* Moments of an input that is always zero (an image's border) decay into the subnormal range,
             * where every operation costs a hundred cycles; they are flushed to zero there. The change to
             * the weights is below 1e-30. */
            T mk = b1 * m[k] + (1 - b1) * gk, vk = b2 * v[k] + (1 - b2) * gk * gk;
            m[k] = fabs(mk) < tiny ? 0 : mk;
            v[k] = vk < tiny ? 0 : vk;
            w[k] = wk - step_size * m[k] / (sqrt(v[k]) / bias2_sqrt + eps);
        }
    });
}

int tg_optimizer_step(tg_optimizer *o)
{
    if (!o) {
        tg_error("optimizer step: optimizer is NULL");
        return -1;
    }
    for (int i = 0; i < o->n_params; i++) {
        tg_tensor *p = o->params[i];
        if (!p->grad)
            continue;
        int64_t t = ++o->steps[i];
        if (o->opts.type == TG_OPTIM_SGD)
            sgd_update(&o->opts, t == 1, o->first[i], p, p->grad);
        else
            adam_update(&o->opts, t, o->first[i], o->second[i], p, p->grad);
    }
    return 0;
}

double tg_clip_grad_norm(tg_tensor *const *params, int n_params, double max_norm)
{
    if ((!params && n_params != 0) || n_params < 0 || !(max_norm > 0)) {
        tg_error("clip_grad_norm: %s", n_params < 0 ? "n_params is negative"
                                       : !(max_norm > 0) ? "max_norm must be > 0"
                                                         : "params is NULL");
        return -1;
    }
    double total = 0;
    for (int i = 0; i < n_params; i++) {
        const tg_tensor *g = params[i] ? params[i]->grad : NULL;
        if (g)
            TG_FLOAT_DISPATCH(g->dtype, T, {
                const T *v = g->data;
                for (int64_t k = 0; k < g->numel; k++)
                    total += (double)v[k] * (double)v[k];
            });
    }
    double norm = sqrt(total);
    /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1 */
    double scale = max_norm / (norm + 1e-6);
    for (int i = 0; scale < 1 && i < n_params; i++) {
        tg_tensor *g = params[i] ? params[i]->grad : NULL;
        if (g)
            TG_FLOAT_DISPATCH(g->dtype, T, {
                T *v = g->data;
                for (int64_t k = 0; k < g->numel; k++)
                    v[k] = (T)(v[k] * scale);
            });
    }
    return norm;
}
