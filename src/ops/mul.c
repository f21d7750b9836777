#include "elementwise.h"

TG_BINARY_KERNEL(mul_forward, A *B);
TG_BINARY_KERNEL(grad_a, G *B);
TG_BINARY_KERNEL(grad_b, G *A);

/* da = g * b, db = g * a */
static int mul_backward(tg_tape *tape, tg_node *node) { return tg_binary_backward(tape, node, &grad_a, &grad_b); }

tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_binary_op(tape, "mul", a, b, &mul_forward, mul_backward);
}
