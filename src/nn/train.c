/* Training and evaluation driven by a config. The data stay raw in one float32
 * block; each batch is gathered into a reused tensor, standardized on the way
 * with the model's own mean and std, so a saved model carries everything it
 * needs to score new data. Nothing here allocates inside the step loop. */
#include "internal.h"

#include <math.h>
#include <string.h>
#include <time.h>

enum { EVAL_CHUNK = 1024 };

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* x[r] = standardized ds row idx[r] (or start + r when idx is NULL), in x's dtype; y likewise. */
static void gather_rows(const tg_model *m, const tg_dataset *ds, const int64_t *idx, int64_t start, int64_t n,
                        tg_tensor *x, tg_tensor *y)
{
    int64_t f = ds->features;
    x->shape[0] = n;
    x->numel = n * f;
    if (y) {
        y->shape[0] = n;
        y->numel = n;
    }
    TG_FLOAT_DISPATCH(x->dtype, T, {
        for (int64_t r = 0; r < n; r++) {
            int64_t row = idx ? idx[r] : start + r;
            const float *src = ds->x + row * f;
            T *dst = (T *)x->data + r * f;
            if (m->mean)
                for (int64_t j = 0; j < f; j++)
                    dst[j] = (T)((src[j] - m->mean[j]) / m->std[j]);
            else
                for (int64_t j = 0; j < f; j++)
                    dst[j] = (T)src[j];
            if (y)
                ((int64_t *)y->data)[r] = ds->y[row];
        }
    });
}

static int check_data_fits(const tg_model *m, const tg_dataset *ds, const char *what)
{
    if (ds->features != m->inputs) {
        tg_error("%s has %lld feature columns but the model expects %lld inputs", what, (long long)ds->features,
                 (long long)m->inputs);
        return -1;
    }
    if (ds->classes > m->classes) {
        tg_error("%s has labels up to class %lld but the model has %lld classes", what, (long long)ds->classes - 1,
                 (long long)m->classes);
        return -1;
    }
    return 0;
}

/* Runs fn(ctx, logits, rows, first_row) over ds in chunks with recording off. */
typedef void (*chunk_fn)(void *ctx, const tg_tensor *logits, const tg_tensor *y, int64_t first_row);
static int for_each_chunk(tg_model *m, const tg_dataset *ds, chunk_fn fn, void *ctx)
{
    int status = -1;
    int64_t chunk = ds->rows < EVAL_CHUNK ? (ds->rows ? ds->rows : 1) : EVAL_CHUNK;
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_new(m->dtype, 2, (int64_t[]){ chunk, ds->features });
    tg_tensor *y = tg_tensor_new(TG_I64, 1, (int64_t[]){ chunk });
    if (!tape || !x || !y)
        goto done;
    tg_tape_set_recording(tape, 0);
    for (int64_t start = 0; start < ds->rows; start += chunk) {
        int64_t n = ds->rows - start < chunk ? ds->rows - start : chunk;
        tg_tape_reset(tape);
        gather_rows(m, ds, NULL, start, n, x, y);
        tg_tensor *logits = tg_model_forward(m, tape, x);
        if (!logits)
            goto done;
        fn(ctx, logits, y, start);
    }
    status = 0;
done:
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tape_free(tape);
    return status;
}

typedef struct {
    tg_eval *ev;
    double loss_sum;
} eval_acc;

/* Row r of logits [rows, c]: its max and argmax, and the sum of exp(logit - max); the exps go into e
 * when it is not NULL. Shared by evaluation (loss, argmax) and prediction (probabilities). */
static double row_exp_sum(const tg_tensor *logits, int64_t r, int64_t c, double *max, int64_t *argmax, double *e)
{
    *max = -INFINITY;
    *argmax = 0;
    for (int64_t k = 0; k < c; k++) {
        double v = tg_get(logits, r * c + k);
        if (v > *max) {
            *max = v;
            *argmax = k;
        }
    }
    double sum = 0;
    for (int64_t k = 0; k < c; k++) {
        double v = exp(tg_get(logits, r * c + k) - *max);
        if (e)
            e[k] = v;
        sum += v;
    }
    return sum;
}

static void eval_chunk(void *ctx, const tg_tensor *logits, const tg_tensor *y, int64_t first_row)
{
    (void)first_row;
    eval_acc *acc = ctx;
    int64_t c = acc->ev->classes;
    for (int64_t r = 0; r < logits->shape[0]; r++) {
        double max;
        int64_t best, truth = ((const int64_t *)y->data)[r];
        double sum = row_exp_sum(logits, r, c, &max, &best, NULL);
        acc->loss_sum += (max - tg_get(logits, r * c + truth)) + log(sum);
        acc->ev->confusion[truth * c + best]++;
    }
}

int tg_evaluate(tg_model *m, const tg_dataset *ds, tg_eval *out)
{
    if (!out)
        return tg_error("evaluate: out is NULL (the tg_eval to fill)"), -1;
    memset(out, 0, sizeof *out);
    if (!m || !ds) {
        tg_error("evaluate: %s is NULL", m ? "data" : "model");
        return -1;
    }
    if (check_data_fits(m, ds, "the data"))
        return -1;
    out->classes = m->classes;
    out->rows = ds->rows;
    out->confusion = tg_alloc_zeroed((size_t)(m->classes * m->classes) * sizeof *out->confusion);
    if (!out->confusion)
        return -1;
    eval_acc acc = { out, 0 };
    if (for_each_chunk(m, ds, eval_chunk, &acc)) {
        tg_eval_free(out);
        return -1;
    }
    int64_t correct = 0;
    for (int64_t k = 0; k < m->classes; k++)
        correct += out->confusion[k * m->classes + k];
    out->loss = ds->rows ? acc.loss_sum / (double)ds->rows : NAN;
    out->accuracy = ds->rows ? (double)correct / (double)ds->rows : NAN;
    return 0;
}

void tg_eval_free(tg_eval *ev)
{
    if (!ev)
        return;
    tg_dealloc(ev->confusion);
    ev->confusion = NULL;
}

static void predict_chunk(void *ctx, const tg_tensor *logits, const tg_tensor *y, int64_t first_row)
{
    (void)y;
    double *probs = ctx;
    int64_t c = logits->shape[1];
    for (int64_t r = 0; r < logits->shape[0]; r++) {
        double max, *p = probs + (first_row + r) * c;
        int64_t best;
        double sum = row_exp_sum(logits, r, c, &max, &best, p);
        for (int64_t k = 0; k < c; k++)
            p[k] /= sum;
    }
}

int tg_predict(tg_model *m, const tg_dataset *ds, double *probs)
{
    if (!m || !ds || !probs) {
        tg_error("predict: model, data and probs are required");
        return -1;
    }
    if (check_data_fits(m, ds, "the data"))
        return -1;
    return for_each_chunk(m, ds, predict_chunk, probs);
}

tg_dataset *tg_load_data_for_model(const tg_model *m, const char *path, const tg_csv_opts *opts)
{
    if (!m || !path)
        return tg_error("load data for a model: %s is NULL", m ? "the data file's path" : "the model");
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

/* ---- training from a config ---- */

typedef struct {
    tg_dataset *train, *validation, *test;
} split_data;

static tg_dataset *load_one(const tg_config *cfg, const char *path, const char *labels_path,
                            const tg_dataset *mapping_from)
{
    if (cfg->data.format && strcmp(cfg->data.format, "idx") == 0)
        return tg_idx_load(path, labels_path, cfg->data.scale);
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
static int load_and_split(const tg_config *cfg, tg_rng *shuffle, split_data *d)
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

int tg_config_load_data(const tg_config *cfg, tg_dataset **train, tg_dataset **validation, tg_dataset **test)
{
    if (!cfg || !train || !validation || !test)
        return tg_error("config load data: %s is NULL", !cfg ? "cfg" : "an output pointer (train, validation, test)"), -1;
    tg_rng shuffle;
    tg_rng_seed(&shuffle, cfg->data.shuffle_seed);
    split_data d = { 0 };
    if (load_and_split(cfg, &shuffle, &d)) {
        tg_dataset_free(d.train);
        tg_dataset_free(d.validation);
        tg_dataset_free(d.test);
        return -1;
    }
    *train = d.train;
    *validation = d.validation;
    *test = d.test;
    return 0;
}

static int build_model(const tg_config *cfg, const tg_dataset *train, tg_model **out)
{
    tg_rng init;
    tg_rng_seed(&init, cfg->seed);
    const tg_layer_spec *last = &cfg->model.layers[cfg->model.n_layers - 1];
    if (last->out != train->classes) {
        tg_error("model.layers[%d].out is %lld but the training data has %lld classes", cfg->model.n_layers - 1,
                 (long long)last->out, (long long)train->classes);
        return -1;
    }
    if (cfg->loss.class_weights && cfg->loss.n_class_weights != train->classes) {
        tg_error("loss.weight has %lld entries but the training data has %lld classes",
                 (long long)cfg->loss.n_class_weights, (long long)train->classes);
        return -1;
    }
    tg_model *m = tg_model_new(cfg->model.dtype, train->features, cfg->model.n_layers, cfg->model.layers, &init);
    if (!m || tg_model_set_labels(m, train->classes, train->label_names) ||
        (cfg->json && tg_model_set_config_json(m, cfg->json))) {
        tg_model_free(m);
        return -1;
    }
    if (cfg->data.standardize) {
        size_t bytes = (size_t)train->features * sizeof(float);
        float *mean = tg_alloc(bytes), *std = tg_alloc(bytes);
        int bad = !mean || !std || tg_dataset_moments(train, mean, std) || tg_model_set_standardization(m, mean, std);
        tg_dealloc(mean);
        tg_dealloc(std);
        if (bad) {
            tg_model_free(m);
            return -1;
        }
    }
    *out = m;
    return 0;
}

/* Copies every parameter of the model into (save) or out of (restore) snapshot. */
static void copy_params(tg_model *m, double *snapshot, bool save)
{
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        for (int64_t k = 0; k < p->numel; k++) {
            if (save)
                *snapshot++ = tg_get(p, k);
            else
                tg_set(p, k, *snapshot++);
        }
    }
}

void tg_training_free(tg_training *t)
{
    if (!t)
        return;
    tg_model_free(t->model);
    tg_dataset_free(t->train);
    tg_dataset_free(t->validation);
    tg_dataset_free(t->test);
    tg_dealloc(t->train_loss);
    tg_dealloc(t->val_loss);
    tg_dealloc(t->val_accuracy);
    tg_dealloc(t);
}

tg_training *tg_train_config(const tg_config *cfg, tg_progress_fn progress, void *ctx)
{
    if (!cfg)
        return tg_error("train: config is NULL");
    double started = now_seconds();
    tg_training *t = tg_alloc_zeroed(sizeof *t);
    if (!t)
        return NULL;
    tg_rng shuffle;
    tg_rng_seed(&shuffle, cfg->data.shuffle_seed);
    split_data d = { 0 };
    tg_tape *tape = NULL;
    tg_optimizer *opt = NULL;
    tg_tensor *x = NULL, *y = NULL, *weight = NULL;
    int64_t *order = NULL;
    double *best = NULL;
    bool ok = false;
    int epochs = cfg->train.epochs;
    if (load_and_split(cfg, &shuffle, &d))
        goto fail;
    t->train = d.train;
    t->validation = d.validation;
    t->test = d.test;
    if (build_model(cfg, t->train, &t->model))
        goto fail;
    tg_model *m = t->model;

    int64_t batch = cfg->train.batch_size < t->train->rows ? cfg->train.batch_size : t->train->rows;
    int64_t n_params_total = 0;
    for (int i = 0; i < m->n_params; i++)
        n_params_total += m->params[i]->numel;
    tape = tg_tape_new();
    opt = tg_optimizer_new(&cfg->optimizer, m->n_params, m->params);
    x = tg_tensor_new(m->dtype, 2, (int64_t[]){ batch, m->inputs });
    y = tg_tensor_new(TG_I64, 1, (int64_t[]){ batch });
    order = tg_alloc((size_t)t->train->rows * sizeof *order);
    t->train_loss = tg_alloc((size_t)epochs * sizeof(double));
    t->val_loss = tg_alloc((size_t)epochs * sizeof(double));
    t->val_accuracy = tg_alloc((size_t)epochs * sizeof(double));
    bool early = cfg->train.patience > 0 && t->validation && t->validation->rows > 0;
    if (early)
        best = tg_alloc((size_t)n_params_total * sizeof *best);
    if (!tape || !opt || !x || !y || !order || !t->train_loss || !t->val_loss || !t->val_accuracy || (early && !best))
        goto fail;
    if (cfg->loss.class_weights) {
        weight = tg_tensor_new(m->dtype, 1, (int64_t[]){ cfg->loss.n_class_weights });
        if (!weight)
            goto fail;
        for (int64_t k = 0; k < cfg->loss.n_class_weights; k++)
            tg_set(weight, k, cfg->loss.class_weights[k]);
    }
    tg_ce_opts ce = TG_CE_OPTS_DEFAULT;
    ce.weight = weight;
    ce.label_smoothing = cfg->loss.label_smoothing;
    for (int64_t r = 0; r < t->train->rows; r++)
        order[r] = r;

    double best_val = INFINITY;
    int since_best = 0;
    int64_t steps = (t->train->rows + batch - 1) / batch;
    for (int epoch = 0; epoch < epochs; epoch++) {
        double lr = tg_config_lr_at(cfg, epoch);
        tg_optimizer_set_lr(opt, lr);
        /* A fresh Fisher-Yates shuffle of the row order each epoch, from the data seed. */
        for (int64_t r = t->train->rows - 1; r > 0; r--) {
            int64_t k = (int64_t)tg_rng_below(&shuffle, (uint64_t)r + 1), tmp = order[r];
            order[r] = order[k];
            order[k] = tmp;
        }
        double loss_sum = 0;
        tg_progress p = { .epoch = epoch + 1, .epochs = epochs, .steps_per_epoch = steps, .lr = lr,
                          .val_loss = NAN, .val_accuracy = NAN };
        for (int64_t s = 0; s < steps; s++) {
            int64_t start = s * batch, n = t->train->rows - start < batch ? t->train->rows - start : batch;
            gather_rows(m, t->train, order + start, 0, n, x, y);
            tg_tape_reset(tape);
            tg_tensor *loss = tg_cross_entropy(tape, tg_model_forward(m, tape, x), y, &ce);
            if (!loss)
                goto fail;
            double value = tg_get(loss, 0);
            if (!isfinite(value)) {
                tg_error("loss became %s at epoch %d, step %lld (lower optimizer.lr or set train.clip_grad_norm)",
                         isnan(value) ? "NaN" : "infinite", epoch + 1, (long long)s + 1);
                goto fail;
            }
            tg_optimizer_zero_grad(opt);
            if (tg_backward(tape, loss))
                goto fail;
            if (cfg->train.clip_grad_norm > 0)
                tg_clip_grad_norm(m->params, m->n_params, cfg->train.clip_grad_norm);
            tg_optimizer_step(opt);
            loss_sum += value;
            p.step = s + 1;
            p.train_loss = loss_sum / (double)(s + 1);
            p.seconds = now_seconds() - started;
            if (progress && s + 1 < steps && progress(&p, ctx)) {
                t->stopped_early = 1;
                break;
            }
        }
        if (t->validation && t->validation->rows > 0) {
            tg_eval ev;
            if (tg_evaluate(m, t->validation, &ev))
                goto fail;
            p.val_loss = ev.loss;
            p.val_accuracy = ev.accuracy;
            tg_eval_free(&ev);
        }
        t->train_loss[epoch] = p.train_loss;
        t->val_loss[epoch] = p.val_loss;
        t->val_accuracy[epoch] = p.val_accuracy;
        t->epochs_run = epoch + 1;
        p.finished = 1;
        p.seconds = now_seconds() - started;
        bool stop = t->stopped_early || (progress && progress(&p, ctx));
        if (early) {
            if (p.val_loss < best_val - cfg->train.min_delta) {
                best_val = p.val_loss;
                since_best = 0;
                copy_params(m, best, true);
            } else if (++since_best >= cfg->train.patience) {
                stop = true;
            }
        }
        if (stop) {
            t->stopped_early = 1;
            break;
        }
    }
    if (early && isfinite(best_val))
        copy_params(m, best, false); /* keep the weights of the best validation loss */
    ok = true;
fail:
    if (!ok && !t->train) { /* the split sets were not handed to t yet */
        tg_dataset_free(d.train);
        tg_dataset_free(d.validation);
        tg_dataset_free(d.test);
    }
    tg_dealloc(best);
    tg_dealloc(order);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_tensor_free(weight);
    tg_optimizer_free(opt);
    tg_tape_free(tape);
    if (!ok) {
        tg_training_free(t);
        return NULL;
    }
    return t;
}
