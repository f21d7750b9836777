#include "elementwise.h"

#include <tgmath.h>

/* -softplus(-x) = min(x, 0) - log1p(e^-|x|): finite for every finite x. */
TG_UNARY_FORWARD(log_sigmoid_forward, (X < 0 ? X : 0) - log1p(exp(-fabs(X))));
/* sigmoid(-x) in the two branches that keep exp from overflowing */
TG_UNARY_BACKWARD(log_sigmoid_grad, G *(X <= 0 ? 1 / (1 + exp(X)) : exp(-X) / (1 + exp(-X))));

/* dx = g * sigmoid(-x) */
static int log_sigmoid_backward(tg_tape *tape, tg_node *node)
{
    return tg_unary_backward(tape, node, &log_sigmoid_grad);
}

tg_tensor *tg_log_sigmoid(tg_tape *tape, tg_tensor *x)
{
    return tg_unary_op(tape, "log_sigmoid", x, &log_sigmoid_forward, log_sigmoid_backward);
}
