/* Matrix products with one thin side (at most TG_THIN columns of output, or
 * rows of a weight gradient): the shapes of logistic regression and of an
 * MLP's last layer. BLAS is slow there (packing and threading cost more than
 * the arithmetic), so these kernels keep every output of a row in registers
 * and stream the wide operand once, with GCC vector types so the reduction
 * order is fixed by the code (no -ffast-math needed). */
#include "ops/ops.h"

#include <string.h>

#define VEC_BYTES TG_VEC_BYTES

/* y[i, j] (+)= sum_p a[i, p] b[j, p] for j < n <= TG_THIN. b is first transposed into [k][lanes] on
 * the stack, so that a row's n outputs are lanes of one or two vectors: each a[i, p] is broadcast and
 * multiplied into them, with no horizontal sums at the end. Eight rows at a time keep eight independent
 * accumulator chains in flight. For k too large for the stack copy, the caller falls back to BLAS. */
#define THIN_NT_MAX_K 1024
#define THIN_NT_ROWS 8
#define DEFINE_THIN_NT(NAME, T)                                                                                     \
    static void NAME(int64_t m, int64_t n, int64_t k, const T *a, const T *b, T *c, bool accumulate)               \
    {                                                                                                           \
        typedef T vec __attribute__((vector_size(VEC_BYTES)));                                                  \
        enum { W = VEC_BYTES / sizeof(T), NV = (TG_THIN + W - 1) / W };                                         \
        vec bt[THIN_NT_MAX_K][NV];                                                                              \
        int nv = (int)((n + W - 1) / W);                                                                        \
        memset(bt, 0, (size_t)k * sizeof bt[0]);                                                                \
        for (int64_t j = 0; j < n; j++)                                                                         \
            for (int64_t p = 0; p < k; p++)                                                                     \
                bt[p][j / W][j % W] = b[j * k + p];                                                             \
        for (int64_t i0 = 0; i0 < m; i0 += THIN_NT_ROWS) {                                                      \
            int rows = m - i0 < THIN_NT_ROWS ? (int)(m - i0) : THIN_NT_ROWS;                                    \
            vec acc[THIN_NT_ROWS][NV];                                                                          \
            memset(acc, 0, sizeof acc);                                                                         \
            const T *arow = a + i0 * k;                                                                         \
            if (rows == THIN_NT_ROWS) {                                                                         \
                for (int64_t p = 0; p < k; p++)                                                                 \
                    for (int v = 0; v < nv; v++)                                                                \
                        for (int r = 0; r < THIN_NT_ROWS; r++)                                                  \
                            acc[r][v] += arow[r * k + p] * bt[p][v];                                            \
            } else {                                                                                            \
                for (int64_t p = 0; p < k; p++)                                                                 \
                    for (int v = 0; v < nv; v++)                                                                \
                        for (int r = 0; r < rows; r++)                                                          \
                            acc[r][v] += arow[r * k + p] * bt[p][v];                                            \
            }                                                                                                   \
            for (int r = 0; r < rows; r++) {                                                                    \
                T *crow = c + (i0 + r) * n;                                                                     \
                for (int64_t j = 0; j < n; j++)                                                                 \
                    crow[j] = accumulate ? crow[j] + acc[r][j / W][j % W] : acc[r][j / W][j % W];               \
            }                                                                                                   \
        }                                                                                                       \
    }

/* c[o, p] (+)= sum_i g[i, o] x[i, p] for o < m <= TG_THIN (a weight gradient): a strip of two
 * vectors of columns of every output row stays in registers while the rows of x stream by, so each
 * g[i, o] broadcast feeds two FMAs. */
#define DEFINE_THIN_TN(NAME, T)                                                                                     \
    static void NAME(int64_t m, int64_t n, int64_t k, const T *g, const T *x, T *c, bool accumulate)               \
    {                                                                                                           \
        typedef T vec __attribute__((vector_size(VEC_BYTES)));                                                  \
        enum { W = VEC_BYTES / sizeof(T) };                                                                     \
        int64_t nv2 = n - n % (2 * W), nv = n - n % W;                                                          \
        for (int64_t p = 0; p < nv2; p += 2 * W) {                                                              \
            vec acc[TG_THIN][2];                                                                                \
            for (int64_t o = 0; o < m; o++) {                                                                   \
                if (accumulate)                                                                                 \
                    memcpy(acc[o], c + o * n + p, sizeof acc[o]);                                               \
                else                                                                                            \
                    memset(acc[o], 0, sizeof acc[o]);                                                           \
            }                                                                                                   \
            for (int64_t i = 0; i < k; i++) {                                                                   \
                vec x0, x1;                                                                                     \
                memcpy(&x0, x + i * n + p, sizeof x0);                                                          \
                memcpy(&x1, x + i * n + p + W, sizeof x1);                                                      \
                for (int64_t o = 0; o < m; o++) {                                                               \
                    T go = g[i * m + o];                                                                        \
                    acc[o][0] += go * x0;                                                                       \
                    acc[o][1] += go * x1;                                                                       \
                }                                                                                               \
            }                                                                                                   \
            for (int64_t o = 0; o < m; o++)                                                                     \
                memcpy(c + o * n + p, acc[o], sizeof acc[o]);                                                   \
        }                                                                                                       \
        for (int64_t p = nv2; p < nv; p += W) {                                                                 \
            vec acc[TG_THIN];                                                                                   \
            for (int64_t o = 0; o < m; o++) {                                                                   \
                if (accumulate)                                                                                 \
                    memcpy(&acc[o], c + o * n + p, sizeof acc[o]);                                              \
                else                                                                                            \
                    memset(&acc[o], 0, sizeof acc[o]);                                                          \
            }                                                                                                   \
            for (int64_t i = 0; i < k; i++) {                                                                   \
                vec xv;                                                                                         \
                memcpy(&xv, x + i * n + p, sizeof xv);                                                          \
                for (int64_t o = 0; o < m; o++)                                                                 \
                    acc[o] += g[i * m + o] * xv;                                                                \
            }                                                                                                   \
            for (int64_t o = 0; o < m; o++)                                                                     \
                memcpy(c + o * n + p, &acc[o], sizeof acc[o]);                                                  \
        }                                                                                                       \
        for (int64_t o = 0; o < m; o++)                                                                         \
            for (int64_t p = nv; p < n; p++) {                                                                  \
                T sum = accumulate ? c[o * n + p] : 0;                                                          \
                for (int64_t i = 0; i < k; i++)                                                                 \
                    sum += g[i * m + o] * x[i * n + p];                                                         \
                c[o * n + p] = sum;                                                                             \
            }                                                                                                   \
    }

DEFINE_THIN_NT(thin_nt_f32, float)
DEFINE_THIN_NT(thin_nt_f64, double)
DEFINE_THIN_TN(thin_tn_f32, float)
DEFINE_THIN_TN(thin_tn_f64, double)

bool tg_gemm_thin(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                  const void *b, void *c, bool accumulate)
{
    if (!trans_a && trans_b && n <= TG_THIN && k <= THIN_NT_MAX_K) {
        if (dtype == TG_F32)
            thin_nt_f32(m, n, k, a, b, c, accumulate);
        else
            thin_nt_f64(m, n, k, a, b, c, accumulate);
        return true;
    }
    if (trans_a && !trans_b && m <= TG_THIN) {
        if (dtype == TG_F32)
            thin_tn_f32(m, n, k, a, b, c, accumulate);
        else
            thin_tn_f64(m, n, k, a, b, c, accumulate);
        return true;
    }
    return false;
}
