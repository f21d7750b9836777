/* The data a trained model scores, and the data a config names, split the way
 * training splits them. */
#include "io/io_internal.h"

#include <cjson/cJSON.h>

#include <string.h>

/* Whether a model reads libsvm files: its config says data.format "libsvm", or the file is named *.svm,
 * *.libsvm or *.svmlight; *skip from its data.unseen_features. */
static bool reads_libsvm(const tg_model *m, const char *path, int *skip)
{
    static const char *const suffixes[] = { ".svm", ".libsvm", ".svmlight" };
    bool libsvm = false;
    *skip = 0;
    if (m->config_json) {
        tg_json_begin();
        cJSON *root = cJSON_Parse(m->config_json);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
        const cJSON *format = cJSON_GetObjectItemCaseSensitive(data, "format");
        const cJSON *unseen = cJSON_GetObjectItemCaseSensitive(data, "unseen_features");
        libsvm = cJSON_IsString(format) && strcmp(format->valuestring, "libsvm") == 0;
        *skip = cJSON_IsString(unseen) && strcmp(unseen->valuestring, "ignore") == 0;
        cJSON_Delete(root);
    }
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        libsvm |= n >= k && strcmp(path + n - k, suffixes[i]) == 0;
    }
    return libsvm;
}

/* A libsvm file for a model: the model's feature count fixed, labels mapped with its names when scored
 * (data to predict keeps its own labels, which are not used). */
static tg_dataset *load_libsvm_for_model(const tg_model *m, const char *path, bool scored, int skip)
{
    tg_libsvm_opts o = { .features = m->inputs, .skip_unknown_features = skip };
    if (scored && m->labels) {
        o.label_names = m->labels;
        o.n_label_names = m->n_labels;
    }
    return tg_libsvm_load(path, &o);
}

tg_dataset *tg_load_data_for_model(const tg_model *m, const char *path, const tg_csv_opts *opts)
{
    if (!m || !path)
        return tg_error("load data for a model: %s is NULL", m ? "the data file's path" : "the model");
    int skip;
    if (reads_libsvm(m, path, &skip))
        return load_libsvm_for_model(m, path, !opts || opts->unlabeled == 0, skip);
    tg_csv_opts o = opts ? *opts : TG_CSV_OPTS_DEFAULT;
    if (m->labels) {
        o.label_names = m->labels;
        o.n_label_names = m->n_labels;
    }
    int64_t *feature_columns = NULL, n;
    /* The column count first: a file for another model is refused with both numbers, before any label is read. */
    if (!o.columns && tg_csv_count_columns(path, o.delimiter, &n))
        return NULL;
    if (!o.columns && o.unlabeled == 0 && n == m->inputs)
        return tg_error("%s has %lld columns and the model expects %lld inputs: no label column to score "
                        "against (predict labels such rows)",
                        path, (long long)n, (long long)m->inputs);
    if (!o.columns && o.unlabeled == 0 && n != m->inputs + 1)
        return tg_error("%s has %lld columns (%lld features and a label) but the model expects %lld inputs", path,
                        (long long)n, (long long)n - 1, (long long)m->inputs);
    if (o.unlabeled == -1 && !o.columns) {
        /* Data to predict: as many columns as inputs, or one more holding a label to skip. */
        if (n != m->inputs && n != m->inputs + 1)
            return tg_error("%s has %lld columns but the model expects %lld inputs (plus, optionally, a label column)",
                            path, (long long)n, (long long)m->inputs);
        o.unlabeled = 1;
        if (n == m->inputs + 1) {
            int64_t label = o.label_column < 0 ? o.label_column + n : o.label_column;
            if (!(feature_columns = tg_alloc((size_t)m->inputs * sizeof *feature_columns)))
                return NULL;
            for (int64_t c = 0, f = 0; c < n; c++)
                if (c != label)
                    feature_columns[f++] = c;
            o.columns = feature_columns;
            o.n_columns = m->inputs;
        }
    }
    if (o.unlabeled == -1)
        o.unlabeled = 0;
    tg_dataset *ds = tg_csv_load(path, &o);
    tg_dealloc(feature_columns);
    if (ds && ds->features != m->inputs) {
        tg_error("%s has %lld feature columns but the model expects %lld inputs", path, (long long)ds->features,
                 (long long)m->inputs);
        tg_dataset_free(ds);
        return NULL;
    }
    return ds;
}

static tg_dataset *load_one(const tg_config *cfg, const char *path, const char *labels_path,
                            const tg_dataset *mapping_from)
{
    if (cfg->data.format && strcmp(cfg->data.format, "idx") == 0)
        return tg_idx_load(path, labels_path, cfg->data.scale);
    if (cfg->data.format && strcmp(cfg->data.format, "libsvm") == 0) {
        /* The test file takes the training file's feature count: an index beyond it is refused or dropped. */
        tg_libsvm_opts l = { .features = mapping_from ? mapping_from->features : cfg->data.features,
                             .skip_unknown_features = cfg->data.skip_unseen_features };
        if (mapping_from) {
            l.label_names = mapping_from->label_names;
            l.n_label_names = mapping_from->classes;
        }
        return tg_libsvm_load(path, &l);
    }
    tg_csv_opts o = TG_CSV_OPTS_DEFAULT;
    o.header = cfg->data.header;
    o.label_column = cfg->data.label_column;
    o.label_name = cfg->data.label_name;
    o.columns = cfg->data.columns;
    o.n_columns = cfg->data.n_columns;
    if (mapping_from) {
        o.label_names = mapping_from->label_names;
        o.n_label_names = mapping_from->classes;
    }
    return tg_csv_load(path, &o);
}

/* Splits in place: the loaded set becomes the training set, so the data are held once (plus the
 * test and validation rows), not once per split. */
int tg_load_and_split(const tg_config *cfg, tg_rng *shuffle, split_data *d)
{
    if (!(d->train = load_one(cfg, cfg->data.train, cfg->data.train_labels, NULL)))
        return -1;
    if (cfg->data.test) {
        d->test = load_one(cfg, cfg->data.test, cfg->data.test_labels, d->train);
        if (!d->test)
            return -1;
        if (d->test->features != d->train->features) {
            tg_error("%s has %lld feature columns but %s has %lld", cfg->data.test, (long long)d->test->features,
                     cfg->data.train, (long long)d->train->features);
            return -1;
        }
    } else if (tg_dataset_split_off(d->train, cfg->data.test_split, shuffle, &d->test)) {
        return -1;
    }
    if (tg_dataset_split_off(d->train, cfg->data.validation_split, shuffle, &d->validation))
        return -1;
    if (d->train->rows == 0) {
        tg_error("%s: no training rows left after the test and validation splits", cfg->data.train);
        return -1;
    }
    return 0;
}

void tg_split_data_free(split_data *d)
{
    tg_dataset_free(d->train);
    tg_dataset_free(d->validation);
    tg_dataset_free(d->test);
    *d = (split_data){ 0 };
}

int tg_config_load_data(const tg_config *cfg, tg_dataset **train, tg_dataset **validation, tg_dataset **test)
{
    if (!cfg || !train || !validation || !test)
        return tg_error("config load data: %s is NULL", !cfg ? "cfg" : "an output pointer (train, validation, test)"),
               -1;
    tg_rng shuffle;
    tg_rng_seed(&shuffle, cfg->data.shuffle_seed);
    split_data d = { 0 };
    if (tg_load_and_split(cfg, &shuffle, &d) ||
        (cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY && tg_binary_orient(cfg, d.train, d.validation, d.test))) {
        tg_split_data_free(&d);
        return -1;
    }
    *train = d.train;
    *validation = d.validation;
    *test = d.test;
    return 0;
}

/* The CSV options a config's data section gives (labels mapped as mapping_from's, when given). */
void tg_config_csv_opts(const tg_config *cfg, const tg_dataset *mapping_from, tg_csv_opts *o)
{
    *o = TG_CSV_OPTS_DEFAULT;
    o->header = cfg->data.header;
    o->label_column = cfg->data.label_column;
    o->label_name = cfg->data.label_name;
    o->columns = cfg->data.columns;
    o->n_columns = cfg->data.n_columns;
    if (mapping_from) {
        o->label_names = mapping_from->label_names;
        o->n_label_names = mapping_from->classes;
    }
}

tg_dataset *tg_load_config_file(const tg_config *cfg, const char *path, const char *labels_path,
                                const tg_dataset *mapping_from)
{
    return load_one(cfg, path, labels_path, mapping_from);
}
