#include "elementwise.h"

TG_BINARY_KERNEL(sub_forward, A - B);
TG_BINARY_KERNEL(negated_upstream, -G);

/* da = g, db = -g */
static int sub_backward(tg_tape *tape, tg_node *node)
{
    return tg_binary_backward(tape, node, &tg_upstream_grad, &negated_upstream);
}

tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_binary_op(tape, "sub", a, b, &sub_forward, sub_backward);
}
