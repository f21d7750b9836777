/* Shared by the test files: tensor builders and the float64 reference helpers. */
#ifndef TAPEGRAD_TEST_HELPERS_H
#define TAPEGRAD_TEST_HELPERS_H

#include <tapegrad.h>

/* A caller-owned float64 tensor filled with uniform values in [lo, hi) from seed. */
tg_tensor *random_tensor(tg_dtype dtype, int ndim, const int64_t *shape, uint64_t seed, double lo, double hi);
/* A caller-owned int64 tensor of n labels in [0, classes) from seed. */
tg_tensor *random_labels(int64_t n, int64_t classes, uint64_t seed);
/* Criterion-friendly: |a - b| <= tol (both NaN counts as equal). */
int close_enough(double a, double b, double tol);

#endif
