/* What the ops (src/ops/) share: input checks, the matrix-product kernels,
 * the vectorised row kernels and the softmax-line start, plus the machinery
 * of the elementwise ops (unary and binary kernels with broadcasting) and the
 * loss reductions. */
#ifndef TAPEGRAD_OPS_H
#define TAPEGRAD_OPS_H

#include "autograd/tape.h"

/* ---- shared op helpers (src/ops/elementwise.c) ---- */

/* Validates a single-input op: non-NULL, float dtype. */
bool tg_check_float_input(const char *op, const tg_tensor *x);
/* Validates a two-input op: non-NULL, same float dtype. */
bool tg_check_float_pair(const char *op, const tg_tensor *a, const tg_tensor *b);

/* C (m x n) = op(A) op(B), or C += op(A) op(B) when accumulate. Row-major;
 * op(A) is m x k (A stored k x m when trans_a), op(B) is k x n (B stored
 * n x k when trans_b). The one place matrix products are computed. */
void tg_gemm(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a, const void *b,
             void *c, bool accumulate);
/* The library's own kernels for a thin product (src/ops/gemm_thin.c): A B^T
 * with n <= TG_THIN, or A^T B with m <= TG_THIN. false when the shape is not
 * one of those (then nothing was computed). */
#define TG_THIN 16
bool tg_gemm_thin(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                  const void *b, void *c, bool accumulate);
/* tg_gemm with the thin kernels tried for every layout first (n <= TG_THIN
 * whatever the transposes, or m <= TG_THIN for A^T B): tg_matmul's products,
 * whose weight is [in, out]. tg_linear stays on tg_gemm,
 * whose thin kernels are those of its own layout, so that its results do not
 * change. */
void tg_gemm_any_layout(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                        const void *b, void *c, bool accumulate);
bool tg_gemm_thin_any_layout(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                             const void *b, void *c, bool accumulate);

/* out[i] = exp(x[i] - shift) over a row; returns the sum of out (src/ops/exp_kernel.c).
 * Vectorised: within 2 ulp of libm's expf / exp; results below FLT_MIN / DBL_MIN flush to 0. */
float tg_exp_row_f32(const float *x, float shift, float *out, int64_t n);
double tg_exp_row_f64(const double *x, double shift, double *out, int64_t n);
/* out[i] = log(x[i]) for x[i] >= 1 (a softmax row's sum of exps), vectorised, within 2 ulp of logf. */
void tg_log_row_f32(const float *x, float *out, int64_t n);
/* The largest element of a row, NaNs skipped (-inf for an empty or all-NaN row). */
float tg_max_row_f32(const float *x, int64_t n);
/* A softmax line's start (src/ops/softmax_rows.c): e = exp(x - max) over a contiguous row with the
 * vectorised kernels; returns the sum of e (in double) and the max in *max. */
double tg_row_exps(tg_dtype dtype, const void *x, void *e, int64_t n, double *max);
/* The same over a line of n values `stride` elements apart, each exp by libm in the line's
 * precision, summed in double; the exps go into out (same stride) when out is not NULL. */
double tg_line_exps(tg_dtype dtype, const void *x, int64_t n, int64_t stride, void *out, double *max);

#endif
