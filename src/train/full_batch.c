/* Full-batch training (optimizer.type "lbfgs"): the penalized objective over
 * the whole training set, minimised by tg_lbfgs_minimize (OWL-QN under an L1
 * part). The objective is computed in float64 whatever the model's dtype, in
 * blocks of rows gathered into one reused batch, so no tape is the size of
 * the data set (sparse data: CSR slices, the first layer tg_sparse_linear,
 * the weight dense). With T workers (the thread budget, but one per
 * tg_full_batch_min_work multiply-adds of an evaluation: waking a thread for
 * less costs more than it saves), worker t takes blocks t,
 * t + T, ... on its own float64 copy of the model, tape and batch; the
 * threads' losses (reduction sum) and gradients are added in thread order, so
 * a result is the same bits for a given thread count and depends on the block
 * size and the thread count only through rounding.
 * The solver sees f = (sum_i w_y(i) loss_i + R(W) / C) / n, scikit-learn's
 * objective divided by C n: the same minimiser, a gradient of order 1. */
#include "train/data_parallel.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* One thread's share of the objective: its blocks, on its own model copy, tape and batch. */
typedef struct {
    tg_model *model; /* float64, the trained model's layers */
    tg_tape *tape;
    batch_buffers blocks;
    binary_targets bce; /* binary_cross_entropy: float targets and row weights */
    tg_tensor *logits[2]; /* one dense linear layer: leaves for a full block and the last one */
    batch_tensors *kept; /* one dense linear layer: its blocks' rows, gathered at the first evaluation (keep_blocks) */
    bool gathered; /* kept holds them */
    double *grad; /* [n]: the gradient of its blocks, the parameters in order */
    double loss; /* the sum over its blocks */
    char error[256]; /* tg_last_error of a failure (errors are per thread) */
} worker;

typedef struct {
    const tg_config *cfg;
    const tg_model *source; /* standardization and dtype of the trained model */
    const tg_dataset *train;
    worker *workers;
    int n_workers;
    int64_t n_blocks, block;
    int64_t first, end; /* this rank's rows of train (all of them in one process, or when each rank read its
                         * own part of the file; else tg_dist_share's slice) */
    int64_t rows; /* the training rows of every rank */
    tg_tensor *class_weight;
    tg_ce_opts ce;
    double l2; /* the L2 part's weight divided by C n */
    unsigned char *mask; /* 1 on weights, 0 on biases */
    int64_t n; /* parameters */
    bool one_linear; /* dense rows into one linear layer: its products by linear_blocks.c, the loss on the tape */
    bool fused_ce; /* and a plain cross-entropy (no class weights or smoothing): the loss by linear_blocks.c too */
    tg_training *t;
    const tg_train_opts *opts; /* progress, and checkpoints every opts->checkpoint_every iterations */
    bool checkpoint_failed;
    double started;
    double objective; /* the last evaluation's f (mean scale) */
} full_batch;

static void params_from(tg_model *m, const double *w)
{
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        memcpy(p->data, w, (size_t)p->numel * sizeof(double));
        w += p->numel;
    }
}

/* The loss of a block's logits, summed, on the worker's tape. NULL with the error set. */
static tg_tensor *block_loss(full_batch *fb, worker *wk, tg_tensor *logits, batch_tensors bt)
{
    if (fb->cfg->loss.type != TG_LOSS_BINARY_CROSS_ENTROPY)
        return tg_cross_entropy(wk->tape, logits, bt.y, &fb->ce);
    tg_bce_opts bce;
    tg_tensor *target = tg_binary_targets_fill(&wk->bce, bt.y, fb->class_weight, &bce);
    bce.reduction = TG_SUM;
    return tg_binary_cross_entropy_with_logits(wk->tape, logits, target, &bce);
}

/* A block through the tape: the model's forward (a CSR slice goes through its sparse first layer) and backward.
 * Its loss into *loss; 0, or -1 with the error set. */
static int block_on_tape(full_batch *fb, worker *wk, batch_tensors bt, double *loss)
{
    tg_tensor *logits = tg_model_forward_batch(wk->model, wk->tape, bt, wk->model->params);
    tg_tensor *value = logits ? block_loss(fb, wk, logits, bt) : NULL;
    if (!value || tg_backward(wk->tape, value))
        return -1;
    *loss = tg_get(value, 0);
    return 0;
}

/* A block into one dense linear layer: its logits and weight gradient by
 * linear_blocks.c's kernels, the loss and the logits' gradient by its
 * softmax cross-entropy when that applies (fused_ce), else on the tape. */
static int block_one_linear(full_batch *fb, worker *wk, batch_tensors bt, int64_t n, double *loss)
{
    const tg_model *m = wk->model;
    tg_tensor *logits = wk->logits[n == fb->block ? 0 : 1];
    int64_t out = m->layers[0].out, d = m->inputs;
    const double *x = bt.x->data, *bias = m->n_params > 1 ? m->params[1]->data : NULL, *g = logits->data;
    tg_block_logits(n, d, out, x, m->params[0]->data, bias, logits->data);
    if (!fb->fused_ce || tg_block_softmax_cross_entropy(n, out, bt.y->data, logits->data, loss)) {
        tg_zero_grad(logits);
        tg_tensor *value = block_loss(fb, wk, logits, bt);
        if (!value || tg_backward(wk->tape, value))
            return -1;
        *loss = tg_get(value, 0);
        g = tg_grad(logits)->data;
    }
    tg_block_weight_grad(n, d, out, x, g, wk->grad, bias ? wk->grad + out * d : NULL);
    return 0;
}

/* Worker id's blocks at w: the sum of their losses into wk->loss, of their gradients into wk->grad. 0 on success. */
static int worker_blocks(full_batch *fb, int id, const double *w)
{
    worker *wk = &fb->workers[id];
    tg_model *m = wk->model;
    int64_t k = 0; /* the worker's block count so far */
    params_from(m, w);
    for (int i = 0; i < m->n_params; i++)
        tg_zero_grad(m->params[i]);
    memset(wk->grad, 0, (size_t)fb->n * sizeof *wk->grad);
    wk->loss = 0;
    for (int64_t b = id; b < fb->n_blocks; b += fb->n_workers, k++) {
        int64_t start = fb->first + b * fb->block, n = fb->end - start < fb->block ? fb->end - start : fb->block;
        batch_tensors bt = wk->kept ? wk->kept[k] : tg_batch_buffers_for(&wk->blocks, n);
        tg_tape_reset(wk->tape);
        double loss = 0;
        if ((!wk->gathered && tg_gather_rows(fb->source, fb->train, NULL, start, n, bt)) ||
            (fb->one_linear ? block_one_linear(fb, wk, bt, n, &loss) : block_on_tape(fb, wk, bt, &loss))) {
            snprintf(wk->error, sizeof wk->error, "%s", tg_last_error());
            return -1;
        }
        wk->loss += loss;
    }
    wk->gathered = wk->kept != NULL;
    double *g = wk->grad; /* the tape's gradients, in the same flat order */
    for (int i = 0; !fb->one_linear && i < m->n_params; g += m->params[i]->numel, i++)
        if (m->params[i]->grad)
            memcpy(g, m->params[i]->grad->data, (size_t)m->params[i]->numel * sizeof *g);
    return 0;
}

/* f and its gradient at w: the workers in parallel, their sums added in worker order. */
static int objective(int64_t n, const double *w, double *f, double *grad, void *ctx)
{
    full_batch *fb = ctx;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(fb->n_workers) schedule(static, 1) reduction(| : failed) if (fb->n_workers > 1)
#endif
    for (int id = 0; id < fb->n_workers; id++)
        failed |= worker_blocks(fb, id, w) != 0;
    for (int id = 0; id < fb->n_workers && failed; id++)
        if (fb->workers[id].error[0]) {
            tg_error("%s", fb->workers[id].error);
            return -1;
        }
    double inv_rows = 1.0 / (double)fb->rows, sum = 0, squares = 0;
    memset(grad, 0, (size_t)n * sizeof *grad);
    for (int id = 0; id < fb->n_workers; id++) {
        const double *g = fb->workers[id].grad;
        sum += fb->workers[id].loss;
        for (int64_t k = 0; k < n; k++)
            grad[k] += g[k];
    }
    if (tg_dist_sum(grad, n, TG_F64) || tg_dist_sum(&sum, 1, TG_F64)) /* across ranks: every rank's rows */
        return -1;
    for (int64_t k = 0; k < n; k++) {
        grad[k] *= inv_rows;
        if (fb->mask[k]) {
            grad[k] += fb->l2 * w[k];
            squares += w[k] * w[k];
        }
    }
    *f = fb->objective = sum * inv_rows + 0.5 * fb->l2 * squares;
    return 0;
}

/* The model's weights from the solver's point (in the model's dtype). */
static void weights_to_model(tg_model *m, const double *w)
{
    for (int i = 0; i < m->n_params; i++)
        for (int64_t k = 0; k < m->params[i]->numel; k++)
            tg_set(m->params[i], k, *w++);
}

/* A training checkpoint after every opts->checkpoint_every iterations, while max_iter is not reached;
 * its failure stops the solver (checkpoint_failed says so). */
static int checkpoint_after(full_batch *fb, int iteration)
{
    const tg_train_opts *o = fb->opts;
    if (o->checkpoint_every <= 0 || iteration % o->checkpoint_every != 0 || iteration >= fb->cfg->lbfgs.opts.max_iter)
        return 0;
    weights_to_model(fb->t->model, fb->t->state->w);
    fb->checkpoint_failed = tg_train_checkpoint(fb->t, o) != 0;
    return fb->checkpoint_failed;
}

/* Each iteration is one point of the curves (train_loss: the objective f). */
static int on_iteration(int iteration, double value, double grad_norm, void *ctx)
{
    (void)grad_norm;
    full_batch *fb = ctx;
    tg_training *t = fb->t;
    t->train_loss[iteration - 1] = value;
    t->val_loss[iteration - 1] = NAN;
    t->val_accuracy[iteration - 1] = NAN;
    t->epochs_run = iteration;
    if (checkpoint_after(fb, iteration))
        return 1;
    tg_progress p = { .epoch = iteration,
                      .epochs = fb->cfg->lbfgs.opts.max_iter,
                      .step = 1,
                      .steps_per_epoch = 1,
                      .train_loss = value,
                      .val_loss = NAN,
                      .val_accuracy = NAN,
                      .lr = NAN,
                      .seconds = tg_now_seconds() - fb->started,
                      .finished = 1,
                      .full_batch = 1 };
    /* across ranks every rank stops after the same iteration when any caller asked (a failed sum: stop) */
    return tg_dist_any(fb->opts->progress && fb->opts->progress(&p, fb->opts->ctx)) != 0;
}

int64_t tg_full_batch_min_work = INT64_C(4) << 20;

/* Multiply-adds of one row's forward: the first layer's by the row's non-zeros when the data are sparse. */
static int64_t macs_per_row(const tg_model *m, const tg_dataset *ds)
{
    int64_t width = m->inputs, macs = 0;
    for (int i = 0; i < m->n_layers; i++) {
        if (m->layers[i].type != TG_LAYER_LINEAR)
            continue;
        int64_t in = i == 0 && !ds->x && ds->rows > 0 ? ds->nnz / ds->rows + 1 : width;
        macs += in * m->layers[i].out;
        width = m->layers[i].out;
    }
    return macs;
}

static int open_workers(full_batch *fb, const tg_model *m)
{
    fb->first = 0;
    fb->end = fb->train->rows;
    if (!fb->t->state->position) /* every rank holds every row: each takes a slice */
        tg_dist_share(fb->train->rows, &fb->first, &fb->end);
    int64_t rows = fb->end - fb->first;
    fb->block = fb->cfg->lbfgs.block_rows < rows ? fb->cfg->lbfgs.block_rows : rows > 0 ? rows : 1;
    fb->n_blocks = (rows + fb->block - 1) / fb->block;
    int64_t workers = tg_num_threads(), by_work = 1 + rows * macs_per_row(m, fb->train) / tg_full_batch_min_work;
    workers = workers < fb->n_blocks ? workers : fb->n_blocks;
    workers = workers < by_work ? workers : by_work;
    fb->n_workers = (int)(workers > 0 ? workers : 1); /* a rank with no rows still has one worker, which adds zeros */
    if (!(fb->workers = tg_alloc_zeroed((size_t)fb->n_workers * sizeof *fb->workers)))
        return -1;
    tg_dataset share = *fb->train; /* this rank's rows, a view: what sizes the blocks (the last one's rows) */
    share.rows = rows;
    share.row_ptr = share.row_ptr ? share.row_ptr + fb->first : NULL;
    for (int id = 0; id < fb->n_workers; id++) {
        worker *wk = &fb->workers[id];
        tg_rng unused; /* the weights are overwritten from w at each evaluation */
        tg_rng_seed(&unused, 0);
        wk->model = tg_model_new(TG_F64, m->inputs, m->n_layers, m->layers, &unused);
        wk->tape = tg_tape_new();
        wk->grad = tg_alloc((size_t)fb->n * sizeof *wk->grad);
        if (!wk->model || !wk->tape || !wk->grad ||
            tg_batch_buffers_init_data(&wk->blocks, TG_F64, &share, fb->block, true))
            return -1;
        int64_t last = rows - (fb->n_blocks - 1) * fb->block; /* the last block's rows */
        for (int s = 0; fb->one_linear && s < 2; s++) {
            int64_t shape[2] = { s == 0 ? fb->block : last, m->layers[0].out };
            if (!(wk->logits[s] = tg_tensor_new(TG_F64, 2, shape)))
                return -1;
            tg_set_requires_grad(wk->logits[s], 1);
        }
        if (fb->cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY &&
            tg_binary_targets_init(&wk->bce, TG_F64, fb->block, rows, fb->class_weight != NULL,
                                   fb->cfg->loss.pos_weight))
            return -1;
    }
    return 0;
}

/* A one-linear-layer model's blocks keep their gathered rows when all of them take at most this many bytes:
 * gathering (float32 to float64, standardized) at every evaluation was a tenth of digits' solve. */
#define KEPT_BYTES_MAX (INT64_C(64) << 20)

/* Each worker's own tensors for its blocks' rows and labels, when fb->one_linear and they fit KEPT_BYTES_MAX. */
static int keep_blocks(full_batch *fb)
{
    int64_t d = fb->source->inputs, rows = fb->end - fb->first;
    if (!fb->one_linear || rows > KEPT_BYTES_MAX / (int64_t)sizeof(double) / (d + 1))
        return 0;
    for (int id = 0; id < fb->n_workers; id++) {
        worker *wk = &fb->workers[id];
        int64_t count = (fb->n_blocks - id + fb->n_workers - 1) / fb->n_workers;
        if (count > 0 && !(wk->kept = tg_alloc_zeroed((size_t)count * sizeof *wk->kept)))
            return -1;
        for (int64_t k = 0; k < count; k++) {
            int64_t start = (id + k * fb->n_workers) * fb->block,
                    n = rows - start < fb->block ? rows - start : fb->block;
            wk->kept[k].x = tg_tensor_new(TG_F64, 2, (int64_t[]){ n, d });
            wk->kept[k].y = tg_tensor_new(TG_I64, 1, (int64_t[]){ n });
            if (!wk->kept[k].x || !wk->kept[k].y)
                return -1;
        }
    }
    return 0;
}

static int open_full_batch(full_batch *fb, tg_model *m)
{
    const tg_config *cfg = fb->cfg;
    int max_iter = cfg->lbfgs.opts.max_iter > 0 ? cfg->lbfgs.opts.max_iter : 1;
    for (int i = 0; i < m->n_params; i++)
        fb->n += m->params[i]->numel;
    fb->one_linear = fb->train->x && m->n_layers == 1 && m->layers[0].type == TG_LAYER_LINEAR;
    fb->rows = tg_training_rows(fb->t);
    bool shards = fb->t->state->position != NULL;
    if (tg_dp_check_same_run(cfg, fb->train, fb->rows) ||
        tg_loss_weight_tensor_ranks(cfg, fb->train, shards ? fb->rows : 0, TG_F64, &fb->class_weight) ||
        open_workers(fb, m) || keep_blocks(fb))
        return -1;
    fb->mask = tg_alloc_zeroed((size_t)fb->n);
    tg_training *t = fb->t;
    t->train_loss = tg_alloc((size_t)max_iter * sizeof(double));
    t->val_loss = tg_alloc((size_t)max_iter * sizeof(double));
    t->val_accuracy = tg_alloc((size_t)max_iter * sizeof(double));
    struct tg_train_state *st = t->state;
    st->w = tg_alloc((size_t)fb->n * sizeof *st->w);
    if (!fb->mask || !t->train_loss || !t->val_loss || !t->val_accuracy || !st->w ||
        tg_lbfgs_state_init(&st->lbfgs, fb->n, cfg->lbfgs.opts.history_size))
        return -1;
    double *w = st->w;
    for (int i = 0; i < m->n_params; i++)
        for (int64_t k = 0; k < m->params[i]->numel; k++)
            *w++ = tg_get(m->params[i], k);
    unsigned char *mask = fb->mask;
    for (int i = 0; i < m->n_params; i++) {
        memset(mask, m->params[i]->ndim == 2, (size_t)m->params[i]->numel); /* weights are [out, in], biases [out] */
        mask += m->params[i]->numel;
    }
    fb->ce = TG_CE_OPTS_DEFAULT;
    fb->ce.reduction = TG_SUM;
    fb->ce.label_smoothing = cfg->loss.label_smoothing;
    fb->ce.weight = fb->class_weight;
    fb->fused_ce =
        fb->one_linear && cfg->loss.type == TG_LOSS_CROSS_ENTROPY && !fb->class_weight && fb->ce.label_smoothing == 0;
    double l1, l2, scale = 1.0 / (cfg->loss.penalty.C * (double)fb->rows);
    tg_penalty_parts(&cfg->loss.penalty, &l1, &l2);
    fb->l2 = l2 * scale;
    return 0;
}

static void close_full_batch(full_batch *fb)
{
    for (int id = 0; fb->workers && id < fb->n_workers; id++) {
        tg_model_free(fb->workers[id].model);
        tg_batch_buffers_free(&fb->workers[id].blocks);
        tg_binary_targets_free(&fb->workers[id].bce);
        tg_tape_free(fb->workers[id].tape);
        tg_tensor_free(fb->workers[id].logits[0]);
        tg_tensor_free(fb->workers[id].logits[1]);
        tg_dealloc(fb->workers[id].grad);
        int64_t kept = (fb->n_blocks - id + fb->n_workers - 1) / fb->n_workers;
        for (int64_t k = 0; fb->workers[id].kept && k < kept; k++) {
            tg_tensor_free(fb->workers[id].kept[k].x);
            tg_tensor_free(fb->workers[id].kept[k].y);
        }
        tg_dealloc(fb->workers[id].kept);
    }
    tg_dealloc(fb->workers);
    tg_tensor_free(fb->class_weight);
    tg_dealloc(fb->mask);
}

/* The solver from the state's point (the model's initial weights, or a resumed run's); the model keeps
 * the last good weights even on failure. */
static int solve(full_batch *fb, tg_model *m)
{
    const tg_config *cfg = fb->cfg;
    struct tg_train_state *st = fb->t->state;
    tg_lbfgs_opts o = cfg->lbfgs.opts;
    double l1;
    tg_penalty_parts(&cfg->loss.penalty, &l1, NULL);
    o.l1 = l1 / (cfg->loss.penalty.C * (double)fb->rows);
    o.l1_mask = fb->mask;
    o.progress = on_iteration;
    int status = tg_lbfgs_run(fb->n, st->w, objective, fb, &o, &st->lbfgs, &fb->t->solver);
    weights_to_model(m, st->w);
    if (fb->checkpoint_failed)
        return -1;
    fb->t->stopped_by_caller = fb->t->solver.status == TG_LBFGS_STOPPED;
    fb->t->finished = !fb->t->stopped_by_caller; /* a stopped run can be saved and resumed */
    fb->t->objective = fb->t->solver.objective * cfg->loss.penalty.C * (double)fb->rows;
    return status;
}

/* The model's final validation loss and accuracy go on the curves' last point. */
static int validate_last(tg_training *t)
{
    if (!t->validation || t->validation->rows == 0 || t->epochs_run == 0)
        return 0;
    tg_eval ev;
    if (tg_evaluate(t->model, t->validation, &ev))
        return -1;
    t->val_loss[t->epochs_run - 1] = ev.loss;
    t->val_accuracy[t->epochs_run - 1] = ev.accuracy;
    tg_eval_clear(&ev);
    return 0;
}

int tg_train_full_batch(const tg_config *cfg, tg_training *t, const tg_train_opts *opts, double started)
{
    tg_model *m = t->model;
    full_batch fb = { .cfg = cfg, .source = m, .train = t->train, .t = t, .opts = opts, .started = started };
    t->full_batch = 1;
    int status = open_full_batch(&fb, m);
    if (!status && opts->resume)
        status = tg_trainer_restore_state(t, cfg, opts->resume);
    if (!status)
        status = solve(&fb, m);
    close_full_batch(&fb);
    return status ? -1 : t->finished ? validate_last(t) : 0;
}
