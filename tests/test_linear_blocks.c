/* The full-batch solver's kernels for one dense linear layer
 * (src/train/linear_blocks.c) against sums in long double: odd row counts (the
 * last row without a pair), feature counts off the vector width (the scalar
 * tail), more than one 256-feature panel of the logits, and output counts
 * across the 12-wide chunks. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>

#include "train/train.h"

static double uniform(unsigned *state)
{
    *state = *state * 1103515245u + 12345u;
    return (double)(*state >> 8) / (double)(1u << 24) * 2.0 - 1.0;
}

static void check_shape(int64_t n, int64_t d, int64_t out, bool bias)
{
    unsigned seed = (unsigned)(n * 1000003 + d * 1009 + out);
    double *x = malloc((size_t)(n * d) * sizeof *x), *w = malloc((size_t)(out * d) * sizeof *w);
    double *b = malloc((size_t)out * sizeof *b), *z = malloc((size_t)(n * out) * sizeof *z);
    double *g = malloc((size_t)(n * out) * sizeof *g), *gw = malloc((size_t)(out * d) * sizeof *gw);
    double *gb = malloc((size_t)out * sizeof *gb);
    cr_assert(x && w && b && z && g && gw && gb);
    for (int64_t i = 0; i < n * d; i++)
        x[i] = uniform(&seed);
    for (int64_t i = 0; i < out * d; i++)
        w[i] = gw[i] = uniform(&seed); /* gw starts non-zero: the kernel adds to it */
    for (int64_t k = 0; k < out; k++)
        b[k] = gb[k] = uniform(&seed);
    for (int64_t i = 0; i < n * out; i++)
        g[i] = uniform(&seed);
    tg_block_logits(n, d, out, x, w, bias ? b : NULL, z);
    tg_block_weight_grad(n, d, out, x, g, gw, bias ? gb : NULL);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < out; k++) {
            long double s = bias ? b[k] : 0;
            for (int64_t j = 0; j < d; j++)
                s += (long double)x[i * d + j] * w[k * d + j];
            cr_assert(fabsl(z[i * out + k] - s) <= 1e-13L * (1 + d),
                      "n %lld d %lld out %lld: z[%lld, %lld] %.17g vs %.17Lg", (long long)n, (long long)d,
                      (long long)out, (long long)i, (long long)k, z[i * out + k], s);
        }
    for (int64_t k = 0; k < out; k++) {
        for (int64_t j = 0; j < d; j++) {
            long double s = w[k * d + j]; /* gw's starting value */
            for (int64_t i = 0; i < n; i++)
                s += (long double)g[i * out + k] * x[i * d + j];
            cr_assert(fabsl(gw[k * d + j] - s) <= 1e-13L * (1 + n), "n %lld d %lld out %lld: gw[%lld, %lld]",
                      (long long)n, (long long)d, (long long)out, (long long)k, (long long)j);
        }
        long double s = b[k];
        for (int64_t i = 0; bias && i < n; i++)
            s += g[i * out + k];
        cr_assert(fabsl(gb[k] - s) <= 1e-13L * (1 + n), "gb[%lld]", (long long)k);
    }
    free(x), free(w), free(b), free(z), free(g), free(gw), free(gb);
}

Test(linear_blocks, every_shape_equals_long_double_sums)
{
    const int64_t rows[] = { 1, 2, 7, 64 }, features[] = { 1, 3, 8, 19, 64, 67, 300 }, outs[] = { 1, 2, 10, 12, 13, 25 };
    for (size_t a = 0; a < sizeof rows / sizeof *rows; a++)
        for (size_t c = 0; c < sizeof features / sizeof *features; c++)
            for (size_t e = 0; e < sizeof outs / sizeof *outs; e++)
                check_shape(rows[a], features[c], outs[e], (a + c + e) % 2 == 0);
}
