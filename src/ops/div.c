#include "elementwise.h"

TG_BINARY_KERNEL(div_forward, A / B);
TG_BINARY_KERNEL(grad_a, G / B);
TG_BINARY_KERNEL(grad_b, -G *Y / B);

/* da = g / b, db = -g a / b^2 = -g y / b */
static int div_backward(tg_tape *tape, tg_node *node) { return tg_binary_backward(tape, node, &grad_a, &grad_b); }

tg_tensor *tg_div(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_binary_op(tape, "div", a, b, &div_forward, div_backward);
}
