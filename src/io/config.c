/* Model configs: a JSON file read strictly. Each object's keys are checked
 * against the keys it may hold (case-exact, none repeated), each value against
 * its type and range, and every error names the JSON path and what was
 * expected ("optimizer.lr: must be > 0, got -0.1"), the way liblinear's
 * check_parameter returns a message instead of guessing. Defaults are
 * PyTorch's wherever PyTorch has the option. The schema is docs/config.md. */
#define _POSIX_C_SOURCE 200809L /* fstat, fileno: to tell a folder from a file */

#include "io/config_reader.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WHITE_SPACE " \t\r\n" /* JSON's */
#define MAX_CONFIG_BYTES ((size_t)16 << 20) /* a config is a few hundred bytes; this stops a wrong file early */

/* ------------------------------------------------------------------------ */
/* The sections                                                              */
/* ------------------------------------------------------------------------ */

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* data.columns: distinct non-negative feature column indices, the label's excluded. */
static int parse_columns(const parser *p, const cJSON *list, tg_config *cfg)
{
    char path[PATH_LEN], seen[64];
    if (!cJSON_IsArray(list))
        return tg_cfg_fail(p, "data.columns", "expected an array of column indices, got %s",
                           tg_cfg_describe(list, seen, sizeof seen));
    int n = cJSON_GetArraySize(list);
    if (n == 0)
        return tg_cfg_fail(p, "data.columns", "must list at least one feature column");
    if (!(cfg->data.columns = tg_alloc((size_t)n * sizeof *cfg->data.columns)))
        return -1;
    for (const cJSON *item = list->child; item; item = item->next) {
        int64_t column = 0;
        snprintf(path, sizeof path, "data.columns[%lld]", (long long)cfg->data.n_columns);
        if (tg_cfg_integer_value(p, item, path, 0, MAX_EXACT, &column))
            return -1;
        if (!cfg->data.label_name && column == cfg->data.label_column)
            return tg_cfg_fail(p, path, "column %lld is the label column (data.label_column)", (long long)column);
        cfg->data.columns[cfg->data.n_columns++] = column;
    }
    /* Repeats: sort a copy, then name the second place the repeated column appears. */
    int64_t *sorted = tg_alloc((size_t)n * sizeof *sorted);
    if (!sorted)
        return -1;
    memcpy(sorted, cfg->data.columns, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_int64);
    int64_t repeated = -1;
    for (int i = 1; i < n && repeated < 0; i++)
        if (sorted[i] == sorted[i - 1])
            repeated = sorted[i];
    tg_dealloc(sorted);
    if (repeated < 0)
        return 0;
    int64_t second = -1;
    for (int64_t i = 0, count = 0; i < n && second < 0; i++)
        if (cfg->data.columns[i] == repeated && ++count == 2)
            second = i;
    snprintf(path, sizeof path, "data.columns[%lld]", (long long)second);
    return tg_cfg_fail(p, path, "column %lld is listed twice", (long long)repeated);
}

/* data.standardize: true (centre and scale), false, or "scale" (divide by the deviation only, as
 * StandardScaler(with_mean=False)); sparse data is never centred, since that would make every zero non-zero. */
static int parse_standardize(const parser *p, section s, bool sparse, int *out)
{
    char seen[64];
    const cJSON *item = tg_cfg_member(s, "standardize");
    if (!item)
        return 0;
    if (cJSON_IsString(item) && strcmp(item->valuestring, "scale") == 0)
        return *out = TG_STANDARDIZE_SCALE, 0;
    if (!cJSON_IsBool(item))
        return tg_cfg_fail(p, "data.standardize", "expected true, false or \"scale\", got %s",
                           tg_cfg_describe(item, seen, sizeof seen));
    if (sparse && cJSON_IsTrue(item))
        return tg_cfg_fail(p, "data.standardize",
                           "true centres the features, which would make every zero of the sparse (libsvm) data "
                           "non-zero; use \"scale\" (divide by the deviation only) or false");
    *out = cJSON_IsTrue(item) ? 1 : 0;
    return 0;
}

/* data.stream and its keys: a stream holds no rows back, so the test set is a file and there is no
 * validation split (docs/data.md, "Data larger than memory"). */
static int parse_stream(const parser *p, section s, tg_config *cfg)
{
    cfg->data.block_rows = TG_STREAM_BLOCK_ROWS;
    cfg->data.shuffle_window = TG_STREAM_SHUFFLE_WINDOW;
    if (tg_cfg_get_bool(p, s, "stream", &cfg->data.stream) ||
        tg_cfg_get_integer(p, s, "block_rows", 1, MAX_EXACT, &cfg->data.block_rows) ||
        tg_cfg_get_integer(p, s, "shuffle_window", 1, MAX_EXACT, &cfg->data.shuffle_window))
        return -1;
    if (!cfg->data.stream) {
        const char *key = tg_cfg_member(s, "block_rows") ? "block_rows" : "shuffle_window";
        char path[PATH_LEN];
        snprintf(path, sizeof path, "data.%s", key);
        return tg_cfg_member(s, key) ? tg_cfg_fail(p, path, "given without \"stream\": true") : 0;
    }
    if (!cfg->data.test)
        return tg_cfg_fail(p, "data.stream",
                           "needs data.test, a test file: a streamed training file holds no rows back for a test "
                           "split");
    if (tg_cfg_member(s, "validation_split") && cfg->data.validation_split > 0)
        return tg_cfg_fail(p, "data.validation_split",
                           "must be 0 with data.stream: a streamed training file holds no rows back (early stopping "
                           "is not available)");
    cfg->data.validation_split = 0;
    return 0;
}

static int parse_data(const parser *p, const cJSON *item, tg_config *cfg)
{
    static const char *const formats[] = { "csv", "idx", "libsvm", NULL };
    static const char *const csv_keys[] = {
        "format",       "train",        "test",       "test_split",     "validation_split",
        "header",       "label_column", "label",      "columns",        "standardize",
        "shuffle_seed", "stream",       "block_rows", "shuffle_window", NULL
    };
    static const char *const idx_keys[] = {
        "format",           "train",       "train_labels", "test",         "test_labels", "test_split",
        "validation_split", "standardize", "scale",        "shuffle_seed", NULL
    };
    static const char *const libsvm_keys[] = {
        "format",   "train",           "test",   "test_split", "validation_split", "standardize", "shuffle_seed",
        "features", "unseen_features", "stream", "block_rows", "shuffle_window",   NULL
    };
    static const char *const unseen[] = { "error", "ignore", NULL };
    char seen[64];
    section s;
    int format = 0;
    if (!item)
        return tg_cfg_fail(p, "data", "required");
    if (tg_cfg_as_section(p, item, "data", &s) || tg_cfg_get_choice(p, s, "format", formats, &format))
        return -1;
    bool idx = strcmp(formats[format], "idx") == 0, libsvm = strcmp(formats[format], "libsvm") == 0;
    char for_format[32];
    snprintf(for_format, sizeof for_format, "for format \"%s\"", formats[format]);
    if (tg_cfg_check_keys(p, s, idx ? idx_keys : libsvm ? libsvm_keys : csv_keys, for_format))
        return -1;
    if (!(cfg->data.format = tg_strdup(formats[format])))
        return -1;
    if (tg_cfg_required(p, s, "train") || tg_cfg_get_path(p, s, "train", &cfg->data.train) ||
        tg_cfg_get_path(p, s, "test", &cfg->data.test))
        return -1;
    if (idx) {
        if (tg_cfg_required(p, s, "train_labels") || tg_cfg_get_path(p, s, "train_labels", &cfg->data.train_labels))
            return -1;
        if (cfg->data.test &&
            (tg_cfg_required(p, s, "test_labels") || tg_cfg_get_path(p, s, "test_labels", &cfg->data.test_labels)))
            return -1;
        if (!cfg->data.test && tg_cfg_member(s, "test_labels"))
            return tg_cfg_fail(p, "data.test_labels", "given without data.test (the test images)");
    }

    cfg->data.test_split = cfg->data.test ? 0.0 : 0.2;
    if (cfg->data.test && tg_cfg_member(s, "test_split"))
        return tg_cfg_fail(p, "data.test_split", "cannot be used together with data.test: the test set is that file");
    cfg->data.validation_split = 0.1;
    if (tg_cfg_get_number(p, s, "test_split", FRACTION, &cfg->data.test_split) ||
        tg_cfg_get_number(p, s, "validation_split", FRACTION, &cfg->data.validation_split))
        return -1;

    cfg->data.standardize = !idx && !libsvm;
    cfg->data.scale = 1.0 / 255.0;
    cfg->data.header = -1;
    cfg->data.label_column = -1;
    int skip = 0;
    if (parse_standardize(p, s, libsvm, &cfg->data.standardize) ||
        tg_cfg_get_number(p, s, "scale", ABOVE_0, &cfg->data.scale) ||
        tg_cfg_get_integer(p, s, "features", 1, INT32_MAX, &cfg->data.features) ||
        tg_cfg_get_choice(p, s, "unseen_features", unseen, &skip))
        return -1;
    cfg->data.skip_unseen_features = skip;
    const cJSON *header = tg_cfg_member(s, "header");
    if (header && cJSON_IsBool(header))
        cfg->data.header = cJSON_IsTrue(header) ? 1 : 0;
    else if (header && !(cJSON_IsString(header) && strcmp(header->valuestring, "auto") == 0))
        return tg_cfg_fail(p, "data.header", "expected true, false or \"auto\", got %s",
                           tg_cfg_describe(header, seen, sizeof seen));

    const cJSON *label_column = tg_cfg_member(s, "label_column");
    if (label_column && cJSON_IsString(label_column))
        return tg_cfg_fail(p, "data.label_column", "expected an integer, got %s; name a column with data.label instead",
                           tg_cfg_describe(label_column, seen, sizeof seen));
    if (tg_cfg_get_integer(p, s, "label_column", -MAX_EXACT, MAX_EXACT, &cfg->data.label_column))
        return -1;
    const char *label = NULL;
    if (tg_cfg_get_string(p, s, "label", &label))
        return -1;
    if (label && label_column)
        return tg_cfg_fail(p, "data.label", "cannot be used together with data.label_column; give one of them");
    if (label && !(cfg->data.label_name = tg_strdup(label)))
        return -1;
    const cJSON *columns = tg_cfg_member(s, "columns");
    if (columns && parse_columns(p, columns, cfg))
        return -1;
    cfg->data.shuffle_seed = cfg->seed;
    if (tg_cfg_get_seed(p, s, "shuffle_seed", &cfg->data.shuffle_seed))
        return -1;
    return parse_stream(p, s, cfg);
}

static int parse_layer(const parser *p, const cJSON *item, int index, tg_layer_spec *layer)
{
    static const char *const linear_keys[] = { "type", "out", "bias", NULL };
    static const char *const activation_keys[] = { "type", NULL };
    char path[PATH_LEN], for_type[48];
    section s;
    int type = 0, bias = 1;
    snprintf(path, sizeof path, "model.layers[%d]", index);
    if (tg_cfg_as_section(p, item, path, &s) || tg_cfg_required(p, s, "type") ||
        tg_cfg_get_choice(p, s, "type", tg_layer_names, &type))
        return -1;
    snprintf(for_type, sizeof for_type, "for type \"%s\"", tg_layer_names[type]);
    layer->type = (tg_layer_type)type;
    if (layer->type != TG_LAYER_LINEAR)
        return tg_cfg_check_keys(p, s, activation_keys, for_type);
    if (tg_cfg_check_keys(p, s, linear_keys, for_type) || tg_cfg_required(p, s, "out") ||
        tg_cfg_get_integer(p, s, "out", 1, MAX_EXACT, &layer->out) || tg_cfg_get_bool(p, s, "bias", &bias))
        return -1;
    layer->bias = bias;
    return 0;
}

static int parse_model(const parser *p, const cJSON *item, tg_config *cfg)
{
    static const char *const keys[] = { "dtype", "layers", NULL };
    static const char *const dtype_names[] = { "float32", "float64", NULL };
    static const tg_dtype dtypes[] = { TG_F32, TG_F64 };
    char seen[64];
    section s;
    int dtype = 0;
    if (!item)
        return tg_cfg_fail(p, "model", "required");
    if (tg_cfg_as_section(p, item, "model", &s) || tg_cfg_check_keys(p, s, keys, NULL) ||
        tg_cfg_get_choice(p, s, "dtype", dtype_names, &dtype))
        return -1;
    cfg->model.dtype = dtypes[dtype];
    if (tg_cfg_required(p, s, "layers"))
        return -1;
    const cJSON *layers = tg_cfg_member(s, "layers");
    if (!cJSON_IsArray(layers))
        return tg_cfg_fail(p, "model.layers", "expected an array of layers, got %s",
                           tg_cfg_describe(layers, seen, sizeof seen));
    int n = cJSON_GetArraySize(layers);
    if (n == 0)
        return tg_cfg_fail(p, "model.layers", "needs at least one layer, the last one linear");
    if (!(cfg->model.layers = tg_alloc_zeroed((size_t)n * sizeof *cfg->model.layers)))
        return -1;
    for (const cJSON *layer = layers->child; layer; layer = layer->next) {
        if (parse_layer(p, layer, cfg->model.n_layers, &cfg->model.layers[cfg->model.n_layers]))
            return -1;
        cfg->model.n_layers++;
    }
    tg_layer_type last = cfg->model.layers[n - 1].type;
    if (last != TG_LAYER_LINEAR) {
        char path[PATH_LEN];
        snprintf(path, sizeof path, "model.layers[%d]", n - 1);
        return tg_cfg_fail(p, path, "the last layer must be linear (its outputs are the class scores), got \"%s\"",
                           tg_layer_type_name(last));
    }
    return 0;
}

/* loss.weight: one non-negative weight per class (the last layer's out), not all zero. */
static int parse_class_weights(const parser *p, const cJSON *list, tg_config *cfg)
{
    char path[PATH_LEN], seen[64];
    if (!cJSON_IsArray(list))
        return tg_cfg_fail(p, "loss.weight", "expected an array of per-class weights, got %s",
                           tg_cfg_describe(list, seen, sizeof seen));
    int n = cJSON_GetArraySize(list);
    const tg_layer_spec *last = &cfg->model.layers[cfg->model.n_layers - 1];
    int64_t classes = cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY ? 2 : last->out; /* one output, two classes */
    if (n != classes)
        return tg_cfg_fail(p, "loss.weight", "has %d weights but the model has %lld classes (model.layers[%d].out)", n,
                           (long long)classes, cfg->model.n_layers - 1);
    if (!(cfg->loss.class_weights = tg_alloc((size_t)n * sizeof *cfg->loss.class_weights)))
        return -1;
    double total = 0;
    for (const cJSON *item = list->child; item; item = item->next) {
        double *w = &cfg->loss.class_weights[cfg->loss.n_class_weights];
        snprintf(path, sizeof path, "loss.weight[%lld]", (long long)cfg->loss.n_class_weights);
        if (tg_cfg_number_value(p, item, path, AT_LEAST_0, w))
            return -1;
        total += *w;
        cfg->loss.n_class_weights++;
    }
    return total > 0 ? 0 : tg_cfg_fail(p, "loss.weight", "every weight is 0; at least one class must count");
}

/* loss.class_weight: "balanced", or an object from label to a non-negative weight. The labels are checked
 * against the data when training starts (the config does not know them). */
static int parse_class_weight_map(const parser *p, const cJSON *item, tg_config *cfg)
{
    char path[PATH_LEN], seen[64];
    if (cJSON_IsString(item)) {
        if (strcmp(item->valuestring, "balanced") != 0)
            return tg_cfg_fail(p, "loss.class_weight",
                               "expected \"balanced\" or an object of per-label weights, got \"%s\"",
                               item->valuestring);
        cfg->loss.class_weight_balanced = 1;
        return 0;
    }
    if (!cJSON_IsObject(item))
        return tg_cfg_fail(p, "loss.class_weight", "expected \"balanced\" or an object of per-label weights, got %s",
                           tg_cfg_describe(item, seen, sizeof seen));
    int n = cJSON_GetArraySize(item);
    if (n == 0)
        return tg_cfg_fail(p, "loss.class_weight", "is empty; name at least one label");
    cfg->loss.class_weight_labels = tg_alloc_zeroed((size_t)n * sizeof *cfg->loss.class_weight_labels);
    cfg->loss.class_weight_values = tg_alloc((size_t)n * sizeof *cfg->loss.class_weight_values);
    if (!cfg->loss.class_weight_labels || !cfg->loss.class_weight_values)
        return -1;
    for (const cJSON *w = item->child; w; w = w->next) {
        int64_t k = cfg->loss.n_class_weight_labels;
        snprintf(path, sizeof path, "loss.class_weight.%s", w->string);
        if (tg_cfg_number_value(p, w, path, AT_LEAST_0, &cfg->loss.class_weight_values[k]))
            return -1;
        for (int64_t j = 0; j < k; j++)
            if (strcmp(cfg->loss.class_weight_labels[j], w->string) == 0)
                return tg_cfg_fail(p, path, "duplicate key");
        if (!(cfg->loss.class_weight_labels[k] = tg_strdup(w->string)))
            return -1;
        cfg->loss.n_class_weight_labels++;
    }
    return 0;
}

/* binary_cross_entropy: one output (the last layer's out is 1), positive_class and pos_weight; neither key
 * nor label smoothing under cross_entropy. */
static int parse_binary_loss(const parser *p, section s, tg_config *cfg)
{
    int last = cfg->model.n_layers - 1;
    int64_t out = cfg->model.layers[last].out;
    const cJSON *positive = tg_cfg_member(s, "positive_class");
    char seen[64];
    cfg->loss.pos_weight = 1;
    if (cfg->loss.type != TG_LOSS_BINARY_CROSS_ENTROPY) {
        const char *binary_only = positive                         ? "loss.positive_class"
                                  : tg_cfg_member(s, "pos_weight") ? "loss.pos_weight"
                                                                   : NULL;
        if (binary_only)
            return tg_cfg_fail(p, binary_only, "applies to \"type\": \"binary_cross_entropy\" only");
        return 0;
    }
    if (out != 1)
        return tg_cfg_fail(
            p, "loss.type",
            "binary_cross_entropy scores one output: the last layer needs \"out\": 1 (model.layers[%d].out "
            "is %lld; for one output per class use cross_entropy)",
            last, (long long)out);
    if (tg_cfg_member(s, "label_smoothing"))
        return tg_cfg_fail(p, "loss.label_smoothing", "applies to cross_entropy only");
    if (positive) {
        if (cJSON_IsString(positive) && positive->valuestring[0])
            cfg->loss.positive_class = tg_strdup(positive->valuestring);
        else if (cJSON_IsNumber(positive) && positive->valuedouble == floor(positive->valuedouble) &&
                 fabs(positive->valuedouble) < MAX_EXACT) {
            char text[32];
            snprintf(text, sizeof text, "%.0f", positive->valuedouble);
            cfg->loss.positive_class = tg_strdup(text);
        } else {
            return tg_cfg_fail(p, "loss.positive_class", "expected a label (a string or a whole number), got %s",
                               tg_cfg_describe(positive, seen, sizeof seen));
        }
        if (!cfg->loss.positive_class)
            return -1;
    }
    return tg_cfg_get_number(p, s, "pos_weight", ABOVE_0, &cfg->loss.pos_weight);
}

static int parse_loss(const parser *p, const cJSON *item, tg_config *cfg)
{
    static const char *const keys[] = { "type",       "label_smoothing", "weight", "class_weight", "positive_class",
                                        "pos_weight", "penalty",         "C",      "l1_ratio",     NULL };
    static const char *const types[] = { "cross_entropy", "binary_cross_entropy", NULL };
    section s;
    int type = 0;
    cfg->loss.pos_weight = 1;
    if (!item)
        return 0;
    if (tg_cfg_as_section(p, item, "loss", &s) || tg_cfg_check_keys(p, s, keys, NULL) ||
        tg_cfg_get_choice(p, s, "type", types, &type) ||
        tg_cfg_get_number(p, s, "label_smoothing", FRACTION, &cfg->loss.label_smoothing))
        return -1;
    cfg->loss.type = type == 1 ? TG_LOSS_BINARY_CROSS_ENTROPY : TG_LOSS_CROSS_ENTROPY;
    if (parse_binary_loss(p, s, cfg))
        return -1;
    const cJSON *weight = tg_cfg_member(s, "weight"), *class_weight = tg_cfg_member(s, "class_weight");
    if (weight && class_weight)
        return tg_cfg_fail(p, "loss.class_weight", "give loss.weight (a list) or loss.class_weight, not both");
    if (class_weight)
        return parse_class_weight_map(p, class_weight, cfg);
    return weight ? parse_class_weights(p, weight, cfg) : 0;
}

/* "lazy": true (tg_optim_opts.lazy) refused with a rule that has no lazy form; SGD's momentum is checked
 * where it is read. */
static int check_lazy(const parser *p, const tg_optim_opts *o)
{
    if (!o->lazy)
        return 0;
    if (o->type == TG_OPTIM_ADAMW)
        return tg_cfg_fail(p, "optimizer.lazy",
                           "is for \"sgd\" and \"adam\", not \"adamw\" (its decay moves every weight)");
    if (o->weight_decay != 0)
        return tg_cfg_fail(p, "optimizer.lazy", "takes no weight_decay (it moves every weight each step), got %g",
                           o->weight_decay);
    return 0;
}

/* optimizer.type "lbfgs": the full-batch solver's keys (PyTorch's LBFGS names where it has them). */
static int parse_lbfgs(const parser *p, section s, tg_config *cfg)
{
    static const char *const keys[] = {
        "type", "history_size", "max_iter", "tolerance_grad", "tolerance_change", "max_linesearch", "block_rows", NULL
    };
    cfg->optimizer = (tg_optim_opts){ .type = TG_OPTIM_LBFGS, .lr = 1.0 };
    cfg->lbfgs.opts = TG_LBFGS_OPTS_DEFAULT;
    cfg->lbfgs.block_rows = 512; /* 512 rows of 784 float64 features stay in cache through forward and backward */
    tg_lbfgs_opts *o = &cfg->lbfgs.opts;
    return tg_cfg_check_keys(p, s, keys, "for type \"lbfgs\"") ||
                   tg_cfg_get_int(p, s, "history_size", 1, &o->history_size) ||
                   tg_cfg_get_int(p, s, "max_iter", 0, &o->max_iter) ||
                   tg_cfg_get_int(p, s, "max_linesearch", 1, &o->max_linesearch) ||
                   tg_cfg_get_number(p, s, "tolerance_grad", AT_LEAST_0, &o->tolerance_grad) ||
                   tg_cfg_get_number(p, s, "tolerance_change", AT_LEAST_0, &o->tolerance_change) ||
                   tg_cfg_get_integer(p, s, "block_rows", 1, MAX_EXACT, &cfg->lbfgs.block_rows)
               ? -1
               : 0;
}

/* loss.penalty, loss.C, loss.l1_ratio: scikit-learn's meaning. Read after the
 * optimizer: the default is "none", except under lbfgs where it is
 * scikit-learn's ("l2", C 1), and an L1 part needs a solver that can make
 * coefficients exactly zero (OWL-QN, optimizer lbfgs). */
static int parse_penalty(const parser *p, const cJSON *item, tg_config *cfg)
{
    static const char *const names[] = { "none", "l2", "l1", "elasticnet", NULL };
    static const tg_penalty_type types[] = { TG_PENALTY_NONE, TG_PENALTY_L2, TG_PENALTY_L1, TG_PENALTY_ELASTICNET };
    tg_penalty *pen = &cfg->loss.penalty;
    bool full_batch = cfg->optimizer.type == TG_OPTIM_LBFGS;
    *pen = TG_PENALTY_DEFAULT;
    int type = full_batch ? 1 : 0;
    section s = { NULL, "loss" };
    if (item && tg_cfg_as_section(p, item, "loss", &s))
        return -1;
    if (item && (tg_cfg_get_choice(p, s, "penalty", names, &type) || tg_cfg_get_number(p, s, "C", ABOVE_0, &pen->C)))
        return -1;
    pen->type = types[type];
    const cJSON *ratio = item ? tg_cfg_member(s, "l1_ratio") : NULL;
    if (ratio && pen->type != TG_PENALTY_ELASTICNET)
        return tg_cfg_fail(p, "loss.l1_ratio", "is used only with loss.penalty \"elasticnet\", not \"%s\"",
                           names[type]);
    if (!ratio && pen->type == TG_PENALTY_ELASTICNET)
        return tg_cfg_fail(p, "loss.l1_ratio", "required with loss.penalty \"elasticnet\" (a number in [0, 1])");
    if (ratio && tg_cfg_number_value(p, ratio, "loss.l1_ratio", UNIT, &pen->l1_ratio))
        return -1;
    if (item && tg_cfg_member(s, "C") && pen->type == TG_PENALTY_NONE)
        return tg_cfg_fail(p, "loss.C",
                           "has no effect with loss.penalty \"none\"; set loss.penalty to \"l2\", \"l1\" or "
                           "\"elasticnet\"");
    if ((pen->type == TG_PENALTY_L1 || pen->type == TG_PENALTY_ELASTICNET) && !full_batch)
        return tg_cfg_fail(p, "loss.penalty",
                           "\"%s\" needs optimizer.type \"lbfgs\" (OWL-QN, which makes coefficients exactly zero); "
                           "sgd, adam and adamw cannot honour an L1 term exactly",
                           names[type]);
    if (pen->type != TG_PENALTY_NONE && cfg->optimizer.lazy) /* a lazy step would leave it in untouched columns */
        return tg_cfg_fail(p, "loss.penalty",
                           "\"%s\" has a gradient on every weight, which optimizer.lazy does not apply; set "
                           "optimizer.lazy to false",
                           names[type]);
    return 0;
}

/* Under lbfgs the train section's minibatch keys mean nothing: refused rather than ignored. */
static int check_full_batch_train(const parser *p, const cJSON *item, const tg_config *cfg)
{
    static const char *const minibatch_keys[] = { "epochs",         "batch_size",     "lr_schedule",
                                                  "clip_grad_norm", "early_stopping", NULL };
    char path[PATH_LEN];
    if (!item || cfg->optimizer.type != TG_OPTIM_LBFGS)
        return 0;
    section s = { item, "train" };
    for (int i = 0; minibatch_keys[i]; i++)
        if (tg_cfg_member(s, minibatch_keys[i]))
            return tg_cfg_fail(p, tg_cfg_key_path(path, "train", minibatch_keys[i]),
                               "not used by optimizer.type \"lbfgs\" (one full-batch solve: set optimizer.max_iter, "
                               "optimizer.tolerance_grad)");
    return 0;
}

static int parse_optimizer(const parser *p, const cJSON *item, tg_config *cfg)
{
    static const char *const types[] = { "sgd", "adam", "adamw", "lbfgs", NULL };
    static const tg_optim_type kinds[] = { TG_OPTIM_SGD, TG_OPTIM_ADAM, TG_OPTIM_ADAMW, TG_OPTIM_LBFGS };
    static const char *const sgd_keys[] = { "type",     "lr",           "momentum", "dampening",
                                            "nesterov", "weight_decay", "lazy",     NULL };
    static const char *const adam_keys[] = { "type", "lr", "betas", "eps", "weight_decay", "lazy", NULL };
    char seen[64], for_type[48];
    section s;
    int type = 0;
    if (!item)
        return tg_cfg_fail(p, "optimizer", "required");
    if (tg_cfg_as_section(p, item, "optimizer", &s) || tg_cfg_required(p, s, "type") ||
        tg_cfg_get_choice(p, s, "type", types, &type))
        return -1;
    snprintf(for_type, sizeof for_type, "for type \"%s\"", types[type]);
    tg_optim_opts *o = &cfg->optimizer;
    switch (kinds[type]) { /* PyTorch's defaults, lr 1e-3 included */
    case TG_OPTIM_SGD: *o = TG_SGD_DEFAULT(1e-3); break;
    case TG_OPTIM_ADAM: *o = TG_ADAM_DEFAULT(1e-3); break;
    case TG_OPTIM_ADAMW: *o = TG_ADAMW_DEFAULT(1e-3); break;
    case TG_OPTIM_LBFGS: return parse_lbfgs(p, s, cfg);
    }
    if (tg_cfg_check_keys(p, s, o->type == TG_OPTIM_SGD ? sgd_keys : adam_keys, for_type) ||
        tg_cfg_get_number(p, s, "lr", ABOVE_0, &o->lr) ||
        tg_cfg_get_number(p, s, "weight_decay", AT_LEAST_0, &o->weight_decay) ||
        tg_cfg_get_bool(p, s, "lazy", &o->lazy) || check_lazy(p, o))
        return -1;
    if (o->type == TG_OPTIM_SGD) {
        if (tg_cfg_get_number(p, s, "momentum", AT_LEAST_0, &o->momentum) ||
            tg_cfg_get_number(p, s, "dampening", UNIT, &o->dampening) ||
            tg_cfg_get_bool(p, s, "nesterov", &o->nesterov))
            return -1;
        if (o->lazy && o->momentum != 0)
            return tg_cfg_fail(p, "optimizer.lazy", "takes no momentum (it moves every weight each step), got %g",
                               o->momentum);
        if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
            return tg_cfg_fail(p, "optimizer.nesterov",
                               "requires momentum > 0 and dampening 0 (as in PyTorch), got momentum %g, dampening %g",
                               o->momentum, o->dampening);
        return 0;
    }
    if (tg_cfg_get_number(p, s, "eps", ABOVE_0, &o->eps))
        return -1;
    const cJSON *betas = tg_cfg_member(s, "betas");
    if (!betas)
        return 0;
    if (!cJSON_IsArray(betas))
        return tg_cfg_fail(p, "optimizer.betas", "expected an array of 2 numbers [beta1, beta2], got %s",
                           tg_cfg_describe(betas, seen, sizeof seen));
    if (cJSON_GetArraySize(betas) != 2)
        return tg_cfg_fail(p, "optimizer.betas", "expected an array of 2 numbers [beta1, beta2], got %d of them",
                           cJSON_GetArraySize(betas));
    if (tg_cfg_number_value(p, betas->child, "optimizer.betas[0]", FRACTION, &o->beta1) ||
        tg_cfg_number_value(p, betas->child->next, "optimizer.betas[1]", FRACTION, &o->beta2))
        return -1;
    return 0;
}

static int parse_schedule(const parser *p, const cJSON *item, tg_config *cfg)
{
    static const char *const types[] = { "constant", "step", "cosine", NULL };
    static const tg_schedule_type schedules[] = { TG_SCHEDULE_CONSTANT, TG_SCHEDULE_STEP, TG_SCHEDULE_COSINE };
    static const char *const constant_keys[] = { "type", NULL };
    static const char *const step_keys[] = { "type", "step_size", "gamma", NULL };
    static const char *const cosine_keys[] = { "type", "min_lr", NULL };
    static const char *const *const keys[] = { constant_keys, step_keys, cosine_keys };
    char for_type[48];
    section s;
    int type = 0;
    if (tg_cfg_as_section(p, item, "train.lr_schedule", &s) || tg_cfg_required(p, s, "type") ||
        tg_cfg_get_choice(p, s, "type", types, &type))
        return -1;
    snprintf(for_type, sizeof for_type, "for type \"%s\"", types[type]);
    if (tg_cfg_check_keys(p, s, keys[type], for_type))
        return -1;
    cfg->train.schedule = schedules[type];
    if (cfg->train.schedule == TG_SCHEDULE_STEP &&
        (tg_cfg_required(p, s, "step_size") || tg_cfg_get_int(p, s, "step_size", 1, &cfg->train.step_size) ||
         tg_cfg_get_number(p, s, "gamma", ABOVE_0, &cfg->train.gamma)))
        return -1;
    if (cfg->train.schedule == TG_SCHEDULE_COSINE) {
        if (tg_cfg_get_number(p, s, "min_lr", AT_LEAST_0, &cfg->train.min_lr))
            return -1;
        if (cfg->train.min_lr > cfg->optimizer.lr)
            return tg_cfg_fail(p, "train.lr_schedule.min_lr", "must be at most optimizer.lr (%g), got %g",
                               cfg->optimizer.lr, cfg->train.min_lr);
    }
    return 0;
}

static int parse_early_stopping(const parser *p, const cJSON *item, tg_config *cfg)
{
    static const char *const keys[] = { "patience", "min_delta", NULL };
    section s;
    if (tg_cfg_as_section(p, item, "train.early_stopping", &s) || tg_cfg_check_keys(p, s, keys, NULL) ||
        tg_cfg_required(p, s, "patience") || tg_cfg_get_int(p, s, "patience", 0, &cfg->train.patience) ||
        tg_cfg_get_number(p, s, "min_delta", AT_LEAST_0, &cfg->train.min_delta))
        return -1;
    if (cfg->train.patience > 0 && cfg->data.validation_split == 0)
        return tg_cfg_fail(p, "train.early_stopping", "needs a validation set, but data.validation_split is 0");
    return 0;
}

static int parse_train(const parser *p, const cJSON *item, tg_config *cfg)
{
    static const char *const keys[] = {
        "epochs", "batch_size", "lr_schedule", "clip_grad_norm", "early_stopping", NULL
    };
    section s;
    cfg->train.epochs = 10;
    cfg->train.batch_size = 32;
    cfg->train.schedule = TG_SCHEDULE_CONSTANT;
    cfg->train.step_size = 1;
    cfg->train.gamma = 0.1; /* StepLR's */
    if (!item)
        return 0;
    if (tg_cfg_as_section(p, item, "train", &s) || tg_cfg_check_keys(p, s, keys, NULL) ||
        tg_cfg_get_int(p, s, "epochs", 1, &cfg->train.epochs) ||
        tg_cfg_get_integer(p, s, "batch_size", 1, MAX_EXACT, &cfg->train.batch_size) ||
        tg_cfg_get_number(p, s, "clip_grad_norm", AT_LEAST_0, &cfg->train.clip_grad_norm))
        return -1;
    const cJSON *schedule = tg_cfg_member(s, "lr_schedule"), *early = tg_cfg_member(s, "early_stopping");
    if (schedule && parse_schedule(p, schedule, cfg))
        return -1;
    return early ? parse_early_stopping(p, early, cfg) : 0;
}

static int parse_root(const parser *p, const cJSON *root, tg_config *cfg)
{
    static const char *const keys[] = { "data", "model", "loss", "optimizer", "train", "seed", NULL };
    char seen[64];
    if (!cJSON_IsObject(root))
        return tg_cfg_fail(p, NULL, "the top level must be a JSON object, got %s",
                           tg_cfg_describe(root, seen, sizeof seen));
    section s = { root, "" };
    cfg->seed = 42;
    /* In dependency order: data's shuffle_seed defaults to seed, loss.weight
     * needs the class count, the schedule needs lr, early stopping needs
     * the validation split. */
    if (tg_cfg_check_keys(p, s, keys, NULL) || tg_cfg_get_seed(p, s, "seed", &cfg->seed) ||
        parse_data(p, tg_cfg_member(s, "data"), cfg) || parse_model(p, tg_cfg_member(s, "model"), cfg) ||
        parse_loss(p, tg_cfg_member(s, "loss"), cfg) || parse_optimizer(p, tg_cfg_member(s, "optimizer"), cfg) ||
        parse_penalty(p, tg_cfg_member(s, "loss"), cfg) || check_full_batch_train(p, tg_cfg_member(s, "train"), cfg))
        return -1;
    return parse_train(p, tg_cfg_member(s, "train"), cfg);
}

/* ------------------------------------------------------------------------ */
/* Text and files                                                            */
/* ------------------------------------------------------------------------ */

/* "line L, column C" of position in text (both 1-based; columns count bytes). */
static void locate(const char *text, const char *position, int *line, int *column)
{
    *line = 1;
    const char *line_start = text;
    for (const char *c = text; c < position; c++) {
        if (*c == '\n') {
            ++*line;
            line_start = c + 1;
        }
    }
    *column = (int)(position - line_start) + 1;
}

static int parse_json(const parser *p, const char *text, cJSON **root)
{
    tg_json_begin();
    const char *end = NULL;
    if ((*root = cJSON_ParseWithOpts(text, &end, 1)))
        return 0;
    if (tg_json_out_of_memory())
        return tg_cfg_fail(p, NULL, "out of memory while parsing the JSON");
    if (text[strspn(text, WHITE_SPACE)] == '\0')
        return tg_cfg_fail(p, NULL, "no JSON value, only white space");
    int line, column;
    /* Parsed without the end check it succeeds: a value followed by more text. */
    const char *value_end = NULL;
    cJSON *value = cJSON_ParseWithOpts(text, &value_end, 0);
    cJSON_Delete(value);
    if (value) {
        value_end += strspn(value_end, WHITE_SPACE);
        locate(text, value_end, &line, &column);
        return tg_cfg_fail(p, NULL, "unexpected text after the JSON value at line %d, column %d: \"%.20s\"", line,
                           column, value_end);
    }
    if (tg_json_out_of_memory())
        return tg_cfg_fail(p, NULL, "out of memory while parsing the JSON");
    if (!end)
        end = text;
    locate(text, end, &line, &column);
    if (end[strspn(end, WHITE_SPACE)] == '\0')
        return tg_cfg_fail(p, NULL, "invalid JSON: the text ends at line %d, column %d before the value is complete",
                           line, column);
    int shown = (int)strcspn(end, "\r\n");
    return tg_cfg_fail(p, NULL, "invalid JSON at line %d, column %d, near \"%.*s\"", line, column,
                       shown < 20 ? shown : 20, end);
}

/* Takes text over: it becomes cfg->json, or is freed on failure. */
static tg_config *parse_config(const parser *p, char *text, const char *path)
{
    cJSON *root = NULL;
    tg_config *cfg = tg_alloc_zeroed(sizeof *cfg);
    if (!cfg) {
        tg_dealloc(text);
        return NULL;
    }
    cfg->json = text;
    if (path && !(cfg->path = tg_strdup(path)))
        goto fail;
    const char *bad = tg_utf8_first_invalid(text);
    if (bad) { /* it would train, then fail to be saved: checkpoint metadata is UTF-8 */
        tg_cfg_fail(p, NULL, "not valid UTF-8 at byte %lld (is the file in another encoding?)",
                    (long long)(bad - text));
        goto fail;
    }
    if (parse_json(p, text, &root) || parse_root(p, root, cfg))
        goto fail;
    cJSON_Delete(root);
    return cfg;
fail:
    cJSON_Delete(root);
    tg_config_free(cfg);
    return NULL;
}

/* The whole file as a NUL-terminated string: JSON text, not empty, no NUL byte. */
static char *read_text(const char *path)
{
    size_t size;
    char *text = tg_read_file(path, "a JSON config file", MAX_CONFIG_BYTES, &size);
    if (!text)
        return NULL;
    if (size == 0) {
        tg_error("%s: the file is empty, expected a JSON config", path);
    } else if (strlen(text) != size) {
        tg_error("%s: a NUL byte at offset %zu; a config is JSON text", path, strlen(text));
    } else {
        return text;
    }
    tg_dealloc(text);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Public functions                                                          */
/* ------------------------------------------------------------------------ */

tg_config *tg_config_load(const char *path)
{
    if (!path || !path[0])
        return tg_error("tg_config_load: the path is %s", path ? "empty" : "NULL");
    char *folder = tg_cfg_folder_of(path);
    if (!folder)
        return NULL;
    char *text = read_text(path);
    tg_config *cfg = NULL;
    if (text) {
        parser p = { .file = path, .base_dir = folder };
        cfg = parse_config(&p, text, path);
    }
    tg_dealloc(folder);
    return cfg;
}

tg_config *tg_config_parse(const char *json, const char *base_dir)
{
    if (!json)
        return tg_error("tg_config_parse: json is NULL");
    char *text = tg_strdup(json);
    if (!text)
        return NULL;
    parser p = { .file = NULL, .base_dir = base_dir };
    return parse_config(&p, text, NULL);
}

void tg_config_free(tg_config *cfg)
{
    if (!cfg)
        return;
    tg_dealloc(cfg->path);
    tg_dealloc(cfg->json);
    tg_dealloc(cfg->data.format);
    tg_dealloc(cfg->data.train);
    tg_dealloc(cfg->data.test);
    tg_dealloc(cfg->data.train_labels);
    tg_dealloc(cfg->data.test_labels);
    tg_dealloc(cfg->data.label_name);
    tg_dealloc(cfg->data.columns);
    tg_dealloc(cfg->model.layers);
    tg_dealloc(cfg->loss.class_weights);
    tg_free_strings(cfg->loss.class_weight_labels, cfg->loss.n_class_weight_labels);
    tg_dealloc(cfg->loss.class_weight_values);
    tg_dealloc(cfg->loss.positive_class);
    tg_dealloc(cfg);
}

double tg_config_lr_at(const tg_config *cfg, int epoch)
{
    if (!cfg) {
        tg_error("tg_config_lr_at: cfg is NULL");
        return NAN;
    }
    const double pi = 3.14159265358979323846;
    double lr = cfg->optimizer.lr;
    if (epoch < 0)
        epoch = 0;
    switch (cfg->train.schedule) {
    case TG_SCHEDULE_CONSTANT: return lr;
    case TG_SCHEDULE_STEP: /* StepLR: decays by gamma every step_size epochs */
        return cfg->train.step_size > 0 ? lr * pow(cfg->train.gamma, epoch / cfg->train.step_size) : lr;
    case TG_SCHEDULE_COSINE: { /* CosineAnnealingLR's closed form, T_max = epochs */
        double t_max = cfg->train.epochs > 0 ? cfg->train.epochs : 1;
        return cfg->train.min_lr + (lr - cfg->train.min_lr) * (1 + cos(pi * epoch / t_max)) / 2;
    }
    }
    return lr;
}
