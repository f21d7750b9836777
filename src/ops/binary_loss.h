/* What the binary losses (binary_cross_entropy and its with-logits form) share: the argument
 * checks, the walk of broadcast weights, and the reduction. */
#ifndef TAPEGRAD_BINARY_LOSS_H
#define TAPEGRAD_BINARY_LOSS_H

#include "elementwise.h"

/* The input seen as [rows, inner], contiguous; weight and pos_weight read along inner with stride 0
 * or 1 from a per-row offset. When neither weight varies across rows' starts in a way a flat walk
 * misses (absent, one element, or the input's shape) the input is one row of numel. */
typedef struct {
    int64_t numel, rows, inner;
    int64_t weight_inner, pos_weight_inner; /* strides along inner: 0 or 1 */
    int64_t weight_strides[TG_MAX_DIMS], pos_weight_strides[TG_MAX_DIMS]; /* over the input's axes */
    int ndim;
    int64_t shape[TG_MAX_DIMS];
} tg_binary_loss_layout;

/* Validates input (float), target (the input's dtype and shape), weight and pos_weight (the input's dtype,
 * broadcastable to its shape) and the reduction; fills layout. pos_weight is refused unless allowed. */
int tg_binary_loss_check(const char *op, const tg_tensor *input, const tg_tensor *target, const tg_bce_opts *opts,
                         bool allow_pos_weight, tg_binary_loss_layout *layout);

/* The element offset of row r's first element in the weight with these strides. */
int64_t tg_binary_loss_row_offset(const tg_binary_loss_layout *layout, const int64_t *strides, int64_t row);

/* The loss tensor: the input's shape for TG_NONE, else a 0-D scalar. */
tg_tensor *tg_binary_loss_output(tg_tape *tape, tg_dtype dtype, const tg_binary_loss_layout *layout,
                                 tg_reduction reduction);

/* sum of n floats / doubles in double, in a fixed order (eight lanes, then the lanes in order), so that
 * it vectorises without -ffast-math and gives the same bits every run. */
double tg_sum_f32_as_double(const float *x, int64_t n);
double tg_sum_f64(const double *x, int64_t n);

#endif
