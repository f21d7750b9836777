/* The tensor layer (src/tensor/): the tensor's fields, shapes, axes and
 * broadcasting, for the layers above it. */
#ifndef TAPEGRAD_TENSOR_INTERNAL_H
#define TAPEGRAD_TENSOR_INTERNAL_H

#include "core/core.h"

/* ---- tensors (src/tensor/tensor.c) ---- */

typedef enum { TG_OWNED_BY_CALLER, TG_OWNED_BY_TAPE } tg_owner;

struct tg_node;

struct tg_tensor {
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t numel;
    void *data;
    tg_tensor *grad;
    bool requires_grad;
    tg_owner owner;
    struct tg_node *node; /* the node that made it, NULL for a leaf */
    const tg_tape *tape; /* the tape that owns it, NULL for a caller's */
    uint64_t generation; /* the tape's reset count when it was made */
    uint64_t seal; /* a hash of tape, generation and owner (tg_tensor_seal) */
};

/* Seals a tensor header after its tape, generation and owner are set (tg_tensor_init does it for a caller's). */
void tg_tensor_seal(tg_tensor *t);
/* Whether t's header still hashes to its seal (memory that once held a header and now holds other data does not). */
bool tg_tensor_sealed(const tg_tensor *t);

/* Checks ndim and shape and computes numel with overflow checks; op names the caller. */
int tg_shape_check(const char *op, int ndim, const int64_t *shape, int64_t *numel);
/* Fills a tensor header (no data) from dtype and shape. */
void tg_tensor_init(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape, int64_t numel, tg_owner owner);
bool tg_same_shape(const tg_tensor *a, const tg_tensor *b);
bool tg_is_float(tg_dtype dtype);
/* Normalises a possibly negative axis; -1 when out of range. */
int tg_axis(int axis, int ndim);
/* The same for an op's axis argument, setting the error ("op: axis 3 is out of range for shape [2, 3]"). */
int tg_resolve_axis(const char *op, const tg_tensor *x, int axis);

/* ---- broadcasting (src/tensor/broadcast.c) ---- */

/* numpy's rule: shapes aligned at the right, each pair equal or one of them 1. */
int tg_broadcast_shape(const char *op, const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape);
/* Strides (in elements) of t seen through out_shape: 0 along broadcast axes. */
void tg_broadcast_strides(const tg_tensor *t, int out_ndim, const int64_t *out_shape, int64_t *strides);
/* dst += src summed over the axes along which dst was broadcast to src's shape
 * (the backward of every broadcast). Same dtype. */
void tg_unbroadcast_add(tg_tensor *dst, const tg_tensor *src);

/* ---- axes ---- */

/* Views x as [outer, n, inner] around axis (already normalised). */
void tg_axis_split(const tg_tensor *x, int axis, int64_t *outer, int64_t *n, int64_t *inner);
/* That view, as an op along one axis saves it for its backward. */
typedef struct {
    int64_t outer, n, inner;
} tg_axis_lines;

#endif
