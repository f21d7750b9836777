/* Matrix products: through CBLAS when the library is built with it
 * (TAPEGRAD_BLAS, the default), else in plain C with loops ordered so the
 * innermost one walks both operands with unit stride (the compiler
 * vectorises it). Transposes are flags, never copies. */
#include "ops/ops.h"

#include <string.h>

#ifdef TAPEGRAD_USE_BLAS
#include <cblas.h>
#endif

static void gemm_plain(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                       const void *b, void *c, bool accumulate)
{
    if (!accumulate)
        memset(c, 0, (size_t)(m * n) * tg_dtype_size(dtype));
    TG_FLOAT_DISPATCH(dtype, T, {
        const T *A = a, *B = b;
        T *C = c;
        if (!trans_a && !trans_b) {
            for (int64_t i = 0; i < m; i++)
                for (int64_t p = 0; p < k; p++) {
                    T aip = A[i * k + p];
                    const T *brow = B + p * n;
                    T *crow = C + i * n;
                    for (int64_t j = 0; j < n; j++)
                        crow[j] += aip * brow[j];
                }
        } else if (!trans_a && trans_b) {
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    const T *arow = A + i * k, *brow = B + j * k;
                    T sum = 0;
                    for (int64_t p = 0; p < k; p++)
                        sum += arow[p] * brow[p];
                    C[i * n + j] += sum;
                }
        } else if (trans_a && !trans_b) {
            for (int64_t p = 0; p < k; p++)
                for (int64_t i = 0; i < m; i++) {
                    T api = A[p * m + i];
                    const T *brow = B + p * n;
                    T *crow = C + i * n;
                    for (int64_t j = 0; j < n; j++)
                        crow[j] += api * brow[j];
                }
        } else {
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    T sum = 0;
                    for (int64_t p = 0; p < k; p++)
                        sum += A[p * m + i] * B[j * k + p];
                    C[i * n + j] += sum;
                }
        }
    });
}

void tg_gemm(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a, const void *b,
             void *c, bool accumulate)
{
    if (m == 0 || n == 0)
        return;
    if (tg_gemm_thin(dtype, trans_a, trans_b, m, n, k, a, b, c, accumulate))
        return;
#ifdef TAPEGRAD_USE_BLAS
    /* BLAS takes int sizes; anything larger falls back to the plain loops. */
    if (k > 0 && m < INT32_MAX && n < INT32_MAX && k < INT32_MAX) {
        enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
        int lda = (int)(trans_a ? m : k), ldb = (int)(trans_b ? k : n);
        if (dtype == TG_F32)
            cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, 1.0f, a, lda, b, ldb, accumulate ? 1.0f : 0.0f,
                        c, (int)n);
        else
            cblas_dgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, 1.0, a, lda, b, ldb, accumulate ? 1.0 : 0.0, c,
                        (int)n);
        return;
    }
#endif
    gemm_plain(dtype, trans_a, trans_b, m, n, k, a, b, c, accumulate);
}

void tg_gemm_any_layout(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                        const void *b, void *c, bool accumulate)
{
    if (m == 0 || n == 0)
        return;
    if (!tg_gemm_thin_any_layout(dtype, trans_a, trans_b, m, n, k, a, b, c, accumulate))
        tg_gemm(dtype, trans_a, trans_b, m, n, k, a, b, c, accumulate);
}
