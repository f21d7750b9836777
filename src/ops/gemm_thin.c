/* Matrix products with one thin side (at most TG_THIN columns of output, or
 * rows of a weight gradient): the shapes of logistic regression and of an
 * MLP's last layer, with the weight as [out, in] (tg_linear) or [in, out]
 * (tg_matmul). BLAS is slow there (packing and threading cost more than the
 * arithmetic), so these kernels keep every output of a row in registers and
 * stream the wide operand once, with GCC vector types so the reduction order
 * is fixed by the code (no -ffast-math needed). */
#include "ops/ops.h"

#include <string.h>

#define VEC_BYTES TG_VEC_BYTES

/* c[i, j] (+)= sum_p A(i, p) B(p, j) for j < n <= TG_THIN, whatever the layouts: A(i, p) = a[i * a_row +
 * p * a_col], B(p, j) = b[p * b_row + j * b_col]. B is first copied into [k][lanes] on the stack, so that a
 * row's n outputs are lanes of one or two vectors: each A(i, p) is broadcast and multiplied into them, with no
 * horizontal sums at the end. Eight rows at a time keep eight independent accumulator chains in flight; the
 * vector count is a constant in the common cases so that the accumulators live in registers. For
 * k too large for the stack copy, the caller splits k. Always inlined into one function per layout of A, so
 * that A's unit stride is a constant. */
#define THIN_OUT_MAX_K 1024
#define THIN_OUT_ROWS 8
#define DEFINE_THIN_OUT(NAME, T)                                                                                       \
    static inline __attribute__((always_inline)) void NAME(int64_t m, int64_t n, int64_t k, const T *a, int64_t a_row, \
                                                           int64_t a_col, const T *b, int64_t b_row, int64_t b_col,    \
                                                           T *c, bool accumulate)                                      \
    {                                                                                                                  \
        typedef T vec __attribute__((vector_size(VEC_BYTES)));                                                         \
        enum { W = VEC_BYTES / sizeof(T), NV = (TG_THIN + W - 1) / W };                                                \
        vec bt[THIN_OUT_MAX_K][NV];                                                                                    \
        int nv = (int)((n + W - 1) / W);                                                                               \
        if (b_col == 1) /* rows of B contiguous: copy them, zero the lanes past n */                                   \
            for (int64_t p = 0; p < k; p++) {                                                                          \
                memset(bt[p], 0, sizeof bt[p]);                                                                        \
                memcpy(bt[p], b + p * b_row, (size_t)n * sizeof(T));                                                   \
            }                                                                                                          \
        else {                                                                                                         \
            memset(bt, 0, (size_t)k * sizeof bt[0]);                                                                   \
            for (int64_t j = 0; j < n; j++)                                                                            \
                for (int64_t p = 0; p < k; p++)                                                                        \
                    bt[p][j / W][j % W] = b[p * b_row + j * b_col];                                                    \
        }                                                                                                              \
        for (int64_t i0 = 0; i0 < m; i0 += THIN_OUT_ROWS) {                                                            \
            int rows = m - i0 < THIN_OUT_ROWS ? (int)(m - i0) : THIN_OUT_ROWS;                                         \
            vec acc[THIN_OUT_ROWS][NV];                                                                                \
            memset(acc, 0, sizeof acc);                                                                                \
            const T *arow = a + i0 * a_row;                                                                            \
            if (rows == THIN_OUT_ROWS && nv == NV) {                                                                   \
                for (int64_t p = 0; p < k; p++)                                                                        \
                    for (int v = 0; v < NV; v++)                                                                       \
                        for (int r = 0; r < THIN_OUT_ROWS; r++)                                                        \
                            acc[r][v] += arow[r * a_row + p * a_col] * bt[p][v];                                       \
            } else if (rows == THIN_OUT_ROWS && nv == 1) {                                                             \
                for (int64_t p = 0; p < k; p++)                                                                        \
                    for (int r = 0; r < THIN_OUT_ROWS; r++)                                                            \
                        acc[r][0] += arow[r * a_row + p * a_col] * bt[p][0];                                           \
            } else {                                                                                                   \
                for (int64_t p = 0; p < k; p++)                                                                        \
                    for (int v = 0; v < nv; v++)                                                                       \
                        for (int r = 0; r < rows; r++)                                                                 \
                            acc[r][v] += arow[r * a_row + p * a_col] * bt[p][v];                                       \
            }                                                                                                          \
            for (int r = 0; r < rows; r++) {                                                                           \
                T *crow = c + (i0 + r) * n;                                                                            \
                for (int64_t j = 0; j < n; j++)                                                                        \
                    crow[j] = accumulate ? crow[j] + acc[r][j / W][j % W] : acc[r][j / W][j % W];                      \
            }                                                                                                          \
        }                                                                                                              \
    }

/* c[o, p] (+)= sum_i g[i, o] x[i, p] for o < m <= TG_THIN (a weight gradient): a strip of two
 * vectors of columns of every output row stays in registers while the rows of x stream by, so each
 * g[i, o] broadcast feeds two FMAs. Output (o, p) is c[o * c_row + p * c_col]: row-major for tg_linear's
 * [out, in] gradient, transposed for tg_matmul's [in, out] one. */
/* Loads or stores lanes [p, p + lanes) of output rows o < m from or to ACC[o]: one row segment each when
 * row-major, else lane by lane, each lane's m outputs (contiguous in the transposed layout) in turn. */
#define THIN_TN_LOAD(ACC, p)                                                                                           \
    do {                                                                                                               \
        size_t lanes_ = sizeof(ACC[0]) / (sizeof *c);                                                                  \
        if (!accumulate)                                                                                               \
            memset(ACC, 0, sizeof(ACC));                                                                               \
        else if (c_col == 1)                                                                                           \
            for (int64_t o = 0; o < m; o++)                                                                            \
                memcpy(&ACC[o], c + o * c_row + (p), sizeof(ACC[0]));                                                  \
        else                                                                                                           \
            for (size_t l = 0; l < lanes_; l++)                                                                        \
                for (int64_t o = 0; o < m; o++)                                                                        \
                    memcpy((char *)&ACC[o] + l * sizeof *c, c + o * c_row + ((p) + (int64_t)l) * c_col, sizeof *c);    \
    } while (0)
#define THIN_TN_STORE(ACC, p)                                                                                          \
    do {                                                                                                               \
        size_t lanes_ = sizeof(ACC[0]) / (sizeof *c);                                                                  \
        if (c_col == 1)                                                                                                \
            for (int64_t o = 0; o < m; o++)                                                                            \
                memcpy(c + o * c_row + (p), &ACC[o], sizeof(ACC[0]));                                                  \
        else                                                                                                           \
            for (size_t l = 0; l < lanes_; l++)                                                                        \
                for (int64_t o = 0; o < m; o++)                                                                        \
                    memcpy(c + o * c_row + ((p) + (int64_t)l) * c_col, (char *)&ACC[o] + l * sizeof *c, sizeof *c);    \
    } while (0)
#define DEFINE_THIN_TN(NAME, T)                                                                                        \
    static inline __attribute__((always_inline)) void NAME(int64_t m, int64_t n, int64_t k, const T *g, const T *x,    \
                                                           T *c, int64_t c_row, int64_t c_col, bool accumulate)        \
    {                                                                                                                  \
        typedef T vec __attribute__((vector_size(VEC_BYTES)));                                                         \
        enum { W = VEC_BYTES / sizeof(T) };                                                                            \
        int64_t nv2 = n - n % (2 * W), nv = n - n % W;                                                                 \
        for (int64_t p = 0; p < nv2; p += 2 * W) {                                                                     \
            vec acc[TG_THIN][2];                                                                                       \
            THIN_TN_LOAD(acc, p);                                                                                      \
            for (int64_t i = 0; i < k; i++) {                                                                          \
                vec x0, x1;                                                                                            \
                memcpy(&x0, x + i * n + p, sizeof x0);                                                                 \
                memcpy(&x1, x + i * n + p + W, sizeof x1);                                                             \
                for (int64_t o = 0; o < m; o++) {                                                                      \
                    T go = g[i * m + o];                                                                               \
                    acc[o][0] += go * x0;                                                                              \
                    acc[o][1] += go * x1;                                                                              \
                }                                                                                                      \
            }                                                                                                          \
            THIN_TN_STORE(acc, p);                                                                                     \
        }                                                                                                              \
        for (int64_t p = nv2; p < nv; p += W) {                                                                        \
            vec acc[TG_THIN];                                                                                          \
            THIN_TN_LOAD(acc, p);                                                                                      \
            for (int64_t i = 0; i < k; i++) {                                                                          \
                vec xv;                                                                                                \
                memcpy(&xv, x + i * n + p, sizeof xv);                                                                 \
                for (int64_t o = 0; o < m; o++)                                                                        \
                    acc[o] += g[i * m + o] * xv;                                                                       \
            }                                                                                                          \
            THIN_TN_STORE(acc, p);                                                                                     \
        }                                                                                                              \
        for (int64_t o = 0; o < m; o++)                                                                                \
            for (int64_t p = nv; p < n; p++) {                                                                         \
                T sum = accumulate ? c[o * c_row + p * c_col] : 0;                                                     \
                for (int64_t i = 0; i < k; i++)                                                                        \
                    sum += g[i * m + o] * x[i * n + p];                                                                \
                c[o * c_row + p * c_col] = sum;                                                                        \
            }                                                                                                          \
    }

DEFINE_THIN_OUT(thin_out_f32, float)
DEFINE_THIN_OUT(thin_out_f64, double)
DEFINE_THIN_TN(thin_tn_any_f32, float)
DEFINE_THIN_TN(thin_tn_any_f64, double)

/* thin_tn storing row-major (tg_linear's [out, in] gradient) or transposed (tg_matmul's [in, out] one),
 * each with its output strides constant. */
#define DEFINE_THIN_TN_LAYOUTS(NAME, KERNEL, T)                                                                        \
    static void NAME(int64_t m, int64_t n, int64_t k, const T *g, const T *x, T *c, bool accumulate)                   \
    {                                                                                                                  \
        KERNEL(m, n, k, g, x, c, n, 1, accumulate);                                                                    \
    }                                                                                                                  \
    static void NAME##_transposed(int64_t m, int64_t n, int64_t k, const T *g, const T *x, T *c, bool accumulate)      \
    {                                                                                                                  \
        KERNEL(m, n, k, g, x, c, 1, m, accumulate);                                                                    \
    }

DEFINE_THIN_TN_LAYOUTS(thin_tn_f32, thin_tn_any_f32, float)
DEFINE_THIN_TN_LAYOUTS(thin_tn_f64, thin_tn_any_f64, double)

/* thin_out with A row-major ([m][k], unit stride along p) or stored transposed ([k][m], unit stride along i),
 * k split into pieces the stack copy of B holds. */
#define DEFINE_THIN_OUT_LAYOUTS(NAME, KERNEL, T)                                                                       \
    static void NAME##_rows(int64_t m, int64_t n, int64_t k, const T *a, const T *b, int64_t b_row, int64_t b_col,     \
                            T *c, bool accumulate)                                                                     \
    {                                                                                                                  \
        for (int64_t p0 = 0; p0 < k; p0 += THIN_OUT_MAX_K)                                                             \
            KERNEL(m, n, k - p0 < THIN_OUT_MAX_K ? k - p0 : THIN_OUT_MAX_K, a + p0, k, 1, b + p0 * b_row, b_row,       \
                   b_col, c, accumulate || p0 > 0);                                                                    \
    }                                                                                                                  \
    static void NAME##_cols(int64_t m, int64_t n, int64_t k, const T *a, const T *b, int64_t b_row, int64_t b_col,     \
                            T *c, bool accumulate)                                                                     \
    {                                                                                                                  \
        for (int64_t p0 = 0; p0 < k; p0 += THIN_OUT_MAX_K)                                                             \
            KERNEL(m, n, k - p0 < THIN_OUT_MAX_K ? k - p0 : THIN_OUT_MAX_K, a + p0 * m, 1, m, b + p0 * b_row, b_row,   \
                   b_col, c, accumulate || p0 > 0);                                                                    \
    }

DEFINE_THIN_OUT_LAYOUTS(thin_out_f32, thin_out_f32, float)
DEFINE_THIN_OUT_LAYOUTS(thin_out_f64, thin_out_f64, double)

bool tg_gemm_thin(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                  const void *b, void *c, bool accumulate)
{
    bool f32 = dtype == TG_F32;
    if (!trans_a && trans_b && n <= TG_THIN && k <= THIN_OUT_MAX_K) {
        if (f32)
            thin_out_f32_rows(m, n, k, a, b, 1, k, c, accumulate);
        else
            thin_out_f64_rows(m, n, k, a, b, 1, k, c, accumulate);
        return true;
    }
    if (trans_a && !trans_b && m <= TG_THIN) {
        if (f32)
            thin_tn_f32(m, n, k, a, b, c, accumulate);
        else
            thin_tn_f64(m, n, k, a, b, c, accumulate);
        return true;
    }
    return false;
}

bool tg_gemm_thin_any_layout(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                             const void *b, void *c, bool accumulate)
{
    bool f32 = dtype == TG_F32;
    /* B(p, j) of op(B): b[p * n + j], or b[j * k + p] when stored transposed. */
    int64_t b_row = trans_b ? 1 : n, b_col = trans_b ? k : 1;
    if (k == 0)
        return false; /* nothing to add up: tg_gemm clears or leaves c */
    if (trans_a && !trans_b && n <= TG_THIN && m > TG_THIN) {
        /* op(A) op(B) = (B^T A)^T: the weight-gradient kernel, storing its output transposed. */
        if (f32)
            thin_tn_f32_transposed(n, m, k, b, a, c, accumulate);
        else
            thin_tn_f64_transposed(n, m, k, b, a, c, accumulate);
        return true;
    }
    if (n <= TG_THIN) {
        if (f32)
            (trans_a ? thin_out_f32_cols : thin_out_f32_rows)(m, n, k, a, b, b_row, b_col, c, accumulate);
        else
            (trans_a ? thin_out_f64_cols : thin_out_f64_rows)(m, n, k, a, b, b_row, b_col, c, accumulate);
        return true;
    }
    if (trans_a && !trans_b && m <= TG_THIN)
        return tg_gemm_thin(dtype, trans_a, trans_b, m, n, k, a, b, c, accumulate);
    return false;
}
