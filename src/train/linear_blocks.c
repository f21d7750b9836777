/* The full-batch solver's hot loop for a model that is one dense linear layer
 * (logistic regression): the logits of a block of float64 rows and the
 * weight's gradient from the logits' gradient. The tape's tg_linear keeps its
 * bits (separate multiply and add, outputs in vector lanes); here nothing
 * promises bits across versions, only the same bits run to run, so these use
 * fused multiply-add and run along the feature axis, where every vector lane
 * is busy whatever the number of classes: about 2.4x fewer cycles on
 * Fashion-MNIST's 784 features and 10 classes (bench/solver.py). The logits
 * read a chunk's weights from a packed panel and reduce the lanes of several
 * outputs together, which matters at few features (digits' 64: 29 -> 16 us
 * per 512 rows). */
#include "train/train.h"

#include <math.h>
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

/* Lane k of the result is the sum of a[k]'s lanes (k < LANES): a transposing
 * tree of shuffles and adds, log2(LANES) levels for LANES sums, where one
 * horizontal sum per output cost LANES - 1 dependent scalar adds (a quarter of
 * the logits' cycles at 64 features). */
static inline vec lane_sums(const vec *a)
{
#if TG_VEC_BYTES == 64
#define PAIRS(u, v)                                                                                                    \
    (__builtin_shufflevector(u, v, 0, 8, 2, 10, 4, 12, 6, 14) +                                                        \
     __builtin_shufflevector(u, v, 1, 9, 3, 11, 5, 13, 7, 15))
#define QUADS(u, v)                                                                                                    \
    (__builtin_shufflevector(u, v, 0, 1, 8, 9, 4, 5, 12, 13) +                                                         \
     __builtin_shufflevector(u, v, 2, 3, 10, 11, 6, 7, 14, 15))
#define HALVES(u, v)                                                                                                   \
    (__builtin_shufflevector(u, v, 0, 1, 2, 3, 8, 9, 10, 11) +                                                         \
     __builtin_shufflevector(u, v, 4, 5, 6, 7, 12, 13, 14, 15))
    vec p0 = PAIRS(a[0], a[1]), p1 = PAIRS(a[2], a[3]), p2 = PAIRS(a[4], a[5]), p3 = PAIRS(a[6], a[7]);
    return HALVES(QUADS(p0, p1), QUADS(p2, p3));
#elif TG_VEC_BYTES == 32
#define PAIRS(u, v) (__builtin_shufflevector(u, v, 0, 4, 2, 6) + __builtin_shufflevector(u, v, 1, 5, 3, 7))
#define HALVES(u, v) (__builtin_shufflevector(u, v, 0, 1, 4, 5) + __builtin_shufflevector(u, v, 2, 3, 6, 7))
    return HALVES(PAIRS(a[0], a[1]), PAIRS(a[2], a[3]));
#else
#define PAIRS(u, v) (__builtin_shufflevector(u, v, 0, 2) + __builtin_shufflevector(u, v, 1, 3))
    return PAIRS(a[0], a[1]);
#endif
#undef PAIRS
#undef QUADS
#undef HALVES
}

/* The sums of a[0..kc) into z[0..kc): added to z's values, or when first to
 * the bias b[0..kc) (b may be NULL). */
static inline __attribute__((always_inline)) void store_sums(const vec *a, int kc, bool first, const double *b,
                                                             double *z)
{
    for (int k0 = 0; k0 < kc; k0 += LANES) {
        vec group[LANES];
        for (int k = 0; k < LANES; k++)
            group[k] = k0 + k < kc ? a[k0 + k] : (vec){ 0 };
        vec sums = lane_sums(group);
        const double *base = first ? b : z;
        if (k0 + LANES <= kc) {
            if (base)
                sums += load(base + k0);
            memcpy(z + k0, &sums, sizeof sums);
        } else {
            for (int k = k0; k < kc; k++)
                z[k] = base ? base[k] + sums[k - k0] : sums[k - k0];
        }
    }
}

/* A chunk's weights for features j0.. j0 + width (a multiple of LANES) as one
 * panel, wp[(jb * kc + k) * LANES + l] = w[k, j0 + jb * LANES + l]: the inner
 * loop then reads them from one pointer at constant offsets (with a row of
 * pointers, gcc ran out of registers and reloaded them from the stack). */
#define PANEL 256 /* features per panel: 12 outputs' weights in 24 KiB, within L1 */
static void pack_panel(const double *w, int64_t d, int kc, int64_t j0, int64_t width, double *wp)
{
    for (int64_t jb = 0; jb < width / LANES; jb++)
        for (int k = 0; k < kc; k++)
            memcpy(wp + (jb * kc + k) * LANES, w + k * d + j0 + jb * LANES, LANES * sizeof *wp);
}

/* z[i, k0 + k] = sum_j x[i, j] w[k0 + k, j] for k < kc, a panel of features at
 * a time (its partial sums added into z), two rows at a time so that each
 * weight load serves both. kc is a constant in each inlined copy. */
static inline __attribute__((always_inline)) void logits_chunk(int64_t n, int64_t d, const double *x, const double *w,
                                                               const double *b, int64_t out, int k0, int kc, double *z)
{
    FMA_CONTRACT
    double wp[PANEL * CHUNK];
    int64_t body = d - d % LANES;
    const double *wk0 = w + k0 * d;
    b = b ? b + k0 : NULL;
    for (int64_t j0 = 0; j0 < body || j0 == 0; j0 += PANEL) {
        int64_t width = body - j0 < PANEL ? body - j0 : PANEL, i = 0;
        bool first = j0 == 0;
        pack_panel(wk0, d, kc, j0, width, wp);
        for (; i + 1 < n; i += 2) {
            const double *x0 = x + i * d + j0, *x1 = x0 + d;
            vec a0[CHUNK] = { 0 }, a1[CHUNK] = { 0 };
            for (int64_t j = 0; j < width; j += LANES) {
                vec u = load(x0 + j), v = load(x1 + j);
                const double *wj = wp + j * kc;
                for (int k = 0; k < kc; k++) {
                    vec wk = load(wj + k * LANES);
                    a0[k] += u * wk;
                    a1[k] += v * wk;
                }
            }
            store_sums(a0, kc, first, b, z + i * out + k0);
            store_sums(a1, kc, first, b, z + (i + 1) * out + k0);
        }
        if (i < n) { /* the last row, without a pair */
            const double *x0 = x + i * d + j0;
            vec a0[CHUNK] = { 0 };
            for (int64_t j = 0; j < width; j += LANES) {
                vec u = load(x0 + j);
                for (int k = 0; k < kc; k++)
                    a0[k] += u * load(wp + j * kc + k * LANES);
            }
            store_sums(a0, kc, first, b, z + i * out + k0);
        }
    }
    for (int64_t i = 0; body < d && i < n; i++) /* the features after the last whole vector */
        for (int k = 0; k < kc; k++) {
            double s = z[i * out + k0 + k];
            for (int64_t j = body; j < d; j++)
                s += x[i * d + j] * wk0[k * d + j];
            z[i * out + k0 + k] = s;
        }
}

/* gw[k0 + k, j] += sum_i g[i, k0 + k] x[i, j] for k < kc: two vectors of
 * features at a time (each broadcast g serves both), their 2 kc accumulators
 * kept in registers over the block's rows. */
static inline __attribute__((always_inline)) void weight_grad_chunk(int64_t n, int64_t d, const double *x,
                                                                    const double *g, int64_t out, int k0, int kc,
                                                                    double *gw, double *gb)
{
    FMA_CONTRACT
    int64_t body = d - d % LANES, j = 0;
    double *gk0 = gw + k0 * d;
    for (; j + 2 * LANES <= body; j += 2 * LANES) {
        vec a[CHUNK], b[CHUNK];
        for (int k = 0; k < kc; k++) {
            a[k] = load(gk0 + k * d + j);
            b[k] = load(gk0 + k * d + j + LANES);
        }
        for (int64_t i = 0; i < n; i++) {
            vec u = load(x + i * d + j), v = load(x + i * d + j + LANES);
            const double *gi = g + i * out + k0;
            for (int k = 0; k < kc; k++) {
                a[k] += gi[k] * u;
                b[k] += gi[k] * v;
            }
        }
        for (int k = 0; k < kc; k++) {
            memcpy(gk0 + k * d + j, &a[k], sizeof a[k]);
            memcpy(gk0 + k * d + j + LANES, &b[k], sizeof b[k]);
        }
    }
    if (j < body) { /* an odd vector left */
        vec a[CHUNK];
        for (int k = 0; k < kc; k++)
            a[k] = load(gk0 + k * d + j);
        for (int64_t i = 0; i < n; i++) {
            vec u = load(x + i * d + j);
            const double *gi = g + i * out + k0;
            for (int k = 0; k < kc; k++)
                a[k] += gi[k] * u;
        }
        for (int k = 0; k < kc; k++)
            memcpy(gk0 + k * d + j, &a[k], sizeof a[k]);
    }
    for (j = body; j < d; j++)
        for (int k = 0; k < kc; k++) {
            double s = gk0[k * d + j];
            for (int64_t i = 0; i < n; i++)
                s += g[i * out + k0 + k] * x[i * d + j];
            gk0[k * d + j] = s;
        }
    if (gb) { /* the column sums in registers (adding into gb row by row stalled on store forwarding) */
        double s[CHUNK];
        for (int k = 0; k < kc; k++)
            s[k] = gb[k0 + k];
        for (int64_t i = 0; i < n; i++)
            for (int k = 0; k < kc; k++)
                s[k] += g[i * out + k0 + k];
        for (int k = 0; k < kc; k++)
            gb[k0 + k] = s[k];
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
#define LOGITS(KC) logits_chunk(n, d, x, w, b, out, k, KC, z)
        CHUNK_CASES(LOGITS)
#undef LOGITS
    }
}

FMA_FUNCTION void tg_block_weight_grad(int64_t n, int64_t d, int64_t out, const double *x, const double *g, double *gw,
                                       double *gb)
{
    for (int64_t k0 = 0; k0 < out; k0 += CHUNK) {
        int kc = (int)(out - k0 < CHUNK ? out - k0 : CHUNK), k = (int)k0;
#define WEIGHT_GRAD(KC) weight_grad_chunk(n, d, x, g, out, k, KC, gw, gb)
        CHUNK_CASES(WEIGHT_GRAD)
#undef WEIGHT_GRAD
    }
}

#define LOG_ROWS 16 /* a libm log per row was a sixth of the kernel; 16 rows' product adds 16 roundings at most */

/* Per row, loss = lse(z) - z_y and dz = softmax(z) - onehot(y): the rows
 * shifted by their max, then the exps of the whole block in one vectorised
 * pass (a row of 10 classes is less than two vectors), then each row's sum,
 * scale. The loss is summed as its two parts, sum (max - z_y) in row order
 * and sum log(sum of exps), the log of each LOG_ROWS rows' product in order. */
int tg_block_softmax_cross_entropy(int64_t n, int64_t out, const int64_t *y, double *z, double *loss)
{
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= out)
            return -1;
    double margins = 0, logs = 0;
    for (int64_t i = 0; i < n; i++) {
        double *zi = z + i * out, max = zi[0];
        for (int64_t k = 1; k < out; k++)
            max = zi[k] > max ? zi[k] : max;
        margins += max - zi[y[i]];
        for (int64_t k = 0; k < out; k++)
            zi[k] -= max;
    }
    tg_exp_row_f64(z, 0.0, z, n * out);
    double product = 1; /* of up to LOG_ROWS rows' sums, each in [1, out]: one log for them all */
    for (int64_t i = 0; i < n; i++) {
        double *zi = z + i * out, sum = 0;
        for (int64_t k = 0; k < out; k++)
            sum += zi[k];
        if (i % LOG_ROWS == 0 || product > 0x1p500) {
            logs += log(product);
            product = 1;
        }
        product *= sum;
        double inv = 1 / sum;
        for (int64_t k = 0; k < out; k++)
            zi[k] = zi[k] * inv - (k == y[i]);
    }
    *loss = margins + (logs + log(product));
    return 0;
}
