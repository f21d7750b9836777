#include "elementwise.h"

#include <tgmath.h>

/* max(x, 0) + log1p(e^-|x|): exp never overflows, and log1p keeps the tail e^x for x << 0. */
TG_UNARY_FORWARD(softplus_forward, (X > 0 ? X : 0) + log1p(exp(-fabs(X))));
/* sigmoid(x) in the two branches that keep exp from overflowing */
TG_UNARY_BACKWARD(softplus_grad, G *(X >= 0 ? 1 / (1 + exp(-X)) : exp(X) / (1 + exp(X))));

/* dx = g * sigmoid(x) */
static int softplus_backward(tg_tape *tape, tg_node *node) { return tg_unary_backward(tape, node, &softplus_grad); }

tg_tensor *tg_softplus(tg_tape *tape, tg_tensor *x)
{
    return tg_unary_op(tape, "softplus", x, &softplus_forward, softplus_backward);
}
