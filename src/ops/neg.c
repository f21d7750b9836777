#include "elementwise.h"

TG_UNARY_FORWARD(neg_forward, -X);
TG_UNARY_BACKWARD(neg_grad, -G);

/* dx = -g */
static int neg_backward(tg_tape *tape, tg_node *node) { return tg_unary_backward(tape, node, &neg_grad); }

tg_tensor *tg_neg(tg_tape *tape, tg_tensor *x) { return tg_unary_op(tape, "neg", x, &neg_forward, neg_backward); }
