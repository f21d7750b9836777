#include "elementwise.h"

#include <tgmath.h>

/* Two branches so that exp never overflows: for x < 0, e^x / (1 + e^x). */
TG_UNARY_FORWARD(sigmoid_forward, X >= 0 ? 1 / (1 + exp(-X)) : exp(X) / (1 + exp(X)));
TG_UNARY_BACKWARD(sigmoid_grad, G *Y *(1 - Y));

/* dx = g * y * (1 - y) */
static int sigmoid_backward(tg_tape *tape, tg_node *node) { return tg_unary_backward(tape, node, &sigmoid_grad); }

tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *x)
{
    return tg_unary_op(tape, "sigmoid", x, &sigmoid_forward, sigmoid_backward);
}
