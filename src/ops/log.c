/* log(0) = -inf and log(x < 0) = NaN, as C's log and PyTorch give. */
#include "elementwise.h"

#include <tgmath.h>

TG_UNARY_FORWARD(log_forward, log(X));
TG_UNARY_BACKWARD(log_grad, G / X);

/* dx = g / x */
static int log_backward(tg_tape *tape, tg_node *node) { return tg_unary_backward(tape, node, &log_grad); }

tg_tensor *tg_log(tg_tape *tape, tg_tensor *x) { return tg_unary_op(tape, "log", x, &log_forward, log_backward); }
