/* Training from a config: a trainer holds one run's state; an epoch is a
 * shuffle, its steps, a validation pass and the early-stopping check. The data
 * stay raw in one float32 block; each batch is gathered into reused tensors,
 * standardized on the way with the model's own mean and std, so a saved model
 * carries everything it needs to score new data. Nothing allocates inside the
 * step loop. */
#include "train/data_parallel.h"
#include "train/train.h"

#include <math.h>
#include <string.h>

/* ranks_rows: across ranks, train is this rank's share of that many rows (0 in one process). */
static int build_model(const tg_config *cfg, const tg_dataset *train, const tg_stream *stream, int64_t ranks_rows,
                       tg_model **out)
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
    bool sparse = !train->x && (train->row_ptr || (stream && tg_stream_sparse(stream)));
    if (sparse && cfg->model.layers[0].type != TG_LAYER_LINEAR) {
        tg_error("model.layers[0] is %s, but sparse (libsvm) data needs a linear first layer (it takes the sparse "
                 "rows)",
                 tg_layer_type_name(cfg->model.layers[0].type));
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
        int bad = !mean || !std;
        if (!bad && stream) { /* the stream's passes over the file: tg_dataset_moments' sums, block by block */
            memcpy(mean, tg_stream_mean(stream), bytes);
            memcpy(std, tg_stream_std(stream), bytes);
        }
        bad = bad || (!stream && (ranks_rows ? tg_dataset_moments_ranks(train, ranks_rows, mean, std)
                                             : tg_dataset_moments(train, mean, std)));
        if (!bad && cfg->data.standardize == TG_STANDARDIZE_SCALE)
            memset(mean, 0, bytes); /* divide by the deviation only */
        bad = bad || tg_model_set_standardization(m, mean, std);
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

/* dst[i]'s values = src[i]'s, for the n parameters (same shapes and dtypes). */
static void copy_weights(tg_tensor *const *dst, tg_tensor *const *src, int n)
{
    for (int i = 0; i < n; i++)
        memcpy(dst[i]->data, src[i]->data, (size_t)src[i]->numel * tg_dtype_size(src[i]->dtype));
}

/* Exchanges the values of the model's parameters and best (pointers only: nothing is copied). */
static void swap_weights(tg_model *m, tg_tensor **best)
{
    for (int i = 0; i < m->n_params; i++) {
        void *data = m->params[i]->data;
        m->params[i]->data = best[i]->data;
        best[i]->data = data;
    }
}

int64_t tg_training_rows(const tg_training *t)
{
    if (!t || !t->train)
        return 0;
    return t->state && t->state->position ? t->state->rows : t->train->rows;
}

void tg_training_free(tg_training *t)
{
    if (!t)
        return;
    tg_train_state_free(t->state);
    tg_model_free(t->model);
    tg_dataset_free(t->train);
    tg_dataset_free(t->validation);
    tg_dataset_free(t->test);
    tg_dealloc(t->train_loss);
    tg_dealloc(t->val_loss);
    tg_dealloc(t->val_accuracy);
    tg_dealloc(t);
}

/* One training run: the model, its data, and the state that carries from step to step (st, which the
 * tg_training keeps so a stopped run can be saved and resumed). */
typedef struct {
    const tg_config *cfg;
    const tg_train_opts *opts;
    tg_training *t; /* what the caller gets: model, splits, curves, state */
    struct tg_train_state *st; /* t->state */
    double started;
    const tg_dataset *given_train, *given_validation; /* tg_train_on_data: copied instead of loading the config's */
    tg_tape *tape;
    tg_tensor *class_weight;
    tg_ce_opts ce;
    binary_targets bce; /* binary_cross_entropy only */
    tg_data_parallel *dp; /* across ranks (mpirun): this rank's slice of each batch; NULL in one process */
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
    if (!tr->given_train && tr->cfg->data.stream)
        return tg_train_open_stream(tr->cfg, tr->t)
                   ? -1
                   : build_model(tr->cfg, tr->t->train, tr->st->stream, 0, &tr->t->model);
    if (tr->given_train) {
        if (!(tr->t->train = copy_rows(tr->given_train, NULL)) ||
            !(tr->t->validation = copy_rows(tr->given_validation, tr->given_train)) ||
            !(tr->t->test = copy_rows(NULL, tr->given_train)))
            return -1;
    } else {
        /* across ranks, each reads its own part of the training file */
        if ((tg_dist_parallel() ? tg_load_and_split_ranks : tg_load_and_split)(tr->cfg, &tr->st->shuffle, &d)) {
            tg_dealloc(d.position);
            tg_split_data_free(&d);
            return -1;
        }
        tr->t->train = d.train;
        tr->t->validation = d.validation;
        tr->t->test = d.test;
        tr->st->position = d.position;
    }
    tr->st->rows = tr->st->position ? d.rows : tr->t->train->rows;
    if (tr->cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY &&
        tg_binary_orient(tr->cfg, tr->t->train, tr->t->validation, tr->t->test))
        return -1;
    if (tg_train_hash_ranks(tr->t))
        return -1;
    return build_model(tr->cfg, tr->t->train, NULL, tr->st->position ? tr->st->rows : 0, &tr->t->model);
}

/* The largest |x| of the data: what the hint for a diverging run looks at when inputs are not standardized. */
static double largest_magnitude(const tg_dataset *ds)
{
    const float *x = ds->x ? ds->x : ds->val; /* sparse: the stored values (the rest are zeros) */
    int64_t n = ds->x ? ds->rows * ds->features : ds->nnz;
    double largest = 0;
    for (int64_t k = 0; k < n; k++)
        largest = fabs(x[k]) > largest ? fabs(x[k]) : largest;
    return largest;
}

/* Early stopping's copy of the weights, one tensor per parameter. */
static int trainer_open_best(trainer *tr)
{
    tg_model *m = tr->t->model;
    if (!(tr->st->best = tg_alloc_zeroed((size_t)(m->n_params + 1) * sizeof *tr->st->best))) /* NULL-ended */
        return -1;
    for (int i = 0; i < m->n_params; i++)
        if (!(tr->st->best[i] = tg_tensor_clone(m->params[i])))
            return -1;
    return 0;
}

/* Everything the step loop uses, allocated once before it. */
static int trainer_open_buffers(trainer *tr)
{
    const tg_config *cfg = tr->cfg;
    tg_training *t = tr->t;
    struct tg_train_state *st = tr->st;
    tg_model *m = t->model;
    int epochs = cfg->train.epochs;
    int64_t rows = tg_training_rows(t), batch = cfg->train.batch_size < rows ? cfg->train.batch_size : rows;
    st->rows = rows;
    st->early = cfg->train.patience > 0 && t->validation && t->validation->rows > 0;
    st->best_val = INFINITY;
    t->input_scale = cfg->data.standardize ? 0
                     : st->stream          ? tg_stream_max_abs(st->stream)
                                           : largest_magnitude(t->train);
    if (st->position) { /* every rank's rows: a non-negative double's bits order as the integers they are */
        int64_t bits;
        memcpy(&bits, &t->input_scale, sizeof bits);
        if (tg_dist_max(&bits))
            return -1;
        memcpy(&t->input_scale, &bits, sizeof bits);
    }
    tr->tape = tg_tape_new();
    st->opt = tg_optimizer_new(&cfg->optimizer, m->n_params, m->params);
    if (st->stream && tg_stream_start(st->stream, batch, m->dtype, m->mean, m->std))
        return -1;
    if (!st->stream) /* across ranks: the epoch's order of every rank's rows, whose batches data_parallel.c draws */
        st->batches = st->position ? tg_batcher_open_order(rows, batch)
                                   : tg_batcher_open(t->train, batch, m->dtype,
                                                     &(tg_batcher_opts){ .mean = m->mean, .std = m->std });
    t->train_loss = tg_alloc((size_t)epochs * sizeof(double));
    t->val_loss = tg_alloc((size_t)epochs * sizeof(double));
    t->val_accuracy = tg_alloc((size_t)epochs * sizeof(double));
    if (!tr->tape || !st->opt || !(st->batches || st->stream) || !t->train_loss || !t->val_loss || !t->val_accuracy ||
        (st->early && trainer_open_best(tr)) || tg_train_state_describe(t, cfg))
        return -1;
    t->steps_per_epoch = st->stream ? tg_stream_batches(st->stream) : tg_batcher_batches(st->batches);
    tr->ce = TG_CE_OPTS_DEFAULT;
    tr->ce.label_smoothing = cfg->loss.label_smoothing;
    if (tg_loss_weight_tensor_ranks(cfg, t->train, st->position ? rows : 0, m->dtype, &tr->class_weight))
        return -1;
    tr->ce.weight = tr->class_weight;
    if (cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY &&
        tg_binary_targets_init(&tr->bce, m->dtype, batch, rows, tr->class_weight != NULL, cfg->loss.pos_weight))
        return -1;
    bool failed;
    tr->dp = tg_dp_new(cfg, t->train, st->position, rows, m, batch, tr->class_weight, st->stream != NULL, &failed);
    return failed ? -1 : 0;
}

static void trainer_close(trainer *tr)
{
    tg_tensor_free(tr->class_weight);
    tg_binary_targets_free(&tr->bce);
    tg_tape_free(tr->tape);
    tg_dp_free(tr->dp);
}

/* A fresh Fisher-Yates shuffle of the row order each epoch, from the data seed (a stream: of the block
 * order, the windows' rows drawn as they are read). */
static int trainer_shuffle(trainer *tr)
{
    if (tr->st->stream)
        return tg_stream_reset(tr->st->stream, &tr->st->shuffle);
    tg_batcher_reset(tr->st->batches, &tr->st->shuffle);
    return 0;
}

/* The error for a loss that stopped being finite, with a hint at its likely cause. */
static void diverged(const trainer *tr, double value, int epoch, int64_t s)
{
    char scale[160] = "";
    if (tr->t->input_scale >= TG_LARGE_INPUT)
        snprintf(scale, sizeof scale,
                 "; the inputs are not standardized and reach |x| = %.3g: set data.standardize to %s",
                 tr->t->input_scale,
                 !tr->t->train->row_ptr && !(tr->st->stream && tg_stream_sparse(tr->st->stream))
                     ? "true"
                     : "\"scale\" (sparse data are not centred)");
    tg_error("loss became %s at epoch %d, step %lld (lower optimizer.lr or set train.clip_grad_norm%s)",
             isnan(value) ? "NaN" : "infinite", epoch + 1, (long long)s + 1, scale);
}

/* The loss on batch x, y into *value, and its backward. */
static int trainer_backward(trainer *tr, batch_tensors b, binary_targets *bce_targets, int epoch, int64_t s,
                            double *value)
{
    tg_model *m = tr->t->model;
    tg_tensor *y = b.y;
    tg_tape_reset(tr->tape);
    tg_tensor *logits = tg_model_forward_batch(m, tr->tape, b, m->params), *loss;
    if (tr->cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY) {
        tg_bce_opts bce;
        tg_tensor *target = tg_binary_targets_fill(bce_targets, y, tr->class_weight, &bce);
        loss = tg_binary_cross_entropy_with_logits(tr->tape, logits, target, &bce);
    } else {
        loss = tg_cross_entropy(tr->tape, logits, y, &tr->ce);
    }
    if (!loss)
        return -1;
    *value = tg_get(loss, 0);
    if (!isfinite(*value)) {
        diverged(tr, *value, epoch, s);
        return -1;
    }
    return tg_backward(tr->tape, loss);
}

/* One optimizer step on batch s of the epoch's order; its loss in *value. */
static int trainer_step(trainer *tr, int epoch, int64_t s, double *value)
{
    tg_model *m = tr->t->model;
    batch_tensors b = { 0 };
    binary_targets *bce_targets = &tr->bce;
    tg_stream *stream = tr->st->stream;
    int got = tr->dp && !stream          ? tg_dp_next(tr->dp, tr->st->batches, s, &b, &bce_targets)
              : !stream                  ? tg_batcher_next_batch(tr->st->batches, &b)
              : tg_stream_sparse(stream) ? tg_stream_next_sparse(stream, &b.sparse, &b.y)
                                         : tg_stream_next(stream, &b.x, &b.y);
    if (got < 0 || (got == 0 && (!tr->dp || stream))) { /* across ranks a rank's part may be empty, not a batch */
        if (got == 0)
            tg_error("train: no batch %lld in epoch %d", (long long)s + 1, epoch + 1);
        return -1;
    }
    if (tr->dp && stream) { /* every rank read the same batch: this rank's slice of it (0: empty) */
        bce_targets = &tr->dp->bce;
        got = tg_dp_slice(tr->dp, &b);
    }
    *value = 0;
    tg_optimizer_zero_grad(tr->st->opt);
    if (got && trainer_backward(tr, b, bce_targets, epoch, s, value))
        return -1;
    if (tr->dp && tg_dp_sum(tr->dp, m, value)) /* every rank's slice: the global batch's gradient and loss */
        return -1;
    /* The penalty's gradient per step, scaled as the mean loss is: R / (C n) */
    const tg_penalty *pen = &tr->cfg->loss.penalty;
    if (pen->type != TG_PENALTY_NONE && tg_penalty_add_grad(pen, m, 1.0 / (pen->C * (double)tg_training_rows(tr->t))))
        return -1;
    if (tr->cfg->train.clip_grad_norm > 0 &&
        tg_clip_grad_norm(m->params, m->n_params, tr->cfg->train.clip_grad_norm) < 0)
        return -1;
    return tg_optimizer_step(tr->st->opt);
}

/* The epoch's steps from t->steps_done on, reporting progress after each; 1 when the callback asked to
 * stop (t->steps_done and st->loss_sum then say where, for a resume). */
static int trainer_epoch(trainer *tr, int epoch, tg_progress *p)
{
    tg_training *t = tr->t;
    for (int64_t s = t->steps_done; s < t->steps_per_epoch; s++) {
        double value;
        if (trainer_step(tr, epoch, s, &value))
            return -1;
        tr->st->loss_sum += value;
        t->steps_done = s + 1;
        p->step = s + 1;
        p->train_loss = tr->st->loss_sum / (double)(s + 1);
        p->seconds = tg_now_seconds() - tr->started;
        if (s + 1 < t->steps_per_epoch) { /* across ranks, every rank stops when any caller asked */
            int ask = tg_dist_any(tr->opts->progress && tr->opts->progress(p, tr->opts->ctx));
            if (ask)
                return ask;
        }
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
    struct tg_train_state *st = tr->st;
    if (!st->early)
        return false;
    if (val_loss < st->best_val - tr->cfg->train.min_delta) {
        st->best_val = val_loss;
        st->since_best = 0;
        copy_weights(st->best, tr->t->model->params, tr->t->model->n_params);
        return false;
    }
    return ++st->since_best >= tr->cfg->train.patience;
}

int tg_train_checkpoint(const tg_training *t, const tg_train_opts *o)
{
    if (!o->checkpoint && !o->checkpoint_path)
        return 0;
    tg_clear_error();
    if (!o->checkpoint)
        return tg_training_save(t, o->checkpoint_path);
    if (!o->checkpoint(t, o->ctx))
        return 0;
    if (!tg_last_error()[0])
        tg_error("train: the checkpoint callback failed after %s %d", t->full_batch ? "iteration" : "epoch",
                 t->epochs_run);
    return -1;
}

/* A training checkpoint every opts->checkpoint_every epochs, while there are epochs left. */
static int trainer_checkpoint(trainer *tr)
{
    const tg_train_opts *o = tr->opts;
    if (o->checkpoint_every <= 0 || tr->t->finished || tr->t->epochs_run % o->checkpoint_every != 0)
        return 0;
    return tg_train_checkpoint(tr->t, o);
}

/* An epoch's end: its curves, the callback, early stopping; 1 when training stops. */
static int trainer_end_epoch(trainer *tr, int epoch, tg_progress *p, bool asked)
{
    tg_training *t = tr->t;
    t->train_loss[epoch] = p->train_loss;
    t->val_loss[epoch] = p->val_loss;
    t->val_accuracy[epoch] = p->val_accuracy;
    t->epochs_run = epoch + 1;
    t->steps_done = 0;
    tr->st->loss_sum = 0;
    p->finished = 1;
    p->seconds = tg_now_seconds() - tr->started;
    const tg_train_opts *o = tr->opts;
    int ask = tg_dist_any(o->progress && o->progress(p, o->ctx)); /* the same answer on every rank */
    if (ask < 0)
        return -1;
    bool caller_stops = asked || ask;
    bool patience_out = trainer_patience_out(tr, p->val_loss); /* also when the caller stops */
    t->stopped_by_caller = caller_stops;
    t->stopped_early = patience_out && !caller_stops;
    t->finished = patience_out || t->epochs_run == tr->cfg->train.epochs;
    if (trainer_checkpoint(tr))
        return -1;
    return caller_stops || patience_out;
}

static int trainer_run(trainer *tr)
{
    tg_training *t = tr->t;
    int epochs = tr->cfg->train.epochs;
    for (int epoch = t->epochs_run; epoch < epochs; epoch++) {
        double lr = tg_config_lr_at(tr->cfg, epoch);
        if (tg_optimizer_set_lr(tr->st->opt, lr)) /* a schedule that reached an invalid rate: say so, do not go on */
            return -1;
        if (t->steps_done == 0 && trainer_shuffle(tr)) /* a resumed run stopped mid-epoch keeps that epoch's order */
            return -1;
        tg_progress p = { .epoch = epoch + 1,
                          .epochs = epochs,
                          .steps_per_epoch = t->steps_per_epoch,
                          .lr = lr,
                          .val_loss = NAN,
                          .val_accuracy = NAN };
        if (t->steps_done > 0)
            p.train_loss = tr->st->loss_sum / (double)t->steps_done;
        int asked = trainer_epoch(tr, epoch, &p);
        if (asked < 0)
            return -1;
        if (asked) {
            t->stopped_by_caller = 1; /* mid-epoch: the epoch's end comes when the run resumes */
            break;
        }
        int stops = trainer_validate(tr, &p) ? -1 : trainer_end_epoch(tr, epoch, &p, false);
        if (stops)
            return stops < 0 ? -1 : 0;
    }
    return 0;
}

/* The weights the caller gets: the best validation loss's under early stopping (the last ones stay in
 * st->best, for a training checkpoint). */
static void trainer_finish(trainer *tr)
{
    if (tr->st->early && isfinite(tr->st->best_val)) {
        swap_weights(tr->t->model, tr->st->best);
        tr->st->swapped = true;
    }
}

static tg_training *trainer_train(trainer tr)
{
    const tg_config *cfg = tr.cfg;
    if (!(tr.t = tg_alloc_zeroed(sizeof *tr.t)) || !(tr.t->state = tg_alloc_zeroed(sizeof *tr.t->state))) {
        tg_dealloc(tr.t);
        return NULL;
    }
    tr.st = tr.t->state;
    tg_rng_seed(&tr.st->shuffle, cfg->data.shuffle_seed);
    int status = tg_dp_check_same_config(cfg) ? -1 : trainer_open_data(&tr);
    if (!status && cfg->optimizer.type == TG_OPTIM_LBFGS) {
        /* A solver that fails on the way (line search, NaN) returns the last good
         * weights with solver.status saying why; any other failure returns NULL. */
        tg_lbfgs_status why;
        if (tg_train_state_describe(tr.t, cfg) ||
            (tg_train_full_batch(cfg, tr.t, tr.opts, tr.started) &&
             (why = tr.t->solver.status) != TG_LBFGS_LINESEARCH_FAILED && why != TG_LBFGS_NOT_FINITE)) {
            tg_training_free(tr.t);
            return NULL;
        }
        return tr.t;
    }
    if (!status)
        status = trainer_open_buffers(&tr);
    if (!status && tr.opts->resume)
        status = tg_trainer_restore_state(tr.t, cfg, tr.opts->resume);
    if (!status)
        status = trainer_run(&tr);
    trainer_close(&tr);
    if (status) {
        tg_training_free(tr.t);
        return NULL;
    }
    trainer_finish(&tr);
    return tr.t;
}

tg_training *tg_train_config_opts(const tg_config *cfg, const tg_train_opts *opts)
{
    static const tg_train_opts none = { 0 };
    if (!cfg)
        return tg_error("train: config is NULL");
    return trainer_train((trainer){ .cfg = cfg, .opts = opts ? opts : &none, .started = tg_now_seconds() });
}

tg_training *tg_train_config(const tg_config *cfg, tg_progress_fn progress, void *ctx)
{
    tg_train_opts opts = { .progress = progress, .ctx = ctx };
    return tg_train_config_opts(cfg, &opts);
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
    tg_train_opts opts = { .progress = progress, .ctx = ctx };
    return trainer_train((trainer){
        .cfg = cfg, .opts = &opts, .started = tg_now_seconds(), .given_train = train, .given_validation = validation });
}
