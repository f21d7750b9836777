#include "elementwise.h"

#include <tgmath.h>

TG_UNARY_FORWARD(exp_forward, exp(X));
TG_UNARY_BACKWARD(exp_grad, G *Y);

/* dx = g * exp(x) = g * y */
static int exp_backward(tg_tape *tape, tg_node *node) { return tg_unary_backward(tape, node, &exp_grad); }

tg_tensor *tg_exp(tg_tape *tape, tg_tensor *x) { return tg_unary_op(tape, "exp", x, &exp_forward, exp_backward); }
