/* The vectorised exp against libm's expf over the whole float range: every
 * 4099th bit pattern (about a million floats, negative and positive, normal
 * and subnormal, the infinities and NaNs), plus the edges by name. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "internal.h"

static float from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Distance in units in the last place between two finite floats of the same sign. */
static int64_t ulps(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

Test(exp_kernel, within_two_ulp_of_expf_over_the_whole_range)
{
    enum { BATCH = 4096 };
    static float x[BATCH], y[BATCH];
    int64_t worst = 0, checked = 0;
    uint64_t bits = 0;
    while (bits <= UINT32_MAX) {
        int n = 0;
        for (; n < BATCH && bits <= UINT32_MAX; n++, bits += 4099)
            x[n] = from_bits((uint32_t)bits);
        tg_exp_row_f32(x, 0.0f, y, n);
        for (int i = 0; i < n; i++, checked++) {
            float want = expf(x[i]);
            if (isnan(x[i])) {
                cr_assert(isnan(y[i]), "exp(NaN) = %g", y[i]);
            } else if (isinf(want)) {
                cr_assert(isinf(y[i]) && y[i] > 0, "exp(%a) = %a, expected inf", x[i], y[i]);
            } else if (want < FLT_MIN) {
                cr_assert(y[i] >= 0 && y[i] <= FLT_MIN, "exp(%a) = %a, expected %a (flushed to 0 is allowed)", x[i],
                          y[i], want);
            } else {
                int64_t u = ulps(y[i], want);
                cr_assert(u <= 2, "exp(%a) = %a, expf gives %a: %lld ulp apart", x[i], y[i], want, (long long)u);
                worst = u > worst ? u : worst;
            }
        }
    }
    cr_log_info("exp kernel: %lld values checked, worst %lld ulp", (long long)checked, (long long)worst);
}

Test(exp_kernel, edges)
{
    float x[8] = { -INFINITY, INFINITY, NAN, 0.0f, -0.0f, 88.7f, 89.0f, -87.0f }, y[8];
    tg_exp_row_f32(x, 0.0f, y, 8);
    cr_assert_eq(y[0], 0.0f);
    cr_assert(isinf(y[1]) && y[1] > 0);
    cr_assert(isnan(y[2]));
    cr_assert_eq(y[3], 1.0f);
    cr_assert_eq(y[4], 1.0f);
    cr_assert(ulps(y[5], expf(88.7f)) <= 2);
    cr_assert(isinf(y[6]));
    cr_assert(ulps(y[7], expf(-87.0f)) <= 2);
}

Test(exp_kernel, shift_and_sum_of_a_row_with_a_tail)
{
    float x[37], y[37];
    double want_sum = 0;
    for (int i = 0; i < 37; i++)
        x[i] = (float)(i - 20) * 0.37f;
    float shift = x[36], sum = tg_exp_row_f32(x, shift, y, 37);
    for (int i = 0; i < 37; i++) {
        float want = expf(x[i] - shift);
        cr_assert(ulps(y[i], want) <= 2, "y[%d] = %a, expected %a", i, y[i], want);
        want_sum += want;
    }
    cr_assert(fabs(sum - want_sum) <= 1e-6 * want_sum, "sum %.9g, expected %.9g", sum, want_sum);
}

/* Distance in units in the last place between two finite doubles of the same sign. */
static int64_t ulps64(double a, double b)
{
    int64_t ia, ib;
    memcpy(&ia, &a, 8);
    memcpy(&ib, &b, 8);
    return ia > ib ? ia - ib : ib - ia;
}

Test(exp_kernel, float64_within_two_ulp_of_exp)
{
    enum { N = 200000 };
    static double x[N], y[N];
    tg_rng rng;
    tg_rng_seed(&rng, 64);
    for (int i = 0; i < N; i++) /* the whole finite-result range, and beyond both ends */
        x[i] = -760.0 + 1480.0 * tg_rng_uniform(&rng);
    x[0] = -INFINITY, x[1] = INFINITY, x[2] = NAN, x[3] = 0.0, x[4] = 709.7, x[5] = -708.3, x[6] = 1e-300;
    tg_exp_row_f64(x, 0.0, y, N);
    int64_t worst = 0;
    for (int i = 0; i < N; i++) {
        double want = exp(x[i]);
        if (isnan(x[i]))
            cr_assert(isnan(y[i]));
        else if (isinf(want))
            cr_assert(isinf(y[i]) && y[i] > 0, "exp(%a) = %a, expected inf", x[i], y[i]);
        else if (want < DBL_MIN)
            cr_assert(y[i] >= 0 && y[i] <= DBL_MIN, "exp(%a) = %a, expected %a (flushed to 0 is allowed)", x[i], y[i],
                      want);
        else {
            int64_t u = ulps64(y[i], want);
            cr_assert(u <= 2, "exp(%a) = %a, exp gives %a: %lld ulp apart", x[i], y[i], want, (long long)u);
            worst = u > worst ? u : worst;
        }
    }
    cr_log_info("exp kernel float64: %d values checked, worst %lld ulp", N, (long long)worst);
}

Test(exp_kernel, log_of_row_sums_within_two_ulp_of_logf)
{
    enum { N = 100003 };
    static float x[N], y[N];
    tg_rng rng;
    tg_rng_seed(&rng, 32);
    for (int i = 0; i < N; i++) /* sums of exps: 1 (one dominant logit) up to millions of classes */
        x[i] = (float)exp(tg_rng_uniform(&rng) * 16.0);
    x[0] = 1.0f, x[1] = 2.0f, x[2] = 1.0000001f, x[3] = 0.75f * 2, x[4] = NAN, x[5] = 1.4142135f;
    tg_log_row_f32(x, y, N);
    int64_t worst = 0;
    for (int i = 0; i < N; i++) {
        if (isnan(x[i])) {
            cr_assert(isnan(y[i]));
            continue;
        }
        float want = logf(x[i]);
        int64_t u = want == 0 ? (y[i] == 0 ? 0 : 99) : ulps(y[i], want);
        cr_assert(u <= 2 || fabsf(y[i] - want) <= 1e-7f, "log(%a) = %a, logf gives %a: %lld ulp apart", x[i], y[i],
                  want, (long long)u);
        worst = u > worst ? u : worst;
    }
    cr_log_info("log kernel: %d values checked, worst %lld ulp", N, (long long)worst);
}
