/* The tape's recording interface (src/autograd/tape.c): what an op needs to
 * make its output and record its node. The tape knows ops only through the
 * node's backward pointer, so ops include this and nothing here includes ops. */
#ifndef TAPEGRAD_TAPE_H
#define TAPEGRAD_TAPE_H

#include "tensor/tensor_internal.h"

/* ---- the tape (src/autograd/tape.c) ---- */

#define TG_NODE_MAX_INPUTS 8

typedef struct tg_node tg_node;
/* A backward adds dL/d(input) into the inputs' gradients given dL/d(out) = node->out->grad. */
typedef int (*tg_backward_fn)(tg_tape *tape, tg_node *node);

struct tg_node {
    const char *op; /* the op's name, for errors and DOT */
    tg_backward_fn backward;
    tg_tensor *out;
    int n_inputs;
    tg_tensor *inputs[TG_NODE_MAX_INPUTS];
    void *saved; /* the op's saved state for its backward: a struct named for the op, from the tape's arena */
    int64_t id;
    tg_node *prev;
};

/* Whether t may be used: a caller's tensor, or a tape tensor made since the tape's last reset.
 * Otherwise sets "op: which is a tape tensor from before the last tg_tape_reset ...". Every op's
 * input check calls it; it reads t's header only, which stays readable memory until tg_tape_free. */
bool tg_check_live(const char *op, const char *which, const tg_tensor *t);
/* A tape tensor header (no data) stamped with the tape's generation. */
tg_tensor *tg_tape_new_header(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape, int64_t numel);
/* Arena memory that lives until the next reset; 64-byte aligned, NULL on failure. */
void *tg_tape_alloc(tg_tape *tape, size_t bytes);
/* An op's output (or scratch) on the tape, data zero-filled when zero is true: the ops' own
 * constructor, where users call the public tg_tape_tensor (always zeroed). */
tg_tensor *tg_tape_op_output(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape, bool zero);
/* Whether an op with these inputs must be recorded: recording on and some input requires a gradient. */
bool tg_tape_should_record(const tg_tape *tape, tg_tensor *const *inputs, int n_inputs);
/* Appends a node for out; marks out as requiring a gradient. NULL on failure. */
tg_node *tg_tape_record(tg_tape *tape, const char *op, tg_backward_fn backward, tg_tensor *out,
                        tg_tensor *const *inputs, int n_inputs);
/* The gradient buffer of t, made (zeroed) on first use: from the tape for tape
 * tensors, from the allocator for caller-owned ones. NULL when t needs no
 * gradient, or on allocation failure (then the error is set and *failed is true). */
tg_tensor *tg_grad_buffer(tg_tape *tape, tg_tensor *t, bool *failed);
/* The newest node, or NULL. */
tg_node *tg_tape_last(const tg_tape *tape);

#endif
