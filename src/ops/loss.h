/* What nll_loss and cross_entropy share: their argument checks and the layout
 * of an input [N, C, d1, ..., dk] (class axis 1, as PyTorch and ONNX). */
#ifndef TAPEGRAD_LOSS_H
#define TAPEGRAD_LOSS_H

#include "elementwise.h"

/* The input seen as [outer, classes, inner]: [C] is [1, C, 1], [K, C] is [K, C, 1], [N, C, d1..dk] is
 * [N, C, d1 * ... * dk]. A position is one (n, d) pair, numbered n * inner + d as in the target; its
 * classes lie `inner` elements apart, from loss_base. */
typedef struct {
    int64_t outer, classes, inner;
    int64_t positions; /* outer * inner: the target's element count */
    bool class_targets; /* TG_I64 indices, else probabilities */
    int out_ndim; /* a TG_NONE loss has the target's shape: the input's without axis 1 */
    int64_t out_shape[TG_MAX_DIMS];
} tg_loss_shape;

/* The flat index of position p's class 0 in the input. */
static inline int64_t tg_loss_base(const tg_loss_shape *s, int64_t p)
{
    return s->inner == 1 ? p * s->classes : (p / s->inner) * s->classes * s->inner + p % s->inner;
}

/* Validates input [C], [K, C] or [N, C, d1, ..., dk], target, and options; fills shape. */
int tg_loss_check(const char *op, const tg_tensor *input, const tg_tensor *target, const tg_ce_opts *opts,
                  bool allow_probabilities, tg_loss_shape *shape);

#endif
