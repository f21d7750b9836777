/* Caller-owned tensors: a header and one contiguous row-major block. */
#include "tensor/tensor_internal.h"

#include <math.h>
#include <string.h>

/* A header's seal: what its tape, generation and owner must hash to. Memory that once held a header
 * and now holds parts of others (or numbers) does not pass it. */
static uint64_t seal_of(const tg_tensor *t)
{
    uint64_t z = (uint64_t)(uintptr_t)t->tape * 0x9E3779B97F4A7C15ull ^ t->generation * 0xBF58476D1CE4E5B9ull ^
                 (uint64_t)t->owner ^ 0x7461706567726164ull;
    z = (z ^ (z >> 31)) * 0x94D049BB133111EBull;
    return z ^ (z >> 29);
}

void tg_tensor_seal(tg_tensor *t) { t->seal = seal_of(t); }
bool tg_tensor_sealed(const tg_tensor *t) { return t->seal == seal_of(t); }

size_t tg_dtype_size(tg_dtype dtype) { return dtype == TG_F32 ? 4 : 8; }

const char *tg_dtype_name(tg_dtype dtype)
{
    switch (dtype) {
    case TG_F32: return "float32";
    case TG_F64: return "float64";
    case TG_I64: return "int64";
    }
    return "unknown";
}

bool tg_is_float(tg_dtype dtype) { return dtype == TG_F32 || dtype == TG_F64; }

int tg_shape_check(const char *op, int ndim, const int64_t *shape, int64_t *numel)
{
    if (ndim < 0 || ndim > TG_MAX_DIMS) {
        tg_error("%s: %d dimensions requested, expected 0 to %d", op, ndim, TG_MAX_DIMS);
        return -1;
    }
    if (ndim > 0 && !shape) {
        tg_error("%s: shape is NULL for %d dimensions", op, ndim);
        return -1;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            tg_error("%s: dimension %d is %lld, expected >= 0", op, i, (long long)shape[i]);
            return -1;
        }
        /* Cap the element count so that numel * 8 bytes fits in int64 and size_t. */
        if (shape[i] != 0 && n > (INT64_MAX / 8) / shape[i]) {
            tg_error("%s: shape too large (element count overflows at dimension %d)", op, i);
            return -1;
        }
        n *= shape[i];
    }
    if ((uint64_t)n * 8 > (uint64_t)SIZE_MAX) {
        tg_error("%s: shape too large for this machine's address space", op);
        return -1;
    }
    *numel = n;
    return 0;
}

void tg_tensor_init(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape, int64_t numel, tg_owner owner)
{
    memset(t, 0, sizeof *t);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->numel = numel;
    t->owner = owner;
    tg_tensor_seal(t);
}

tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t numel;
    if (dtype != TG_F32 && dtype != TG_F64 && dtype != TG_I64)
        return tg_error("tg_tensor_new: unknown dtype %d", (int)dtype);
    if (tg_shape_check("tg_tensor_new", ndim, shape, &numel))
        return NULL;
    tg_tensor *t = tg_alloc(sizeof *t);
    if (!t)
        return NULL;
    tg_tensor_init(t, dtype, ndim, shape, numel, TG_OWNED_BY_CALLER);
    t->data = tg_alloc_zeroed((size_t)numel * tg_dtype_size(dtype));
    if (!t->data) {
        tg_dealloc(t);
        return NULL;
    }
    return t;
}

tg_tensor *tg_tensor_from(tg_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    if (t && t->numel > 0) {
        if (!data) {
            tg_tensor_free(t);
            return tg_error("tg_tensor_from: data is NULL");
        }
        memcpy(t->data, data, (size_t)t->numel * tg_dtype_size(dtype));
    }
    return t;
}

tg_tensor *tg_tensor_clone(const tg_tensor *t)
{
    if (!t)
        return NULL;
    return tg_tensor_from(t->dtype, t->ndim, t->shape, t->data);
}

void tg_tensor_free(tg_tensor *t)
{
    if (!t || t->owner != TG_OWNED_BY_CALLER)
        return;
    tg_tensor_free(t->grad);
    tg_col_set_free(t->grad_cols);
    tg_dealloc(t->data);
    tg_dealloc(t);
}

void tg_set_requires_grad(tg_tensor *t, int on)
{
    if (t)
        t->requires_grad = on != 0 && tg_is_float(t->dtype);
}

int tg_requires_grad(const tg_tensor *t) { return t && t->requires_grad; }
void *tg_data(const tg_tensor *t) { return t ? t->data : NULL; }
tg_tensor *tg_grad(const tg_tensor *t) { return t ? t->grad : NULL; }
tg_dtype tg_dtype_of(const tg_tensor *t)
{
    if (!t) {
        tg_error("tg_dtype_of: tensor is NULL");
        return (tg_dtype)-1;
    }
    return t->dtype;
}
int tg_ndim(const tg_tensor *t) { return t ? t->ndim : -1; }
const int64_t *tg_shape(const tg_tensor *t) { return t ? t->shape : NULL; }
int64_t tg_numel(const tg_tensor *t) { return t ? t->numel : -1; }

int tg_axis(int axis, int ndim)
{
    if (axis < 0)
        axis += ndim;
    return axis >= 0 && axis < ndim ? axis : -1;
}

void tg_axis_split(const tg_tensor *x, int axis, int64_t *outer, int64_t *n, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++)
        *outer *= x->shape[i];
    for (int i = axis + 1; i < x->ndim; i++)
        *inner *= x->shape[i];
    *n = x->shape[axis];
}

int tg_resolve_axis(const char *op, const tg_tensor *x, int axis)
{
    int a = tg_axis(axis, x->ndim);
    if (a < 0) {
        char s[TG_SHAPE_BUF];
        tg_error("%s: axis %d is out of range for shape %s (%d dimensions)", op, axis,
                 tg_shape_str(s, sizeof s, x->ndim, x->shape), x->ndim);
    }
    return a;
}

int64_t tg_dim(const tg_tensor *t, int axis)
{
    if (!t)
        return -1;
    int a = tg_axis(axis, t->ndim);
    return a < 0 ? -1 : t->shape[a];
}

bool tg_same_shape(const tg_tensor *a, const tg_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

/* Element access without checks, for the loops below that stay in range by construction. */
static void set_element(tg_tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case TG_F32: ((float *)t->data)[i] = (float)v; break;
    case TG_F64: ((double *)t->data)[i] = v; break;
    case TG_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    }
}

/* The one check of an element index: a NULL tensor or an index outside [0, numel) is an error. */
static bool element_in_range(const char *fn, const tg_tensor *t, int64_t i)
{
    if (!t) {
        tg_error("%s: tensor is NULL", fn);
        return false;
    }
    if (i < 0 || i >= t->numel) {
        char s[TG_SHAPE_BUF];
        tg_error("%s: index %lld is out of range for %lld elements (shape %s)", fn, (long long)i, (long long)t->numel,
                 tg_shape_str(s, sizeof s, t->ndim, t->shape));
        return false;
    }
    return true;
}

double tg_get(const tg_tensor *t, int64_t i)
{
    if (!element_in_range("tg_get", t, i))
        return NAN;
    switch (t->dtype) {
    case TG_F32: return ((const float *)t->data)[i];
    case TG_F64: return ((const double *)t->data)[i];
    case TG_I64: return (double)((const int64_t *)t->data)[i];
    }
    return 0.0;
}

void tg_set(tg_tensor *t, int64_t i, double v)
{
    if (element_in_range("tg_set", t, i))
        set_element(t, i, v);
}

void tg_fill(tg_tensor *t, double v)
{
    if (!t)
        return;
    for (int64_t i = 0; i < t->numel; i++)
        set_element(t, i, v);
}

void tg_zero_grad(tg_tensor *t)
{
    if (t && t->grad)
        memset(t->grad->data, 0, (size_t)t->grad->numel * tg_dtype_size(t->grad->dtype));
    if (t) {
        tg_col_set_clear(t->grad_cols);
        t->grad_dense = false;
    }
}
