/* Every op with a backward through tg_gradcheck in float64 (broadcasting
 * shapes, every axis, every loss option), one end-to-end classifier, and a
 * check that float32 agrees with float64 on the same cases. One table drives
 * both parameterized tests: a case names the op, its inputs and its options. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <math.h>
#include <stdbool.h>

#include "helpers.h"

/* The enums and the table read best as tables. */
/* clang-format off */
typedef enum {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV,
    OP_NEG, OP_EXP, OP_LOG, OP_RELU, OP_SIGMOID, OP_TANH,
    OP_MATMUL, OP_LINEAR,
    OP_SUM, OP_MEAN, OP_RESHAPE, OP_TRANSPOSE,
    OP_SOFTMAX, OP_LOG_SOFTMAX,
    OP_NLL, /* nll_loss(log_softmax(x, -1), target) */
    OP_CE,
} op_kind;

typedef enum {
    SIGNED,         /* uniform in [-2, 2) */
    WIDE,           /* uniform in [-8, 8): saturates sigmoid and tanh */
    POSITIVE,       /* uniform in [0.5, 2): log, divisors */
    AWAY_FROM_ZERO, /* |x| in [0.5, 2), either sign: relu's kink and div's pole stay out of reach */
    LABELS,         /* int64 class indices for input 0's last axis; the first `ignored_rows` are ignore_index */
    PROBS,          /* rows on the simplex along the last axis */
} fill_kind;
/* clang-format on */

typedef struct {
    int ndim;
    int64_t shape[4];
    fill_kind fill;
} input_spec;

/* A parameter of a Criterion test: copied into the test's process, so it holds no pointers. */
typedef struct {
    char name[128];
    op_kind op;
    int n_inputs;
    input_spec in[3];
    unsigned constant_mask; /* bit i: input i does not require a gradient */
    int axis, axis1; /* reductions, softmax; transpose swaps axis and axis1 */
    int new_ndim; /* reshape */
    int64_t new_shape[4];
    /* nll_loss and cross_entropy */
    tg_reduction reduction;
    bool weighted;
    int64_t ignore_index;
    int ignored_rows;
    double smoothing;
} op_case;

/* ---- the table ---- */

/* clang-format off */

#define S0(f) { 0, { 0 }, f }
#define S1(a, f) { 1, { a }, f }
#define S2(a, b, f) { 2, { a, b }, f }
#define S3(a, b, c, f) { 3, { a, b, c }, f }
#define X234 S3(2, 3, 4, SIGNED)

#define BINARY(op_, sa, sb) { .name = #op_ " " #sa " " #sb, .op = op_, .n_inputs = 2, .in = { sa, sb } }
#define BROADCASTS(op, fb)                                                                                         \
    BINARY(op, S2(3, 4, SIGNED), S2(3, 4, fb)), BINARY(op, S2(3, 4, SIGNED), S1(4, fb)),                           \
        BINARY(op, S2(3, 1, SIGNED), S2(1, 4, fb)), BINARY(op, X234, S2(3, 1, fb)),                                \
        BINARY(op, S0(SIGNED), S2(2, 3, fb)), BINARY(op, S2(2, 3, SIGNED), S0(fb)),                                \
        BINARY(op, S1(4, SIGNED), S2(3, 4, fb)), BINARY(op, S3(2, 1, 4, SIGNED), S2(3, 1, fb))
#define UNARY(op_, s) { .name = #op_ " " #s, .op = op_, .n_inputs = 1, .in = { s } }
#define AXIS(op_, s, ax) { .name = #op_ " " #s " axis " #ax, .op = op_, .n_inputs = 1, .in = { s }, .axis = ax }
#define RESHAPE(s, n, ...)                                                                                         \
    { .name = "reshape " #s " to " #__VA_ARGS__, .op = OP_RESHAPE, .n_inputs = 1, .in = { s }, .new_ndim = n,     \
      .new_shape = { __VA_ARGS__ } }
#define TRANSPOSE(s, a0, a1)                                                                                       \
    { .name = "transpose " #s " " #a0 " " #a1, .op = OP_TRANSPOSE, .n_inputs = 1, .in = { s }, .axis = a0,         \
      .axis1 = a1 }
#define LOSS(op_, logits, target, red, weighted_, ignore, ignored, smoothing_)                                     \
    { .name = #op_ " " #logits " " #target " " #red " weighted=" #weighted_ " ignore_index=" #ignore " x" #ignored  \
              " smoothing=" #smoothing_,                                                                           \
      .op = op_, .n_inputs = 2, .in = { logits, target }, .reduction = red, .weighted = weighted_,                 \
      .ignore_index = ignore, .ignored_rows = ignored, .smoothing = smoothing_ }
/* x [batch, 4], W [3, 4], and b [3] when n_inputs_ is 3 */
#define LINEAR(batch, n_inputs_, constant)                                                                         \
    { .name = "linear batch " #batch " inputs " #n_inputs_ " constant mask " #constant, .op = OP_LINEAR,           \
      .n_inputs = n_inputs_, .in = { S2(batch, 4, SIGNED), S2(3, 4, SIGNED), S1(3, SIGNED) },                      \
      .constant_mask = constant }
#define L54 S2(5, 4, SIGNED)
#define Y5 S1(5, LABELS)
#define P54 S2(5, 4, PROBS)

static op_case cases[] = {
    BROADCASTS(OP_ADD, SIGNED), BROADCASTS(OP_SUB, SIGNED), BROADCASTS(OP_MUL, SIGNED),
    BROADCASTS(OP_DIV, AWAY_FROM_ZERO),
    { .name = "mul: only a requires a gradient", .op = OP_MUL, .n_inputs = 2,
      .in = { S2(3, 4, SIGNED), S1(4, SIGNED) }, .constant_mask = 2 },
    { .name = "div: only b requires a gradient", .op = OP_DIV, .n_inputs = 2,
      .in = { S2(3, 1, SIGNED), S2(1, 4, POSITIVE) }, .constant_mask = 1 },
    { .name = "mul x * x (one tensor used twice)", .op = OP_MUL, .n_inputs = 1, .in = { S2(3, 4, SIGNED) } },

    UNARY(OP_NEG, S2(3, 4, SIGNED)), UNARY(OP_EXP, S2(3, 4, SIGNED)), UNARY(OP_EXP, S0(SIGNED)),
    UNARY(OP_LOG, S2(3, 4, POSITIVE)), UNARY(OP_RELU, S2(3, 4, AWAY_FROM_ZERO)), UNARY(OP_RELU, X234),
    UNARY(OP_SIGMOID, S2(3, 4, SIGNED)), UNARY(OP_SIGMOID, S2(3, 4, WIDE)), UNARY(OP_TANH, S2(3, 4, SIGNED)),
    UNARY(OP_TANH, S2(3, 4, WIDE)),

    BINARY(OP_MATMUL, S2(3, 4, SIGNED), S2(4, 5, SIGNED)), BINARY(OP_MATMUL, S2(1, 7, SIGNED), S2(7, 1, SIGNED)),
    LINEAR(1, 3, 0), LINEAR(5, 3, 0), LINEAR(1, 2, 0), LINEAR(5, 2, 0),
    LINEAR(5, 3, 5), /* x and bias constant: the weight's gradient alone */

    AXIS(OP_SUM, X234, TG_ALL), AXIS(OP_SUM, X234, 0), AXIS(OP_SUM, X234, 1), AXIS(OP_SUM, X234, 2),
    AXIS(OP_SUM, X234, -1), AXIS(OP_SUM, X234, -3), AXIS(OP_SUM, S1(5, SIGNED), 0),
    AXIS(OP_MEAN, X234, TG_ALL), AXIS(OP_MEAN, X234, 0), AXIS(OP_MEAN, X234, 1), AXIS(OP_MEAN, X234, 2),
    AXIS(OP_MEAN, X234, -1), AXIS(OP_MEAN, X234, -2),

    RESHAPE(X234, 2, 6, 4), RESHAPE(X234, 2, 4, -1), RESHAPE(X234, 1, -1), RESHAPE(X234, 3, 3, -1, 2),
    RESHAPE(S2(1, 1, SIGNED), 0, 0), RESHAPE(S0(SIGNED), 3, 1, -1, 1),
    TRANSPOSE(S2(3, 4, SIGNED), 0, 1), TRANSPOSE(S2(3, 4, SIGNED), -1, -2), TRANSPOSE(X234, 0, 1),
    TRANSPOSE(X234, 0, 2), TRANSPOSE(X234, 1, 2), TRANSPOSE(X234, -1, 0), TRANSPOSE(X234, 1, 1),

    AXIS(OP_SOFTMAX, X234, 0), AXIS(OP_SOFTMAX, X234, 1), AXIS(OP_SOFTMAX, X234, 2), AXIS(OP_SOFTMAX, X234, -1),
    AXIS(OP_SOFTMAX, X234, -3), AXIS(OP_SOFTMAX, S2(1, 5, SIGNED), 1), AXIS(OP_SOFTMAX, S2(6, 5, SIGNED), -1),
    AXIS(OP_SOFTMAX, S2(6, 5, SIGNED), 0), AXIS(OP_SOFTMAX, S2(6, 5, WIDE), 1),
    AXIS(OP_LOG_SOFTMAX, X234, 0), AXIS(OP_LOG_SOFTMAX, X234, 1), AXIS(OP_LOG_SOFTMAX, X234, 2),
    AXIS(OP_LOG_SOFTMAX, X234, -1), AXIS(OP_LOG_SOFTMAX, X234, -2), AXIS(OP_LOG_SOFTMAX, S2(1, 5, SIGNED), 1),
    AXIS(OP_LOG_SOFTMAX, S2(6, 5, SIGNED), -1), AXIS(OP_LOG_SOFTMAX, S2(6, 5, SIGNED), 0),
    AXIS(OP_LOG_SOFTMAX, S2(6, 5, WIDE), 1),

    LOSS(OP_NLL, L54, Y5, TG_MEAN, 0, -100, 0, 0.0), LOSS(OP_NLL, L54, Y5, TG_SUM, 0, -100, 0, 0.0),
    LOSS(OP_NLL, L54, Y5, TG_NONE, 0, -100, 0, 0.0), LOSS(OP_NLL, L54, Y5, TG_MEAN, 1, -100, 0, 0.0),
    LOSS(OP_NLL, L54, Y5, TG_SUM, 1, -100, 0, 0.0), LOSS(OP_NLL, L54, Y5, TG_NONE, 1, -100, 0, 0.0),
    LOSS(OP_NLL, L54, Y5, TG_MEAN, 0, -100, 2, 0.0), LOSS(OP_NLL, L54, Y5, TG_SUM, 0, -100, 2, 0.0),
    LOSS(OP_NLL, L54, Y5, TG_NONE, 0, -100, 2, 0.0), LOSS(OP_NLL, L54, Y5, TG_MEAN, 1, -100, 2, 0.0),
    LOSS(OP_NLL, L54, Y5, TG_MEAN, 1, 1, 1, 0.0), /* ignore_index 1 is a real class: every row labelled 1 drops */
    LOSS(OP_NLL, L54, Y5, TG_SUM, 0, -100, 5, 0.0), /* every row ignored: the sum is 0, so is the gradient */
    LOSS(OP_NLL, S1(4, SIGNED), S0(LABELS), TG_MEAN, 0, -100, 0, 0.0),
    LOSS(OP_NLL, S1(4, SIGNED), S0(LABELS), TG_NONE, 1, -100, 0, 0.0),

    LOSS(OP_CE, L54, Y5, TG_MEAN, 0, -100, 0, 0.0), LOSS(OP_CE, L54, Y5, TG_SUM, 0, -100, 0, 0.0),
    LOSS(OP_CE, L54, Y5, TG_NONE, 0, -100, 0, 0.0), LOSS(OP_CE, L54, Y5, TG_MEAN, 1, -100, 0, 0.0),
    LOSS(OP_CE, L54, Y5, TG_SUM, 1, -100, 0, 0.0), LOSS(OP_CE, L54, Y5, TG_NONE, 1, -100, 0, 0.0),
    LOSS(OP_CE, L54, Y5, TG_MEAN, 0, -100, 2, 0.0), LOSS(OP_CE, L54, Y5, TG_SUM, 0, -100, 2, 0.0),
    LOSS(OP_CE, L54, Y5, TG_NONE, 0, -100, 2, 0.0), LOSS(OP_CE, L54, Y5, TG_MEAN, 1, -100, 2, 0.0),
    LOSS(OP_CE, L54, Y5, TG_MEAN, 1, 1, 1, 0.0), LOSS(OP_CE, L54, Y5, TG_SUM, 0, -100, 5, 0.0),
    /* label smoothing 0.1 */
    LOSS(OP_CE, L54, Y5, TG_MEAN, 0, -100, 0, 0.1), LOSS(OP_CE, L54, Y5, TG_SUM, 0, -100, 0, 0.1),
    LOSS(OP_CE, L54, Y5, TG_NONE, 0, -100, 0, 0.1), LOSS(OP_CE, L54, Y5, TG_MEAN, 1, -100, 2, 0.1),
    LOSS(OP_CE, L54, Y5, TG_NONE, 1, -100, 2, 0.1),
    LOSS(OP_CE, S2(1, 4, SIGNED), S1(1, LABELS), TG_MEAN, 0, -100, 0, 0.0),
    LOSS(OP_CE, S2(6, 3, WIDE), S1(6, LABELS), TG_MEAN, 0, -100, 0, 0.0),
    LOSS(OP_CE, S1(4, SIGNED), S0(LABELS), TG_MEAN, 0, -100, 0, 0.0),
    LOSS(OP_CE, S1(4, SIGNED), S0(LABELS), TG_NONE, 1, -100, 0, 0.1),
    /* probability targets: the target is checked too (the header promises it a gradient) */
    LOSS(OP_CE, L54, P54, TG_MEAN, 0, -100, 0, 0.0), LOSS(OP_CE, L54, P54, TG_SUM, 0, -100, 0, 0.0),
    LOSS(OP_CE, L54, P54, TG_NONE, 0, -100, 0, 0.0), LOSS(OP_CE, L54, P54, TG_MEAN, 1, -100, 0, 0.0),
    LOSS(OP_CE, L54, P54, TG_NONE, 1, -100, 0, 0.0), LOSS(OP_CE, L54, P54, TG_MEAN, 0, -100, 0, 0.1),
    LOSS(OP_CE, L54, P54, TG_SUM, 1, -100, 0, 0.1),
    LOSS(OP_CE, S1(4, SIGNED), S1(4, PROBS), TG_MEAN, 0, -100, 0, 0.1),
    { .name = "cross_entropy: only the probability target requires a gradient", .op = OP_CE, .n_inputs = 2,
      .in = { L54, P54 }, .constant_mask = 1, .reduction = TG_MEAN, .ignore_index = -100, .smoothing = 0.1 },
};
/* clang-format on */
#define N_CASES (sizeof cases / sizeof *cases)

/* ---- running a case ---- */

typedef struct {
    const op_case *c;
    tg_ce_opts opts; /* with the weight of the run's dtype */
} run_ctx;

static tg_tensor *apply_op(tg_tape *tape, tg_tensor *const *in, void *ctx)
{
    const run_ctx *run = ctx;
    const op_case *c = run->c;
    switch (c->op) {
    case OP_ADD: return tg_add(tape, in[0], in[1]);
    case OP_SUB: return tg_sub(tape, in[0], in[1]);
    case OP_MUL: return tg_mul(tape, in[0], in[c->n_inputs - 1]);
    case OP_DIV: return tg_div(tape, in[0], in[1]);
    case OP_NEG: return tg_neg(tape, in[0]);
    case OP_EXP: return tg_exp(tape, in[0]);
    case OP_LOG: return tg_log(tape, in[0]);
    case OP_RELU: return tg_relu(tape, in[0]);
    case OP_SIGMOID: return tg_sigmoid(tape, in[0]);
    case OP_TANH: return tg_tanh(tape, in[0]);
    case OP_MATMUL: return tg_matmul(tape, in[0], in[1]);
    case OP_LINEAR: return tg_linear(tape, in[0], in[1], c->n_inputs > 2 ? in[2] : NULL);
    case OP_SUM: return tg_sum(tape, in[0], c->axis);
    case OP_MEAN: return tg_mean(tape, in[0], c->axis);
    case OP_RESHAPE: return tg_reshape(tape, in[0], c->new_ndim, c->new_shape);
    case OP_TRANSPOSE: return tg_transpose(tape, in[0], c->axis, c->axis1);
    case OP_SOFTMAX: return tg_softmax(tape, in[0], c->axis);
    case OP_LOG_SOFTMAX: return tg_log_softmax(tape, in[0], c->axis);
    case OP_NLL: return tg_nll_loss(tape, tg_log_softmax(tape, in[0], -1), in[1], &run->opts);
    case OP_CE: return tg_cross_entropy(tape, in[0], in[1], &run->opts);
    }
    return NULL;
}

/* The inputs of one case in one dtype, plus the class weights. */
typedef struct {
    tg_tensor *in[3];
    tg_tensor *weight;
    run_ctx run;
} case_inputs;

static tg_tensor *make_input(const op_case *c, int i, uint64_t seed)
{
    const input_spec *s = &c->in[i];
    tg_tensor *t = NULL;
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    switch (s->fill) {
    case SIGNED: return random_tensor(TG_F64, s->ndim, s->shape, seed, -2, 2);
    case WIDE: return random_tensor(TG_F64, s->ndim, s->shape, seed, -8, 8);
    case POSITIVE: return random_tensor(TG_F64, s->ndim, s->shape, seed, 0.5, 2);
    case AWAY_FROM_ZERO:
        t = random_tensor(TG_F64, s->ndim, s->shape, seed, -1.5, 1.5);
        for (int64_t j = 0; t && j < tg_numel(t); j++)
            tg_set(t, j, tg_get(t, j) + copysign(0.5, tg_get(t, j)));
        return t;
    case LABELS: {
        int64_t classes = c->in[0].shape[c->in[0].ndim - 1];
        t = tg_tensor_new(TG_I64, s->ndim, s->shape);
        for (int64_t j = 0; t && j < tg_numel(t); j++)
            ((int64_t *)tg_data(t))[j] =
                j < c->ignored_rows ? c->ignore_index : (int64_t)tg_rng_below(&rng, (uint64_t)classes);
        return t;
    }
    case PROBS: {
        t = random_tensor(TG_F64, s->ndim, s->shape, seed, 0.1, 1);
        int64_t classes = s->shape[s->ndim - 1];
        for (int64_t row = 0; t && row < tg_numel(t) / classes; row++) {
            double total = 0;
            for (int64_t k = 0; k < classes; k++)
                total += tg_get(t, row * classes + k);
            for (int64_t k = 0; k < classes; k++)
                tg_set(t, row * classes + k, tg_get(t, row * classes + k) / total);
        }
        return t;
    }
    }
    return NULL;
}

static void build_inputs(const op_case *c, case_inputs *ci)
{
    *ci = (case_inputs){ .run = { .c = c, .opts = TG_CE_OPTS_DEFAULT } };
    for (int i = 0; i < c->n_inputs; i++) {
        ci->in[i] = make_input(c, i, 1000 + 17 * (uint64_t)i);
        cr_assert_not_null(ci->in[i], "%s: input %d: %s", c->name, i, tg_last_error());
        tg_set_requires_grad(ci->in[i], !(c->constant_mask & (1u << i)));
    }
    if (c->weighted) {
        int64_t classes = c->in[0].shape[c->in[0].ndim - 1];
        ci->weight = random_tensor(TG_F64, 1, (int64_t[]){ classes }, 99, 0.2, 2);
        cr_assert_not_null(ci->weight, "%s", tg_last_error());
    }
    ci->run.opts = (tg_ce_opts){ .reduction = c->reduction,
                                 .weight = ci->weight,
                                 .ignore_index = c->ignore_index,
                                 .label_smoothing = c->smoothing };
}

/* A caller-owned copy of a float tensor in dtype (int64 tensors are copied as they are). */
static tg_tensor *converted(const tg_tensor *t, tg_dtype dtype)
{
    if (!t)
        return NULL;
    tg_dtype to = tg_dtype_of(t) == TG_I64 ? TG_I64 : dtype;
    tg_tensor *copy = tg_tensor_new(to, tg_ndim(t), tg_shape(t));
    for (int64_t j = 0; copy && j < tg_numel(t); j++)
        tg_set(copy, j, tg_get(t, j));
    if (copy)
        tg_set_requires_grad(copy, tg_requires_grad(t));
    return copy;
}

static void convert_inputs(const case_inputs *from, tg_dtype dtype, case_inputs *to)
{
    *to = *from;
    for (int i = 0; i < from->run.c->n_inputs; i++)
        cr_assert_not_null(to->in[i] = converted(from->in[i], dtype), "%s", tg_last_error());
    to->weight = converted(from->weight, dtype);
    to->run.opts.weight = to->weight;
}

static void free_inputs(case_inputs *ci)
{
    for (int i = 0; i < 3; i++)
        tg_tensor_free(ci->in[i]);
    tg_tensor_free(ci->weight);
}

/* Elements gradcheck must compare: every element of every input that requires a gradient. */
static int64_t gradient_elements(tg_tensor *const *in, int n)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += tg_requires_grad(in[i]) ? tg_numel(in[i]) : 0;
    return total;
}

/* Asserts that gradcheck passed on every element of every input that requires a gradient; names the worst. */
static void expect_gradcheck_passes(const char *name, tg_fn fn, int n, tg_tensor *const *in, void *ctx)
{
    tg_gradcheck_report report = { 0 };
    int status = tg_gradcheck(fn, n, in, ctx, NULL, &report);
    cr_expect(status == 0 && report.passed,
              "%s: gradcheck returned %d, passed %d: %s (worst: input %d element %lld, analytic %.10g, numeric %.10g, "
              "|diff| %.3g)",
              name, status, report.passed, tg_last_error(), report.worst_input, (long long)report.worst_index,
              report.analytic, report.numeric, report.abs_err);
    int64_t expected = gradient_elements(in, n);
    cr_expect_eq(report.checked, expected, "%s: gradcheck compared %lld elements, expected %lld", name,
                 (long long)report.checked, (long long)expected);
    cr_expect(report.worst_input >= 0 && report.worst_input < n && tg_requires_grad(in[report.worst_input]),
              "%s: worst_input %d is not an input that requires a gradient", name, report.worst_input);
}

ParameterizedTestParameters(gradcheck_ops, float64) { return cr_make_param_array(op_case, cases, N_CASES); }

ParameterizedTest(op_case *c, gradcheck_ops, float64)
{
    case_inputs ci;
    build_inputs(c, &ci);
    expect_gradcheck_passes(c->name, apply_op, c->n_inputs, ci.in, &ci.run);
    free_inputs(&ci);
}

/* ---- float32 against float64 ---- */

/* |a32 - a64| <= 1e-4 times the largest |a64| of the tensor, element by element. */
static void expect_agree(const char *name, const char *what, const tg_tensor *a32, const tg_tensor *a64)
{
    cr_assert_not_null(a32, "%s: %s missing in float32", name, what);
    cr_assert_not_null(a64, "%s: %s missing in float64", name, what);
    cr_assert_eq(tg_dtype_of(a32), TG_F32, "%s: %s is %s", name, what, tg_dtype_name(tg_dtype_of(a32)));
    cr_assert_eq(tg_numel(a32), tg_numel(a64), "%s: %s", name, what);
    double scale = 0;
    for (int64_t j = 0; j < tg_numel(a64); j++)
        scale = fmax(scale, fabs(tg_get(a64, j)));
    for (int64_t j = 0; j < tg_numel(a64); j++) {
        double x32 = tg_get(a32, j), x64 = tg_get(a64, j);
        cr_expect(fabs(x32 - x64) <= 1e-4 * scale + 1e-12, "%s: %s[%lld]: float32 %.9g, float64 %.9g (scale %.3g)",
                  name, what, (long long)j, x32, x64, scale);
    }
}

ParameterizedTestParameters(gradcheck_ops, float32_matches_float64)
{
    return cr_make_param_array(op_case, cases, N_CASES);
}

ParameterizedTest(op_case *c, gradcheck_ops, float32_matches_float64)
{
    case_inputs c64, c32;
    build_inputs(c, &c64);
    convert_inputs(&c64, TG_F32, &c32);
    tg_tape *tape64 = tg_tape_new(), *tape32 = tg_tape_new();
    tg_tensor *y64 = apply_op(tape64, c64.in, &c64.run), *y32 = apply_op(tape32, c32.in, &c32.run);
    cr_assert_not_null(y64, "%s: %s", c->name, tg_last_error());
    cr_assert_not_null(y32, "%s: %s", c->name, tg_last_error());
    expect_agree(c->name, "output", y32, y64);

    /* the same upstream vector in both precisions */
    tg_tensor *v64 = random_tensor(TG_F64, tg_ndim(y64), tg_shape(y64), 7, -1, 1), *v32 = converted(v64, TG_F32);
    cr_assert_eq(tg_backward_with(tape64, y64, v64), 0, "%s: %s", c->name, tg_last_error());
    cr_assert_eq(tg_backward_with(tape32, y32, v32), 0, "%s: %s", c->name, tg_last_error());
    for (int i = 0; i < c->n_inputs; i++)
        if (tg_requires_grad(c64.in[i])) {
            char what[32];
            snprintf(what, sizeof what, "gradient of input %d", i);
            expect_agree(c->name, what, tg_grad(c32.in[i]), tg_grad(c64.in[i]));
        }
    tg_tensor_free(v64);
    tg_tensor_free(v32);
    tg_tape_free(tape64);
    tg_tape_free(tape32);
    free_inputs(&c64);
    free_inputs(&c32);
}

/* ---- end to end: a two-layer classifier ---- */

typedef struct {
    tg_tensor *(*activation)(tg_tape *, tg_tensor *);
    const char *name;
} classifier;

/* inputs: x [5, 4], W1 [6, 4], b1 [6], W2 [3, 6], b2 [3], labels [5] */
static tg_tensor *classifier_loss(tg_tape *tape, tg_tensor *const *in, void *ctx)
{
    const classifier *net = ctx;
    tg_tensor *hidden = net->activation(tape, tg_linear(tape, in[0], in[1], in[2]));
    return tg_cross_entropy(tape, tg_linear(tape, hidden, in[3], in[4]), in[5], NULL);
}

static void check_classifier(const classifier *net)
{
    tg_tensor *in[6] = {
        random_tensor(TG_F64, 2, (int64_t[]){ 5, 4 }, 1, -1, 1),
        random_tensor(TG_F64, 2, (int64_t[]){ 6, 4 }, 2, -1, 1),
        random_tensor(TG_F64, 1, (int64_t[]){ 6 }, 3, -1, 1),
        random_tensor(TG_F64, 2, (int64_t[]){ 3, 6 }, 4, -1, 1),
        random_tensor(TG_F64, 1, (int64_t[]){ 3 }, 5, -1, 1),
        random_labels(5, 3, 6),
    };
    for (int i = 0; i < 6; i++)
        cr_assert_not_null(in[i], "%s", tg_last_error());
    for (int i = 1; i <= 4; i++)
        tg_set_requires_grad(in[i], 1);
    /* relu's kink: no hidden pre-activation may sit within eps of 0 */
    tg_tape *tape = tg_tape_new();
    tg_tensor *pre = tg_linear(tape, in[0], in[1], in[2]);
    cr_assert_not_null(pre, "%s", tg_last_error());
    for (int64_t j = 0; j < tg_numel(pre); j++)
        cr_assert(fabs(tg_get(pre, j)) > 1e-3, "%s: hidden unit %lld is %g, too close to relu's kink", net->name,
                  (long long)j, tg_get(pre, j));
    tg_tape_free(tape);

    expect_gradcheck_passes(net->name, classifier_loss, 6, in, (void *)net);
    cr_expect_eq(gradient_elements(in, 6), 6 * 4 + 6 + 3 * 6 + 3);
    for (int i = 0; i < 6; i++)
        tg_tensor_free(in[i]);
}

Test(gradcheck_ops, two_layer_classifier_tanh)
{
    check_classifier(&(classifier){ tg_tanh, "linear -> tanh -> linear -> cross_entropy" });
}

Test(gradcheck_ops, two_layer_classifier_relu)
{
    check_classifier(&(classifier){ tg_relu, "linear -> relu -> linear -> cross_entropy" });
}
