/* xoshiro256** (Blackman & Vigna) seeded by splitmix64: integer-only, so the
 * same seed gives the same stream on every platform and compiler. */
#include "tensor/tensor_internal.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void tg_rng_seed(tg_rng *rng, uint64_t seed)
{
    if (!rng) {
        tg_error("tg_rng_seed: rng is NULL");
        return;
    }
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

uint64_t tg_rng_next(tg_rng *rng)
{
    if (!rng) {
        tg_error("tg_rng_next: rng is NULL");
        return 0;
    }
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tg_rng_uniform(tg_rng *rng)
{
    if (!rng)
        return tg_error("tg_rng_uniform: rng is NULL"), NAN;
    return (double)(tg_rng_next(rng) >> 11) * 0x1.0p-53;
}

double tg_rng_normal(tg_rng *rng)
{
    if (!rng)
        return tg_error("tg_rng_normal: rng is NULL"), NAN;
    /* Box-Muller; 1 - u keeps the log's argument in (0, 1]. */
    double u1 = 1.0 - tg_rng_uniform(rng), u2 = tg_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

uint64_t tg_rng_below(tg_rng *rng, uint64_t n)
{
    if (!rng || n == 0) {
        tg_error(rng ? "tg_rng_below: n is 0, expected n > 0 (the range [0, n) is empty)"
                     : "tg_rng_below: rng is NULL");
        return 0;
    }
    /* Rejection keeps every value equally likely (no modulo bias). */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do
        r = tg_rng_next(rng);
    while (r >= limit);
    return r % n;
}

void tg_rng_fill_uniform(tg_rng *rng, tg_tensor *t, double lo, double hi)
{
    if (!rng || !t) {
        tg_error("tg_rng_fill_uniform: %s is NULL", rng ? "tensor" : "rng");
        return;
    }
    for (int64_t i = 0; i < t->numel; i++)
        tg_set(t, i, lo + (hi - lo) * tg_rng_uniform(rng));
}
