/* Hardware bounds the benchmark measures in the same run as the libraries:
 *
 *   info                      OpenBLAS's build config, kernel and thread count (JSON)
 *   sgemm LAYERS BATCH ROWS   one epoch of the matrix products a training step of
 *                             the feed-forward net LAYERS (e.g. 784,256,10) needs:
 *                             per layer, forward Y = A W^T and dW = dY^T A, and
 *                             dA = dY W for every layer but the first; A walks
 *                             through a ROWS x LAYERS[0] float block batch by batch
 *   peak [N]                  cblas_sgemm on N x N x N (default 1024): GFLOP/s
 *   stream BYTES              reading BYTES of floats once (a sum), memory bound
 *   axpy ROWS COLS            g += a x over ROWS x COLS floats: the memory a fused
 *                             cross-entropy forward + backward must move
 *
 * Options: --threads N (OpenBLAS's and OpenMP's; default: as the environment
 * says), --reps R (default 5). Prints one JSON line per repetition. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <omp.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *random_floats(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "gemm_bound: out of memory (%zu floats)\n", n);
        exit(1);
    }
    uint64_t s = 0x9e3779b97f4a7c15u;
#pragma omp parallel for schedule(static) firstprivate(s)
    for (size_t i = 0; i < n; i++) {
        uint64_t z = s + i * 0x9e3779b97f4a7c15u;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        p[i] = (float)((z >> 40) * (1.0 / 16777216.0)) - 0.5f;
    }
    return p;
}

enum { MAX_LAYERS = 8 };

/* One epoch of a training step's products; returns its FLOPs in *flops. */
static double sgemm_epoch(int n_layers, const int *width, int batch, int rows, const float *data, float **w,
                          float **act, float **dact, float **dw, double *flops)
{
    double f = 0, t0 = now();
    for (int start = 0; start < rows; start += batch) {
        int b = rows - start < batch ? rows - start : batch;
        act[0] = (float *)data + (size_t)start * width[0];
        for (int l = 0; l < n_layers; l++) { /* A_{l+1}[b, out] = A_l[b, in] W_l[out, in]^T */
            int in = width[l], out = width[l + 1];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, out, in, 1.0f, act[l], in, w[l], in, 0.0f,
                        act[l + 1], out);
            f += 2.0 * b * out * in;
        }
        for (int l = n_layers - 1; l >= 0; l--) {
            int in = width[l], out = width[l + 1];
            /* dW_l[out, in] = dA_{l+1}[b, out]^T A_l[b, in] */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, b, 1.0f, dact[l + 1], out, act[l], in, 0.0f,
                        dw[l], in);
            f += 2.0 * b * out * in;
            if (l > 0) { /* dA_l[b, in] = dA_{l+1}[b, out] W_l[out, in] */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, in, out, 1.0f, dact[l + 1], out, w[l], in,
                            0.0f, dact[l], in);
                f += 2.0 * b * out * in;
            }
        }
    }
    *flops = f;
    return now() - t0;
}

static int run_sgemm(const char *layers, int batch, int rows, int reps)
{
    int width[MAX_LAYERS + 1], n = 0;
    for (const char *p = layers; *p && n <= MAX_LAYERS; n++) {
        width[n] = atoi(p);
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    n++;
    if (n < 2 || n > MAX_LAYERS + 1 || batch < 1 || rows < 1)
        return 2;
    int n_layers = n - 1;
    float *data = random_floats((size_t)rows * width[0]);
    float *w[MAX_LAYERS], *dw[MAX_LAYERS], *act[MAX_LAYERS + 1], *dact[MAX_LAYERS + 1];
    for (int l = 0; l < n_layers; l++) {
        w[l] = random_floats((size_t)width[l + 1] * width[l]);
        dw[l] = random_floats((size_t)width[l + 1] * width[l]);
    }
    act[0] = NULL; /* the input: a batch of data, set per step */
    for (int l = 0; l <= n_layers; l++) {
        if (l > 0)
            act[l] = random_floats((size_t)batch * width[l]);
        dact[l] = random_floats((size_t)batch * width[l]);
    }
    double flops;
    sgemm_epoch(n_layers, width, batch, rows < 4 * batch ? rows : 4 * batch, data, w, act, dact, dw, &flops);
    for (int r = 0; r < reps; r++) {
        double s = sgemm_epoch(n_layers, width, batch, rows, data, w, act, dact, dw, &flops);
        printf("{\"sample\": \"sgemm_epoch\", \"layers\": \"%s\", \"batch\": %d, \"rows\": %d, \"seconds\": %.9f, "
               "\"flops\": %.0f}\n",
               layers, batch, rows, s, flops);
        fflush(stdout);
    }
    for (int l = 0; l < n_layers; l++) {
        free(w[l]);
        free(dw[l]);
    }
    for (int l = 0; l <= n_layers; l++) {
        if (l > 0)
            free(act[l]);
        free(dact[l]);
    }
    free(data);
    return 0;
}

static int run_peak(int n, int reps)
{
    float *a = random_floats((size_t)n * n), *b = random_floats((size_t)n * n), *c = random_floats((size_t)n * n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double s = now() - t0, flops = 2.0 * n * n * n;
        printf("{\"sample\": \"peak\", \"n\": %d, \"seconds\": %.9f, \"gflops\": %.3f}\n", n, s, flops / s * 1e-9);
    }
    free(a);
    free(b);
    free(c);
    return 0;
}

static int run_stream(size_t bytes, int reps)
{
    size_t n = bytes / sizeof(float);
    float *x = random_floats(n);
    volatile float sink = 0;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        float sum = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : sum)
        for (size_t i = 0; i < n; i++)
            sum += x[i];
        double s = now() - t0;
        sink += sum;
        if (r > 0) /* the first pass warms the pages and threads */
            printf("{\"sample\": \"stream\", \"bytes\": %zu, \"seconds\": %.9f}\n", bytes, s);
    }
    (void)sink;
    free(x);
    return 0;
}

static int run_axpy(size_t rows, size_t cols, int reps)
{
    size_t n = rows * cols;
    float *x = random_floats(n), *g = random_floats(n);
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++)
            g[i] += 1e-3f * x[i];
        double s = now() - t0;
        if (r > 0)
            printf("{\"sample\": \"axpy\", \"rows\": %zu, \"cols\": %zu, \"seconds\": %.9f}\n", rows, cols, s);
    }
    volatile float sink = g[n / 2];
    (void)sink;
    free(x);
    free(g);
    return 0;
}

int main(int argc, char **argv)
{
    int reps = 5, threads = 0, n_pos = 0;
    const char *pos[4] = { 0 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (n_pos < 4)
            pos[n_pos++] = argv[i];
        else
            goto usage;
    }
    if (n_pos < 1 || reps < 1)
        goto usage;
    if (threads > 0) {
        openblas_set_num_threads(threads);
        omp_set_num_threads(threads);
    }
    const char *mode = pos[0];
    int status = 2;
    if (!strcmp(mode, "info")) {
        printf("{\"openblas_config\": \"%s\", \"openblas_corename\": \"%s\", \"openblas_threads\": %d, "
               "\"openmp_threads\": %d}\n",
               openblas_get_config(), openblas_get_corename(), openblas_get_num_threads(), omp_get_max_threads());
        status = 0;
    } else if (!strcmp(mode, "sgemm") && n_pos == 4) {
        status = run_sgemm(pos[1], atoi(pos[2]), atoi(pos[3]), reps);
    } else if (!strcmp(mode, "peak")) {
        status = run_peak(n_pos > 1 ? atoi(pos[1]) : 1024, reps);
    } else if (!strcmp(mode, "stream") && n_pos == 2) {
        status = run_stream((size_t)strtoull(pos[1], NULL, 10), reps);
    } else if (!strcmp(mode, "axpy") && n_pos == 3) {
        status = run_axpy((size_t)strtoull(pos[1], NULL, 10), (size_t)strtoull(pos[2], NULL, 10), reps);
    }
    if (status != 2)
        return status;
usage:
    fprintf(stderr, "usage: gemm_bound [--threads N] [--reps R] (info | sgemm LAYERS BATCH ROWS | peak [N] | "
                    "stream BYTES | axpy ROWS COLS)\n");
    return 2;
}
