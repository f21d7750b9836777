/* Penalties with scikit-learn's meaning: R(W) over every linear layer's
 * weight, never a bias. The value is summed in double whatever the dtype. */
#include "nn/nn_internal.h"

#include <math.h>

static int check(const tg_penalty *p, const tg_model *m)
{
    if (!p || !m)
        return tg_error("penalty: the penalty and the model must not be NULL"), -1;
    if (p->type < TG_PENALTY_NONE || p->type > TG_PENALTY_ELASTICNET)
        return tg_error("penalty: type %d is not a tg_penalty_type", (int)p->type), -1;
    if (!(p->C > 0) || !isfinite(p->C))
        return tg_error("penalty: C must be a finite number > 0, got %g", p->C), -1;
    if (p->type == TG_PENALTY_ELASTICNET && !(p->l1_ratio >= 0 && p->l1_ratio <= 1))
        return tg_error("penalty: l1_ratio must be in [0, 1], got %g", p->l1_ratio), -1;
    return 0;
}

void tg_penalty_parts(const tg_penalty *p, double *l1, double *l2)
{
    double a = 0, b = 0;
    if (p && p->type == TG_PENALTY_L1)
        a = 1;
    else if (p && p->type == TG_PENALTY_L2)
        b = 1;
    else if (p && p->type == TG_PENALTY_ELASTICNET)
        a = p->l1_ratio, b = 1 - p->l1_ratio;
    if (l1)
        *l1 = a;
    if (l2)
        *l2 = b;
}

double tg_penalty_value(const tg_penalty *p, const tg_model *model)
{
    if (check(p, model))
        return NAN;
    double l1, l2, abs_sum = 0, squares = 0;
    tg_penalty_parts(p, &l1, &l2);
    for (int i = 0; i < model->n_layers; i++) {
        const tg_tensor *w = model->linear[i].weight;
        for (int64_t k = 0; w && k < w->numel; k++) {
            double v = tg_get(w, k);
            abs_sum += fabs(v);
            squares += v * v;
        }
    }
    return l1 * abs_sum + 0.5 * l2 * squares;
}

int tg_penalty_add_grad(const tg_penalty *p, tg_model *model, double scale)
{
    if (check(p, model))
        return -1;
    double l1, l2;
    tg_penalty_parts(p, &l1, &l2);
    if (l1 > 0)
        return tg_error("penalty: an L1 term has no gradient at 0; minimise it with OWL-QN (optimizer lbfgs)"), -1;
    if (l2 == 0 || scale == 0)
        return 0;
    for (int i = 0; i < model->n_layers; i++) {
        tg_tensor *w = model->linear[i].weight;
        if (!w)
            continue;
        if (!w->grad) {
            if (!(w->grad = tg_tensor_new(w->dtype, w->ndim, w->shape)))
                return -1;
        }
        double c = scale * l2;
        TG_FLOAT_DISPATCH(w->dtype, T, {
            const T *v = w->data;
            T *g = w->grad->data;
            for (int64_t k = 0; k < w->numel; k++)
                g[k] += (T)(c * (double)v[k]);
        });
    }
    return 0;
}
