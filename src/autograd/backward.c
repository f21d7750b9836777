/* Reverse mode: walk the tape from the newest node to the oldest and let each
 * node's backward add its share of dL/d(input) into its inputs' gradients.
 * Nodes are recorded in execution order, so reverse order is a valid
 * topological order: every consumer of a tensor runs before its producer. */
#include "autograd/tape.h"

#include <string.h>

int tg_backward_with(tg_tape *tape, tg_tensor *output, const tg_tensor *grad_output)
{
    if (!tape || !output || !grad_output) {
        tg_error("tg_backward: %s is NULL", !tape ? "tape" : !output ? "output" : "grad_output");
        return -1;
    }
    if (!tg_check_live("tg_backward", "the output", output) ||
        !tg_check_live("tg_backward", "the upstream gradient", grad_output))
        return -1;
    if (!tg_same_shape(output, grad_output) || output->dtype != grad_output->dtype) {
        char so[TG_SHAPE_BUF], sg[TG_SHAPE_BUF];
        tg_error("tg_backward: upstream gradient is %s %s, expected the output's %s %s",
                 tg_dtype_name(grad_output->dtype), tg_shape_str(sg, sizeof sg, grad_output->ndim, grad_output->shape),
                 tg_dtype_name(output->dtype), tg_shape_str(so, sizeof so, output->ndim, output->shape));
        return -1;
    }
    if (!output->requires_grad) {
        tg_error("tg_backward: the output does not depend on any tensor that requires a gradient "
                 "(call tg_set_requires_grad on the parameters, and keep the tape recording)");
        return -1;
    }
    /* Intermediates' gradients from an earlier walk would be counted twice. */
    for (tg_node *n = tg_tape_last(tape); n; n = n->prev)
        n->out->grad = NULL;

    bool failed = false;
    tg_tensor *seed = tg_grad_buffer(tape, output, &failed);
    if (!seed)
        return -1;
    tg_unbroadcast_add(seed, grad_output);
    if (!output->node)
        return 0; /* a leaf: its gradient is the upstream gradient */

    for (tg_node *n = output->node; n; n = n->prev) {
        if (!n->out->grad)
            continue; /* nothing downstream of the output used this node */
        if (n->backward(tape, n) != 0)
            return -1;
    }
    return 0;
}

int tg_backward(tg_tape *tape, tg_tensor *loss)
{
    if (!tape || !loss) {
        tg_error("tg_backward: %s is NULL", tape ? "loss" : "tape");
        return -1;
    }
    if (!tg_check_live("tg_backward", "the loss", loss))
        return -1;
    if (loss->numel != 1) {
        char s[TG_SHAPE_BUF];
        tg_error("tg_backward: the loss has shape %s, expected one element "
                 "(reduce it with tg_sum or tg_mean, or use tg_backward_with)",
                 tg_shape_str(s, sizeof s, loss->ndim, loss->shape));
        return -1;
    }
    if (!tg_is_float(loss->dtype)) {
        tg_error("tg_backward: the loss is %s, expected float32 or float64", tg_dtype_name(loss->dtype));
        return -1;
    }
    /* The seed dL/dL = 1 lives on the tape: no allocation after the first step. */
    tg_tensor *one = tg_tape_op_output(tape, loss->dtype, loss->ndim, loss->shape, false);
    if (!one)
        return -1;
    tg_set(one, 0, 1.0);
    return tg_backward_with(tape, loss, one);
}
