/* The machinery the elementwise ops share, so that each op file holds only
 * its own math: a forward expression and the partial derivatives. */
#ifndef TAPEGRAD_ELEMENTWISE_H
#define TAPEGRAD_ELEMENTWISE_H

#include "ops.h"

/* ---- unary ops: y = f(x) ---- */

typedef struct {
    void (*f32)(const float *x, const float *y, const float *g, float *out, int64_t n);
    void (*f64)(const double *x, const double *y, const double *g, double *out, int64_t n);
} tg_unary_kernel;

/* Defines kernel `name` computing out[i] = EXPR, with X = x[i] in scope (forward). */
#define TG_UNARY_FORWARD(name, EXPR) TG_UNARY_KERNEL_(name, =, EXPR)
/* Defines kernel `name` computing out[i] += EXPR, with X = x[i], Y = y[i] and
 * G = g[i] (the upstream gradient) in scope (backward). */
#define TG_UNARY_BACKWARD(name, EXPR) TG_UNARY_KERNEL_(name, +=, EXPR)

#define TG_UNARY_KERNEL_(name, ASSIGN, EXPR)                                                                           \
    static void name##_f32(const float *x, const float *y, const float *g, float *out, int64_t n)                      \
    {                                                                                                                  \
        typedef float T;                                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T X = x[i], Y = y ? y[i] : 0, G = g ? g[i] : 0;                                                            \
            (void)X, (void)Y, (void)G;                                                                                 \
            out[i] ASSIGN(EXPR);                                                                                       \
        }                                                                                                              \
    }                                                                                                                  \
    static void name##_f64(const double *x, const double *y, const double *g, double *out, int64_t n)                  \
    {                                                                                                                  \
        typedef double T;                                                                                              \
        for (int64_t i = 0; i < n; i++) {                                                                              \
            T X = x[i], Y = y ? y[i] : 0, G = g ? g[i] : 0;                                                            \
            (void)X, (void)Y, (void)G;                                                                                 \
            out[i] ASSIGN(EXPR);                                                                                       \
        }                                                                                                              \
    }                                                                                                                  \
    static const tg_unary_kernel name = { name##_f32, name##_f64 }

/* Runs forward over x into a new tape tensor and records backward. */
tg_tensor *tg_unary_op(tg_tape *tape, const char *op, tg_tensor *x, const tg_unary_kernel *forward,
                       tg_backward_fn backward);
/* The backward of a unary op: dx += kernel(x, y, g). */
int tg_unary_backward(tg_tape *tape, tg_node *node, const tg_unary_kernel *kernel);

/* ---- binary ops with broadcasting: y = f(a, b) ---- */

typedef struct {
    void (*f32)(const float *a, int64_t sa, const float *b, int64_t sb, const float *y, const float *g, float *out,
                int64_t n);
    void (*f64)(const double *a, int64_t sa, const double *b, int64_t sb, const double *y, const double *g, double *out,
                int64_t n);
} tg_binary_kernel;

/* The loop of a binary kernel, with A and B read as A_AT and B_AT: the unit-stride and broadcast-scalar
 * cases get loops of their own so that the compiler vectorises them. */
#define TG_BINARY_LOOP_(EXPR, A_AT, B_AT)                                                                              \
    for (int64_t i = 0; i < n; i++) {                                                                                  \
        T A = A_AT, B = B_AT, Y = y ? y[i] : 0, G = g ? g[i] : 0;                                                      \
        (void)A, (void)B, (void)Y, (void)G;                                                                            \
        out[i] = (EXPR);                                                                                               \
    }

/* The kernel's loop for its strides: unit-stride and broadcast-scalar b get loops of their own. */
#define TG_BINARY_STRIDES_(EXPR)                                                                                       \
    if (sa == 1 && sb == 1)                                                                                            \
        TG_BINARY_LOOP_(EXPR, a[i], b[i])                                                                              \
    else if (sa == 1 && sb == 0)                                                                                       \
        TG_BINARY_LOOP_(EXPR, a[i], b[0])                                                                              \
    else                                                                                                               \
        TG_BINARY_LOOP_(EXPR, a[i * sa], b[i * sb])

/* Defines kernel `name` computing out[i] = EXPR over the broadcast shape, with
 * A and B (the inputs at the broadcast position), Y (the output) and G (the
 * upstream gradient) in scope; Y and G are 0 in a forward. */
#define TG_BINARY_KERNEL(name, EXPR)                                                                                   \
    TG_BINARY_FUNCTIONS_(name, EXPR)                                                                                   \
    static const tg_binary_kernel name = { name##_f32, name##_f64 }
#define TG_BINARY_FUNCTIONS_(name, EXPR)                                                                               \
    static void name##_f32(const float *a, int64_t sa, const float *b, int64_t sb, const float *y, const float *g,     \
                           float *out, int64_t n)                                                                      \
    {                                                                                                                  \
        typedef float T;                                                                                               \
        TG_BINARY_STRIDES_(EXPR)                                                                                       \
    }                                                                                                                  \
    static void name##_f64(const double *a, int64_t sa, const double *b, int64_t sb, const double *y, const double *g, \
                           double *out, int64_t n)                                                                     \
    {                                                                                                                  \
        typedef double T;                                                                                              \
        TG_BINARY_STRIDES_(EXPR)                                                                                       \
    }

/* Checks, broadcasts, runs forward into a new tape tensor and records backward. */
tg_tensor *tg_binary_op(tg_tape *tape, const char *op, tg_tensor *a, tg_tensor *b, const tg_binary_kernel *forward,
                        tg_backward_fn backward);
/* The partial that is the upstream gradient itself (d(a + b)/da): tg_binary_backward
 * sums g straight into the input's gradient, with no copy over the broadcast shape. */
extern const tg_binary_kernel tg_upstream_grad;

/* The backward of a binary op: each input that needs it gets
 * grad += unbroadcast(kernel(a, b, y, g)). A NULL kernel skips that input. */
int tg_binary_backward(tg_tape *tape, tg_node *node, const tg_binary_kernel *grad_a, const tg_binary_kernel *grad_b);

/* ---- loss reductions (src/ops/loss_reduction.c) ---- */

/* A loss's reduced value: TG_SUM writes total, TG_MEAN total / denominator (NaN when the
 * denominator is 0, PyTorch's 0/0); TG_NONE writes nothing (the positions were written). */
void tg_loss_reduce(tg_tensor *loss, tg_reduction reduction, double total, double denominator);
/* The upstream gradient position p's loss receives: g[p] (TG_NONE), g (TG_SUM), g / denominator (TG_MEAN). */
double tg_loss_grad_scale(const tg_tensor *g, tg_reduction reduction, int64_t p, double denominator);

/* ---- reductions (src/ops/sum.c) ---- */

/* scale * sum of x over axis (TG_ALL: every axis); tg_sum and tg_mean. */
tg_tensor *tg_reduce_sum(tg_tape *tape, const char *op, tg_tensor *x, int axis, bool mean);

#endif
