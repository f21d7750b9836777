#include "helpers.h"

#include <math.h>

tg_tensor *random_tensor(tg_dtype dtype, int ndim, const int64_t *shape, uint64_t seed, double lo, double hi)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    if (t)
        tg_rng_fill_uniform(&rng, t, lo, hi);
    return t;
}

tg_tensor *random_labels(int64_t n, int64_t classes, uint64_t seed)
{
    tg_tensor *t = tg_tensor_new(TG_I64, 1, (int64_t[]){ n });
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int64_t i = 0; t && i < n; i++)
        ((int64_t *)tg_data(t))[i] = (int64_t)tg_rng_below(&rng, (uint64_t)classes);
    return t;
}

int close_enough(double a, double b, double tol)
{
    if (isnan(a) && isnan(b))
        return 1;
    return fabs(a - b) <= tol;
}
