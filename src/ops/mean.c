/* The mean is the sum scaled by 1/n; src/ops/sum.c holds both passes. */
#include "elementwise.h"

tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x, int axis) { return tg_reduce_sum(tape, "mean", x, axis, true); }
