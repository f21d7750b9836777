/* Training from a config: a trainer holds one run's state; an epoch is a
 * shuffle, its steps, a validation pass and the early-stopping check. The data
 * stay raw in one float32 block; each batch is gathered into reused tensors,
 * standardized on the way with the model's own mean and std, so a saved model
 * carries everything it needs to score new data. Nothing allocates inside the
 * step loop. */
#include "io/io_internal.h"

#include <math.h>
#include <string.h>

static int build_model(const tg_config *cfg, const tg_dataset *train, tg_model **out)
{
    tg_rng init;
    tg_rng_seed(&init, cfg->seed);
    const tg_layer_spec *last = &cfg->model.layers[cfg->model.n_layers - 1];
    bool binary = cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY; /* one output, two classes */
    if ((binary ? 2 : last->out) != train->classes) {
        tg_error("model.layers[%d].out is %lld but the training data has %lld classes%s", cfg->model.n_layers - 1,
                 (long long)last->out, (long long)train->classes,
                 last->out == 1 ? " (a one-output binary model needs \"loss\": {\"type\": \"binary_cross_entropy\"})"
                                : "");
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

/* One training run: the model, its data, and the state that carries from step to step. */
typedef struct {
    const tg_config *cfg;
    tg_training *t; /* what the caller gets: model, splits, curves */
    tg_progress_fn progress;
    void *ctx;
    double started;
    tg_rng shuffle; /* the data seed's stream: splits first, then each epoch's order */
    const tg_dataset *given_train, *given_validation; /* tg_train_on_data: copied instead of loading the config's */
    tg_tape *tape;
    tg_optimizer *opt;
    tg_batcher *batches; /* the training rows in the epoch's order, standardized with the model's mean and std */
    int64_t steps; /* per epoch */
    tg_tensor *class_weight;
    tg_ce_opts ce;
    binary_targets bce; /* binary_cross_entropy only */
    /* early stopping: the best validation loss so far and its weights */
    bool early;
    double best_val;
    int since_best;
    double *best;
} trainer;

/* A caller-owned copy of every row of ds (an empty set with train's classes when ds is NULL). */
static tg_dataset *copy_rows(const tg_dataset *ds, const tg_dataset *train)
{
    if (!ds)
        return tg_dataset_subset(train, NULL, 0);
    int64_t *all = tg_alloc((size_t)(ds->rows ? ds->rows : 1) * sizeof *all);
    if (!all)
        return NULL;
    for (int64_t r = 0; r < ds->rows; r++)
        all[r] = r;
    tg_dataset *copy = tg_dataset_subset(ds, all, ds->rows);
    tg_dealloc(all);
    return copy;
}

static int trainer_open_data(trainer *tr)
{
    split_data d = { 0 };
    if (tr->given_train) {
        if (!(tr->t->train = copy_rows(tr->given_train, NULL)) ||
            !(tr->t->validation = copy_rows(tr->given_validation, tr->given_train)) ||
            !(tr->t->test = copy_rows(NULL, tr->given_train)))
            return -1;
    } else {
        if (load_and_split(tr->cfg, &tr->shuffle, &d)) {
            split_data_free(&d);
            return -1;
        }
        tr->t->train = d.train;
        tr->t->validation = d.validation;
        tr->t->test = d.test;
    }
    if (tr->cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY &&
        binary_orient(tr->cfg, tr->t->train, tr->t->validation, tr->t->test))
        return -1;
    return build_model(tr->cfg, tr->t->train, &tr->t->model);
}

/* Everything the step loop uses, allocated once before it. */
static int trainer_open_buffers(trainer *tr)
{
    const tg_config *cfg = tr->cfg;
    tg_training *t = tr->t;
    tg_model *m = t->model;
    int epochs = cfg->train.epochs;
    int64_t rows = t->train->rows, batch = cfg->train.batch_size < rows ? cfg->train.batch_size : rows;
    int64_t n_params_total = 0;
    for (int i = 0; i < m->n_params; i++)
        n_params_total += m->params[i]->numel;
    tr->early = cfg->train.patience > 0 && t->validation && t->validation->rows > 0;
    tr->best_val = INFINITY;
    tr->tape = tg_tape_new();
    tr->opt = tg_optimizer_new(&cfg->optimizer, m->n_params, m->params);
    tr->batches = tg_batcher_new(t->train, batch, m->dtype, &(tg_batcher_opts){ .mean = m->mean, .std = m->std });
    t->train_loss = tg_alloc((size_t)epochs * sizeof(double));
    t->val_loss = tg_alloc((size_t)epochs * sizeof(double));
    t->val_accuracy = tg_alloc((size_t)epochs * sizeof(double));
    if (tr->early)
        tr->best = tg_alloc((size_t)n_params_total * sizeof *tr->best);
    if (!tr->tape || !tr->opt || !tr->batches || !t->train_loss || !t->val_loss || !t->val_accuracy ||
        (tr->early && !tr->best))
        return -1;
    tr->steps = tg_batcher_batches(tr->batches);
    tr->ce = TG_CE_OPTS_DEFAULT;
    tr->ce.label_smoothing = cfg->loss.label_smoothing;
    if (tg_loss_weight_tensor(cfg, t->train, m->dtype, &tr->class_weight))
        return -1;
    tr->ce.weight = tr->class_weight;
    if (cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY &&
        binary_targets_init(&tr->bce, m->dtype, batch, rows, tr->class_weight != NULL, cfg->loss.pos_weight))
        return -1;
    return 0;
}

static void trainer_close(trainer *tr)
{
    tg_dealloc(tr->best);
    tg_batcher_free(tr->batches);
    tg_tensor_free(tr->class_weight);
    binary_targets_free(&tr->bce);
    tg_optimizer_free(tr->opt);
    tg_tape_free(tr->tape);
}

/* A fresh Fisher-Yates shuffle of the row order each epoch, from the data seed. */
static void trainer_shuffle(trainer *tr) { tg_batcher_reset(tr->batches, &tr->shuffle); }

/* One optimizer step on batch s of the epoch's order; its loss in *value. */
static int trainer_step(trainer *tr, int epoch, int64_t s, double *value)
{
    tg_model *m = tr->t->model;
    tg_tensor *x, *y;
    if (tg_batcher_next(tr->batches, &x, &y) != 1) {
        tg_error("train: no batch %lld in epoch %d", (long long)s + 1, epoch + 1);
        return -1;
    }
    tg_tape_reset(tr->tape);
    tg_tensor *logits = tg_model_forward(m, tr->tape, x), *loss;
    if (tr->cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY) {
        tg_bce_opts bce;
        tg_tensor *target = binary_targets_fill(&tr->bce, y, tr->class_weight, &bce);
        loss = tg_binary_cross_entropy_with_logits(tr->tape, logits, target, &bce);
    } else {
        loss = tg_cross_entropy(tr->tape, logits, y, &tr->ce);
    }
    if (!loss)
        return -1;
    *value = tg_get(loss, 0);
    if (!isfinite(*value)) {
        tg_error("loss became %s at epoch %d, step %lld (lower optimizer.lr or set train.clip_grad_norm)",
                 isnan(*value) ? "NaN" : "infinite", epoch + 1, (long long)s + 1);
        return -1;
    }
    tg_optimizer_zero_grad(tr->opt);
    if (tg_backward(tr->tape, loss))
        return -1;
    /* The penalty's gradient per step, scaled as the mean loss is: R / (C n) */
    const tg_penalty *pen = &tr->cfg->loss.penalty;
    if (pen->type != TG_PENALTY_NONE &&
        tg_penalty_add_grad(pen, m, 1.0 / (pen->C * (double)tr->t->train->rows)))
        return -1;
    if (tr->cfg->train.clip_grad_norm > 0 &&
        tg_clip_grad_norm(m->params, m->n_params, tr->cfg->train.clip_grad_norm) < 0)
        return -1;
    return tg_optimizer_step(tr->opt);
}

/* The epoch's steps, reporting progress after each; 1 when the callback asked to stop. */
static int trainer_epoch(trainer *tr, int epoch, tg_progress *p)
{
    double loss_sum = 0;
    for (int64_t s = 0; s < tr->steps; s++) {
        double value;
        if (trainer_step(tr, epoch, s, &value))
            return -1;
        loss_sum += value;
        p->step = s + 1;
        p->train_loss = loss_sum / (double)(s + 1);
        p->seconds = tg_now_seconds() - tr->started;
        if (tr->progress && s + 1 < tr->steps && tr->progress(p, tr->ctx))
            return 1;
    }
    return 0;
}

static int trainer_validate(trainer *tr, tg_progress *p)
{
    const tg_dataset *validation = tr->t->validation;
    if (!validation || validation->rows == 0)
        return 0;
    tg_eval ev;
    if (tg_evaluate(tr->t->model, validation, &ev))
        return -1;
    p->val_loss = ev.loss;
    p->val_accuracy = ev.accuracy;
    tg_eval_clear(&ev);
    return 0;
}

/* Keeps the weights of the best validation loss; true when patience has run out. */
static bool trainer_patience_out(trainer *tr, double val_loss)
{
    if (!tr->early)
        return false;
    if (val_loss < tr->best_val - tr->cfg->train.min_delta) {
        tr->best_val = val_loss;
        tr->since_best = 0;
        copy_params(tr->t->model, tr->best, true);
        return false;
    }
    return ++tr->since_best >= tr->cfg->train.patience;
}

static int trainer_run(trainer *tr)
{
    tg_training *t = tr->t;
    int epochs = tr->cfg->train.epochs;
    for (int epoch = 0; epoch < epochs; epoch++) {
        double lr = tg_config_lr_at(tr->cfg, epoch);
        if (tg_optimizer_set_lr(tr->opt, lr)) /* a schedule that reached an invalid rate: say so, do not go on */
            return -1;
        trainer_shuffle(tr);
        tg_progress p = { .epoch = epoch + 1, .epochs = epochs, .steps_per_epoch = tr->steps, .lr = lr,
                          .val_loss = NAN, .val_accuracy = NAN };
        int asked = trainer_epoch(tr, epoch, &p);
        if (asked < 0 || trainer_validate(tr, &p))
            return -1;
        t->train_loss[epoch] = p.train_loss;
        t->val_loss[epoch] = p.val_loss;
        t->val_accuracy[epoch] = p.val_accuracy;
        t->epochs_run = epoch + 1;
        p.finished = 1;
        p.seconds = tg_now_seconds() - tr->started;
        bool caller_stops = asked || (tr->progress && tr->progress(&p, tr->ctx));
        bool patience_out = trainer_patience_out(tr, p.val_loss); /* also when the caller stops */
        t->stopped_by_caller = caller_stops;
        t->stopped_early = patience_out && !caller_stops;
        if (caller_stops || patience_out)
            break;
    }
    if (tr->early && isfinite(tr->best_val))
        copy_params(t->model, tr->best, false); /* keep the weights of the best validation loss */
    return 0;
}

static tg_training *trainer_train(trainer tr)
{
    const tg_config *cfg = tr.cfg;
    if (!(tr.t = tg_alloc_zeroed(sizeof *tr.t)))
        return NULL;
    tg_rng_seed(&tr.shuffle, cfg->data.shuffle_seed);
    int status = trainer_open_data(&tr);
    if (!status && cfg->optimizer.type == TG_OPTIM_LBFGS) {
        /* A solver that fails on the way (line search, NaN) returns the last good
         * weights with solver.status saying why; any other failure returns NULL. */
        tg_lbfgs_status why;
        if (train_full_batch(cfg, tr.t, tr.progress, tr.ctx, tr.started) &&
            (why = tr.t->solver.status) != TG_LBFGS_LINESEARCH_FAILED && why != TG_LBFGS_NOT_FINITE) {
            tg_training_free(tr.t);
            return NULL;
        }
        return tr.t;
    }
    if (!status)
        status = trainer_open_buffers(&tr);
    if (!status)
        status = trainer_run(&tr);
    trainer_close(&tr);
    if (status) {
        tg_training_free(tr.t);
        return NULL;
    }
    return tr.t;
}

tg_training *tg_train_config(const tg_config *cfg, tg_progress_fn progress, void *ctx)
{
    if (!cfg)
        return tg_error("train: config is NULL");
    return trainer_train((trainer){ .cfg = cfg, .progress = progress, .ctx = ctx, .started = tg_now_seconds() });
}

tg_training *tg_train_on_data(const tg_config *cfg, const tg_dataset *train, const tg_dataset *validation,
                              tg_progress_fn progress, void *ctx)
{
    if (!cfg || !train)
        return tg_error("train: %s is NULL", cfg ? "the training set" : "config");
    if (train->rows == 0)
        return tg_error("train: the training set has no rows");
    if (validation && (validation->features != train->features || validation->classes > train->classes))
        return tg_error("train: the validation set has %lld features and %lld classes, the training set %lld and %lld",
                        (long long)validation->features, (long long)validation->classes, (long long)train->features,
                        (long long)train->classes);
    return trainer_train((trainer){ .cfg = cfg, .progress = progress, .ctx = ctx, .started = tg_now_seconds(),
                                    .given_train = train, .given_validation = validation });
}
