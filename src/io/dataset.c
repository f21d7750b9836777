/* Data sets: freeing, row subsets, shuffled splits and standardization. */
#include "dist/dist.h"
#include "io/io_internal.h"

#include <math.h>
#include <string.h>

void tg_dataset_free(tg_dataset *ds)
{
    if (!ds)
        return;
    tg_dealloc(ds->x);
    tg_dealloc(ds->y);
    tg_dealloc(ds->row_ptr);
    tg_dealloc(ds->col);
    tg_dealloc(ds->val);
    tg_free_strings(ds->label_names, ds->classes);
    tg_free_strings(ds->feature_names, ds->features);
    tg_dealloc(ds);
}

/* A copy of n strings (NULL stays NULL); *failed on allocation failure. */
static char **copy_strings(char *const *strings, int64_t n, bool *failed)
{
    if (!strings)
        return NULL;
    char **copy = tg_alloc_zeroed((size_t)n * sizeof(char *));
    for (int64_t i = 0; copy && i < n; i++)
        if (!(copy[i] = tg_strdup(strings[i]))) {
            tg_free_strings(copy, n);
            copy = NULL;
        }
    *failed = !copy;
    return copy;
}

/* A new data set with ds's classes and names and room for n rows of labels (x and the CSR left to the caller). */
static tg_dataset *empty_like(const tg_dataset *ds, int64_t n)
{
    bool failed = false;
    tg_dataset *out = tg_alloc_zeroed(sizeof *out);
    if (!out)
        return NULL;
    out->rows = n;
    out->features = ds->features;
    out->classes = ds->classes;
    if (!(out->y = tg_alloc((size_t)(n ? n : 1) * sizeof(int64_t))))
        goto fail;
    out->label_names = copy_strings(ds->label_names, ds->classes, &failed);
    if (failed)
        goto fail;
    out->feature_names = copy_strings(ds->feature_names, ds->features, &failed);
    if (failed)
        goto fail;
    return out;
fail:
    tg_dataset_free(out);
    return NULL;
}

/* tg_dataset_subset of a sparse data set: the rows' non-zeros, counted first so each array is allocated once. */
static tg_dataset *sparse_subset(const tg_dataset *ds, const int64_t *idx, int64_t n)
{
    if (!ds->row_ptr)
        return tg_error("dataset_subset: the data set has neither x nor row_ptr");
    uint64_t nnz = 0;
    for (int64_t i = 0; i < n; i++)
        nnz += (uint64_t)(ds->row_ptr[idx[i] + 1] - ds->row_ptr[idx[i]]);
    if ((uint64_t)n >= SIZE_MAX / sizeof(int64_t) || nnz > SIZE_MAX / sizeof(float))
        return tg_error("dataset_subset: %lld rows with %llu non-zeros are too many", (long long)n,
                        (unsigned long long)nnz);
    tg_dataset *out = empty_like(ds, n);
    if (!out)
        return NULL;
    out->nnz = (int64_t)nnz;
    out->row_ptr = tg_alloc((size_t)(n + 1) * sizeof(int64_t));
    out->col = tg_alloc((size_t)(nnz ? nnz : 1) * sizeof(int32_t));
    out->val = tg_alloc((size_t)(nnz ? nnz : 1) * sizeof(float));
    if (!out->row_ptr || !out->col || !out->val) {
        tg_dataset_free(out);
        return NULL;
    }
    out->row_ptr[0] = 0;
    for (int64_t i = 0, k = 0; i < n; i++) {
        int64_t a = ds->row_ptr[idx[i]], len = ds->row_ptr[idx[i] + 1] - a;
        memcpy(out->col + k, ds->col + a, (size_t)len * sizeof(int32_t));
        memcpy(out->val + k, ds->val + a, (size_t)len * sizeof(float));
        k += len;
        out->row_ptr[i + 1] = k;
        out->y[i] = ds->y[idx[i]];
    }
    return out;
}

tg_dataset *tg_dataset_subset(const tg_dataset *ds, const int64_t *idx, int64_t n)
{
    if (!ds)
        return tg_error("dataset_subset: the data set is NULL");
    if (n < 0)
        return tg_error("dataset_subset: n is %lld, expected at least 0", (long long)n);
    if (n > 0 && !idx)
        return tg_error("dataset_subset: idx is NULL with n %lld", (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= ds->rows)
            return tg_error("dataset_subset: idx[%lld] is %lld, expected [0, %lld)", (long long)i, (long long)idx[i],
                            (long long)ds->rows);
    if (!ds->x)
        return sparse_subset(ds, idx, n);
    /* n rows of features floats fit whenever ds's rows do, unless idx repeats rows */
    if (ds->features > 0 && (uint64_t)n > SIZE_MAX / sizeof(float) / (uint64_t)ds->features)
        return tg_error("dataset_subset: %lld rows of %lld features are too many", (long long)n,
                        (long long)ds->features);

    size_t row_bytes = (size_t)ds->features * sizeof(float);
    tg_dataset *out = empty_like(ds, n);
    if (!out || !(out->x = tg_alloc((size_t)n * row_bytes)))
        goto fail;
    for (int64_t i = 0; i < n; i++) {
        memcpy(out->x + i * ds->features, ds->x + idx[i] * ds->features, row_bytes);
        out->y[i] = ds->y[idx[i]];
    }
    return out;
fail:
    tg_dataset_free(out);
    return NULL;
}

/* The split's row order: Fisher-Yates, each position taking a uniformly chosen row from those left. */
int64_t *tg_shuffled_order(int64_t rows, tg_rng *rng)
{
    int64_t *order = tg_alloc((size_t)rows * sizeof(int64_t));
    if (!order)
        return NULL;
    for (int64_t i = 0; i < rows; i++)
        order[i] = i;
    for (int64_t i = rows - 1; i > 0; i--) {
        int64_t j = (int64_t)tg_rng_below(rng, (uint64_t)i + 1);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    return order;
}

/* tg_dataset_split_off of a sparse data set: both parts copied out (the same rows in the same order as the
 * dense path), then ds takes the first part's arrays. Briefly holds the data twice. */
static int sparse_split_off(tg_dataset *ds, double fraction, tg_rng *rng, tg_dataset **second)
{
    tg_dataset *first = NULL;
    if (tg_dataset_split(ds, fraction, rng, &first, second))
        return -1;
    tg_dealloc(ds->y);
    tg_dealloc(ds->row_ptr);
    tg_dealloc(ds->col);
    tg_dealloc(ds->val);
    ds->rows = first->rows;
    ds->nnz = first->nnz;
    ds->y = first->y;
    ds->row_ptr = first->row_ptr;
    ds->col = first->col;
    ds->val = first->val;
    first->y = NULL;
    first->row_ptr = NULL;
    first->col = NULL;
    first->val = NULL;
    tg_dataset_free(first);
    return 0;
}

int tg_dataset_split_off(tg_dataset *ds, double fraction, tg_rng *rng, tg_dataset **second)
{
    if (!(fraction >= 0.0 && fraction < 1.0))
        return tg_error("dataset_split: fraction %g, expected [0, 1)", fraction), -1;
    if ((uint64_t)ds->rows > SIZE_MAX / sizeof(int64_t))
        return tg_error("dataset_split: %lld rows are too many", (long long)ds->rows), -1;
    if (!ds->x)
        return sparse_split_off(ds, fraction, rng, second);
    int64_t n_second = (int64_t)round(fraction * (double)ds->rows), n_first = ds->rows - n_second;
    int64_t f = ds->features;
    int64_t *order = tg_shuffled_order(ds->rows, rng);
    unsigned char *done = order ? tg_alloc_zeroed((size_t)ds->rows) : NULL;
    float *row = done ? tg_alloc((size_t)(f ? f : 1) * sizeof(float)) : NULL;
    tg_dataset *b = row ? tg_dataset_subset(ds, order + n_first, n_second) : NULL;
    if (!b) {
        tg_dealloc(order);
        tg_dealloc(done);
        tg_dealloc(row);
        return -1;
    }
    /* Row i takes old row order[i], one permutation cycle at a time with one row in hand. */
    size_t row_bytes = (size_t)f * sizeof(float);
    for (int64_t start = 0; start < ds->rows; start++) {
        if (done[start])
            continue;
        memcpy(row, ds->x + start * f, row_bytes);
        int64_t label = ds->y[start], j = start;
        while (order[j] != start) {
            memcpy(ds->x + j * f, ds->x + order[j] * f, row_bytes);
            ds->y[j] = ds->y[order[j]];
            done[j] = 1;
            j = order[j];
        }
        memcpy(ds->x + j * f, row, row_bytes);
        ds->y[j] = label;
        done[j] = 1;
    }
    ds->rows = n_first;
    /* Give the split-off rows' memory back (a large block shrinks in place). */
    float *fewer = n_first && f ? tg_realloc(ds->x, (size_t)(n_first * f) * sizeof(float)) : NULL;
    if (fewer)
        ds->x = fewer;
    tg_clear_error(); /* a refused shrink is harmless: the block stays as it was */
    tg_dealloc(order);
    tg_dealloc(done);
    tg_dealloc(row);
    *second = b;
    return 0;
}

int tg_dataset_split(const tg_dataset *ds, double fraction, tg_rng *rng, tg_dataset **first, tg_dataset **second)
{
    if (!ds || !rng || !first || !second)
        return tg_error("dataset_split: the data set, rng, first and second must not be NULL"), -1;
    if (!(fraction >= 0.0 && fraction < 1.0))
        return tg_error("dataset_split: fraction %g, expected [0, 1)", fraction), -1;
    if ((uint64_t)ds->rows > SIZE_MAX / sizeof(int64_t))
        return tg_error("dataset_split: %lld rows are too many", (long long)ds->rows), -1;
    tg_dataset *a = NULL, *b = NULL;
    int64_t *order = tg_shuffled_order(ds->rows, rng);
    if (!order)
        return -1;
    int64_t n_second = (int64_t)round(fraction * (double)ds->rows);
    int64_t n_first = ds->rows - n_second;
    if (!(a = tg_dataset_subset(ds, order, n_first)) || !(b = tg_dataset_subset(ds, order + n_first, n_second)))
        goto fail;
    tg_dealloc(order);
    *first = a;
    *second = b;
    return 0;
fail:
    tg_dataset_free(a);
    tg_dealloc(order);
    return -1;
}

/* Scaling only for sparse data (StandardScaler(with_mean=False)): the population deviation of each column,
 * its implicit zeros counted, from per-column sums in double; mean 0. One pass over the non-zeros, with
 * [features] doubles of scratch. */
/* The sparse moments' two passes over stored values (also a sparse stream's, block by block in file order). */
void tg_sparse_moments_add_sums(double *sum, int64_t *stored, const int32_t *col, const float *val, int64_t nnz)
{
    for (int64_t k = 0; k < nnz; k++) {
        sum[col[k]] += val[k];
        stored[col[k]]++;
    }
}

void tg_sparse_moments_add_squares(double *squares, const double *sum, int64_t rows, const int32_t *col,
                                   const float *val, int64_t nnz)
{
    for (int64_t k = 0; k < nnz; k++) {
        double d = val[k] - sum[col[k]] / (double)rows;
        squares[col[k]] += d * d;
    }
}

void tg_sparse_moments_finish(const double *sum, const double *squares, const int64_t *stored, int64_t rows,
                              int64_t features, float *mean, float *std)
{
    for (int64_t f = 0; f < features; f++) {
        double mu = sum[f] / (double)rows;
        double var = (squares[f] + (double)(rows - stored[f]) * mu * mu) / (double)rows;
        mean[f] = 0.0f;
        std[f] = (float)sqrt(var);
        if (std[f] == 0.0f)
            std[f] = 1.0f;
    }
}

/* ranks: ds is this rank's share of `rows` rows; each pass's sums are added over every rank (stored counts
 * as float64: exact below 2^53) before they are used, so every rank gets the moments of all the rows. */
static int sparse_moments(const tg_dataset *ds, int64_t rows, bool ranks, float *mean, float *std)
{
    int64_t features = ds->features;
    if ((uint64_t)features > SIZE_MAX / (3 * sizeof(double)))
        return tg_error("dataset_moments: %lld features are too many", (long long)features), -1;
    size_t room = (size_t)(features ? features : 1);
    double *sum = tg_alloc_zeroed(room * 3 * sizeof(double));
    int64_t *stored = sum ? tg_alloc_zeroed(room * sizeof(int64_t)) : NULL;
    if (!stored) {
        tg_dealloc(sum);
        return -1;
    }
    double *squares = sum + features, *count = squares + features;
    /* Two passes as the dense path: the means, then the squared deviations of the stored values, plus
     * mu^2 for each implicit zero. */
    tg_sparse_moments_add_sums(sum, stored, ds->col, ds->val, ds->nnz);
    int status = 0;
    if (ranks) {
        for (int64_t f = 0; f < features; f++)
            count[f] = (double)stored[f];
        status = tg_dist_sum(sum, features, TG_F64) || tg_dist_sum(count, features, TG_F64) ? -1 : 0;
        for (int64_t f = 0; f < features; f++)
            stored[f] = (int64_t)count[f];
    }
    if (!status) {
        tg_sparse_moments_add_squares(squares, sum, rows, ds->col, ds->val, ds->nnz);
        if (ranks && tg_dist_sum(squares, features, TG_F64))
            status = -1;
    }
    if (!status)
        tg_sparse_moments_finish(sum, squares, stored, rows, features, mean, std);
    tg_dealloc(stored);
    tg_dealloc(sum);
    return status;
}

/* The dense moments' two passes, a block of rows at a time (also what a stream adds up, block by
 * block in file order, so the sums and their bits are the same). */
void tg_moments_add_sums(double *sum, const float *x, int64_t rows, int64_t features)
{
    for (int64_t r = 0; r < rows; r++, x += features)
        for (int64_t f = 0; f < features; f++)
            sum[f] += x[f];
}

void tg_moments_add_squares(double *squares, const double *mean, const float *x, int64_t rows, int64_t features)
{
    for (int64_t r = 0; r < rows; r++, x += features)
        for (int64_t f = 0; f < features; f++) {
            double d = x[f] - mean[f];
            squares[f] += d * d;
        }
}

void tg_moments_finish(const double *mean, const double *squares, int64_t rows, int64_t features, float *mean_out,
                       float *std_out)
{
    for (int64_t f = 0; f < features; f++) {
        mean_out[f] = (float)mean[f];
        std_out[f] = (float)sqrt(squares[f] / (double)rows);
        if (std_out[f] == 0.0f) /* a constant column passes through centred */
            std_out[f] = 1.0f;
    }
}

static int moments(const tg_dataset *ds, int64_t rows, bool ranks, float *mean, float *std)
{
    if (!ds || !mean || !std)
        return tg_error("dataset_moments: the data set, mean and std must not be NULL"), -1;
    if (rows <= 0)
        return tg_error("dataset_moments: the data set has no rows"), -1;
    int64_t features = ds->features;
    if (!ds->x && !ds->row_ptr && ds->rows > 0)
        return tg_error("dataset_moments: the data set has neither x nor row_ptr"), -1;
    if (!ds->x && ds->row_ptr) /* sparse: a rank whose share has no rows still has row_ptr[0] */
        return sparse_moments(ds, rows, ranks, mean, std);
    /* Two passes in double: the mean, then the squared deviations from it. Rows
     * are read in order (each feature's sum adds its rows in row order, as a
     * column walk would), so the data are streamed once per pass, not once per feature. */
    double *sum = tg_alloc_zeroed((size_t)(features ? features : 1) * sizeof *sum);
    double *squares = tg_alloc_zeroed((size_t)(features ? features : 1) * sizeof *squares);
    if (!sum || !squares) {
        tg_dealloc(sum);
        tg_dealloc(squares);
        return -1;
    }
    int status = 0;
    if (ds->x)
        tg_moments_add_sums(sum, ds->x, ds->rows, features);
    if (ranks && tg_dist_sum(sum, features, TG_F64))
        status = -1;
    for (int64_t f = 0; f < features; f++)
        sum[f] /= (double)rows; /* now the mean */
    if (!status && ds->x)
        tg_moments_add_squares(squares, sum, ds->x, ds->rows, features);
    if (!status && ranks && tg_dist_sum(squares, features, TG_F64))
        status = -1;
    if (!status)
        tg_moments_finish(sum, squares, rows, features, mean, std);
    tg_dealloc(sum);
    tg_dealloc(squares);
    return status;
}

int tg_dataset_moments(const tg_dataset *ds, float *mean, float *std)
{
    return moments(ds, ds ? ds->rows : 0, false, mean, std);
}

int tg_dataset_moments_ranks(const tg_dataset *ds, int64_t rows, float *mean, float *std)
{
    return moments(ds, rows, true, mean, std);
}

void tg_dataset_standardize(tg_dataset *ds, const float *mean, const float *std)
{
    if (!ds || !mean || !std)
        return;
    if (!ds->x) { /* scaling only: centring would densify */
        for (int64_t k = 0; k < ds->nnz; k++)
            ds->val[k] = (float)((double)ds->val[k] / std[ds->col[k]]);
        return;
    }
    for (int64_t r = 0; r < ds->rows; r++) {
        float *x = ds->x + r * ds->features;
        for (int64_t f = 0; f < ds->features; f++)
            x[f] = (float)(((double)x[f] - mean[f]) / std[f]);
    }
}
