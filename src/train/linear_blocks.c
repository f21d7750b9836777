/* The full-batch solver's hot loop for a model that is one dense linear layer
 * (logistic regression): the logits of a block of float64 rows and the
 * weight's gradient from the logits' gradient. The tape's tg_linear keeps its
 * bits (separate multiply and add, outputs in vector lanes); here nothing
 * promises bits across versions, only the same bits run to run, so these use
 * fused multiply-add and run along the feature axis, where every vector lane
 * is busy whatever the number of classes: about 2.4x fewer cycles on
 * Fashion-MNIST's 784 features and 10 classes (bench/solver.py). */
#include "train/train.h"

#include <string.h>

/* Let a * b + c become one fused multiply-add (C11 mode turns contraction off). */
#if defined(__clang__)
#define FMA_CONTRACT _Pragma("clang fp contract(fast)")
#define FMA_FUNCTION
#elif defined(__GNUC__)
#define FMA_CONTRACT
#define FMA_FUNCTION __attribute__((optimize("fp-contract=fast")))
#else
#define FMA_CONTRACT
#define FMA_FUNCTION
#endif

#define LANES (TG_VEC_BYTES / (int)sizeof(double))
#define CHUNK 12 /* outputs per pass: 2 rows x 12 accumulators fit AVX-512's 32 registers */
typedef double vec __attribute__((vector_size(TG_VEC_BYTES)));

static inline vec load(const double *p)
{
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline double lane_sum(vec v)
{
    double s = 0;
    for (int i = 0; i < LANES; i++)
        s += v[i];
    return s;
}

/* z[i, k0 + k] = sum_j x[i, j] w[k0 + k, j] for k < kc, two rows at a time so
 * that each weight load serves both. kc is a constant in each inlined copy. */
static inline __attribute__((always_inline)) void logits_chunk(int64_t n, int64_t d, const double *x, const double *w,
                                                               int64_t out, int k0, int kc, double *z)
{
    FMA_CONTRACT
    int64_t body = d - d % LANES, i = 0;
    for (; i < n; i += 2) {
        bool pair = i + 1 < n;
        const double *x0 = x + i * d, *x1 = pair ? x0 + d : x0;
        vec a0[CHUNK] = { 0 }, a1[CHUNK] = { 0 };
        for (int64_t j = 0; j < body; j += LANES) {
            vec u = load(x0 + j), v = load(x1 + j);
            for (int k = 0; k < kc; k++) {
                vec wk = load(w + (k0 + k) * d + j);
                a0[k] += u * wk;
                a1[k] += v * wk;
            }
        }
        for (int k = 0; k < kc; k++) {
            double s0 = lane_sum(a0[k]), s1 = lane_sum(a1[k]);
            for (int64_t j = body; j < d; j++) {
                s0 += x0[j] * w[(k0 + k) * d + j];
                s1 += x1[j] * w[(k0 + k) * d + j];
            }
            z[i * out + k0 + k] = s0;
            if (pair)
                z[(i + 1) * out + k0 + k] = s1;
        }
    }
}

/* gw[k0 + k, j] += sum_i g[i, k0 + k] x[i, j] for k < kc: a vector of features
 * at a time, its kc accumulators kept in registers over the block's rows. */
static inline __attribute__((always_inline)) void
weight_grad_chunk(int64_t n, int64_t d, const double *x, const double *g, int64_t out, int k0, int kc, double *gw)
{
    FMA_CONTRACT
    int64_t body = d - d % LANES;
    for (int64_t j = 0; j < body; j += LANES) {
        vec a[CHUNK];
        for (int k = 0; k < kc; k++)
            a[k] = load(gw + (k0 + k) * d + j);
        for (int64_t i = 0; i < n; i++) {
            vec u = load(x + i * d + j);
            const double *gi = g + i * out + k0;
            for (int k = 0; k < kc; k++)
                a[k] += gi[k] * u;
        }
        for (int k = 0; k < kc; k++)
            memcpy(gw + (k0 + k) * d + j, &a[k], sizeof a[k]);
    }
    for (int64_t j = body; j < d; j++)
        for (int k = 0; k < kc; k++) {
            double s = gw[(k0 + k) * d + j];
            for (int64_t i = 0; i < n; i++)
                s += g[i * out + k0 + k] * x[i * d + j];
            gw[(k0 + k) * d + j] = s;
        }
}

/* One copy of each loop per chunk width 1..CHUNK, so the accumulators live in registers. */
#define CHUNK_CASES(CALL)                                                                                              \
    switch (kc) {                                                                                                      \
    case 1: CALL(1); break;                                                                                            \
    case 2: CALL(2); break;                                                                                            \
    case 3: CALL(3); break;                                                                                            \
    case 4: CALL(4); break;                                                                                            \
    case 5: CALL(5); break;                                                                                            \
    case 6: CALL(6); break;                                                                                            \
    case 7: CALL(7); break;                                                                                            \
    case 8: CALL(8); break;                                                                                            \
    case 9: CALL(9); break;                                                                                            \
    case 10: CALL(10); break;                                                                                          \
    case 11: CALL(11); break;                                                                                          \
    default: CALL(CHUNK); break;                                                                                       \
    }

FMA_FUNCTION void tg_block_logits(int64_t n, int64_t d, int64_t out, const double *x, const double *w, const double *b,
                                  double *z)
{
    for (int64_t k0 = 0; k0 < out; k0 += CHUNK) {
        int kc = (int)(out - k0 < CHUNK ? out - k0 : CHUNK), k = (int)k0;
#define LOGITS(KC) logits_chunk(n, d, x, w, out, k, KC, z)
        CHUNK_CASES(LOGITS)
#undef LOGITS
    }
    for (int64_t i = 0; b && i < n; i++)
        for (int64_t k = 0; k < out; k++)
            z[i * out + k] += b[k];
}

FMA_FUNCTION void tg_block_weight_grad(int64_t n, int64_t d, int64_t out, const double *x, const double *g, double *gw,
                                       double *gb)
{
    for (int64_t k0 = 0; k0 < out; k0 += CHUNK) {
        int kc = (int)(out - k0 < CHUNK ? out - k0 : CHUNK), k = (int)k0;
#define WEIGHT_GRAD(KC) weight_grad_chunk(n, d, x, g, out, k, KC, gw)
        CHUNK_CASES(WEIGHT_GRAD)
#undef WEIGHT_GRAD
    }
    for (int64_t i = 0; gb && i < n; i++)
        for (int64_t k = 0; k < out; k++)
            gb[k] += g[i * out + k];
}
