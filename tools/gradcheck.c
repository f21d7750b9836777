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

static tg_tensor *f_add(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_add(t, in0(in), in[1]);
}
static tg_tensor *f_sub(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_sub(t, in0(in), in[1]);
}
static tg_tensor *f_mul(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_mul(t, in0(in), in[1]);
}
static tg_tensor *f_div(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_div(t, in0(in), in[1]);
}
static tg_tensor *f_neg(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_neg(t, in0(in));
}
static tg_tensor *f_exp(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_exp(t, in0(in));
}
static tg_tensor *f_log(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_log(t, in0(in));
}
static tg_tensor *f_relu(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_relu(t, in0(in));
}
static tg_tensor *f_sigmoid(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_sigmoid(t, in0(in));
}
static tg_tensor *f_tanh(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_tanh(t, in0(in));
}
static tg_tensor *f_matmul(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_matmul(t, in0(in), in[1]);
}
static tg_tensor *f_linear(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_linear(t, in0(in), in[1], in[2]);
}
static tg_tensor *f_sum(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_sum(t, in0(in), 1);
}
static tg_tensor *f_mean(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_mean(t, in0(in), -1);
}
static tg_tensor *f_reshape(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_reshape(t, in0(in), 2, (int64_t[]){ -1, 2 });
}
static tg_tensor *f_transpose(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_transpose(t, in0(in), 0, 2);
}
static tg_tensor *f_softmax(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_softmax(t, in0(in), 1);
}
static tg_tensor *f_log_softmax(tg_tape *t, tg_tensor *const *in, void *c)
{
    (void)c;
    return tg_log_softmax(t, in0(in), -1);
}
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
    tg_tensor *binary_target, *pos_weight; /* binary_cross_entropy: y as 0/1 floats [rows, 1], and [1] or NULL */
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
    if (m->binary_target) {
        tg_bce_opts b = TG_BCE_OPTS_DEFAULT;
        b.pos_weight = m->pos_weight;
        return tg_binary_cross_entropy_with_logits(tape, h, m->binary_target, &b);
    }
    tg_ce_opts o = TG_CE_OPTS_DEFAULT;
    o.weight = m->weight;
    o.label_smoothing = m->label_smoothing;
    return tg_cross_entropy(tape, h, m->y, &o);
}

/* What checking a config's model holds: its data, the model in float64, and the checked rows. */
typedef struct {
    tg_config *cfg;
    tg_dataset *train, *val, *test;
    tg_model *model;
    bool binary;
    int64_t n; /* rows checked */
    tg_tensor *x, *y, *weight, *target, *pos_weight;
} model_check;

/* The config, its data and a float64 model; 1 when the model cannot be checked (said), -1 on an error. */
static int open_check(model_check *c, const char *config_path)
{
    if (!(c->cfg = tg_config_load(config_path)) || tg_config_load_data(c->cfg, &c->train, &c->val, &c->test))
        return -1;
    if (!c->train->x)
        return fail("%s: data.format is \"libsvm\": this check takes dense data (it builds the rows it checks "
                    "densely)",
                    config_path);
    c->binary = c->cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY;
    tg_rng rng;
    tg_rng_seed(&rng, c->cfg->seed);
    c->model = tg_model_new(TG_F64, c->train->features, c->cfg->model.n_layers, c->cfg->model.layers, &rng);
    if (!c->model)
        return -1;
    if (tg_model_n_params(c->model) > 64)
        return fail("the model has %d parameters; this check handles up to 64", tg_model_n_params(c->model));
    if (c->binary && c->train->classes == 2 && tg_model_set_labels(c->model, 2, c->train->label_names))
        return -1;
    if (tg_model_classes(c->model) < c->train->classes)
        return fail("the model has %lld outputs but the data has %lld classes", (long long)tg_model_classes(c->model),
                    (long long)c->train->classes);
    return 0;
}

/* The first CHECK_ROWS training rows in float64, standardized in double as the config asks, and
 * the loss's targets and weights. */
static int fill_rows(model_check *c)
{
    const tg_dataset *train = c->train;
    c->n = train->rows < CHECK_ROWS ? train->rows : CHECK_ROWS;
    c->x = tg_tensor_new(TG_F64, 2, (int64_t[]){ c->n, train->features });
    c->y = tg_tensor_new(TG_I64, 1, (int64_t[]){ c->n });
    float *mean = malloc((size_t)train->features * sizeof *mean), *std = malloc((size_t)train->features * sizeof *std);
    int status = !c->x || !c->y || !mean || !std || tg_dataset_moments(train, mean, std) ? -1 : 0;
    for (int64_t r = 0; status == 0 && r < c->n; r++) {
        ((int64_t *)tg_data(c->y))[r] = train->y[r];
        for (int64_t f = 0; f < train->features; f++) {
            double v = train->x[r * train->features + f];
            double centre = c->cfg->data.standardize == TG_STANDARDIZE_SCALE ? 0 : mean[f];
            tg_set(c->x, r * train->features + f, c->cfg->data.standardize ? (v - centre) / std[f] : v);
        }
    }
    free(mean);
    free(std);
    if (status)
        return -1;
    if (c->binary) { /* tg_config_load_data made the positive class 1 */
        if (!(c->target = tg_tensor_new(TG_F64, 2, (int64_t[]){ c->n, 1 })) ||
            (c->cfg->loss.pos_weight != 1 &&
             !(c->pos_weight = tg_tensor_from(TG_F64, 1, (int64_t[]){ 1 }, &c->cfg->loss.pos_weight))))
            return -1;
        for (int64_t r = 0; r < c->n; r++)
            tg_set(c->target, r, (double)train->y[r]);
    }
    if (c->cfg->loss.class_weights &&
        !(c->weight =
              tg_tensor_from(TG_F64, 1, (int64_t[]){ c->cfg->loss.n_class_weights }, c->cfg->loss.class_weights)))
        return -1;
    return 0;
}

/* Parameter i: up to MAX_CHECKED of its elements, evenly spread, through tg_gradcheck. */
static int check_param(const model_check *c, int i, int64_t *picked, check_row *row)
{
    tg_tensor *param = tg_model_param(c->model, i);
    int64_t total = tg_numel(param), k = total < MAX_CHECKED ? total : MAX_CHECKED;
    for (int64_t j = 0; j < k; j++)
        picked[j] = j * total / k;
    tg_tensor *values = tg_tensor_new(TG_F64, 1, (int64_t[]){ k });
    if (!values)
        return -1;
    for (int64_t j = 0; j < k; j++)
        tg_set(values, j, tg_get(param, picked[j]));
    tg_set_requires_grad(values, 1);
    model_ctx ctx = {
        c->model, i, picked, c->x, c->y, c->weight, c->cfg->loss.label_smoothing, c->target, c->pos_weight
    };
    row->name = tg_model_param_name(c->model, i);
    row->elements = total;
    row->status = tg_gradcheck(model_loss, 1, &values, &ctx, NULL, &row->report);
    row->checked = row->report.checked;
    tg_tensor_free(values);
    return row->status < 0 ? -1 : 0;
}

static void close_check(model_check *c)
{
    tg_tensor_free(c->x);
    tg_tensor_free(c->y);
    tg_tensor_free(c->weight);
    tg_tensor_free(c->target);
    tg_tensor_free(c->pos_weight);
    tg_model_free(c->model);
    tg_dataset_free(c->train);
    tg_dataset_free(c->val);
    tg_dataset_free(c->test);
    tg_config_free(c->cfg);
}

static int check_model(const char *config_path, bool json)
{
    model_check c = { 0 };
    int64_t *picked = malloc(MAX_CHECKED * sizeof *picked);
    check_row *rows = NULL;
    int status = picked ? open_check(&c, config_path) : -1, n_params = 0, failures = 0;
    if (status == 0 && !(status = fill_rows(&c))) {
        n_params = tg_model_n_params(c.model);
        rows = calloc((size_t)n_params, sizeof *rows);
        status = rows ? 0 : -1;
        for (int i = 0; status == 0 && i < n_params; i++)
            if (!(status = check_param(&c, i, picked, &rows[i])))
                failures += rows[i].status != 0;
    }
    if (status < 0)
        fail("%s", tg_last_error());
    if (status == 0) {
        print_table(rows, n_params, "parameter", json);
        if (!json)
            printf("\n%d of %d parameters pass (loss: %s over %lld rows of %s, float64)\n", n_params - failures,
                   n_params, c.binary ? "binary cross-entropy with logits" : "cross-entropy", (long long)c.n,
                   c.cfg->data.train);
    }
    free(rows);
    free(picked);
    close_check(&c);
    return status ? 1 : failures ? 1 : 0;
}

int run_gradcheck(const char *config_path, bool json)
{
    return config_path ? check_model(config_path, json) : check_ops(json);
}

static const char *usage_gradcheck =
    "usage: tapegrad gradcheck [CONFIG.json] [--json]\n"
    "\n"
    "With a config: builds the model it describes in float64 on a few rows of its\n"
    "data and compares every parameter's analytic gradient of the loss with central\n"
    "differences (eps 1e-6, atol 1e-5, rtol 1e-3). Without one: checks every op.\n"
    "Prints the worst error per parameter (or op) and pass/fail; exits 1 on a failure.\n"
    "\n"
    "  --json        print the table as JSON\n"
    "  --threads N   threads for the library and BLAS\n";

int cmd_gradcheck(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, 1, OPT_JSON, &o);
    if (rc)
        return rc;
    if (o.help)
        return fputs(usage_gradcheck, stdout), 0;
    return run_gradcheck(o.n_positional ? o.positional[0] : NULL, o.json);
}
