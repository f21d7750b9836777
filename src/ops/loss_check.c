#include "loss.h"

#include <math.h>

int tg_loss_check(const char *op, const tg_tensor *input, const tg_tensor *target, const tg_ce_opts *opts,
                  bool allow_probabilities, tg_loss_shape *shape)
{
    char si[TG_SHAPE_BUF], st[TG_SHAPE_BUF];
    if (!input || !target)
        return -1;
    if (!tg_check_live(op, "the target", target) || !tg_check_float_input(op, input))
        return -1;
    if (input->ndim != 1 && input->ndim != 2) {
        tg_error("%s: input has shape %s, expected [K, C] (or [C] for one row)", op,
                 tg_shape_str(si, sizeof si, input->ndim, input->shape));
        return -1;
    }
    shape->rows = input->ndim == 2 ? input->shape[0] : 1;
    shape->classes = input->shape[input->ndim - 1];
    shape->out_ndim = input->ndim - 1;
    if (target->dtype == TG_I64) {
        shape->class_targets = true;
        if (target->ndim != input->ndim - 1 || target->numel != shape->rows) {
            tg_error("%s: class-index target has shape %s for input %s, expected [%lld]", op,
                     tg_shape_str(st, sizeof st, target->ndim, target->shape),
                     tg_shape_str(si, sizeof si, input->ndim, input->shape), (long long)shape->rows);
            return -1;
        }
        const int64_t *labels = target->data;
        for (int64_t i = 0; i < shape->rows; i++)
            if (labels[i] != opts->ignore_index && (labels[i] < 0 || labels[i] >= shape->classes)) {
                tg_error("%s: target[%lld] = %lld is out of range for %lld classes (expected 0 to %lld%s)", op,
                         (long long)i, (long long)labels[i], (long long)shape->classes,
                         (long long)shape->classes - 1, opts->ignore_index == -100 ? ", or -100 to ignore" : "");
                return -1;
            }
    } else {
        shape->class_targets = false;
        if (!allow_probabilities) {
            tg_error("%s: target is %s, expected int64 class indices", op, tg_dtype_name(target->dtype));
            return -1;
        }
        if (target->dtype != input->dtype || !tg_same_shape(target, input)) {
            tg_error("%s: probability target is %s %s, expected the input's %s %s (or int64 class indices)", op,
                     tg_dtype_name(target->dtype), tg_shape_str(st, sizeof st, target->ndim, target->shape),
                     tg_dtype_name(input->dtype), tg_shape_str(si, sizeof si, input->ndim, input->shape));
            return -1;
        }
    }
    if (opts->weight) {
        const tg_tensor *w = opts->weight;
        if (w->dtype != input->dtype || w->ndim != 1 || w->shape[0] != shape->classes) {
            tg_error("%s: weight is %s %s, expected %s [%lld] (one per class)", op, tg_dtype_name(w->dtype),
                     tg_shape_str(st, sizeof st, w->ndim, w->shape), tg_dtype_name(input->dtype),
                     (long long)shape->classes);
            return -1;
        }
    }
    if (opts->reduction != TG_MEAN && opts->reduction != TG_SUM && opts->reduction != TG_NONE) {
        tg_error("%s: reduction %d, expected TG_MEAN, TG_SUM or TG_NONE", op, (int)opts->reduction);
        return -1;
    }
    if (!(opts->label_smoothing >= 0.0 && opts->label_smoothing <= 1.0)) {
        tg_error("%s: label_smoothing is %g, expected a value in [0, 1]", op, opts->label_smoothing);
        return -1;
    }
    return 0;
}
