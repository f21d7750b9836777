#include "elementwise.h"

TG_UNARY_FORWARD(relu_forward, X > 0 ? X : 0);
TG_UNARY_BACKWARD(relu_grad, X > 0 ? G : 0);

/* dx = g where x > 0, else 0 (relu'(0) = 0, as in PyTorch) */
static int relu_backward(tg_tape *tape, tg_node *node) { return tg_unary_backward(tape, node, &relu_grad); }

tg_tensor *tg_relu(tg_tape *tape, tg_tensor *x) { return tg_unary_op(tape, "relu", x, &relu_forward, relu_backward); }
