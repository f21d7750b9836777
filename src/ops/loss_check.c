#include "loss.h"

#include <stdio.h>

/* "[1, 0, 3]": flat index i of a tensor of shape, as one index per axis ("[i]" for 0 or 1 axes). */
static const char *index_str(char *buf, size_t size, int ndim, const int64_t *shape, int64_t i)
{
    int64_t index[TG_MAX_DIMS];
    if (ndim <= 1)
        return tg_shape_str(buf, size, 1, &i);
    for (int a = ndim - 1; a >= 0; a--) {
        index[a] = shape[a] ? i % shape[a] : 0;
        i = shape[a] ? i / shape[a] : 0;
    }
    return tg_shape_str(buf, size, ndim, index);
}

/* The layout of input [C], [K, C] or [N, C, d1, ..., dk], and the shape of its per-position loss. */
static int input_layout(const char *op, const tg_tensor *input, tg_loss_shape *shape)
{
    char si[TG_SHAPE_BUF];
    if (input->ndim < 1) {
        tg_error("%s: input has shape %s, expected [N, C, d1, ..., dk], [K, C] or [C]", op,
                 tg_shape_str(si, sizeof si, input->ndim, input->shape));
        return -1;
    }
    bool one_row = input->ndim == 1;
    shape->outer = one_row ? 1 : input->shape[0];
    shape->classes = input->shape[one_row ? 0 : 1];
    shape->inner = 1;
    for (int a = 2; a < input->ndim; a++)
        shape->inner *= input->shape[a];
    shape->positions = shape->outer * shape->inner;
    shape->out_ndim = input->ndim - 1;
    for (int a = 0, k = 0; a < input->ndim; a++)
        if (a != (one_row ? 0 : 1))
            shape->out_shape[k++] = input->shape[a];
    return 0;
}

/* Where shape b differs from shape a first ("axis 1 is 5, expected 4"), into buf; false when they agree. */
static bool shape_difference(char *buf, size_t size, int ndim, const int64_t *shape, int want_ndim, const int64_t *want)
{
    if (ndim != want_ndim) {
        snprintf(buf, size, "%d axes, expected %d", ndim, want_ndim);
        return true;
    }
    for (int a = 0; a < ndim; a++)
        if (shape[a] != want[a]) {
            snprintf(buf, size, "axis %d is %lld, expected %lld", a, (long long)shape[a], (long long)want[a]);
            return true;
        }
    return false;
}

/* Class indices: the input's shape without axis 1, each in [0, C) or ignore_index. */
static int check_class_targets(const char *op, const tg_tensor *input, const tg_tensor *target, const tg_ce_opts *opts,
                               const tg_loss_shape *shape)
{
    char si[TG_SHAPE_BUF], st[TG_SHAPE_BUF], se[TG_SHAPE_BUF], diff[96], ignore[48] = "";
    if (shape_difference(diff, sizeof diff, target->ndim, target->shape, shape->out_ndim, shape->out_shape)) {
        tg_error("%s: class-index target has shape %s for input %s, expected %s (the input's shape without axis "
                 "1): %s",
                 op, tg_shape_str(st, sizeof st, target->ndim, target->shape),
                 tg_shape_str(si, sizeof si, input->ndim, input->shape),
                 tg_shape_str(se, sizeof se, shape->out_ndim, shape->out_shape), diff);
        return -1;
    }
    const int64_t *labels = target->data;
    for (int64_t i = 0; i < shape->positions; i++)
        if (labels[i] != opts->ignore_index && (labels[i] < 0 || labels[i] >= shape->classes)) {
            if (opts->ignore_index < 0 || opts->ignore_index >= shape->classes)
                snprintf(ignore, sizeof ignore, ", or %lld to ignore", (long long)opts->ignore_index);
            char shapes[2 * TG_SHAPE_BUF + 32] = ""; /* [K, C] and [C] keep their message of 0.1 */
            if (input->ndim > 2)
                snprintf(shapes, sizeof shapes, "; target %s, input %s",
                         tg_shape_str(st, sizeof st, target->ndim, target->shape),
                         tg_shape_str(si, sizeof si, input->ndim, input->shape));
            tg_error("%s: target%s = %lld is out of range for %lld classes (expected 0 to %lld%s)%s", op,
                     index_str(se, sizeof se, target->ndim, target->shape, i), (long long)labels[i],
                     (long long)shape->classes, (long long)shape->classes - 1, ignore, shapes);
            return -1;
        }
    return 0;
}

static int check_options(const char *op, const tg_tensor *input, const tg_ce_opts *opts, const tg_loss_shape *shape)
{
    char sw[TG_SHAPE_BUF];
    const tg_tensor *w = opts->weight;
    if (w && (w->dtype != input->dtype || w->ndim != 1 || w->shape[0] != shape->classes)) {
        tg_error("%s: weight is %s %s, expected %s [%lld] (one per class, the input's dtype)", op,
                 tg_dtype_name(w->dtype), tg_shape_str(sw, sizeof sw, w->ndim, w->shape), tg_dtype_name(input->dtype),
                 (long long)shape->classes);
        return -1;
    }
    if (opts->reduction != TG_MEAN && opts->reduction != TG_SUM && opts->reduction != TG_NONE) {
        tg_error("%s: reduction %d, expected TG_MEAN, TG_SUM or TG_NONE", op, (int)opts->reduction);
        return -1;
    }
    if (!(opts->label_smoothing >= 0.0 && opts->label_smoothing <= 1.0)) { /* NaN fails too */
        tg_error("%s: label_smoothing is %g, expected a finite value in [0, 1]", op, opts->label_smoothing);
        return -1;
    }
    return 0;
}

int tg_loss_check(const char *op, const tg_tensor *input, const tg_tensor *target, const tg_ce_opts *opts,
                  bool allow_probabilities, tg_loss_shape *shape)
{
    char si[TG_SHAPE_BUF], st[TG_SHAPE_BUF];
    if (!input || !target)
        return -1;
    if (!tg_check_live(op, "the target", target) || !tg_check_float_input(op, input) || input_layout(op, input, shape))
        return -1;
    shape->class_targets = target->dtype == TG_I64;
    if (shape->class_targets) {
        if (check_class_targets(op, input, target, opts, shape))
            return -1;
    } else if (!allow_probabilities) {
        tg_error("%s: target is %s, expected int64 class indices", op, tg_dtype_name(target->dtype));
        return -1;
    } else {
        char diff[96] = "the dtype";
        bool bad_shape = shape_difference(diff, sizeof diff, target->ndim, target->shape, input->ndim, input->shape);
        if (bad_shape || target->dtype != input->dtype) {
            tg_error("%s: probability target is %s %s, expected the input's %s %s (or int64 class indices): %s", op,
                     tg_dtype_name(target->dtype), tg_shape_str(st, sizeof st, target->ndim, target->shape),
                     tg_dtype_name(input->dtype), tg_shape_str(si, sizeof si, input->ndim, input->shape), diff);
            return -1;
        }
    }
    return check_options(op, input, opts, shape);
}
