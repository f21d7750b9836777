#include "elementwise.h"

TG_BINARY_KERNEL(add_forward, A + B);

/* da = g, db = g, each summed over its broadcast axes */
static int add_backward(tg_tape *tape, tg_node *node)
{
    return tg_binary_backward(tape, node, &tg_upstream_grad, &tg_upstream_grad);
}

tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b)
{
    return tg_binary_op(tape, "add", a, b, &add_forward, add_backward);
}
