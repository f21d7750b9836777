/* Models: parameter names, order and shapes as torch.nn.Sequential's
 * state_dict, the Glorot / He initialisation and its statistics, seeding, a
 * forward pass computed by hand, gradients, and the errors.
 *
 * The state_dicts below were printed by Debian's /usr/bin/python3 (torch 1.13):
 *
 *   import torch.nn as nn
 *   m = nn.Sequential(nn.Linear(4,16), nn.ReLU(), nn.Linear(16,8), nn.Tanh(), nn.Linear(8,3))
 *   print([(k, list(v.shape)) for k,v in m.state_dict().items()])
 *   -> [('0.weight', [16, 4]), ('0.bias', [16]), ('2.weight', [8, 16]), ('2.bias', [8]),
 *       ('4.weight', [3, 8]), ('4.bias', [3])]
 *   m = nn.Sequential(nn.Linear(4,5,bias=False), nn.Sigmoid(), nn.Linear(5,2))
 *   -> [('0.weight', [5, 4]), ('2.weight', [2, 5]), ('2.bias', [2])]
 */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "helpers.h"

// clang-format off
#define LINEAR(n) { .type = TG_LAYER_LINEAR, .out = (n), .bias = 1 }
#define LINEAR_NO_BIAS(n) { .type = TG_LAYER_LINEAR, .out = (n), .bias = 0 }
#define RELU { .type = TG_LAYER_RELU }
#define TANH { .type = TG_LAYER_TANH }
#define SIGMOID { .type = TG_LAYER_SIGMOID }
// clang-format on

static const tg_layer_spec mlp[] = { LINEAR(16), RELU, LINEAR(8), TANH, LINEAR(3) };
enum { MLP_INPUTS = 4, MLP_LAYERS = 5 };

static tg_model *seeded_model(tg_dtype dtype, int64_t inputs, int n, const tg_layer_spec *layers, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_model *m = tg_model_new(dtype, inputs, n, layers, &rng);
    cr_assert_not_null(m, "%s", tg_last_error());
    return m;
}

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[2];
} param_info;

static void expect_params(const tg_model *m, int n, const param_info *want)
{
    cr_assert_eq(tg_model_n_params(m), n);
    for (int i = 0; i < n; i++) {
        const tg_tensor *p = tg_model_param_const(m, i);
        cr_assert_not_null(p);
        cr_assert_str_eq(tg_model_param_name(m, i), want[i].name, "parameter %d", i);
        cr_assert_eq(tg_ndim(p), want[i].ndim, "%s", want[i].name);
        for (int d = 0; d < want[i].ndim; d++)
            cr_assert_eq(tg_dim(p, d), want[i].shape[d], "%s dim %d", want[i].name, d);
        cr_assert(tg_requires_grad(p), "%s does not require a gradient", want[i].name);
    }
    cr_assert_null(tg_model_param_const(m, n));
    cr_assert_null(tg_model_param_name(m, n));
    cr_assert_null(tg_model_param_const(m, -1));
}

/* ---- names, order and shapes ---- */

Test(model, parameters_follow_the_sequential_state_dict)
{
    tg_model *m = seeded_model(TG_F32, MLP_INPUTS, MLP_LAYERS, mlp, 1);
    const param_info want[] = {
        { "0.weight", 2, { 16, 4 } }, { "0.bias", 1, { 16 } },     { "2.weight", 2, { 8, 16 } },
        { "2.bias", 1, { 8 } },       { "4.weight", 2, { 3, 8 } }, { "4.bias", 1, { 3 } },
    };
    expect_params(m, 6, want);
    cr_assert_eq(tg_model_inputs(m), 4);
    cr_assert_eq(tg_model_classes(m), 3);
    cr_assert_eq(tg_model_dtype(m), TG_F32);
    cr_assert_eq(tg_model_n_layers(m), 5);
    cr_assert_eq(tg_model_layer(m, 1)->type, TG_LAYER_RELU);
    cr_assert_eq(tg_model_layer(m, 4)->out, 3);
    cr_assert_null(tg_model_layer(m, 5));
    for (int i = 0; i < 6; i++)
        cr_assert_eq(tg_dtype_of(tg_model_param(m, i)), TG_F32);
    tg_model_free(m);
}

Test(model, a_layer_without_bias_has_no_bias_parameter)
{
    const tg_layer_spec layers[] = { LINEAR_NO_BIAS(5), SIGMOID, LINEAR(2) };
    tg_model *m = seeded_model(TG_F64, 4, 3, layers, 1);
    const param_info want[] = { { "0.weight", 2, { 5, 4 } }, { "2.weight", 2, { 2, 5 } }, { "2.bias", 1, { 2 } } };
    expect_params(m, 3, want);
    cr_assert_eq(tg_model_classes(m), 2);
    tg_model_free(m);
}

Test(model, one_linear_layer_is_logistic_regression)
{
    const tg_layer_spec layers[] = { LINEAR(10) };
    tg_model *m = seeded_model(TG_F32, 64, 1, layers, 1);
    const param_info want[] = { { "0.weight", 2, { 10, 64 } }, { "0.bias", 1, { 10 } } };
    expect_params(m, 2, want);
    tg_model_free(m);
}

/* ---- initialisation ---- */

static double max_abs(const tg_tensor *t)
{
    double most = 0;
    for (int64_t k = 0; k < tg_numel(t); k++)
        most = fmax(most, fabs(tg_get(t, k)));
    return most;
}

Test(model, weights_stay_within_glorot_or_he_bounds_and_biases_start_at_zero)
{
    tg_model *m = seeded_model(TG_F64, MLP_INPUTS, MLP_LAYERS, mlp, 3);
    /* 0.weight feeds a ReLU: He, sqrt(6 / in); 2.weight feeds tanh and 4.weight
     * gives the logits: Glorot, sqrt(6 / (in + out)). */
    const double he0 = sqrt(6.0 / 4), glorot0 = sqrt(6.0 / (4 + 16));
    const double bound[3] = { he0, sqrt(6.0 / (16 + 8)), sqrt(6.0 / (8 + 3)) };
    for (int layer = 0; layer < 3; layer++) {
        const tg_tensor *w = tg_model_param(m, 2 * layer), *b = tg_model_param(m, 2 * layer + 1);
        double most = max_abs(w);
        cr_assert(most < bound[layer], "%s: |w| reaches %.17g, bound %.17g", tg_model_param_name(m, 2 * layer), most,
                  bound[layer]);
        cr_assert(most > 0, "%s is all zeros", tg_model_param_name(m, 2 * layer));
        for (int64_t k = 0; k < tg_numel(b); k++)
            cr_assert_eq(tg_get(b, k), 0.0, "%s[%lld]", tg_model_param_name(m, 2 * layer + 1), (long long)k);
    }
    /* He, not Glorot, for the ReLU layer: 64 draws from [-1.22, 1.22) go past
     * Glorot's 0.548 (each does so with probability 0.55). */
    cr_assert(max_abs(tg_model_param(m, 0)) > glorot0, "0.weight looks Glorot-initialised: max |w| %.17g",
              max_abs(tg_model_param(m, 0)));
    tg_model_free(m);
}

/* Uniform on [-b, b] has variance b^2 / 3. For n draws the sample variance's
 * relative standard error is sqrt(4/45 / n) / (1/3) = 0.89 / sqrt(n): 0.37% for
 * 60000 weights, so 3% is eight standard errors. */
static void expect_uniform_variance(const tg_tensor *w, double bound)
{
    int64_t n = tg_numel(w);
    long double sum = 0, sum_sq = 0;
    for (int64_t k = 0; k < n; k++) {
        long double v = tg_get(w, k);
        sum += v;
        sum_sq += v * v;
    }
    long double mean = sum / n, var = sum_sq / n - mean * mean, want = (long double)bound * bound / 3;
    cr_assert(fabsl(var / want - 1) < 0.03L, "variance %.6Lg, expected bound^2/3 = %.6Lg", var, want);
    cr_assert(fabsl(mean) < 4 * bound / sqrt(3.0 * (double)n), "mean %.6Lg", mean); /* 4 standard errors */
    cr_assert(max_abs(w) < bound);
    cr_assert(max_abs(w) > 0.999 * bound, "max |w| %.17g, bound %.17g", max_abs(w), bound);
}

Test(model, large_layers_have_the_uniform_variance_of_their_bound)
{
    const tg_layer_spec layers[] = { LINEAR(300), RELU, LINEAR(200) };
    tg_model *m = seeded_model(TG_F32, 200, 3, layers, 11);
    expect_uniform_variance(tg_model_param(m, 0), sqrt(6.0 / 200)); /* He: in 200 */
    expect_uniform_variance(tg_model_param(m, 2), sqrt(6.0 / (300 + 200))); /* Glorot: 300 -> 200 */
    tg_model_free(m);
}

Test(model, sigmoid_and_tanh_layers_use_glorot)
{
    const tg_layer_spec layers[] = { LINEAR(300), SIGMOID, LINEAR(200), TANH, LINEAR(2) };
    tg_model *m = seeded_model(TG_F64, 200, 5, layers, 12);
    expect_uniform_variance(tg_model_param(m, 0), sqrt(6.0 / (200 + 300)));
    expect_uniform_variance(tg_model_param(m, 2), sqrt(6.0 / (300 + 200)));
    tg_model_free(m);
}

Test(model, linear_layer_init_uses_the_bound_it_is_asked_for)
{
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_linear_layer he = { 0 }, glorot = { 0 }, bare = { 0 };
    cr_assert_eq(tg_linear_layer_init(&he, TG_F64, 250, 240, 1, 1, &rng), 0, "%s", tg_last_error());
    cr_assert_eq(tg_linear_layer_init(&glorot, TG_F64, 250, 240, 1, 0, &rng), 0, "%s", tg_last_error());
    cr_assert_eq(tg_linear_layer_init(&bare, TG_F32, 3, 2, 0, 0, &rng), 0, "%s", tg_last_error());
    expect_uniform_variance(he.weight, sqrt(6.0 / 250));
    expect_uniform_variance(glorot.weight, sqrt(6.0 / (250 + 240)));
    cr_assert_eq(tg_dim(he.weight, 0), 240);
    cr_assert_eq(tg_dim(he.weight, 1), 250);
    cr_assert_eq(tg_numel(he.bias), 240);
    cr_assert_eq(max_abs(he.bias), 0.0);
    cr_assert_null(bare.bias);
    cr_assert_eq(tg_dtype_of(bare.weight), TG_F32);
    tg_linear_layer_free(&he);
    tg_linear_layer_free(&glorot);
    tg_linear_layer_free(&bare);
    cr_assert_null(he.weight);

    tg_linear_layer bad;
    cr_assert_neq(tg_linear_layer_init(&bad, TG_F64, 0, 2, 1, 0, &rng), 0);
    cr_assert_null(bad.weight);
    cr_assert_neq(tg_linear_layer_init(&bad, TG_I64, 2, 2, 1, 0, &rng), 0);
}

Test(model, the_same_seed_gives_bit_identical_weights)
{
    tg_model *a = seeded_model(TG_F32, MLP_INPUTS, MLP_LAYERS, mlp, 42);
    tg_model *b = seeded_model(TG_F32, MLP_INPUTS, MLP_LAYERS, mlp, 42);
    tg_model *c = seeded_model(TG_F32, MLP_INPUTS, MLP_LAYERS, mlp, 43);
    for (int i = 0; i < tg_model_n_params(a); i++) {
        const tg_tensor *pa = tg_model_param(a, i), *pb = tg_model_param(b, i), *pc = tg_model_param(c, i);
        size_t bytes = (size_t)tg_numel(pa) * tg_dtype_size(tg_dtype_of(pa));
        cr_assert_eq(memcmp(tg_data(pa), tg_data(pb), bytes), 0, "%s differs under the same seed",
                     tg_model_param_name(a, i));
        if (strstr(tg_model_param_name(a, i), "weight")) {
            int64_t same = 0;
            for (int64_t k = 0; k < tg_numel(pa); k++)
                same += tg_get(pa, k) == tg_get(pc, k);
            cr_assert_eq(same, 0, "%s: %lld weights equal under seeds 42 and 43", tg_model_param_name(a, i),
                         (long long)same);
        }
    }
    tg_model_free(a);
    tg_model_free(b);
    tg_model_free(c);
}

/* ---- forward ---- */

static void set_values(tg_tensor *t, int n, const double *v)
{
    cr_assert_eq(tg_numel(t), n);
    for (int k = 0; k < n; k++)
        tg_set(t, k, v[k]);
}

static long double sigmoidl(long double z) { return 1 / (1 + expl(-z)); }

static void forward_by_hand(tg_dtype dtype, double tol)
{
    /* x [2, 2] -> linear 3 -> relu -> linear 2 (no bias) -> sigmoid -> linear 2 */
    const tg_layer_spec layers[] = { LINEAR(3), RELU, LINEAR_NO_BIAS(2), SIGMOID, LINEAR(2) };
    tg_model *m = seeded_model(dtype, 2, 5, layers, 1);
    cr_assert_eq(tg_model_n_params(m), 5);
    set_values(tg_model_param(m, 0), 6, (double[]){ 1, 2, -1, 0.5, 0.5, -3 }); /* 0.weight [3, 2] */
    set_values(tg_model_param(m, 1), 3, (double[]){ 0.5, -1, 0 }); /* 0.bias */
    set_values(tg_model_param(m, 2), 6, (double[]){ 1, 0, -0.5, 0.25, 1, 1 }); /* 2.weight [2, 3] */
    set_values(tg_model_param(m, 3), 4, (double[]){ 2, -1, 0, 1 }); /* 4.weight [2, 2] */
    set_values(tg_model_param(m, 4), 2, (double[]){ 0.1, -0.2 }); /* 4.bias */
    tg_tensor *x = tg_tensor_new(dtype, 2, (int64_t[]){ 2, 2 });
    set_values(x, 4, (double[]){ 1, 1, 2, -1 });
    /* Row 1: W0 x + b0 = [1+2+0.5, -1+0.5-1, 0.5-3] = [3.5, -1.5, -2.5] -> relu [3.5, 0, 0]
     *        W2 h = [3.5, 0.25*3.5] = [3.5, 0.875]
     * Row 2: W0 x + b0 = [2-2+0.5, -2-0.5-1, 1+3] = [0.5, -3.5, 4] -> relu [0.5, 0, 4]
     *        W2 h = [0.5 - 2, 0.125 + 4] = [-1.5, 4.125]
     * logits = [2 s0 - s1 + 0.1, s1 - 0.2] with s = sigmoid(W2 h). */
    const long double z[2][2] = { { 3.5L, 0.875L }, { -1.5L, 4.125L } };
    tg_tape *tape = tg_tape_new();
    tg_tensor *logits = tg_model_forward(m, tape, x);
    cr_assert_not_null(logits, "%s", tg_last_error());
    cr_assert_eq(tg_ndim(logits), 2);
    cr_assert_eq(tg_dim(logits, 0), 2);
    cr_assert_eq(tg_dim(logits, 1), 2);
    cr_assert_eq(tg_dtype_of(logits), dtype);
    for (int r = 0; r < 2; r++) {
        long double s0 = sigmoidl(z[r][0]), s1 = sigmoidl(z[r][1]);
        long double want[2] = { 2 * s0 - s1 + 0.1L, s1 - 0.2L };
        for (int k = 0; k < 2; k++)
            cr_assert(close_enough(tg_get(logits, 2 * r + k), (double)want[k], tol),
                      "%s logit [%d, %d]: %.17g vs %.17Lg", tg_dtype_name(dtype), r, k, tg_get(logits, 2 * r + k),
                      want[k]);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_model_free(m);
}

Test(model, forward_equals_a_hand_computation)
{
    forward_by_hand(TG_F64, 1e-15);
    forward_by_hand(TG_F32, 1e-6);
}

Test(model, forward_through_tanh_equals_a_hand_computation)
{
    /* x = 0.5 -> [0.5, -2 * 0.5 + 0.5] = [0.5, -0.5] -> tanh -> 2 tanh(0.5) + tanh(-0.5) = tanh(0.5) */
    const tg_layer_spec layers[] = { LINEAR(2), TANH, LINEAR_NO_BIAS(1) };
    tg_model *m = seeded_model(TG_F64, 1, 3, layers, 1);
    set_values(tg_model_param(m, 0), 2, (double[]){ 1, -2 });
    set_values(tg_model_param(m, 1), 2, (double[]){ 0, 0.5 });
    set_values(tg_model_param(m, 2), 2, (double[]){ 2, 1 });
    tg_tensor *x = tg_tensor_from(TG_F64, 2, (int64_t[]){ 1, 1 }, (double[]){ 0.5 });
    tg_tape *tape = tg_tape_new();
    tg_tensor *logits = tg_model_forward(m, tape, x);
    cr_assert_not_null(logits, "%s", tg_last_error());
    cr_assert(close_enough(tg_get(logits, 0), (double)tanhl(0.5L), 1e-15), "%.17g", tg_get(logits, 0));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_model_free(m);
}

/* The loss of the model's forward, for tg_gradcheck: its inputs are the
 * model's own parameters, so perturbing them perturbs the model. */
typedef struct {
    tg_model *model;
    tg_tensor *x, *y;
} loss_ctx;

static tg_tensor *model_loss(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    (void)inputs;
    loss_ctx *c = ctx;
    return tg_cross_entropy(tape, tg_model_forward(c->model, tape, c->x), c->y, NULL);
}

Test(model, gradients_of_every_parameter_pass_gradcheck)
{
    tg_model *m = seeded_model(TG_F64, MLP_INPUTS, MLP_LAYERS, mlp, 9);
    tg_tensor *x = random_tensor(TG_F64, 2, (int64_t[]){ 6, MLP_INPUTS }, 10, -2, 2);
    tg_tensor *y = random_labels(6, 3, 11);
    tg_tensor *params[6];
    for (int i = 0; i < 6; i++)
        params[i] = tg_model_param(m, i);
    loss_ctx ctx = { m, x, y };
    tg_gradcheck_report report;
    int status = tg_gradcheck(model_loss, 6, params, &ctx, NULL, &report);
    cr_assert_eq(status, 0, "input %d [%lld]: analytic %.10g numeric %.10g (%s)", report.worst_input,
                 (long long)report.worst_index, report.analytic, report.numeric, tg_last_error());
    cr_assert_eq(report.checked, 16 * 4 + 16 + 8 * 16 + 8 + 3 * 8 + 3);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_model_free(m);
}

/* ---- labels, standardization and config text ---- */

Test(model, extras_are_copied_and_checked)
{
    tg_model *m = seeded_model(TG_F32, MLP_INPUTS, MLP_LAYERS, mlp, 1);
    cr_assert_null(tg_model_label(m, 0));
    cr_assert_null(tg_model_mean(m));
    cr_assert_null(tg_model_config_json(m));
    char a[] = "cat", b[] = "dog", c[] = "eel";
    char *names[3] = { a, b, c };
    cr_assert_neq(tg_model_set_labels(m, 2, names), 0, "two names for three classes accepted");
    cr_assert(strstr(tg_last_error(), "2") && strstr(tg_last_error(), "3"), "%s", tg_last_error());
    cr_assert_eq(tg_model_set_labels(m, 3, names), 0);
    a[0] = 'b'; /* the model keeps its own copy */
    cr_assert_str_eq(tg_model_label(m, 0), "cat");
    cr_assert_str_eq(tg_model_label(m, 2), "eel");
    cr_assert_null(tg_model_label(m, 3));
    cr_assert_null(tg_model_label(m, -1));
    float mean[4] = { 1, 2, 3, 4 }, std[4] = { 0.5f, 1, 2, 4 };
    cr_assert_eq(tg_model_set_standardization(m, mean, std), 0);
    mean[0] = 99;
    cr_assert_eq(tg_model_mean(m)[0], 1.0f);
    cr_assert_eq(tg_model_std(m)[3], 4.0f);
    cr_assert_eq(tg_model_set_standardization(m, NULL, NULL), 0);
    cr_assert_null(tg_model_mean(m));
    cr_assert_eq(tg_model_set_config_json(m, "{}"), 0);
    cr_assert_str_eq(tg_model_config_json(m), "{}");
    tg_model_free(m);
}

/* ---- errors ---- */

static void refused(tg_dtype dtype, int64_t inputs, int n, const tg_layer_spec *layers, const char *fragment,
                    const char *fragment2)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_clear_error();
    tg_model *m = tg_model_new(dtype, inputs, n, layers, &rng);
    cr_expect_null(m, "accepted a model meant to fail on \"%s\"", fragment);
    tg_model_free(m);
    const char *error = tg_last_error();
    cr_expect(strstr(error, fragment), "\"%s\" not in \"%s\"", fragment, error);
    if (fragment2)
        cr_expect(strstr(error, fragment2), "\"%s\" not in \"%s\"", fragment2, error);
}

Test(model, zero_layers_are_refused)
{
    refused(TG_F32, 4, 0, mlp, "no layers", NULL);
    refused(TG_F32, 4, 1, NULL, "no layers", NULL);
}

Test(model, a_last_layer_that_is_not_linear_is_refused)
{
    const tg_layer_spec layers[] = { LINEAR(3), RELU };
    refused(TG_F32, 4, 2, layers, "last layer", "relu");
    const tg_layer_spec only_tanh[] = { TANH };
    refused(TG_F32, 4, 1, only_tanh, "last layer", "tanh");
}

Test(model, a_linear_layer_with_out_zero_is_refused)
{
    const tg_layer_spec first[] = { LINEAR(0), RELU, LINEAR(3) };
    refused(TG_F32, 4, 3, first, "layer 0", "out 0");
    const tg_layer_spec last[] = { LINEAR(8), RELU, LINEAR(0) };
    refused(TG_F32, 4, 3, last, "layer 2", "out 0");
    const tg_layer_spec negative[] = { LINEAR(-3) };
    refused(TG_F32, 4, 1, negative, "layer 0", "out -3");
}

Test(model, other_bad_models_are_refused)
{
    refused(TG_F32, 0, MLP_LAYERS, mlp, "0 inputs", NULL);
    refused(TG_I64, 4, MLP_LAYERS, mlp, "int64", NULL);
    const tg_layer_spec unknown[] = { { .type = (tg_layer_type)9 }, LINEAR(3) };
    refused(TG_F32, 4, 2, unknown, "layer 0", "unknown type");
}

Test(model, forward_refuses_an_input_of_the_wrong_width)
{
    tg_model *m = seeded_model(TG_F32, MLP_INPUTS, MLP_LAYERS, mlp, 1);
    tg_tensor *x = tg_tensor_new(TG_F32, 2, (int64_t[]){ 2, 5 });
    tg_tape *tape = tg_tape_new();
    cr_assert_null(tg_model_forward(m, tape, x));
    cr_assert(strstr(tg_last_error(), "[2, 5]") && strstr(tg_last_error(), "4"), "%s", tg_last_error());
    tg_tensor *x64 = tg_tensor_new(TG_F64, 2, (int64_t[]){ 2, 4 }); /* float32 model, float64 input */
    cr_assert_null(tg_model_forward(m, tape, x64));
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(x64);
    tg_model_free(m);
}

Test(model, layer_type_names_round_trip_and_unknowns_are_refused)
{
    static const struct {
        tg_layer_type type;
        const char *name;
    } names[] = { { TG_LAYER_LINEAR, "linear" },
                  { TG_LAYER_RELU, "relu" },
                  { TG_LAYER_SIGMOID, "sigmoid" },
                  { TG_LAYER_TANH, "tanh" } };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        cr_assert_str_eq(tg_layer_type_name(names[i].type), names[i].name);
        cr_assert_eq(tg_layer_type_from_name(names[i].name), (int)names[i].type);
    }
    cr_assert_null(tg_layer_type_name((tg_layer_type)4));
    cr_assert_null(tg_layer_type_name((tg_layer_type)-1));
    cr_assert_eq(tg_layer_type_from_name("Linear"), -1);
    cr_assert_eq(tg_layer_type_from_name(""), -1);
    cr_assert_eq(tg_layer_type_from_name(NULL), -1);
}
