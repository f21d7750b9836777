/* Optimizers with torch.optim's update rules, so a config tuned in PyTorch
 * behaves the same here. State (momentum buffers, moments) is allocated once
 * in tg_optimizer_new, in the parameter's dtype as PyTorch keeps it: a step
 * never allocates, and its loops are plain arithmetic the compiler vectorises. */
#include "nn/nn_internal.h"

#include <float.h>
#include <string.h>
#include <tgmath.h>

struct tg_optimizer {
    tg_optim_opts opts;
    int n_params;
    tg_tensor **params;
    void **first; /* SGD momentum buffer, or Adam's first moment; [numel] per param, the param's dtype */
    void **second; /* Adam's second moment */
    int64_t *steps; /* per parameter, as torch.optim's state["step"]: a step without a gradient does not count */
};

/* Lazy updates touch a column only when a batch does: a rule that moves every weight each step (momentum
 * decay, weight decay) has no lazy form that matches it, so those are refused rather than approximated. */
static const char *check_lazy(const tg_optim_opts *o)
{
    if (o->lazy != 0 && o->lazy != 1)
        return "lazy must be 0 or 1";
    if (!o->lazy)
        return NULL;
    if (o->type == TG_OPTIM_ADAMW)
        return "lazy updates are for SGD and Adam, not AdamW (its decay moves every weight each step)";
    if (o->weight_decay != 0)
        return "lazy updates take no weight_decay (it would move every weight each step)";
    if (o->type == TG_OPTIM_SGD && o->momentum != 0)
        return "lazy SGD takes no momentum (the buffer would move every weight each step)";
    return NULL;
}

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
    if (!why)
        why = check_lazy(o);
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

/* The touched slices of a parameter are walked as outer x inner loops: the columns of W [out, F] row by row
 * (a row's pages stay in the TLB; column by column, each of a column's `out` elements is on another page),
 * the rows of W [F, out] one after the other (each is contiguous). touched_element is element (a, b). */
static int64_t touched_outer(const tg_tensor *p) { return p->grad_cols->axis ? p->shape[0] : p->grad_cols->n; }
static int64_t touched_inner(const tg_tensor *p) { return p->grad_cols->axis ? p->grad_cols->n : p->shape[1]; }
static inline int64_t touched_element(const tg_tensor *p, int64_t a, int64_t b)
{
    const tg_col_set *set = p->grad_cols;
    return set->axis ? set->list[b] + a * p->shape[1] : set->list[a] * p->shape[1] + b;
}

/* Whether p's gradient came from sparse ops only, so that a lazy optimizer may look at its touched columns alone. */
static bool column_sparse(const tg_optimizer *o, const tg_tensor *p)
{
    return o->opts.lazy && p->grad && p->grad_cols && !p->grad_dense && p->ndim == 2;
}

void tg_optimizer_zero_grad(tg_optimizer *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n_params; i++) {
        tg_tensor *p = o->params[i];
        if (!column_sparse(o, p)) {
            tg_zero_grad(p);
            continue;
        }
        /* the touched slices, then the set is empty again */
        int64_t outer = touched_outer(p), inner = touched_inner(p);
        TG_FLOAT_DISPATCH(p->dtype, T, {
            T *g = p->grad->data;
            for (int64_t a = 0; a < outer; a++)
                for (int64_t b = 0; b < inner; b++)
                    g[touched_element(p, a, b)] = 0;
        });
        tg_col_set_clear(p->grad_cols);
    }
}

/* Lazy SGD: p -= lr g on the touched slices (the others have g = 0: the same result as the dense step).
 * Lazy Adam is torch.optim.SparseAdam, on the touched slices (columns or rows) only:
 * m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v); p -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps) */
static void lazy_update(const tg_optim_opts *o, int64_t t, void *first, void *second, tg_tensor *p)
{
    int64_t outer = touched_outer(p), inner = touched_inner(p);
    double bias1 = 1 - pow(o->beta1, (double)t), bias2 = 1 - pow(o->beta2, (double)t);
    TG_FLOAT_DISPATCH(p->dtype, T, {
        T *w = p->data, *m = first, *v = second;
        const T *grad = p->grad->data;
        const T lr = (T)o->lr, b1 = (T)o->beta1, b2 = (T)o->beta2, eps = (T)o->eps;
        const T step_size = (T)(o->lr * sqrt(bias2) / bias1);
        for (int64_t a = 0; a < outer; a++)
            for (int64_t b = 0; b < inner; b++) {
                int64_t k = touched_element(p, a, b);
                T g = grad[k];
                if (o->type == TG_OPTIM_SGD) {
                    w[k] -= lr * g;
                    continue;
                }
                T m_update = (g - m[k]) * (1 - b1), v_update = (g * g - v[k]) * (1 - b2);
                m[k] += m_update;
                v[k] += v_update;
                w[k] -= step_size * (m[k] / (sqrt(v[k]) + eps));
            }
    });
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
static void adam_update(const tg_optim_opts *o, int64_t t, void *first, void *second, tg_tensor *p, const tg_tensor *g)
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
        if (column_sparse(o, p))
            lazy_update(&o->opts, t, o->first[i], o->second[i], p);
        else if (o->opts.type == TG_OPTIM_SGD)
            sgd_update(&o->opts, t == 1, o->first[i], p, p->grad);
        else
            adam_update(&o->opts, t, o->first[i], o->second[i], p, p->grad);
    }
    return 0;
}

double tg_clip_grad_norm(tg_tensor *const *params, int n_params, double max_norm)
{
    if ((!params && n_params != 0) || n_params < 0 || !(max_norm > 0)) {
        tg_error("clip_grad_norm: %s", n_params < 0      ? "n_params is negative"
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

/* ---- the state a training checkpoint keeps (src/train/train_state.c) ---- */

void *tg_optimizer_buffer(const tg_optimizer *o, int k, int i) { return k == 0 ? o->first[i] : o->second[i]; }

int64_t *tg_optimizer_steps(const tg_optimizer *o) { return o->steps; }
