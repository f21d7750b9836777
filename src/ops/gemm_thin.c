/* Matrix products with one thin side (at most TG_THIN columns of output, or
 * rows of a weight gradient): the shapes of logistic regression and of an
 * MLP's last layer. BLAS is slow there (packing and threading cost more than
 * the arithmetic), so these kernels keep every output of a row in registers
 * and stream the wide operand once, with GCC vector types so the reduction
 * order is fixed by the code (no -ffast-math needed). */
#include "internal.h"

#include <string.h>

#define VEC_BYTES TG_VEC_BYTES

/* y[i, j] (+)= sum_p a[i, p] b[j, p] for j < n <= TG_THIN: two rows of a against all of b
 * at once, so each vector of b loaded feeds two FMAs (the kernel is load-bound otherwise). */
#define DEFINE_THIN_NT(NAME, T)                                                                                     \
    static void NAME##_rows(int64_t rows, int64_t n, int64_t k, const T *a, const T *b, T *c, bool accumulate)     \
    {                                                                                                           \
        typedef T vec __attribute__((vector_size(VEC_BYTES)));                                                  \
        enum { W = VEC_BYTES / sizeof(T) };                                                                     \
        int64_t kv = k - k % W;                                                                                 \
        vec acc[2][TG_THIN];                                                                                    \
        memset(acc, 0, sizeof acc);                                                                             \
        for (int64_t p = 0; p < kv; p += W) {                                                                   \
            vec a0, a1;                                                                                         \
            memcpy(&a0, a + p, sizeof a0);                                                                      \
            memcpy(&a1, a + (rows > 1 ? k : 0) + p, sizeof a1);                                                 \
            for (int64_t j = 0; j < n; j++) {                                                                   \
                vec bv;                                                                                         \
                memcpy(&bv, b + j * k + p, sizeof bv);                                                          \
                acc[0][j] += a0 * bv;                                                                           \
                acc[1][j] += a1 * bv;                                                                           \
            }                                                                                                   \
        }                                                                                                       \
        for (int64_t r = 0; r < rows; r++)                                                                      \
            for (int64_t j = 0; j < n; j++) {                                                                   \
                T sum = 0;                                                                                      \
                for (int w = 0; w < W; w++)                                                                     \
                    sum += acc[r][j][w];                                                                        \
                for (int64_t p = kv; p < k; p++)                                                                \
                    sum += a[r * k + p] * b[j * k + p];                                                         \
                c[r * n + j] = accumulate ? c[r * n + j] + sum : sum;                                           \
            }                                                                                                   \
    }                                                                                                           \
    static void NAME(int64_t m, int64_t n, int64_t k, const T *a, const T *b, T *c, bool accumulate)               \
    {                                                                                                           \
        for (int64_t i = 0; i < m; i += 2)                                                                      \
            NAME##_rows(m - i < 2 ? 1 : 2, n, k, a + i * k, b, c + i * n, accumulate);                          \
    }

/* c[o, p] (+)= sum_i g[i, o] x[i, p] for o < m <= TG_THIN (a weight gradient): a strip of
 * columns of every output row stays in registers while the rows of x stream by. */
#define DEFINE_THIN_TN(NAME, T)                                                                                     \
    static void NAME(int64_t m, int64_t n, int64_t k, const T *g, const T *x, T *c, bool accumulate)               \
    {                                                                                                           \
        typedef T vec __attribute__((vector_size(VEC_BYTES)));                                                  \
        enum { W = VEC_BYTES / sizeof(T) };                                                                     \
        int64_t nv = n - n % W;                                                                                 \
        for (int64_t p = 0; p < nv; p += W) {                                                                   \
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
    if (!trans_a && trans_b && n <= TG_THIN) {
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
