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
    const int64_t rows[] = { 1, 2, 7, 64 }, features[] = { 1, 3, 8, 19, 64, 67, 300 },
                  outs[] = { 1, 2, 10, 12, 13, 25 };
    for (size_t a = 0; a < sizeof rows / sizeof *rows; a++)
        for (size_t c = 0; c < sizeof features / sizeof *features; c++)
            for (size_t e = 0; e < sizeof outs / sizeof *outs; e++)
                check_shape(rows[a], features[c], outs[e], (a + c + e) % 2 == 0);
}

/* Softmax cross-entropy of a block against long double: loss = sum_i log sum_c exp(z_ic) - z_iy, and
 * the gradient exp(z_ic) / sum_c exp(z_ic) - [c = y_i] in place of z; rows with large logits (the max
 * shift), one class and classes across the exps' vector tail. */
Test(linear_blocks, softmax_cross_entropy_equals_long_double)
{
    const int64_t rows[] = { 1, 5, 33 }, outs[] = { 1, 2, 3, 10, 17 };
    for (size_t a = 0; a < sizeof rows / sizeof *rows; a++)
        for (size_t e = 0; e < sizeof outs / sizeof *outs; e++) {
            int64_t n = rows[a], out = outs[e];
            unsigned seed = (unsigned)(n * 31 + out);
            double *z = malloc((size_t)(n * out) * sizeof *z), *z0 = malloc((size_t)(n * out) * sizeof *z0);
            int64_t *y = malloc((size_t)n * sizeof *y);
            cr_assert(z && z0 && y);
            for (int64_t i = 0; i < n * out; i++)
                z[i] = z0[i] = 8 * uniform(&seed) + (i % 7 == 3 ? 700 : 0);
            for (int64_t i = 0; i < n; i++)
                y[i] = (i * 7 + 3) % out;
            double loss = NAN;
            cr_assert_eq(tg_block_softmax_cross_entropy(n, out, y, z, &loss), 0);
            long double expected = 0;
            for (int64_t i = 0; i < n; i++) {
                long double max = z0[i * out], sum = 0;
                for (int64_t k = 1; k < out; k++)
                    max = fmaxl(max, z0[i * out + k]);
                for (int64_t k = 0; k < out; k++)
                    sum += expl(z0[i * out + k] - max);
                expected += max + logl(sum) - z0[i * out + y[i]];
                for (int64_t k = 0; k < out; k++) {
                    long double g = expl(z0[i * out + k] - max) / sum - (k == y[i]);
                    cr_assert(fabsl(z[i * out + k] - g) <= 1e-15L, "n %lld out %lld: dz[%lld, %lld] %.17g vs %.17Lg",
                              (long long)n, (long long)out, (long long)i, (long long)k, z[i * out + k], g);
                }
            }
            cr_assert(fabsl(loss - expected) <= 1e-14L * (1 + fabsl(expected)), "n %lld out %lld: %.17g vs %.17Lg",
                      (long long)n, (long long)out, loss, expected);
            free(z), free(z0), free(y);
        }
}

/* A label outside [0, out) (ignore_index, or an error, is the tape's to decide): -1 and z untouched. */
Test(linear_blocks, softmax_cross_entropy_leaves_other_labels_to_the_tape)
{
    double z[6] = { 1, 2, 3, 4, 5, 6 };
    const int64_t labels[][2] = { { 0, 3 }, { -100, 1 }, { 2, -1 } };
    for (size_t c = 0; c < sizeof labels / sizeof *labels; c++) {
        double loss = 42;
        cr_assert_eq(tg_block_softmax_cross_entropy(2, 3, labels[c], z, &loss), -1);
        cr_assert_eq(loss, 42);
        for (int k = 0; k < 6; k++)
            cr_assert_eq(z[k], k + 1);
    }
}
