/* Sparse inputs: CSR batches of rows (the left operand of tg_sparse_linear)
 * and the column sets that make a parameter's gradient column-sparse. A batch
 * keeps its buffers between gathers, so a training loop allocates only until
 * it has seen its largest batch (or not at all, when it reserved for that
 * batch first: tg_sparse_csr_reserve). */
#include "tensor/tensor_internal.h"

#include <string.h>

int tg_sparse_csr_reserve(tg_sparse_csr *s, int64_t rows, int64_t nnz)
{
    if ((uint64_t)rows >= SIZE_MAX / sizeof(int64_t) || (uint64_t)nnz > SIZE_MAX / sizeof(double))
        return tg_error("sparse_csr: %lld rows with %lld non-zeros are too many", (long long)rows, (long long)nnz), -1;
    if (rows > s->row_cap || !s->row_ptr) {
        int64_t *row_ptr = tg_realloc(s->row_ptr, (size_t)(rows + 1) * sizeof(int64_t));
        if (!row_ptr)
            return -1;
        s->row_ptr = row_ptr;
        s->row_cap = rows;
    }
    if (nnz > s->nnz_cap) {
        int32_t *col = tg_realloc(s->col, (size_t)nnz * sizeof(int32_t));
        if (!col)
            return -1;
        s->col = col;
        void *val = tg_realloc(s->val, (size_t)nnz * tg_dtype_size(s->dtype));
        if (!val)
            return -1;
        s->val = val;
        s->nnz_cap = nnz;
    }
    return 0;
}

void tg_sparse_csr_free(tg_sparse_csr *s)
{
    if (!s)
        return;
    tg_dealloc(s->row_ptr);
    tg_dealloc(s->col);
    tg_dealloc(s->val);
    tg_dealloc(s);
}

/* Checks row_ptr and col as the header promises; names the first bad entry. */
static int check_csr(int64_t rows, int64_t cols, int64_t nnz, const int64_t *row_ptr, const int32_t *col)
{
    if (row_ptr[0] != 0 || row_ptr[rows] != nnz)
        return tg_error("sparse_csr_new: row_ptr runs from %lld to %lld, expected 0 to nnz %lld", (long long)row_ptr[0],
                        (long long)row_ptr[rows], (long long)nnz),
               -1;
    for (int64_t r = 0; r < rows; r++) {
        if (row_ptr[r + 1] < row_ptr[r] || row_ptr[r + 1] > nnz)
            return tg_error("sparse_csr_new: row_ptr[%lld] is %lld after %lld, expected non-decreasing up to %lld",
                            (long long)r + 1, (long long)row_ptr[r + 1], (long long)row_ptr[r], (long long)nnz),
                   -1;
        for (int64_t k = row_ptr[r]; k < row_ptr[r + 1]; k++) {
            if (col[k] < 0 || col[k] >= cols)
                return tg_error("sparse_csr_new: col[%lld] (row %lld) is %d, expected [0, %lld)", (long long)k,
                                (long long)r, (int)col[k], (long long)cols),
                       -1;
            if (k > row_ptr[r] && col[k] <= col[k - 1])
                return tg_error("sparse_csr_new: col[%lld] (row %lld) is %d after %d, expected increasing columns "
                                "within a row",
                                (long long)k, (long long)r, (int)col[k], (int)col[k - 1]),
                       -1;
        }
    }
    return 0;
}

tg_sparse_csr *tg_sparse_csr_new(tg_dtype dtype, int64_t rows, int64_t cols, int64_t nnz, const int64_t *row_ptr,
                                 const int32_t *col, const void *values)
{
    if (!tg_is_float(dtype))
        return tg_error("sparse_csr_new: dtype %s, expected float32 or float64", tg_dtype_name(dtype));
    if (rows < 0 || cols < 0 || nnz < 0 || cols > INT32_MAX)
        return tg_error("sparse_csr_new: rows %lld, cols %lld, nnz %lld; expected >= 0 and cols <= 2^31 - 1",
                        (long long)rows, (long long)cols, (long long)nnz);
    if ((rows > 0 && !row_ptr) || (nnz > 0 && (!col || !values)))
        return tg_error("sparse_csr_new: row_ptr, col or values is NULL with %lld rows and %lld non-zeros",
                        (long long)rows, (long long)nnz);
    if (row_ptr && check_csr(rows, cols, nnz, row_ptr, col))
        return NULL;
    if (!row_ptr && nnz > 0)
        return tg_error("sparse_csr_new: %lld non-zeros in 0 rows", (long long)nnz);
    tg_sparse_csr *s = tg_alloc_zeroed(sizeof *s);
    if (!s)
        return NULL;
    s->dtype = dtype;
    if (tg_sparse_csr_reserve(s, rows, nnz)) {
        tg_sparse_csr_free(s);
        return NULL;
    }
    s->rows = rows;
    s->cols = cols;
    s->nnz = nnz;
    if (row_ptr)
        memcpy(s->row_ptr, row_ptr, (size_t)(rows + 1) * sizeof(int64_t));
    else
        s->row_ptr[0] = 0;
    if (nnz > 0) {
        memcpy(s->col, col, (size_t)nnz * sizeof(int32_t));
        memcpy(s->val, values, (size_t)nnz * tg_dtype_size(dtype));
    }
    return s;
}

int tg_sparse_csr_gather(tg_sparse_csr *dst, const tg_dataset *ds, const int64_t *idx, int64_t first, int64_t n)
{
    if (!dst || !ds)
        return tg_error("sparse_csr_gather: dst and ds must not be NULL"), -1;
    if (ds->x || !ds->row_ptr)
        return tg_error("sparse_csr_gather: the data set is dense (x is set), expected a sparse one"), -1;
    if (n < 0 || (!idx && (first < 0 || first > ds->rows - n)))
        return tg_error("sparse_csr_gather: rows %lld .. %lld of %lld", (long long)first, (long long)(first + n),
                        (long long)ds->rows),
               -1;
    if (ds->features > INT32_MAX)
        return tg_error("sparse_csr_gather: %lld features, at most 2^31 - 1", (long long)ds->features), -1;
    int64_t nnz = 0;
    for (int64_t r = 0; r < n; r++) {
        int64_t row = idx ? idx[r] : first + r;
        if (row < 0 || row >= ds->rows)
            return tg_error("sparse_csr_gather: idx[%lld] is %lld, expected [0, %lld)", (long long)r, (long long)row,
                            (long long)ds->rows),
                   -1;
        nnz += ds->row_ptr[row + 1] - ds->row_ptr[row];
    }
    if (tg_sparse_csr_reserve(dst, n, nnz))
        return -1;
    dst->rows = n;
    dst->cols = ds->features;
    dst->nnz = nnz;
    dst->row_ptr[0] = 0;
    int64_t k = 0;
    TG_FLOAT_DISPATCH(dst->dtype, T, {
        T *val = dst->val;
        for (int64_t r = 0; r < n; r++) {
            int64_t row = idx ? idx[r] : first + r, a = ds->row_ptr[row], b = ds->row_ptr[row + 1];
            if (b > a) /* an empty batch has no col buffer to offset */
                memcpy(dst->col + k, ds->col + a, (size_t)(b - a) * sizeof(int32_t));
            for (int64_t j = a; j < b; j++)
                val[k++] = (T)ds->val[j];
            dst->row_ptr[r + 1] = k;
        }
    });
    return 0;
}

int64_t tg_sparse_csr_rows(const tg_sparse_csr *s) { return s ? s->rows : -1; }
int64_t tg_sparse_csr_cols(const tg_sparse_csr *s) { return s ? s->cols : -1; }
int64_t tg_sparse_csr_nnz(const tg_sparse_csr *s) { return s ? s->nnz : -1; }
tg_dtype tg_sparse_csr_dtype(const tg_sparse_csr *s)
{
    if (!s)
        return tg_error("sparse_csr_dtype: the matrix is NULL"), (tg_dtype)-1;
    return s->dtype;
}

tg_tensor *tg_sparse_csr_to_dense(const tg_sparse_csr *s)
{
    if (!s)
        return tg_error("sparse_csr_to_dense: the matrix is NULL");
    tg_tensor *t = tg_tensor_new(s->dtype, 2, (int64_t[]){ s->rows, s->cols });
    if (!t)
        return NULL;
    TG_FLOAT_DISPATCH(s->dtype, T, {
        T *out = t->data;
        const T *val = s->val;
        for (int64_t r = 0; r < s->rows; r++)
            for (int64_t k = s->row_ptr[r]; k < s->row_ptr[r + 1]; k++)
                out[r * s->cols + s->col[k]] = val[k];
    });
    return t;
}

/* ---- column sets ---- */

int tg_col_set_add(tg_tensor *param, const tg_sparse_csr *x, int axis)
{
    tg_col_set *set = param->grad_cols;
    int64_t size = param->shape[axis];
    if (set && set->axis != axis) { /* rows and columns both touched: no slice set describes it */
        param->grad_dense = true;
        return 0;
    }
    if (!set) {
        set = tg_alloc_zeroed(sizeof *set);
        if (!set)
            return -1;
        set->axis = axis;
        set->size = size;
        set->list = tg_alloc((size_t)(size ? size : 1) * sizeof(int32_t));
        set->mark = tg_alloc_zeroed((size_t)(size ? size : 1));
        if (!set->list || !set->mark) {
            tg_col_set_free(set);
            return -1;
        }
        param->grad_cols = set;
    }
    for (int64_t k = 0; k < x->nnz; k++) {
        int32_t c = x->col[k];
        if (!set->mark[c]) {
            set->mark[c] = 1;
            set->list[set->n++] = c;
        }
    }
    return 0;
}

void tg_col_set_clear(tg_col_set *set)
{
    if (!set || !set->n)
        return;
    for (int64_t i = 0; i < set->n; i++)
        set->mark[set->list[i]] = 0;
    set->n = 0;
}

void tg_col_set_free(tg_col_set *set)
{
    if (!set)
        return;
    tg_dealloc(set->list);
    tg_dealloc(set->mark);
    tg_dealloc(set);
}
