/* Training checkpoints: a stopped run saved with everything that carries it
 * from one step to the next, and restored so that the resumed run computes
 * exactly what the uninterrupted one would have. The file is the model's
 * safetensors file plus "training.*" tensors (optimizer state under PyTorch's
 * names, the row order, step counts, curves, the last weights under early
 * stopping) and a "training" metadata entry (position, random state, and the
 * settings a resume must repeat). See docs/checkpoint.md. */
#include "dist/dist.h"
#include "train/train.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRAINING_FORMAT 1

void tg_train_state_free(struct tg_train_state *st)
{
    if (!st)
        return;
    tg_optimizer_free(st->opt);
    tg_batcher_free(st->batches);
    tg_stream_free(st->stream);
    for (int i = 0; st->best && st->best[i]; i++)
        tg_tensor_free(st->best[i]);
    tg_dealloc(st->best);
    tg_dealloc(st->settings);
    tg_dealloc(st->w);
    tg_dealloc(st->position);
    tg_lbfgs_state_free(&st->lbfgs);
    tg_dealloc(st);
}

/* ---- what a resume must repeat ---- */

/* FNV-1a, 64 bits, over n bytes (none when p is NULL). */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t k = 0; b && k < n; k++)
        h = (h ^ b[k]) * 0x100000001b3u;
    return h;
}

/* FNV-1a over a data set's rows and labels. */
static uint64_t hash_rows(uint64_t h, const tg_dataset *ds)
{
    if (!ds)
        return h;
    if (ds->x) {
        h = hash_bytes(h, ds->x, (size_t)(ds->rows * ds->features) * sizeof *ds->x);
    } else if (ds->row_ptr) { /* sparse: the CSR arrays */
        h = hash_bytes(h, ds->row_ptr, (size_t)(ds->rows + 1) * sizeof *ds->row_ptr);
        h = hash_bytes(h, ds->col, (size_t)ds->nnz * sizeof *ds->col);
        h = hash_bytes(h, ds->val, (size_t)ds->nnz * sizeof *ds->val);
    }
    return hash_bytes(h, ds->y, (size_t)ds->rows * sizeof *ds->y);
}

static bool add_hex(cJSON *o, const char *key, uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%016" PRIx64, v);
    return cJSON_AddStringToObject(o, key, text) != NULL;
}

/* A seed as a decimal string (JSON numbers lose integers above 2^53). */
static bool add_seed(cJSON *o, const char *key, uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, v);
    return cJSON_AddStringToObject(o, key, text) != NULL;
}

/* "linear 64, relu, linear 10 no-bias" */
static bool add_layers(cJSON *o, const tg_config *cfg)
{
    char text[1024] = "";
    size_t used = 0;
    for (int i = 0; i < cfg->model.n_layers && used < sizeof text; i++) {
        const tg_layer_spec *l = &cfg->model.layers[i];
        int n = l->type == TG_LAYER_LINEAR
                    ? snprintf(text + used, sizeof text - used, "%s%s %lld%s", i ? ", " : "",
                               tg_layer_type_name(l->type), (long long)l->out, l->bias ? "" : " no-bias")
                    : snprintf(text + used, sizeof text - used, "%s%s", i ? ", " : "", tg_layer_type_name(l->type));
        used += n > 0 ? (size_t)n : 0;
    }
    return cJSON_AddStringToObject(o, "model.layers", text) != NULL;
}

/* The full-batch solver's keys: each changes the iterates (block_rows through the sums' rounding). */
static bool add_lbfgs_settings(cJSON *s, const tg_config *cfg)
{
    const tg_lbfgs_opts *o = &cfg->lbfgs.opts;
    return cJSON_AddNumberToObject(s, "optimizer.history_size", o->history_size) &&
           cJSON_AddNumberToObject(s, "optimizer.max_iter", o->max_iter) &&
           cJSON_AddNumberToObject(s, "optimizer.max_linesearch", o->max_linesearch) &&
           cJSON_AddNumberToObject(s, "optimizer.tolerance_grad", o->tolerance_grad) &&
           cJSON_AddNumberToObject(s, "optimizer.tolerance_change", o->tolerance_change) &&
           cJSON_AddNumberToObject(s, "optimizer.block_rows", (double)cfg->lbfgs.block_rows);
}

/* The config's settings that shape the run, named as in the config file. */
static cJSON *settings_of(const tg_config *cfg, const tg_training *t)
{
    static const char *const optimizers[] = { "sgd", "adam", "adamw", "lbfgs" };
    static const char *const penalties[] = { "none", "l2", "l1", "elasticnet" };
    static const char *const schedules[] = { "constant", "step", "cosine" };
    const tg_optim_opts *o = &cfg->optimizer;
    cJSON *s = cJSON_CreateObject();
    cJSON *weights = cfg->loss.class_weights
                         ? cJSON_CreateDoubleArray(cfg->loss.class_weights, (int)cfg->loss.n_class_weights)
                         : cJSON_CreateNull();
    if (!s || !weights || !cJSON_AddItemToObject(s, "loss.weight", weights)) {
        cJSON_Delete(weights);
        cJSON_Delete(s);
        return NULL;
    }
    cJSON *by_label = cfg->loss.class_weight_balanced ? cJSON_CreateString("balanced") : cJSON_CreateObject();
    for (int64_t k = 0; by_label && !cfg->loss.class_weight_balanced && k < cfg->loss.n_class_weight_labels; k++)
        if (!cJSON_AddNumberToObject(by_label, cfg->loss.class_weight_labels[k], cfg->loss.class_weight_values[k])) {
            cJSON_Delete(by_label);
            by_label = NULL;
        }
    if (!by_label || !cJSON_AddItemToObject(s, "loss.class_weight", by_label)) {
        cJSON_Delete(by_label);
        cJSON_Delete(s);
        return NULL;
    }
    bool ok = add_seed(s, "seed", cfg->seed) && add_seed(s, "data.shuffle_seed", cfg->data.shuffle_seed) &&
              cJSON_AddNumberToObject(s, "data.test_split", cfg->data.test ? 0 : cfg->data.test_split) &&
              cJSON_AddNumberToObject(s, "data.validation_split", cfg->data.validation_split) &&
              (cfg->data.standardize == TG_STANDARDIZE_SCALE
                   ? cJSON_AddStringToObject(s, "data.standardize", "scale") != NULL
                   : cJSON_AddBoolToObject(s, "data.standardize", cfg->data.standardize) != NULL) &&
              cJSON_AddNumberToObject(s, "training rows", (double)tg_training_rows(t)) &&
              cJSON_AddNumberToObject(s, "features", (double)t->train->features) &&
              cJSON_AddNumberToObject(s, "classes", (double)t->train->classes) &&
              cJSON_AddStringToObject(s, "model.dtype", tg_dtype_name(cfg->model.dtype)) && add_layers(s, cfg) &&
              cJSON_AddNumberToObject(s, "loss.label_smoothing", cfg->loss.label_smoothing) &&
              cJSON_AddStringToObject(s, "loss.type",
                                      cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY ? "binary_cross_entropy"
                                                                                     : "cross_entropy") &&
              cJSON_AddStringToObject(s, "loss.positive_class",
                                      cfg->loss.positive_class ? cfg->loss.positive_class : "(default)") &&
              cJSON_AddNumberToObject(s, "loss.pos_weight", cfg->loss.pos_weight) &&
              cJSON_AddStringToObject(s, "optimizer.type", optimizers[o->type]) &&
              cJSON_AddNumberToObject(s, "optimizer.lr", o->lr) &&
              cJSON_AddNumberToObject(s, "optimizer.momentum", o->momentum) &&
              cJSON_AddNumberToObject(s, "optimizer.dampening", o->dampening) &&
              cJSON_AddBoolToObject(s, "optimizer.nesterov", o->nesterov) &&
              cJSON_AddNumberToObject(s, "optimizer.weight_decay", o->weight_decay) &&
              cJSON_AddNumberToObject(s, "optimizer.beta1", o->beta1) &&
              cJSON_AddNumberToObject(s, "optimizer.beta2", o->beta2) &&
              cJSON_AddNumberToObject(s, "optimizer.eps", o->eps) &&
              cJSON_AddNumberToObject(s, "train.epochs", cfg->train.epochs) &&
              cJSON_AddNumberToObject(s, "train.batch_size", (double)cfg->train.batch_size) &&
              cJSON_AddStringToObject(s, "train.lr_schedule", schedules[cfg->train.schedule]) &&
              cJSON_AddNumberToObject(s, "train.lr_schedule.step_size", cfg->train.step_size) &&
              cJSON_AddNumberToObject(s, "train.lr_schedule.gamma", cfg->train.gamma) &&
              cJSON_AddNumberToObject(s, "train.lr_schedule.min_lr", cfg->train.min_lr) &&
              cJSON_AddNumberToObject(s, "train.clip_grad_norm", cfg->train.clip_grad_norm) &&
              cJSON_AddNumberToObject(s, "train.early_stopping.patience", cfg->train.patience) &&
              cJSON_AddNumberToObject(s, "train.early_stopping.min_delta", cfg->train.min_delta);
    /* Only a streamed run records these, so the checkpoints of other runs stay as they were. */
    if (ok && cfg->data.stream)
        ok = cJSON_AddBoolToObject(s, "data.stream", 1) &&
             cJSON_AddNumberToObject(s, "data.block_rows", (double)cfg->data.block_rows) &&
             cJSON_AddNumberToObject(s, "data.shuffle_window", (double)cfg->data.shuffle_window);
    /* Likewise the penalty (when there is one) and the full-batch solver's keys. */
    if (ok && (cfg->loss.penalty.type != TG_PENALTY_NONE || o->type == TG_OPTIM_LBFGS))
        ok = cJSON_AddStringToObject(s, "loss.penalty", penalties[cfg->loss.penalty.type]) &&
             cJSON_AddNumberToObject(s, "loss.C", cfg->loss.penalty.C) &&
             cJSON_AddNumberToObject(s, "loss.l1_ratio", cfg->loss.penalty.l1_ratio);
    if (ok && o->type == TG_OPTIM_LBFGS)
        ok = add_lbfgs_settings(s, cfg);
    if (!ok) {
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}

int tg_train_hash_ranks(tg_training *t)
{
    struct tg_train_state *st = t->state;
    if (!st->position)
        return 0;
    /* each rank's rows hashed, then the ranks' hashes in rank order, then the validation rows (every rank's
     * whole): the same on every rank, and for the same data split over the same number of ranks */
    uint64_t mine = hash_rows(0xcbf29ce484222325u, t->train);
    void *all;
    size_t *sizes = tg_alloc((size_t)tg_dist_size() * sizeof *sizes), total = 0;
    if (!sizes || tg_dist_gather_all(&mine, sizeof mine, &all, sizes)) {
        tg_dealloc(sizes);
        return -1;
    }
    for (int r = 0; r < tg_dist_size(); r++)
        total += sizes[r];
    st->data_hash = hash_rows(hash_bytes(0xcbf29ce484222325u, all, total), t->validation);
    st->hashed = true;
    tg_dealloc(all);
    tg_dealloc(sizes);
    return 0;
}

/* The hash of the training and validation rows, computed on first use (a save or a resume), not by
 * every run: it reads every byte of the data. */
static uint64_t data_hash(const tg_training *t)
{
    struct tg_train_state *st = t->state;
    if (!st->hashed) {
        st->data_hash = hash_rows(hash_rows(0xcbf29ce484222325u, t->train), t->validation);
        st->hashed = true;
    }
    return st->data_hash;
}

int tg_train_state_describe(tg_training *t, const tg_config *cfg)
{
    struct tg_train_state *st = t->state;
    tg_json_begin();
    cJSON *s = settings_of(cfg, t);
    char *text = s ? cJSON_PrintUnformatted(s) : NULL;
    cJSON_Delete(s);
    st->settings = text ? tg_strdup(text) : NULL;
    cJSON_free(text);
    return st->settings ? 0 : -1;
}

/* ---- saving ---- */

/* The metadata entry "training": position, random state, data hash and settings. */
static char *training_meta(const tg_training *t)
{
    const struct tg_train_state *st = t->state;
    char *text = NULL;
    cJSON *o = cJSON_CreateObject(), *rng = o ? cJSON_AddArrayToObject(o, "rng") : NULL;
    bool ok = rng && cJSON_AddNumberToObject(o, "format", TRAINING_FORMAT) &&
              cJSON_AddNumberToObject(o, "epochs_run", t->epochs_run) &&
              cJSON_AddNumberToObject(o, "steps_done", (double)t->steps_done) &&
              cJSON_AddNumberToObject(o, "steps_per_epoch", (double)t->steps_per_epoch) &&
              cJSON_AddNumberToObject(o, "since_best", st->since_best) &&
              cJSON_AddBoolToObject(o, "stopped_early", t->stopped_early) &&
              cJSON_AddBoolToObject(o, "finished", t->finished) && add_hex(o, "data_hash", data_hash(t));
    for (int k = 0; ok && k < 4; k++) {
        char word[24];
        snprintf(word, sizeof word, "%016" PRIx64, st->shuffle.s[k]);
        cJSON *item = cJSON_CreateString(word);
        ok = item && cJSON_AddItemToArray(rng, item);
    }
    if (ok && st->position) /* the data hash spans that many ranks' parts (absent: one process's rows) */
        ok = cJSON_AddNumberToObject(o, "data_ranks", tg_dist_size()) != NULL;
    if (ok && t->full_batch) {
        const tg_lbfgs_state *s = &st->lbfgs;
        cJSON *solver = cJSON_AddObjectToObject(o, "lbfgs");
        ok = solver && cJSON_AddNumberToObject(solver, "variables", (double)s->n) &&
             cJSON_AddNumberToObject(solver, "history_size", s->m) &&
             cJSON_AddNumberToObject(solver, "iterations", s->iterations) &&
             cJSON_AddNumberToObject(solver, "evaluations", s->evaluations) &&
             cJSON_AddNumberToObject(solver, "stored", s->stored) &&
             cJSON_AddNumberToObject(solver, "newest", s->newest);
    }
    cJSON *settings = ok ? cJSON_Parse(st->settings) : NULL;
    if (settings && cJSON_AddItemToObject(o, "settings", settings))
        text = cJSON_PrintUnformatted(o);
    else
        cJSON_Delete(settings);
    cJSON_Delete(o);
    return text;
}

/* The extra tensors: headers over the state's own memory (nothing is copied) and their names. */
typedef struct {
    int n;
    tg_named_tensor *named;
    tg_tensor *headers;
    char **names;
    double scalars[3]; /* loss_sum, best_val; lbfgs: f, F, F_before */
    int64_t position[4]; /* a stream's (tg_stream_state) */
} extra_list;

static void extra_list_free(extra_list *x)
{
    for (int i = 0; x->names && i < x->n; i++)
        tg_dealloc(x->names[i]);
    tg_dealloc(x->names);
    tg_dealloc(x->named);
    tg_dealloc(x->headers);
}

/* Appends "training.<what><suffix>" over data (dtype, shape [n] or like's shape). */
static bool add_extra(extra_list *x, const char *what, const char *suffix, tg_dtype dtype, int64_t n,
                      const tg_tensor *like, void *data)
{
    size_t size = strlen(TG_TRAINING_PREFIX) + strlen(what) + strlen(suffix) + 1;
    char *name = tg_alloc(size);
    if (!name)
        return false;
    snprintf(name, size, "%s%s%s", TG_TRAINING_PREFIX, what, suffix);
    tg_tensor *h = &x->headers[x->n];
    if (like)
        tg_tensor_init(h, dtype, like->ndim, like->shape, like->numel, TG_OWNED_BY_CALLER);
    else
        tg_tensor_init(h, dtype, 1, (int64_t[]){ n }, n, TG_OWNED_BY_CALLER);
    h->data = data;
    x->names[x->n] = name;
    x->named[x->n] = (tg_named_tensor){ name, h };
    x->n++;
    return true;
}

/* PyTorch's names for an optimizer's state buffers (k 0 and 1 of optimizer_buffer). */
static const char *const sgd_buffers[2] = { "optimizer.momentum_buffer.", NULL };
static const char *const adam_buffers[2] = { "optimizer.exp_avg.", "optimizer.exp_avg_sq." };

static const char *const *buffer_names(const tg_optimizer *opt)
{
    return tg_optimizer_buffer(opt, 1, 0) ? adam_buffers : sgd_buffers;
}

static int extra_list_open(extra_list *x, int cap)
{
    x->named = tg_alloc((size_t)cap * sizeof *x->named);
    x->headers = tg_alloc((size_t)cap * sizeof *x->headers);
    x->names = tg_alloc_zeroed((size_t)cap * sizeof *x->names);
    return x->named && x->headers && x->names ? 0 : -1;
}

/* The curves of the epochs (lbfgs: iterations) run. */
static bool add_curves(extra_list *x, const tg_training *t)
{
    int64_t epochs = t->epochs_run;
    return add_extra(x, "train_loss", "", TG_F64, epochs, NULL, t->train_loss) &&
           add_extra(x, "val_loss", "", TG_F64, epochs, NULL, t->val_loss) &&
           add_extra(x, "val_accuracy", "", TG_F64, epochs, NULL, t->val_accuracy);
}

/* A full-batch run's extra tensors: the curves and the solver's state (src/solve/lbfgs.h). */
static int list_lbfgs_extras(const tg_training *t, extra_list *x)
{
    const tg_lbfgs_state *s = &t->state->lbfgs;
    tg_tensor pairs; /* the shape of s and y: [history_size, variables] */
    tg_tensor_init(&pairs, TG_F64, 2, (int64_t[]){ s->m, s->n }, s->m * s->n, TG_OWNED_BY_CALLER);
    if (extra_list_open(x, 9))
        return -1;
    x->scalars[0] = s->f;
    x->scalars[1] = s->F;
    x->scalars[2] = s->F_before;
    bool ok = add_curves(x, t) && add_extra(x, "lbfgs.w", "", TG_F64, s->n, NULL, t->state->w) &&
              add_extra(x, "lbfgs.grad", "", TG_F64, s->n, NULL, s->g) &&
              add_extra(x, "lbfgs.s", "", TG_F64, 0, &pairs, s->s) &&
              add_extra(x, "lbfgs.y", "", TG_F64, 0, &pairs, s->y) &&
              add_extra(x, "lbfgs.rho", "", TG_F64, s->m, NULL, s->rho) &&
              add_extra(x, "lbfgs.objective", "", TG_F64, 3, NULL, x->scalars);
    return ok ? 0 : -1;
}

/* Where the epoch stands: the batcher's row order, or a stream's block order, window order and position. */
static bool add_order(extra_list *x, const struct tg_train_state *st)
{
    if (!st->stream)
        return add_extra(x, "order", "", TG_I64, st->rows, NULL, tg_batcher_order(st->batches));
    tg_stream_state ss;
    tg_stream_get_state(st->stream, &ss);
    memcpy(x->position, ss.position, sizeof x->position);
    return add_extra(x, "stream.blocks", "", TG_I64, ss.n_blocks, NULL, ss.blocks) &&
           add_extra(x, "stream.order", "", TG_I64, ss.n_order, NULL, ss.order) &&
           add_extra(x, "stream.position", "", TG_I64, 4, NULL, x->position);
}

/* Every extra tensor of t; current is the last weights when they differ from the model file's. */
static int list_extras(const tg_training *t, tg_tensor *const *current, extra_list *x)
{
    const struct tg_train_state *st = t->state;
    const tg_model *m = t->model;
    if (t->full_batch)
        return list_lbfgs_extras(t, x);
    if (extra_list_open(x, 9 + 3 * m->n_params))
        return -1;
    x->scalars[0] = st->loss_sum;
    x->scalars[1] = st->best_val;
    bool ok = add_order(x, st) &&
              add_extra(x, "optimizer.steps", "", TG_I64, m->n_params, NULL, tg_optimizer_steps(st->opt)) &&
              add_extra(x, "loss_sum", "", TG_F64, 1, NULL, &x->scalars[0]) &&
              add_extra(x, "best_val_loss", "", TG_F64, 1, NULL, &x->scalars[1]) && add_curves(x, t);
    const char *const *buffers = buffer_names(st->opt);
    for (int i = 0; ok && i < m->n_params; i++) {
        const tg_tensor *p = m->params[i];
        for (int k = 0; ok && k < 2; k++)
            if (tg_optimizer_buffer(st->opt, k, i))
                ok = add_extra(x, buffers[k], m->param_names[i], p->dtype, 0, p, tg_optimizer_buffer(st->opt, k, i));
        if (ok && current)
            ok = add_extra(x, "current.", m->param_names[i], p->dtype, 0, p, current[i]->data);
    }
    return ok ? 0 : -1;
}

int tg_training_save(const tg_training *t, const char *path)
{
    if (!t || !t->state || !t->model || !path || !path[0]) {
        tg_error("training save: %s is NULL or empty", !t                       ? "training"
                                                       : !t->state || !t->model ? "training (not from tg_train_config)"
                                                                                : "path");
        return -1;
    }
    if (t->full_batch ? !t->state->w || !t->state->lbfgs.g : !t->state->opt) {
        tg_error("training save: the training holds no state to save (it failed before its first step)");
        return -1;
    }
    const struct tg_train_state *st = t->state;
    const tg_model *m = t->model;
    /* The model file holds what training would return now: the best weights under early stopping. */
    bool has_best = st->early && isfinite(st->best_val);
    tg_tensor *const *weights = has_best && !st->swapped ? st->best : m->params;
    tg_tensor *const *current = !has_best ? NULL : st->swapped ? st->best : m->params;
    extra_list x = { 0 };
    tg_json_begin();
    char *meta = training_meta(t);
    int rc = -1;
    if (meta && !list_extras(t, current, &x))
        rc = tg_checkpoint_save(m, (const tg_tensor *const *)weights, x.named, x.n, meta, path);
    cJSON_free(meta);
    extra_list_free(&x);
    return rc;
}

/* ---- restoring ---- */

/* The extra tensor "training.<what><suffix>" with like's dtype and shape (or dtype and [n]); NULL with
 * the error set when it is missing or differs. */
static tg_tensor *find_extra(const char *path, const tg_checkpoint_extras *x, const char *what, const char *suffix,
                             tg_dtype dtype, int64_t n, const tg_tensor *like)
{
    char name[512], want[TG_SHAPE_BUF], got[TG_SHAPE_BUF];
    snprintf(name, sizeof name, "%s%s%s", TG_TRAINING_PREFIX, what, suffix);
    int ndim = like ? like->ndim : 1;
    const int64_t *shape = like ? like->shape : (int64_t[]){ n };
    for (int i = 0; i < x->n; i++) {
        if (strcmp(x->names[i], name) != 0)
            continue;
        tg_tensor *e = x->tensors[i];
        if (e->dtype == dtype && e->ndim == ndim && memcmp(e->shape, shape, (size_t)ndim * sizeof *shape) == 0)
            return e;
        return tg_error("%s: tensor '%s' is %s %s, expected %s %s", path, name, tg_dtype_name(e->dtype),
                        tg_shape_str(got, sizeof got, e->ndim, e->shape), tg_dtype_name(dtype),
                        tg_shape_str(want, sizeof want, ndim, shape));
    }
    return tg_error("%s: tensor '%s' is missing (a training checkpoint has it)", path, name);
}

static void copy_into(tg_tensor *dst, const tg_tensor *src)
{
    memcpy(dst->data, src->data, (size_t)src->numel * tg_dtype_size(src->dtype));
}

/* Refuses a checkpoint made with other settings or data, or one with nothing left to run. */
static int check_same_run(const char *path, const cJSON *meta, const tg_training *t)
{
    const struct tg_train_state *st = t->state;
    const cJSON *saved = cJSON_GetObjectItemCaseSensitive(meta, "settings");
    cJSON *now = cJSON_Parse(st->settings);
    int rc = now ? 0 : -1;
    for (const cJSON *item = now ? now->child : NULL; item && !rc; item = item->next) {
        const cJSON *then = cJSON_GetObjectItemCaseSensitive(saved, item->string);
        char *a = cJSON_PrintUnformatted(item), *b = then ? cJSON_PrintUnformatted(then) : NULL;
        if (!a || (then && !b))
            rc = (tg_error("%s: out of memory comparing the settings", path), -1);
        else if (!b || strcmp(a, b) != 0)
            rc = (tg_error("%s: the run was started with %s %s but the config gives %s; a run resumes only with "
                           "the config it started with",
                           path, item->string, b ? b : "(not recorded)", a),
                  -1);
        cJSON_free(a);
        cJSON_free(b);
    }
    cJSON_Delete(now);
    /* a run whose ranks each read their part hashes its data by parts: it resumes across as many ranks */
    const cJSON *ranks = cJSON_GetObjectItemCaseSensitive(meta, "data_ranks");
    int then = cJSON_IsNumber(ranks) ? (int)ranks->valuedouble : 1, here = st->position ? tg_dist_size() : 1;
    if (!rc && then != here && then == 1)
        rc = (tg_error("%s: the run was trained in one process; across %d MPI ranks each would hold only its part "
                       "of the data: resume it in one process (without mpirun)",
                       path, here),
              -1);
    else if (!rc && then != here)
        rc = (tg_error("%s: the run was trained across %d MPI ranks, each reading its part of the data: resume it "
                       "across as many (mpirun -np %d)",
                       path, then, then),
              -1);
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(meta, "data_hash");
    char want[24];
    snprintf(want, sizeof want, "%016" PRIx64, data_hash(t));
    if (!rc && (!cJSON_IsString(hash) || strcmp(hash->valuestring, want) != 0))
        rc = (tg_error("%s: the training or validation rows differ from those the run was started with (same "
                       "shape, other values)",
                       path),
              -1);
    if (!rc && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "finished")))
        rc = (tg_error("%s: the run has finished (%s): nothing to resume", path,
                       t->full_batch ? "the solver ended" : "every epoch ran, or early stopping ended it"),
              -1);
    return rc;
}

/* An integer in [lo, hi] from the metadata. */
static int meta_int(const char *path, const cJSON *meta, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi) ||
        v->valuedouble != floor(v->valuedouble))
        return tg_error("%s: __metadata__ 'training' %s is missing or not an integer in [%lld, %lld]", path, key,
                        (long long)lo, (long long)hi),
               -1;
    *out = (int64_t)v->valuedouble;
    return 0;
}

/* Epoch, step, early-stopping counters and the shuffle stream's state. */
static int restore_position(const char *path, const cJSON *meta, tg_training *t, int epochs)
{
    struct tg_train_state *st = t->state;
    int64_t epochs_run, steps_done, steps, since_best;
    if (meta_int(path, meta, "epochs_run", 0, epochs - 1, &epochs_run) ||
        meta_int(path, meta, "steps_per_epoch", t->steps_per_epoch, t->steps_per_epoch, &steps) ||
        meta_int(path, meta, "steps_done", 0, steps - 1, &steps_done) ||
        meta_int(path, meta, "since_best", 0, epochs, &since_best))
        return -1;
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(meta, "rng");
    const cJSON *word = cJSON_IsArray(rng) && cJSON_GetArraySize(rng) == 4 ? rng->child : NULL;
    for (int k = 0; k < 4; k++, word = word ? word->next : NULL) {
        char *end = NULL;
        if (cJSON_IsString(word))
            st->shuffle.s[k] = (uint64_t)strtoull(word->valuestring, &end, 16);
        if (!end || *end || end == word->valuestring)
            return tg_error("%s: __metadata__ 'training' rng must be 4 hexadecimal words", path), -1;
    }
    t->epochs_run = (int)epochs_run;
    t->steps_done = steps_done;
    st->since_best = (int)since_best;
    return 0;
}

/* A stream's place in the epoch: its block order, window order and position (checked by the stream). */
static int restore_stream(const char *path, const tg_checkpoint_extras *x, struct tg_train_state *st)
{
    tg_stream_state ss;
    tg_stream_get_state(st->stream, &ss);
    const tg_tensor *blocks = find_extra(path, x, "stream.blocks", "", TG_I64, ss.n_blocks, NULL);
    const tg_tensor *order = blocks ? find_extra(path, x, "stream.order", "", TG_I64, ss.n_order, NULL) : NULL;
    const tg_tensor *position = order ? find_extra(path, x, "stream.position", "", TG_I64, 4, NULL) : NULL;
    return position ? tg_stream_restore(st->stream, blocks->data, order->data, position->data, &st->shuffle, path) : -1;
}

/* The row order: a permutation of the training rows (checked, as everything read from a file); the
 * batcher continues at the step where the run stopped. */
static int restore_order(const char *path, const tg_checkpoint_extras *x, struct tg_train_state *st, int64_t steps_done)
{
    if (st->stream)
        return restore_stream(path, x, st);
    const tg_tensor *order = find_extra(path, x, "order", "", TG_I64, st->rows, NULL);
    bool *seen = order ? tg_alloc_zeroed((size_t)st->rows * sizeof *seen) : NULL;
    if (!seen)
        return -1;
    const int64_t *rows = order->data;
    int64_t bad = -1;
    for (int64_t r = 0; r < st->rows && bad < 0; r++) {
        if (rows[r] < 0 || rows[r] >= st->rows || seen[rows[r]])
            bad = r;
        else
            seen[rows[r]] = true;
    }
    tg_dealloc(seen);
    if (bad >= 0)
        return tg_error("%s: tensor 'training.order' entry %lld is %lld, not a permutation of the %lld rows", path,
                        (long long)bad, (long long)rows[bad], (long long)st->rows),
               -1;
    memcpy(tg_batcher_order(st->batches), rows, (size_t)st->rows * sizeof *rows);
    tg_batcher_seek(st->batches, steps_done);
    return 0;
}

/* Weights (the last ones, and the best under early stopping), optimizer buffers and step counts. */
static int restore_tensors(const char *path, const tg_checkpoint_extras *x, const tg_model *saved, tg_training *t)
{
    struct tg_train_state *st = t->state;
    tg_model *m = t->model;
    const char *const *buffers = buffer_names(st->opt);
    bool has_best = st->early && isfinite(st->best_val);
    if (saved->n_params != m->n_params)
        return tg_error("%s: the model has %d parameters but the config's has %d", path, saved->n_params, m->n_params),
               -1;
    const tg_tensor *steps = find_extra(path, x, "optimizer.steps", "", TG_I64, m->n_params, NULL);
    if (!steps)
        return -1;
    for (int i = 0; i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        if (saved->params[i]->numel != p->numel || saved->params[i]->dtype != p->dtype)
            return tg_error("%s: tensor '%s' does not match the config's model", path, m->param_names[i]), -1;
        const tg_tensor *current =
            has_best ? find_extra(path, x, "current.", m->param_names[i], p->dtype, 0, p) : saved->params[i];
        if (!current)
            return -1;
        copy_into(p, current);
        if (has_best)
            copy_into(st->best[i], saved->params[i]);
        for (int k = 0; k < 2; k++) {
            if (!tg_optimizer_buffer(st->opt, k, i))
                continue;
            const tg_tensor *b = find_extra(path, x, buffers[k], m->param_names[i], p->dtype, 0, p);
            if (!b)
                return -1;
            memcpy(tg_optimizer_buffer(st->opt, k, i), b->data, (size_t)p->numel * tg_dtype_size(p->dtype));
        }
        int64_t count = ((const int64_t *)steps->data)[i];
        if (count < 0)
            return tg_error("%s: tensor 'training.optimizer.steps' entry %d is negative", path, i), -1;
        tg_optimizer_steps(st->opt)[i] = count;
    }
    return 0;
}

/* The curves of the epochs (lbfgs: iterations) run. */
static int restore_curve_arrays(const char *path, const tg_checkpoint_extras *x, tg_training *t)
{
    int64_t n = t->epochs_run;
    const tg_tensor *train = find_extra(path, x, "train_loss", "", TG_F64, n, NULL);
    const tg_tensor *val = train ? find_extra(path, x, "val_loss", "", TG_F64, n, NULL) : NULL;
    const tg_tensor *acc = val ? find_extra(path, x, "val_accuracy", "", TG_F64, n, NULL) : NULL;
    if (!acc)
        return -1;
    memcpy(t->train_loss, train->data, (size_t)n * sizeof(double));
    memcpy(t->val_loss, val->data, (size_t)n * sizeof(double));
    memcpy(t->val_accuracy, acc->data, (size_t)n * sizeof(double));
    return 0;
}

/* The running loss, best validation loss and the curves of the epochs run. */
static int restore_curves(const char *path, const tg_checkpoint_extras *x, tg_training *t)
{
    struct tg_train_state *st = t->state;
    const tg_tensor *loss_sum = find_extra(path, x, "loss_sum", "", TG_F64, 1, NULL);
    const tg_tensor *best = loss_sum ? find_extra(path, x, "best_val_loss", "", TG_F64, 1, NULL) : NULL;
    if (!best || restore_curve_arrays(path, x, t))
        return -1;
    st->loss_sum = *(const double *)loss_sum->data;
    st->best_val = *(const double *)best->data;
    return 0;
}

/* The index of the first value of a that is not finite, or -1. */
static int64_t first_not_finite(const tg_tensor *a)
{
    const double *v = a->data;
    for (int64_t k = 0; k < a->numel; k++)
        if (!isfinite(v[k]))
            return k;
    return -1;
}

/* The full-batch solver's position, counters and buffers (src/solve/lbfgs.h), checked against the
 * config's model and options. */
static int restore_lbfgs(const char *path, const cJSON *meta, const tg_checkpoint_extras *x, const tg_config *cfg,
                         tg_training *t)
{
    struct tg_train_state *st = t->state;
    tg_lbfgs_state *s = &st->lbfgs;
    const cJSON *solver = cJSON_GetObjectItemCaseSensitive(meta, "lbfgs");
    int64_t variables, history, iterations, evaluations, stored, newest, epochs;
    if (!cJSON_IsObject(solver))
        return tg_error("%s: __metadata__ 'training' has no 'lbfgs' entry: not a checkpoint of an lbfgs run", path), -1;
    if (meta_int(path, solver, "variables", s->n, s->n, &variables) ||
        meta_int(path, solver, "history_size", s->m, s->m, &history) ||
        meta_int(path, solver, "iterations", 0, cfg->lbfgs.opts.max_iter, &iterations) ||
        meta_int(path, solver, "evaluations", iterations, INT32_MAX, &evaluations) ||
        meta_int(path, solver, "stored", 0, s->m, &stored) || meta_int(path, solver, "newest", 0, s->m - 1, &newest) ||
        meta_int(path, meta, "epochs_run", iterations, iterations, &epochs))
        return -1;
    tg_tensor pairs;
    tg_tensor_init(&pairs, TG_F64, 2, (int64_t[]){ s->m, s->n }, s->m * s->n, TG_OWNED_BY_CALLER);
    const tg_tensor *w = find_extra(path, x, "lbfgs.w", "", TG_F64, s->n, NULL);
    const tg_tensor *g = w ? find_extra(path, x, "lbfgs.grad", "", TG_F64, s->n, NULL) : NULL;
    const tg_tensor *sk = g ? find_extra(path, x, "lbfgs.s", "", TG_F64, 0, &pairs) : NULL;
    const tg_tensor *yk = sk ? find_extra(path, x, "lbfgs.y", "", TG_F64, 0, &pairs) : NULL;
    const tg_tensor *rho = yk ? find_extra(path, x, "lbfgs.rho", "", TG_F64, s->m, NULL) : NULL;
    const tg_tensor *f = rho ? find_extra(path, x, "lbfgs.objective", "", TG_F64, 3, NULL) : NULL;
    if (!f)
        return -1;
    const tg_tensor *must_be_finite[] = { w, g, sk, yk, rho };
    const char *names[] = { "lbfgs.w", "lbfgs.grad", "lbfgs.s", "lbfgs.y", "lbfgs.rho" };
    for (int k = 0; k < 5; k++)
        if (first_not_finite(must_be_finite[k]) >= 0)
            return tg_error("%s: tensor 'training.%s' entry %lld is not finite", path, names[k],
                            (long long)first_not_finite(must_be_finite[k])),
                   -1;
    const double *objective = f->data;
    if (!isfinite(objective[0]) || !isfinite(objective[1]))
        return tg_error("%s: tensor 'training.lbfgs.objective' is not finite", path), -1;
    t->epochs_run = (int)iterations;
    if (restore_curve_arrays(path, x, t))
        return -1;
    memcpy(st->w, w->data, (size_t)s->n * sizeof(double));
    memcpy(s->g, g->data, (size_t)s->n * sizeof(double));
    memcpy(s->s, sk->data, (size_t)(s->m * s->n) * sizeof(double));
    memcpy(s->y, yk->data, (size_t)(s->m * s->n) * sizeof(double));
    memcpy(s->rho, rho->data, (size_t)s->m * sizeof(double));
    s->f = objective[0];
    s->F = objective[1];
    s->F_before = objective[2];
    s->iterations = (int)iterations;
    s->evaluations = (int)evaluations;
    s->stored = (int)stored;
    s->newest = (int)newest;
    s->started = 1;
    return 0;
}

int tg_trainer_restore_state(tg_training *t, const tg_config *cfg, const char *path)
{
    tg_checkpoint_extras x;
    tg_model *saved = tg_checkpoint_load(path, &x);
    if (!saved)
        return -1;
    tg_json_begin();
    cJSON *meta = cJSON_Parse(x.meta);
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(meta, "format");
    int rc = -1;
    if (!cJSON_IsObject(meta) || !cJSON_IsNumber(format) || format->valuedouble != TRAINING_FORMAT)
        tg_error("%s: __metadata__ 'training' is not a training state this version reads (format %d)", path,
                 TRAINING_FORMAT);
    else if (check_same_run(path, meta, t))
        rc = -1;
    else if (t->full_batch)
        rc = restore_lbfgs(path, meta, &x, cfg, t);
    else if (!restore_position(path, meta, t, cfg->train.epochs) && !restore_order(path, &x, t->state, t->steps_done) &&
             !restore_curves(path, &x, t) && !restore_tensors(path, &x, saved, t))
        rc = 0;
    cJSON_Delete(meta);
    tg_checkpoint_extras_free(&x);
    tg_model_free(saved);
    return rc;
}
