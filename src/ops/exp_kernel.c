/* exp over a row, vectorised: the cost of every softmax and cross-entropy is
 * its exps, and libm's expf is one scalar call each. Range reduction
 * x = k ln2 + r with |r| <= ln2/2, Cephes' degree-6 polynomial for e^r
 * (within 2 ulp of expf for normal results), and 2^k built in the exponent
 * bits. Results below FLT_MIN (x < -87.34) are flushed to 0 instead of
 * subnormals: an absolute error under 1.2e-38, invisible next to the 1 that
 * the row's max contributes. Exact at the edges: exp(-inf) = 0,
 * exp(+inf) = inf, exp(NaN) = NaN, overflow gives inf. float64 has its own
 * polynomial below. Compiled without -ffast-math, so the arithmetic is
 * exactly what is written. */
#include "ops/ops.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

typedef float vf __attribute__((vector_size(TG_VEC_BYTES)));
typedef int32_t vi __attribute__((vector_size(TG_VEC_BYTES)));
enum { LANES = TG_VEC_BYTES / 4 };

static inline vf select_f(vi mask, vf yes, vf no) { return (vf)(((vi)yes & mask) | ((vi)no & ~mask)); }

/* e^r for |r| <= ln2 / 2: Cephes' expf polynomial. */
static inline vf exp_reduced(vf r)
{
    vf p = (vf){ 0 } + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r * r + r + 1.0f;
}

static inline vf vexp(vf x)
{
    const vf hi = (vf){ 0 } + 88.72283905206835f, lo = (vf){ 0 } + -87.33654475055310f;
    vi over = x > hi, under = x < lo, nan = x != x;
    vf xc = select_f(over, hi, select_f(under, lo, x));
    /* k = round(x / ln2) with the 1.5 * 2^23 trick (exact for |k| < 2^22). */
    const vf shifter = (vf){ 0 } + 12582912.0f;
    vf k = (xc * 1.44269504088896341f + shifter) - shifter;
    vf r = xc - k * 0.693359375f - k * -2.12194440e-4f;
    vf y = exp_reduced(r);
    /* 2^k as two factors 2^(k/2) and 2^(k - k/2), each a normal float for k in [-126, 128]. */
    vi ki =
        __builtin_convertvector(select_f(nan, (vf){ 0 }, k), vi); /* NaN has no integer: keep the conversion defined */
    vi k1 = ki / 2, k2 = ki - k1;
    vf s1 = (vf)((k1 + 127) << 23), s2 = (vf)((k2 + 127) << 23);
    y = y * s1 * s2;
    y = select_f(over, (vf){ 0 } + INFINITY, select_f(under, (vf){ 0 }, y));
    return select_f(nan, x + x, y);
}

/* The common case of a softmax, x - max(x): every lane <= 0 and none NaN. Then
 * 2^k is one normal factor (k in [-126, 0]) and only underflow needs care. */
static inline vf vexp_nonpositive(vf x)
{
    const vf lo = (vf){ 0 } + -87.33654475055310f, shifter = (vf){ 0 } + 12582912.0f;
    vi under = x < lo;
    vf xc = select_f(under, lo, x);
    vf k = (xc * 1.44269504088896341f + shifter) - shifter;
    vf r = xc - k * 0.693359375f - k * -2.12194440e-4f;
    vf y = exp_reduced(r);
    vf scale = (vf)((__builtin_convertvector(k, vi) + 127) << 23);
    return (vf)((vi)(y * scale) & ~under);
}

/* Whether any lane of a comparison mask is set: one instruction on x86 (a mask test or movemask). */
static inline bool any_lane(vi mask)
{
#if defined(__AVX512F__) && TG_VEC_BYTES == 64
    return _mm512_test_epi32_mask((__m512i)mask, (__m512i)mask) != 0;
#elif defined(__AVX__) && TG_VEC_BYTES == 32
    return _mm256_movemask_ps((__m256)mask) != 0;
#elif defined(__SSE__) && TG_VEC_BYTES == 16
    return _mm_movemask_ps((__m128)mask) != 0;
#else
    int any = 0;
    for (int j = 0; j < LANES; j++)
        any |= mask[j];
    return any != 0;
#endif
}

static inline bool all_nonpositive(vf x) { return !any_lane((x > 0) | (x != x)); }

float tg_exp_row_f32(const float *x, float shift, float *out, int64_t n)
{
    vf total = { 0 };
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        v -= shift;
        v = all_nonpositive(v) ? vexp_nonpositive(v) : vexp(v);
        memcpy(out + i, &v, sizeof v);
        total += v;
    }
    if (i < n) { /* the tail through the same arithmetic: pad with -inf, whose exp is 0 */
        float tail[LANES];
        for (int j = 0; j < LANES; j++)
            tail[j] = i + j < n ? x[i + j] - shift : -INFINITY;
        vf v;
        memcpy(&v, tail, sizeof v);
        v = all_nonpositive(v) ? vexp_nonpositive(v) : vexp(v);
        memcpy(tail, &v, sizeof v);
        for (int j = 0; i + j < n; j++)
            out[i + j] = tail[j];
        total += v;
    }
    float sum = 0;
    for (int j = 0; j < LANES; j++)
        sum += total[j];
    return sum;
}

/* log(x) for 1 <= x < 2^24 or so, the range of a softmax row's sum of exps (at least the max's exp(0) = 1):
 * x = 2^e m with m in [sqrt(1/2), sqrt(2)), log(m) by Cephes' logf polynomial (within 2 ulp of logf).
 * NaN propagates. */
static inline vf vlog_positive(vf x)
{
    vi bits = (vi)x;
    vi e = ((bits >> 23) & 0xff) - 126;
    vf m = (vf)((bits & 0x807fffff) | 0x3f000000); /* in [0.5, 1) */
    vi small = m < 0.707106781186547524f;
    vf ef = __builtin_convertvector(e - (small & 1), vf);
    m = select_f(small, m + m, m) - 1.0f;
    vf z = m * m;
    vf y = (vf){ 0 } + 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += ef * -2.12194440e-4f;
    y += z * -0.5f;
    vf r = m + y + ef * 0.693359375f;
    return select_f(x != x, x, r);
}

void tg_log_row_f32(const float *x, float *out, int64_t n)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        v = vlog_positive(v);
        memcpy(out + i, &v, sizeof v);
    }
    if (i < n) {
        float tail[LANES];
        for (int j = 0; j < LANES; j++)
            tail[j] = i + j < n ? x[i + j] : 1.0f;
        vf v;
        memcpy(&v, tail, sizeof v);
        v = vlog_positive(v);
        for (int j = 0; i + j < n; j++)
            out[i + j] = v[j];
    }
}

float tg_max_row_f32(const float *x, int64_t n)
{
    float max = -INFINITY;
    if (n < LANES) { /* a row narrower than a vector: the lane reduction would cost more than the loop */
        for (int64_t i = 0; i < n; i++)
            max = x[i] > max ? x[i] : max;
        return max;
    }
    /* Lane-wise "greater than" keeps the scalar loop's rule: a NaN never becomes the max. */
    vf best = (vf){ 0 } - INFINITY;
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vf v;
        memcpy(&v, x + i, sizeof v);
        best = select_f(v > best, v, best);
    }
    for (int j = 0; j < LANES; j++)
        max = best[j] > max ? best[j] : max;
    for (; i < n; i++)
        max = x[i] > max ? x[i] : max;
    return max;
}

typedef double vd __attribute__((vector_size(TG_VEC_BYTES)));
typedef int64_t vl __attribute__((vector_size(TG_VEC_BYTES)));
enum { LANES_F64 = TG_VEC_BYTES / 8 };

static inline vd select_d(vl mask, vd yes, vd no) { return (vd)(((vl)yes & mask) | ((vl)no & ~mask)); }

/* The same scheme in double: x = k ln2 + r with ln2 split in fdlibm's hi and lo parts, e^r by its
 * Taylor series to r^13 (the first omitted term is below 4e-18 for |r| <= ln2 / 2), 2^k in the
 * exponent bits. Results below DBL_MIN (x < -708.39) flush to 0. */
static inline vd vexp_f64(vd x)
{
    const vd hi = (vd){ 0 } + 709.782712893383973096, lo = (vd){ 0 } + -708.396418532264106224;
    vl over = x > hi, under = x < lo, nan = x != x;
    vd xc = select_d(over | nan, (vd){ 0 }, select_d(under, lo, x));
    const vd shifter = (vd){ 0 } + 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
    vd k = (xc * 1.44269504088896338700 + shifter) - shifter;
    vd r = xc - k * 6.93147180369123816490e-01 - k * 1.90821492927058770002e-10;
    vd p = (vd){ 0 } + 1.0 / 6227020800.0; /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    vd y = (p * r) * r + r + 1.0;
    /* 2^k in two normal factors, k in [-1022, 1024]. */
    vl ki = __builtin_convertvector(k, vl);
    vl k1 = ki / 2, k2 = ki - k1;
    y = y * (vd)((k1 + 1023) << 52) * (vd)((k2 + 1023) << 52);
    y = select_d(over, (vd){ 0 } + INFINITY, select_d(under, (vd){ 0 }, y));
    return select_d(nan, x + x, y);
}

double tg_exp_row_f64(const double *x, double shift, double *out, int64_t n)
{
    vd total = { 0 };
    int64_t i = 0;
    for (; i + LANES_F64 <= n; i += LANES_F64) {
        vd v;
        memcpy(&v, x + i, sizeof v);
        v = vexp_f64(v - shift);
        memcpy(out + i, &v, sizeof v);
        total += v;
    }
    double sum = 0;
    for (int j = 0; j < LANES_F64; j++)
        sum += total[j];
    if (i < n) { /* the tail through the same arithmetic, padded with -inf (exp 0) */
        double tail[LANES_F64];
        for (int j = 0; j < LANES_F64; j++)
            tail[j] = i + j < n ? x[i + j] - shift : -INFINITY;
        vd v;
        memcpy(&v, tail, sizeof v);
        v = vexp_f64(v);
        for (int j = 0; i + j < n; j++)
            sum += (out[i + j] = v[j]);
    }
    return sum;
}
