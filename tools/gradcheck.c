/* tapegrad gradcheck: runs the library's tg_gradcheck over each op, or over
 * every parameter of the model a config describes, and prints a table. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CHECK_ROWS = 8, MAX_CHECKED = 256 };

typedef struct {
    const char *name;
    int n_inputs;
    int64_t shapes[3][3]; /* up to 3 inputs of up to 3 dims; 0 ends a shape */
    tg_fn fn;
    double lo; /* inputs drawn from [lo, lo + 2) */
} op_case;

static tg_tensor *in0(tg_tensor *const *in) { return in[0]; }

static tg_tensor *f_add(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_add(t, in0(in), in[1]); }
static tg_tensor *f_sub(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_sub(t, in0(in), in[1]); }
static tg_tensor *f_mul(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_mul(t, in0(in), in[1]); }
static tg_tensor *f_div(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_div(t, in0(in), in[1]); }
static tg_tensor *f_neg(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_neg(t, in0(in)); }
static tg_tensor *f_exp(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_exp(t, in0(in)); }
static tg_tensor *f_log(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_log(t, in0(in)); }
static tg_tensor *f_relu(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_relu(t, in0(in)); }
static tg_tensor *f_sigmoid(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_sigmoid(t, in0(in)); }
static tg_tensor *f_tanh(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_tanh(t, in0(in)); }
static tg_tensor *f_matmul(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_matmul(t, in0(in), in[1]); }
static tg_tensor *f_linear(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_linear(t, in0(in), in[1], in[2]); }
static tg_tensor *f_sum(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_sum(t, in0(in), 1); }
static tg_tensor *f_mean(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_mean(t, in0(in), -1); }
static tg_tensor *f_reshape(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_reshape(t, in0(in), 2, (int64_t[]){ -1, 2 });
}
static tg_tensor *f_transpose(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_transpose(t, in0(in), 0, 2); }
static tg_tensor *f_softmax(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_softmax(t, in0(in), 1); }
static tg_tensor *f_log_softmax(tg_tape *t, tg_tensor *const *in, void *c) { (void)c; return tg_log_softmax(t, in0(in), -1); }
static tg_tensor *f_cross_entropy(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    tg_tensor *target = tg_softmax(t, in[1], -1); /* a probability target from the second input */
    tg_ce_opts o = TG_CE_OPTS_DEFAULT;
    o.label_smoothing = 0.1;
    return tg_cross_entropy(t, in0(in), target, &o);
}
static tg_tensor *f_nll_loss(tg_tape *t, tg_tensor *const *in, void *c)
{
    static const int64_t labels[4] = { 2, 0, 1, 2 };
    (void)c;
    tg_tensor *y = tg_tape_tensor(t, TG_I64, 1, (int64_t[]){ 4 });
    if (y)
        memcpy(tg_data(y), labels, sizeof labels);
    return tg_nll_loss(t, tg_log_softmax(t, in0(in), -1), y, NULL);
}

static const op_case op_cases[] = {
    { "add", 2, { { 3, 4 }, { 4 } }, f_add, -1 },
    { "sub", 2, { { 3, 1 }, { 1, 4 } }, f_sub, -1 },
    { "mul", 2, { { 2, 3, 4 }, { 3, 1 } }, f_mul, -1 },
    { "div", 2, { { 3, 4 }, { 3, 4 } }, f_div, 0.5 },
    { "neg", 1, { { 3, 4 } }, f_neg, -1 },
    { "exp", 1, { { 3, 4 } }, f_exp, -1 },
    { "log", 1, { { 3, 4 } }, f_log, 0.5 },
    { "relu", 1, { { 3, 4 } }, f_relu, 0.25 },
    { "sigmoid", 1, { { 3, 4 } }, f_sigmoid, -1 },
    { "tanh", 1, { { 3, 4 } }, f_tanh, -1 },
    { "matmul", 2, { { 3, 4 }, { 4, 5 } }, f_matmul, -1 },
    { "linear", 3, { { 5, 4 }, { 3, 4 }, { 3 } }, f_linear, -1 },
    { "sum", 1, { { 2, 3, 4 } }, f_sum, -1 },
    { "mean", 1, { { 2, 3, 4 } }, f_mean, -1 },
    { "reshape", 1, { { 2, 3, 4 } }, f_reshape, -1 },
    { "transpose", 1, { { 2, 3, 4 } }, f_transpose, -1 },
    { "softmax", 1, { { 2, 5, 3 } }, f_softmax, -1 },
    { "log_softmax", 1, { { 4, 6 } }, f_log_softmax, -1 },
    { "nll_loss", 1, { { 4, 3 } }, f_nll_loss, -1 },
    { "cross_entropy", 2, { { 4, 3 }, { 4, 3 } }, f_cross_entropy, -1 },
};

typedef struct {
    const char *name;
    int64_t elements, checked;
    tg_gradcheck_report report;
    int status;
} check_row;

static void print_table(const check_row *rows, int n, const char *what, bool json)
{
    if (json) {
        cJSON *root = cJSON_CreateArray();
        for (int i = 0; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, what, rows[i].name);
            cJSON_AddNumberToObject(o, "checked", (double)rows[i].checked);
            cJSON_AddNumberToObject(o, "elements", (double)rows[i].elements);
            cJSON_AddNumberToObject(o, "worst_abs_err", rows[i].report.abs_err);
            cJSON_AddNumberToObject(o, "analytic", rows[i].report.analytic);
            cJSON_AddNumberToObject(o, "numeric", rows[i].report.numeric);
            cJSON_AddBoolToObject(o, "passed", rows[i].status == 0);
            cJSON_AddItemToArray(root, o);
        }
        char *text = cJSON_Print(root);
        if (text)
            puts(text);
        cJSON_free(text);
        cJSON_Delete(root);
        return;
    }
    printf("%-14s %9s %12s %15s %15s  %s\n", what, "checked", "worst |a-n|", "analytic", "numeric", "result");
    for (int i = 0; i < n; i++)
        printf("%-14s %9lld %12.3e %15.8g %15.8g  %s\n", rows[i].name, (long long)rows[i].checked,
               rows[i].report.abs_err, rows[i].report.analytic, rows[i].report.numeric,
               rows[i].status == 0 ? "pass" : "FAIL");
}

static int check_ops(bool json)
{
    int n = (int)(sizeof op_cases / sizeof op_cases[0]), failures = 0;
    check_row rows[sizeof op_cases / sizeof op_cases[0]];
    for (int i = 0; i < n; i++) {
        const op_case *c = &op_cases[i];
        tg_tensor *inputs[3] = { 0 };
        tg_rng rng;
        tg_rng_seed(&rng, 1000 + (uint64_t)i);
        int status = -1;
        for (int k = 0; k < c->n_inputs; k++) {
            int ndim = 0;
            while (ndim < 3 && c->shapes[k][ndim])
                ndim++;
            if (!(inputs[k] = tg_tensor_new(TG_F64, ndim, c->shapes[k])))
                goto next;
            tg_rng_fill_uniform(&rng, inputs[k], c->lo, c->lo + 2);
            tg_set_requires_grad(inputs[k], 1);
        }
        status = tg_gradcheck(c->fn, c->n_inputs, inputs, NULL, NULL, &rows[i].report);
    next:
        if (status < 0) {
            fail("%s: %s", c->name, tg_last_error());
            for (int k = 0; k < 3; k++)
                tg_tensor_free(inputs[k]);
            return 1;
        }
        rows[i].name = c->name;
        rows[i].checked = rows[i].elements = rows[i].report.checked;
        rows[i].status = status;
        failures += status != 0;
        for (int k = 0; k < 3; k++)
            tg_tensor_free(inputs[k]);
    }
    print_table(rows, n, "op", json);
    if (!json)
        printf("\n%d of %d ops pass\n", n - failures, n);
    return failures ? 1 : 0;
}

/* ---- a model from a config ---- */

/* The checked elements of one parameter enter the loss through a custom op
 * that writes them into a copy of the parameter: the check then costs two
 * forwards per checked element, not per element of a 200k-weight matrix. */
typedef struct {
    tg_model *model; /* its parameters are only read: the check swaps a copy in */
    int param; /* which parameter is under check */
    const int64_t *picked; /* its checked elements' flat indices */
    tg_tensor *x, *y, *weight;
    double label_smoothing;
} model_ctx;

static int scatter_forward(tg_tensor *const *inputs, int n_inputs, tg_tensor *out, void *ctx)
{
    (void)n_inputs;
    const model_ctx *m = ctx;
    const tg_tensor *param = tg_model_param_const(m->model, m->param);
    for (int64_t k = 0; k < tg_numel(param); k++)
        tg_set(out, k, tg_get(param, k));
    for (int64_t j = 0; j < tg_numel(inputs[0]); j++)
        tg_set(out, m->picked[j], tg_get(inputs[0], j));
    return 0;
}

/* d(picked values) = g at the picked positions */
static int scatter_backward(tg_tensor *const *inputs, int n_inputs, const tg_tensor *out, const tg_tensor *grad_out,
                            tg_tensor *const *grad_inputs, void *ctx)
{
    (void)n_inputs;
    (void)out;
    const model_ctx *m = ctx;
    for (int64_t j = 0; grad_inputs[0] && j < tg_numel(inputs[0]); j++)
        tg_set(grad_inputs[0], j, tg_get(grad_inputs[0], j) + tg_get(grad_out, m->picked[j]));
    return 0;
}

static const tg_custom_op scatter_op = { "scatter_checked", scatter_forward, scatter_backward };

static tg_tensor *model_loss(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    const model_ctx *m = ctx;
    tg_tensor *params[64];
    int n = tg_model_n_params(m->model);
    for (int i = 0; i < n; i++) {
        params[i] = tg_model_param(m->model, i);
        if (i == m->param)
            params[i] = tg_custom(tape, &scatter_op, 1, inputs, tg_ndim(params[i]), tg_shape(params[i]), (void *)m);
    }
    /* The model's own forward, with the parameter under check swapped in. */
    tg_tensor *h = tg_model_forward_with(m->model, tape, m->x, params);
    tg_ce_opts o = TG_CE_OPTS_DEFAULT;
    o.weight = m->weight;
    o.label_smoothing = m->label_smoothing;
    return tg_cross_entropy(tape, h, m->y, &o);
}

static int check_model(const char *config_path, bool json)
{
    int rc = 1;
    tg_config *cfg = tg_config_load(config_path);
    tg_dataset *train = NULL, *val = NULL, *test = NULL;
    tg_model *model = NULL;
    tg_tensor *x = NULL, *y = NULL, *weight = NULL, *values = NULL;
    int64_t *picked = NULL;
    check_row *rows = NULL;
    if (!cfg || tg_config_load_data(cfg, &train, &val, &test))
        goto error;
    tg_rng rng;
    tg_rng_seed(&rng, cfg->seed);
    model = tg_model_new(TG_F64, train->features, cfg->model.n_layers, cfg->model.layers, &rng);
    int64_t n = train->rows < CHECK_ROWS ? train->rows : CHECK_ROWS;
    x = tg_tensor_new(TG_F64, 2, (int64_t[]){ n, train->features });
    y = tg_tensor_new(TG_I64, 1, (int64_t[]){ n });
    picked = malloc(MAX_CHECKED * sizeof *picked);
    rows = calloc((size_t)(model ? tg_model_n_params(model) : 1), sizeof *rows);
    if (!model || !x || !y || !picked || !rows)
        goto error;
    if (tg_model_n_params(model) > 64) {
        fail("the model has %d parameters; this check handles up to 64",
                tg_model_n_params(model));
        goto done;
    }
    if (tg_model_classes(model) < train->classes) {
        fail("the model has %lld outputs but the data has %lld classes",
                (long long)tg_model_classes(model), (long long)train->classes);
        goto done;
    }
    float *mean = malloc((size_t)train->features * sizeof *mean), *std = malloc((size_t)train->features * sizeof *std);
    if (!mean || !std || tg_dataset_moments(train, mean, std)) {
        free(mean);
        free(std);
        goto error;
    }
    for (int64_t r = 0; r < n; r++) {
        ((int64_t *)tg_data(y))[r] = train->y[r];
        for (int64_t f = 0; f < train->features; f++) {
            double v = train->x[r * train->features + f];
            tg_set(x, r * train->features + f, cfg->data.standardize ? (v - mean[f]) / std[f] : v);
        }
    }
    free(mean);
    free(std);
    if (cfg->loss.class_weights) {
        if (!(weight = tg_tensor_from(TG_F64, 1, (int64_t[]){ cfg->loss.n_class_weights }, cfg->loss.class_weights)))
            goto error;
    }
    int n_params = tg_model_n_params(model), failures = 0;
    for (int i = 0; i < n_params; i++) {
        tg_tensor *param = tg_model_param(model, i);
        int64_t total = tg_numel(param), k = total < MAX_CHECKED ? total : MAX_CHECKED;
        for (int64_t j = 0; j < k; j++)
            picked[j] = j * total / k; /* evenly spread over the tensor */
        values = tg_tensor_new(TG_F64, 1, (int64_t[]){ k });
        if (!values)
            goto error;
        for (int64_t j = 0; j < k; j++)
            tg_set(values, j, tg_get(param, picked[j]));
        tg_set_requires_grad(values, 1);
        model_ctx ctx = { model, i, picked, x, y, weight, cfg->loss.label_smoothing };
        rows[i].name = tg_model_param_name(model, i);
        rows[i].elements = total;
        rows[i].status = tg_gradcheck(model_loss, 1, &values, &ctx, NULL, &rows[i].report);
        rows[i].checked = rows[i].report.checked;
        tg_tensor_free(values);
        values = NULL;
        if (rows[i].status < 0)
            goto error;
        failures += rows[i].status != 0;
    }
    print_table(rows, n_params, "parameter", json);
    if (!json)
        printf("\n%d of %d parameters pass (loss: cross-entropy over %lld rows of %s, float64)\n", n_params - failures,
               n_params, (long long)n, cfg->data.train);
    rc = failures ? 1 : 0;
    goto done;
error:
    fail("%s", tg_last_error());
done:
    free(rows);
    free(picked);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(weight);
    tg_model_free(model);
    tg_dataset_free(train);
    tg_dataset_free(val);
    tg_dataset_free(test);
    tg_config_free(cfg);
    return rc;
}

int run_gradcheck(const char *config_path, bool json)
{
    return config_path ? check_model(config_path, json) : check_ops(json);
}
