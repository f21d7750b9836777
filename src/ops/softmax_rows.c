/* The one place a softmax's max and sum of exponentials are taken: softmax,
 * log_softmax and the fused cross-entropy all start a line (one softmax's
 * worth of values) here, so the stability rule — subtract the max before
 * exp — is written once. */
#include "ops/ops.h"

#include <tgmath.h>

double tg_row_exps(tg_dtype dtype, const void *x, void *e, int64_t n, double *max)
{
    double sum = 0;
    TG_FLOAT_DISPATCH(dtype, T, {
        const T *xs = x;
        T m = -INFINITY;
        if (sizeof(T) == sizeof(float))
            m = (T)tg_max_row_f32(x, n);
        else
            for (int64_t c = 0; c < n; c++)
                m = xs[c] > m ? xs[c] : m;
        *max = m;
        sum =
            sizeof(T) == sizeof(float) ? (double)tg_exp_row_f32(x, (float)m, e, n) : tg_exp_row_f64(x, (double)m, e, n);
    });
    return sum;
}

double tg_line_exps(tg_dtype dtype, const void *x, int64_t n, int64_t stride, void *out, double *max)
{
    double total = 0;
    TG_FLOAT_DISPATCH(dtype, T, {
        const T *xl = x;
        T *yl = out, m = -INFINITY;
        for (int64_t j = 0; j < n; j++)
            m = xl[j * stride] > m ? xl[j * stride] : m;
        for (int64_t j = 0; j < n; j++) {
            T e = exp(xl[j * stride] - m);
            if (yl)
                yl[j * stride] = e;
            total += e;
        }
        *max = m;
    });
    return total;
}
