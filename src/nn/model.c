/* A feed-forward classifier: a list of layers whose parameters are named and
 * ordered exactly like the state_dict of the equivalent torch.nn.Sequential
 * (an activation takes an index too), so checkpoints map one to one. */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The one table of layer names, indexed by tg_layer_type, NULL-terminated. */
const char *const tg_layer_names[] = { "linear", "relu", "sigmoid", "tanh", NULL };

const char *tg_layer_type_name(tg_layer_type type)
{
    return (unsigned)type < sizeof tg_layer_names / sizeof *tg_layer_names - 1 ? tg_layer_names[type] : NULL;
}

int tg_layer_type_from_name(const char *name)
{
    for (int i = 0; name && tg_layer_names[i]; i++)
        if (strcmp(tg_layer_names[i], name) == 0)
            return i;
    return -1;
}

static int check_layers(int64_t inputs, int n_layers, const tg_layer_spec *layers)
{
    if (inputs <= 0)
        return tg_error("model: %lld inputs, expected at least 1", (long long)inputs), -1;
    if (n_layers <= 0 || !layers)
        return tg_error("model: no layers, expected at least one linear layer"), -1;
    for (int i = 0; i < n_layers; i++) {
        tg_layer_type t = layers[i].type;
        if (t != TG_LAYER_LINEAR && t != TG_LAYER_RELU && t != TG_LAYER_SIGMOID && t != TG_LAYER_TANH)
            return tg_error("model: layer %d has unknown type %d", i, (int)t), -1;
        if (t == TG_LAYER_LINEAR && layers[i].out <= 0)
            return tg_error("model: layer %d (linear) has out %lld, expected at least 1", i, (long long)layers[i].out),
                   -1;
    }
    if (layers[n_layers - 1].type != TG_LAYER_LINEAR)
        return tg_error("model: the last layer is %s, expected linear (its outputs are the logits)",
                        tg_layer_type_name(layers[n_layers - 1].type)),
               -1;
    return 0;
}

/* The parameters' bytes, layer by layer, before anything is allocated: more than TG_MAX_PARAM_BYTES or
 * than the machine's memory is refused naming the layer that crosses the line. */
#define TG_MAX_PARAM_BYTES ((uint64_t)1 << 40)

static int check_size(tg_dtype dtype, int64_t inputs, int n_layers, const tg_layer_spec *layers)
{
    uint64_t memory = tg_physical_memory(), limit = memory && memory < TG_MAX_PARAM_BYTES ? memory : TG_MAX_PARAM_BYTES;
    uint64_t total = 0, elem = tg_dtype_size(dtype);
    int64_t width = inputs;
    for (int i = 0; i < n_layers; i++) {
        if (layers[i].type != TG_LAYER_LINEAR)
            continue;
        int64_t out = layers[i].out;
        /* Both factors are below 2^63; compare by division so nothing overflows. */
        bool too_many = (uint64_t)width > (limit / elem) / (uint64_t)out;
        uint64_t bytes = too_many ? 0 : ((uint64_t)width * (uint64_t)out + (layers[i].bias ? (uint64_t)out : 0)) * elem;
        if (too_many || bytes > limit - total) {
            char need[32], have[32];
            double wanted = (double)width * (double)out * (double)elem + (double)total;
            tg_error("model: layer %d (linear, %lld -> %lld) brings the parameters to %s, more than %s%s", i,
                     (long long)width, (long long)out, tg_bytes_str(need, sizeof need, wanted),
                     tg_bytes_str(have, sizeof have, (double)limit),
                     limit == memory ? ", this machine's memory (training needs about 4 times the parameters)"
                                     : ", the library's limit");
            return -1;
        }
        total += bytes;
        width = out;
    }
    return 0;
}

tg_model *tg_model_new(tg_dtype dtype, int64_t inputs, int n_layers, const tg_layer_spec *layers, tg_rng *rng)
{
    if (!tg_is_float(dtype))
        return tg_error("model: dtype %s, expected float32 or float64", tg_dtype_name(dtype));
    if (check_layers(inputs, n_layers, layers) || check_size(dtype, inputs, n_layers, layers))
        return NULL;
    tg_model *m = tg_alloc_zeroed(sizeof *m);
    if (!m)
        return NULL;
    m->dtype = dtype;
    m->inputs = inputs;
    m->n_layers = n_layers;
    m->layers = tg_alloc((size_t)n_layers * sizeof *m->layers);
    m->linear = tg_alloc_zeroed((size_t)n_layers * sizeof *m->linear);
    m->params = tg_alloc_zeroed((size_t)(2 * n_layers) * sizeof *m->params);
    m->param_names = tg_alloc_zeroed((size_t)(2 * n_layers) * sizeof *m->param_names);
    if (!m->layers || !m->linear || !m->params || !m->param_names)
        goto fail;
    memcpy(m->layers, layers, (size_t)n_layers * sizeof *layers);
    int64_t width = inputs;
    for (int i = 0; i < n_layers; i++) {
        if (layers[i].type != TG_LAYER_LINEAR)
            continue;
        int he = i + 1 < n_layers && layers[i + 1].type == TG_LAYER_RELU;
        if (tg_linear_layer_init(&m->linear[i], dtype, width, layers[i].out, layers[i].bias, he, rng)) {
            char s[TG_SHAPE_BUF];
            snprintf(s, sizeof s, "%s", tg_last_error());
            tg_error("model: layer %d (linear, %lld -> %lld): %s", i, (long long)width, (long long)layers[i].out, s);
            goto fail;
        }
        tg_tensor *own[2] = { m->linear[i].weight, m->linear[i].bias };
        const char *suffix[2] = { "weight", "bias" };
        for (int k = 0; k < 2; k++) {
            if (!own[k])
                continue;
            char name[48];
            snprintf(name, sizeof name, "%d.%s", i, suffix[k]);
            if (!(m->param_names[m->n_params] = tg_strdup(name)))
                goto fail;
            m->params[m->n_params++] = own[k];
        }
        width = layers[i].out;
    }
    m->classes = width; /* a one-output model given two labels becomes binary: tg_model_set_labels */
    return m;
fail:
    tg_model_free(m);
    return NULL;
}

void tg_model_free(tg_model *m)
{
    if (!m)
        return;
    for (int i = 0; m->linear && i < m->n_layers; i++)
        tg_linear_layer_free(&m->linear[i]);
    tg_free_strings(m->param_names, m->n_params);
    tg_free_strings(m->labels, m->n_labels);
    tg_dealloc(m->params);
    tg_dealloc(m->linear);
    tg_dealloc(m->layers);
    tg_dealloc(m->mean);
    tg_dealloc(m->std);
    tg_dealloc(m->config_json);
    tg_dealloc(m);
}

tg_tensor *tg_model_forward(tg_model *m, tg_tape *tape, tg_tensor *x)
{
    return tg_model_forward_with(m, tape, x, m ? m->params : NULL);
}

/* The one place a model's layers are composed: training, evaluation and the
 * gradient check (with a parameter swapped for a tape tensor) all run this,
 * from layer `first` (whose first parameter is params[p]) on. */
static tg_tensor *layers_from(const tg_model *m, tg_tape *tape, tg_tensor *h, tg_tensor *const *params, int first,
                              int p)
{
    for (int i = first; i < m->n_layers && h; i++) {
        switch (m->layers[i].type) {
        case TG_LAYER_LINEAR:
            h = tg_linear(tape, h, params[p], m->layers[i].bias ? params[p + 1] : NULL);
            p += m->layers[i].bias ? 2 : 1;
            break;
        case TG_LAYER_RELU: h = tg_relu(tape, h); break;
        case TG_LAYER_SIGMOID: h = tg_sigmoid(tape, h); break;
        case TG_LAYER_TANH: h = tg_tanh(tape, h); break;
        }
    }
    return h;
}

tg_tensor *tg_model_forward_with(const tg_model *m, tg_tape *tape, tg_tensor *x, tg_tensor *const *params)
{
    if (!m)
        return tg_error("model forward: model is NULL");
    if (!params)
        return tg_error("model forward: params is NULL");
    if (!x)
        return NULL;
    if (x->ndim != 2 || x->shape[1] != m->inputs) {
        char s[TG_SHAPE_BUF];
        return tg_error("model forward: input %s, expected [rows, %lld]", tg_shape_str(s, sizeof s, x->ndim, x->shape),
                        (long long)m->inputs);
    }
    return layers_from(m, tape, x, params, 0, 0);
}

/* The first linear layer over sparse rows (tg_sparse_linear), then the other layers as above. */
tg_tensor *tg_model_forward_sparse(const tg_model *m, tg_tape *tape, const tg_sparse_csr *x, tg_tensor *const *params)
{
    if (m->n_layers < 1 || m->layers[0].type != TG_LAYER_LINEAR)
        return tg_error("model forward: sparse input needs a linear first layer");
    bool bias = m->layers[0].bias;
    tg_tensor *h = tg_sparse_linear(tape, x, params[0], bias ? params[1] : NULL);
    return h ? layers_from(m, tape, h, params, 1, bias ? 2 : 1) : NULL;
}

tg_tensor *tg_model_forward_batch(const tg_model *m, tg_tape *tape, batch_tensors t, tg_tensor *const *params)
{
    return t.sparse ? tg_model_forward_sparse(m, tape, t.sparse, params) : tg_model_forward_with(m, tape, t.x, params);
}

/* Getters answer a NULL model with their "none" value (-1, NULL) and set the error. */
static bool have_model(const char *fn, const tg_model *m)
{
    if (!m)
        tg_error("%s: model is NULL", fn);
    return m != NULL;
}

int64_t tg_model_inputs(const tg_model *m) { return have_model("tg_model_inputs", m) ? m->inputs : -1; }
int64_t tg_model_classes(const tg_model *m) { return have_model("tg_model_classes", m) ? m->classes : -1; }
tg_dtype tg_model_dtype(const tg_model *m) { return have_model("tg_model_dtype", m) ? m->dtype : (tg_dtype)-1; }
int tg_model_n_layers(const tg_model *m) { return have_model("tg_model_n_layers", m) ? m->n_layers : -1; }
int tg_model_n_params(const tg_model *m) { return have_model("tg_model_n_params", m) ? m->n_params : -1; }

const tg_layer_spec *tg_model_layer(const tg_model *m, int i)
{
    return have_model("tg_model_layer", m) && i >= 0 && i < m->n_layers ? &m->layers[i] : NULL;
}

tg_tensor *tg_model_param(tg_model *m, int i)
{
    return have_model("tg_model_param", m) && i >= 0 && i < m->n_params ? m->params[i] : NULL;
}

const tg_tensor *tg_model_param_const(const tg_model *m, int i)
{
    return have_model("tg_model_param_const", m) && i >= 0 && i < m->n_params ? m->params[i] : NULL;
}

const char *tg_model_param_name(const tg_model *m, int i)
{
    return have_model("tg_model_param_name", m) && i >= 0 && i < m->n_params ? m->param_names[i] : NULL;
}

int tg_model_set_labels(tg_model *m, int64_t classes, char *const *names)
{
    if (!have_model("tg_model_set_labels", m))
        return -1;
    if (!names) {
        tg_error("tg_model_set_labels: names is NULL, expected %lld label names", (long long)m->classes);
        return -1;
    }
    bool binary = classes == 2 && m->classes == 1; /* one output, two classes: P(class 1) = sigmoid(logit) */
    if (classes != m->classes && !binary) {
        tg_error("model: %lld label names for a model with %lld classes", (long long)classes, (long long)m->classes);
        return -1;
    }
    for (int64_t i = 0; i < classes; i++)
        if (!names[i]) {
            tg_error("tg_model_set_labels: names[%lld] is NULL", (long long)i);
            return -1;
        }
    char **copy = tg_alloc_zeroed((size_t)classes * sizeof *copy);
    if (!copy)
        return -1;
    for (int64_t i = 0; i < classes; i++)
        if (!(copy[i] = tg_strdup(names[i]))) {
            tg_free_strings(copy, classes);
            return -1;
        }
    tg_free_strings(m->labels, m->n_labels);
    m->labels = copy;
    m->n_labels = classes;
    m->classes = classes;
    return 0;
}

const char *tg_model_label(const tg_model *m, int64_t id)
{
    return have_model("tg_model_label", m) && m->labels && id >= 0 && id < m->n_labels ? m->labels[id] : NULL;
}

int tg_model_set_standardization(tg_model *m, const float *mean, const float *std)
{
    float *new_mean = NULL, *new_std = NULL;
    if (!have_model("tg_model_set_standardization", m) ||
        tg_check_standardization("tg_model_set_standardization", m->inputs, mean, std))
        return -1;
    if (mean && std) {
        size_t bytes = (size_t)m->inputs * sizeof(float);
        new_mean = tg_alloc(bytes);
        new_std = tg_alloc(bytes);
        if (!new_mean || !new_std) {
            tg_dealloc(new_mean);
            tg_dealloc(new_std);
            return -1;
        }
        memcpy(new_mean, mean, bytes);
        memcpy(new_std, std, bytes);
    }
    tg_dealloc(m->mean);
    tg_dealloc(m->std);
    m->mean = new_mean;
    m->std = new_std;
    return 0;
}

const float *tg_model_mean(const tg_model *m) { return have_model("tg_model_mean", m) ? m->mean : NULL; }
const float *tg_model_std(const tg_model *m) { return have_model("tg_model_std", m) ? m->std : NULL; }

int tg_check_standardization(const char *where, int64_t inputs, const float *mean, const float *std)
{
    if (!mean != !std) {
        tg_error("%s: %s is NULL but %s is not; give both (or both NULL to clear)", where, mean ? "std" : "mean",
                 mean ? "mean" : "std");
        return -1;
    }
    for (int64_t i = 0; mean && i < inputs; i++) {
        if (!isfinite(mean[i])) {
            tg_error("%s: mean[%lld] is %g, expected a finite number", where, (long long)i, (double)mean[i]);
            return -1;
        }
        /* x / std with std <= 0 flips or blows up every input: predict would print NaN or nonsense. */
        if (!(std[i] > 0) || !isfinite(std[i])) {
            tg_error("%s: std[%lld] is %g, expected a finite number > 0 (a standard deviation)", where, (long long)i,
                     (double)std[i]);
            return -1;
        }
    }
    return 0;
}

int tg_model_set_config_json(tg_model *m, const char *json)
{
    if (!have_model("tg_model_set_config_json", m))
        return -1;
    char *copy = json ? tg_strdup(json) : NULL;
    if (json && !copy)
        return -1;
    tg_dealloc(m->config_json);
    m->config_json = copy;
    return 0;
}

const char *tg_model_config_json(const tg_model *m)
{
    return have_model("tg_model_config_json", m) ? m->config_json : NULL;
}
