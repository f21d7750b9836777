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
    /* Sparse gradients (src/tensor/sparse.c): the slices of this [rows, cols]
     * tensor's gradient that tg_sparse_linear / tg_sparse_matmul added into
     * since the gradient was last zeroed, and whether any other op added into
     * it (then it is dense). */
    struct tg_col_set *grad_cols;
    bool grad_dense;
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

/* ---- sparse inputs and slice-sparse gradients (src/tensor/sparse.c) ---- */

struct tg_sparse_csr {
    tg_dtype dtype;
    int64_t rows, cols, nnz;
    int64_t *row_ptr; /* [rows + 1] */
    int32_t *col; /* [nnz] */
    void *val; /* [nnz] of dtype */
    int64_t row_cap, nnz_cap; /* what the buffers hold */
};
/* Grows a CSR batch's buffers to hold rows and nnz (keeping what they hold), so that gathers up to that
 * size allocate nothing. 0 on success. */
int tg_sparse_csr_reserve(tg_sparse_csr *s, int64_t rows, int64_t nnz);
/* The slices a sparse op touched in a [rows, cols] parameter's gradient, each
 * once, in order of first touch: columns (axis 1, tg_sparse_linear's W [out, F])
 * or rows (axis 0, tg_sparse_matmul's W [F, out]); mark[i] says whether i is in
 * the list. */
typedef struct tg_col_set {
    int axis;
    int64_t size, n; /* size: the parameter's extent along axis */
    int32_t *list; /* [size] capacity */
    unsigned char *mark; /* [size] */
} tg_col_set;
/* Adds the columns of x to param's set along axis (made on first use). A parameter touched along both
 * axes gets a dense gradient (grad_dense) instead. */
int tg_col_set_add(tg_tensor *param, const tg_sparse_csr *x, int axis);
/* Empties the set in O(n). */
void tg_col_set_clear(tg_col_set *set);
void tg_col_set_free(tg_col_set *set);

#endif
