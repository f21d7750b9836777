#include "binary_loss.h"

#include <math.h>

/* Whether t broadcasts to the input's shape without growing it; else sets the error naming both shapes. */
static bool broadcasts_to_input(const char *op, const char *what, const tg_tensor *t, const tg_tensor *input)
{
    char st[TG_SHAPE_BUF], si[TG_SHAPE_BUF];
    if (t->dtype != input->dtype) {
        tg_error("%s: %s is %s, expected %s like the input", op, what, tg_dtype_name(t->dtype),
                 tg_dtype_name(input->dtype));
        return false;
    }
    bool ok = t->ndim <= input->ndim;
    for (int i = 0; ok && i < t->ndim; i++) {
        int64_t d = t->shape[i], want = input->shape[input->ndim - t->ndim + i];
        ok = d == want || d == 1;
    }
    if (!ok)
        tg_error("%s: %s has shape %s, which does not broadcast to the input's shape %s", op, what,
                 tg_shape_str(st, sizeof st, t->ndim, t->shape),
                 tg_shape_str(si, sizeof si, input->ndim, input->shape));
    return ok;
}

/* A weight that a flat walk reads right: absent, a single element, or as many as the input. */
static bool flat_weight(const tg_tensor *t, const tg_tensor *input)
{
    return !t || t->numel == 1 || t->numel == input->numel;
}

int tg_binary_loss_check(const char *op, const tg_tensor *input, const tg_tensor *target, const tg_bce_opts *opts,
                         bool allow_pos_weight, tg_binary_loss_layout *layout)
{
    char si[TG_SHAPE_BUF], st[TG_SHAPE_BUF];
    if (!tg_check_float_input(op, input) || !target)
        return -1;
    if (target->dtype != input->dtype || !tg_same_shape(target, input)) {
        tg_error("%s: target is %s %s, expected the input's %s %s (probabilities in [0, 1])", op,
                 tg_dtype_name(target->dtype), tg_shape_str(st, sizeof st, target->ndim, target->shape),
                 tg_dtype_name(input->dtype), tg_shape_str(si, sizeof si, input->ndim, input->shape));
        return -1;
    }
    if (opts->weight && !broadcasts_to_input(op, "weight", opts->weight, input))
        return -1;
    if (opts->pos_weight && !allow_pos_weight) {
        tg_error("%s: pos_weight is only taken by binary_cross_entropy_with_logits (set it to NULL)", op);
        return -1;
    }
    if (opts->pos_weight && !broadcasts_to_input(op, "pos_weight", opts->pos_weight, input))
        return -1;
    if (opts->reduction != TG_MEAN && opts->reduction != TG_SUM && opts->reduction != TG_NONE) {
        tg_error("%s: reduction %d, expected TG_MEAN, TG_SUM or TG_NONE", op, (int)opts->reduction);
        return -1;
    }
    tg_binary_loss_layout *l = layout;
    l->numel = input->numel;
    l->ndim = input->ndim;
    for (int i = 0; i < input->ndim; i++)
        l->shape[i] = input->shape[i];
    bool flat = input->ndim == 0 || (flat_weight(opts->weight, input) && flat_weight(opts->pos_weight, input));
    l->inner = flat ? input->numel : input->shape[input->ndim - 1];
    l->rows = flat ? 1 : input->numel / (l->inner ? l->inner : 1);
    if (flat && input->numel == 0)
        l->rows = 0;
    const tg_tensor *weights[2] = { opts->weight, opts->pos_weight };
    int64_t *strides[2] = { l->weight_strides, l->pos_weight_strides },
            *inner[2] = { &l->weight_inner, &l->pos_weight_inner };
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < TG_MAX_DIMS; i++)
            strides[k][i] = 0;
        *inner[k] = 0;
        if (!weights[k])
            continue;
        tg_broadcast_strides(weights[k], input->ndim, input->shape, strides[k]);
        if (flat)
            *inner[k] = weights[k]->numel == 1 ? 0 : 1;
        else
            *inner[k] = strides[k][input->ndim - 1];
    }
    return 0;
}

int64_t tg_binary_loss_row_offset(const tg_binary_loss_layout *layout, const int64_t *strides, int64_t row)
{
    if (layout->rows <= 1)
        return 0;
    int64_t offset = 0;
    for (int ax = layout->ndim - 2; ax >= 0; ax--) {
        offset += (row % layout->shape[ax]) * strides[ax];
        row /= layout->shape[ax];
    }
    return offset;
}

tg_tensor *tg_binary_loss_output(tg_tape *tape, tg_dtype dtype, const tg_binary_loss_layout *layout,
                                 tg_reduction reduction)
{
    if (reduction == TG_NONE)
        return tg_tape_op_output(tape, dtype, layout->ndim, layout->shape, false);
    return tg_tape_op_output(tape, dtype, 0, NULL, false);
}

double tg_sum_f32_as_double(const float *x, int64_t n)
{
    double lanes[8] = { 0 };
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            lanes[j] += (double)x[i + j];
    double total = 0;
    for (; i < n; i++)
        total += (double)x[i];
    for (int j = 0; j < 8; j++)
        total += lanes[j];
    return total;
}

double tg_sum_f64(const double *x, int64_t n)
{
    double lanes[8] = { 0 };
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            lanes[j] += x[i + j];
    double total = 0;
    for (; i < n; i++)
        total += x[i];
    for (int j = 0; j < 8; j++)
        total += lanes[j];
    return total;
}
