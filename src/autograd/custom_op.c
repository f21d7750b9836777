/* Ops of the user's own: the user computes the forward and the vector-Jacobian
 * product; the tape records them like any built-in op. */
#include "autograd/tape.h"

#include <stdio.h>

typedef struct {
    const tg_custom_op *op;
    void *ctx;
} custom_saved;

/* grad_i += the user's backward into a zeroed scratch of input i's shape */
static int custom_backward(tg_tape *tape, tg_node *node)
{
    const custom_saved *s = node->saved;
    tg_tensor *scratch[TG_NODE_MAX_INPUTS] = { 0 };
    for (int i = 0; i < node->n_inputs; i++) {
        tg_tensor *in = node->inputs[i];
        if (in->requires_grad && !(scratch[i] = tg_tape_op_output(tape, in->dtype, in->ndim, in->shape, true)))
            return -1;
    }
    if (s->op->backward(node->inputs, node->n_inputs, node->out, node->out->grad, scratch, s->ctx) != 0) {
        tg_error("custom op %s: its backward returned an error", node->op);
        return -1;
    }
    for (int i = 0; i < node->n_inputs; i++) {
        bool failed = false;
        tg_tensor *g = scratch[i] ? tg_grad_buffer(tape, node->inputs[i], &failed) : NULL;
        if (failed)
            return -1;
        if (g)
            tg_unbroadcast_add(g, scratch[i]);
    }
    return 0;
}

tg_tensor *tg_custom(tg_tape *tape, const tg_custom_op *op, int n_inputs, tg_tensor *const *inputs, int out_ndim,
                     const int64_t *out_shape, void *ctx)
{
    if (!tape || !op || !op->forward)
        return tg_error("custom op: %s is NULL", !tape ? "tape" : !op ? "op" : "op->forward");
    const char *name = op->name ? op->name : "custom";
    if (n_inputs < 1 || n_inputs > TG_NODE_MAX_INPUTS)
        return tg_error("custom op %s: %d inputs, expected 1 to %d", name, n_inputs, TG_NODE_MAX_INPUTS);
    tg_dtype dtype = TG_I64;
    if (!inputs)
        return tg_error("custom op %s: inputs is NULL for %d inputs", name, n_inputs);
    char label[96]; /* "custom op NAME", for the messages of the shared checks */
    snprintf(label, sizeof label, "custom op %s", name);
    int64_t out_numel;
    if (tg_shape_check(label, out_ndim, out_shape, &out_numel))
        return NULL;
    static const char *const which[TG_NODE_MAX_INPUTS] = { "input 0", "input 1", "input 2", "input 3",
                                                           "input 4", "input 5", "input 6", "input 7" };
    for (int i = 0; i < n_inputs; i++) {
        if (!inputs[i] || !tg_check_live(name, which[i], inputs[i]))
            return NULL;
        if (tg_is_float(inputs[i]->dtype)) {
            if (dtype != TG_I64 && inputs[i]->dtype != dtype)
                return tg_error("custom op %s: input %d is %s but an earlier input is %s; float32 and float64 do "
                                "not mix",
                                name, i, tg_dtype_name(inputs[i]->dtype), tg_dtype_name(dtype));
            dtype = inputs[i]->dtype;
        }
    }
    if (dtype == TG_I64)
        return tg_error("custom op %s: no float input, expected at least one float32 or float64 input", name);
    bool record = tg_tape_should_record(tape, inputs, n_inputs);
    if (record && !op->backward)
        return tg_error("custom op %s: an input requires a gradient but op->backward is NULL", name);
    tg_tensor *out = tg_tape_op_output(tape, dtype, out_ndim, out_shape, true);
    if (!out)
        return NULL;
    if (op->forward(inputs, n_inputs, out, ctx) != 0)
        return tg_error("custom op %s: its forward returned an error", name);
    if (record) {
        custom_saved *s = tg_tape_alloc(tape, sizeof *s);
        tg_node *node = s ? tg_tape_record(tape, name, custom_backward, out, inputs, n_inputs) : NULL;
        if (!node)
            return NULL;
        s->op = op;
        s->ctx = ctx;
        node->saved = s;
    }
    return out;
}
