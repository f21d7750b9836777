/* What nll_loss and cross_entropy share: their argument checks. */
#ifndef TAPEGRAD_LOSS_H
#define TAPEGRAD_LOSS_H

#include "elementwise.h"

typedef struct {
    int64_t rows, classes;
    bool class_targets; /* TG_I64 indices, else probabilities */
    int out_ndim; /* of a TG_NONE loss: 1 ([rows]), or 0 for a single 1-D row */
} tg_loss_shape;

/* Validates input [K, C] or [C], target, and options; fills shape. */
int tg_loss_check(const char *op, const tg_tensor *input, const tg_tensor *target, const tg_ce_opts *opts,
                  bool allow_probabilities, tg_loss_shape *shape);

#endif
