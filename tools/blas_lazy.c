/* The command's OpenBLAS, loaded on the first matrix product instead of at start-up.
 *
 * Linked at start-up, OpenBLAS maps 36 MB and starts its thread pool before main runs, each
 * worker with a 32 MB buffer: under `ulimit -v` below about 30 MB the loader refuses it (exit
 * 127), at 50 MB its pthread_create fails and it exits 130, and between about 55 and 180 MB a
 * worker loops on a failing allocation while exit waits for it (a hang). Here the command
 * defines the three symbols the library takes from OpenBLAS (so the linker, with --as-needed,
 * drops the library from the start-up list), main sets the thread count the limits allow
 * (blas_lazy_configure), and the first product dlopens OpenBLAS with that count in its
 * environment. When OpenBLAS cannot be loaded, products use the plain loop below and the
 * command says so once on stderr. */
#define _GNU_SOURCE /* RTLD_DEFAULT-free dlopen/dlsym under -std=c11 */
#include "cli.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef void sgemm_fn(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint, blasint, float,
                      const float *, blasint, const float *, blasint, float, float *, blasint);
typedef void dgemm_fn(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, blasint, blasint, blasint, double,
                      const double *, blasint, const double *, blasint, double, double *, blasint);
typedef void threads_fn(int);

static struct {
    pthread_once_t once;
    int threads; /* the most BLAS threads main allows; 0: not configured (1) */
    int wanted; /* the library's last openblas_set_num_threads */
    sgemm_fn *sgemm;
    dgemm_fn *dgemm;
    threads_fn *set_threads;
} blas = { .once = PTHREAD_ONCE_INIT };

void blas_lazy_configure(int max_threads) { blas.threads = max_threads > 0 ? max_threads : 1; }

static int allowed(int n)
{
    int cap = blas.threads > 0 ? blas.threads : 1;
    return n < 1 ? 1 : n > cap ? cap : n;
}

static void load(void)
{
    /* OpenBLAS sizes its pool from the environment when it starts: never more than main allowed. */
    char count[16];
    snprintf(count, sizeof count, "%d", allowed(blas.wanted ? blas.wanted : blas.threads));
    setenv("OPENBLAS_NUM_THREADS", count, 1);
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (lib) {
        *(void **)&blas.sgemm = dlsym(lib, "cblas_sgemm");
        *(void **)&blas.dgemm = dlsym(lib, "cblas_dgemm");
        *(void **)&blas.set_threads = dlsym(lib, "openblas_set_num_threads");
    }
    if (!blas.sgemm || !blas.dgemm) {
        const char *why = lib ? "cblas_sgemm or cblas_dgemm is missing" : dlerror();
        fprintf(stderr,
                "tapegrad: warning: OpenBLAS could not be loaded (%s); matrix products use the built-in "
                "loop, slower\n",
                why ? why : "unknown reason");
        blas.sgemm = NULL;
        blas.dgemm = NULL;
        blas.set_threads = NULL;
    }
}

/* C = alpha op(A) op(B) + beta C, row-major; column-major is the same product transposed. */
#define PLAIN_GEMM(T, order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)                                     \
    do {                                                                                                               \
        if ((order) == CblasColMajor) {                                                                                \
            plain_##T(CblasRowMajor, tb, ta, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);                            \
            return;                                                                                                    \
        }                                                                                                              \
        for (blasint i = 0; i < (m); i++)                                                                              \
            for (blasint j = 0; j < (n); j++) {                                                                        \
                T sum = 0;                                                                                             \
                for (blasint p = 0; p < (k); p++)                                                                      \
                    sum += ((ta) == CblasNoTrans ? (a)[i * (lda) + p] : (a)[p * (lda) + i]) *                          \
                           ((tb) == CblasNoTrans ? (b)[p * (ldb) + j] : (b)[j * (ldb) + p]);                           \
                T *out = &(c)[i * (ldc) + j];                                                                          \
                *out = (alpha)*sum + ((beta) == 0 ? 0 : (beta) * *out);                                                \
            }                                                                                                          \
    } while (0)

static void plain_float(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, blasint m, blasint n,
                        blasint k, float alpha, const float *a, blasint lda, const float *b, blasint ldb, float beta,
                        float *c, blasint ldc)
{
    PLAIN_GEMM(float, order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void plain_double(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, blasint m, blasint n,
                         blasint k, double alpha, const double *a, blasint lda, const double *b, blasint ldb,
                         double beta, double *c, blasint ldc)
{
    PLAIN_GEMM(double, order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_sgemm(OPENBLAS_CONST enum CBLAS_ORDER order, OPENBLAS_CONST enum CBLAS_TRANSPOSE ta,
                 OPENBLAS_CONST enum CBLAS_TRANSPOSE tb, OPENBLAS_CONST blasint m, OPENBLAS_CONST blasint n,
                 OPENBLAS_CONST blasint k, OPENBLAS_CONST float alpha, OPENBLAS_CONST float *a,
                 OPENBLAS_CONST blasint lda, OPENBLAS_CONST float *b, OPENBLAS_CONST blasint ldb,
                 OPENBLAS_CONST float beta, float *c, OPENBLAS_CONST blasint ldc)
{
    pthread_once(&blas.once, load);
    if (blas.sgemm)
        blas.sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        plain_float(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_dgemm(OPENBLAS_CONST enum CBLAS_ORDER order, OPENBLAS_CONST enum CBLAS_TRANSPOSE ta,
                 OPENBLAS_CONST enum CBLAS_TRANSPOSE tb, OPENBLAS_CONST blasint m, OPENBLAS_CONST blasint n,
                 OPENBLAS_CONST blasint k, OPENBLAS_CONST double alpha, OPENBLAS_CONST double *a,
                 OPENBLAS_CONST blasint lda, OPENBLAS_CONST double *b, OPENBLAS_CONST blasint ldb,
                 OPENBLAS_CONST double beta, double *c, OPENBLAS_CONST blasint ldc)
{
    pthread_once(&blas.once, load);
    if (blas.dgemm)
        blas.dgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        plain_double(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* The library's thread budget: kept until OpenBLAS is loaded, then passed on (within main's cap). */
void openblas_set_num_threads(int n)
{
    blas.wanted = n;
    if (blas.set_threads)
        blas.set_threads(allowed(n));
}
