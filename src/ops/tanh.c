#include "elementwise.h"

#include <tgmath.h>

TG_UNARY_FORWARD(tanh_forward, tanh(X));
TG_UNARY_BACKWARD(tanh_grad, G *(1 - Y * Y));

/* dx = g * (1 - y^2) */
static int tanh_backward(tg_tape *tape, tg_node *node) { return tg_unary_backward(tape, node, &tanh_grad); }

tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *x) { return tg_unary_op(tape, "tanh", x, &tanh_forward, tanh_backward); }
