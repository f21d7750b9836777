/* Evaluation and prediction: the model run over a dataset in chunks with
 * recording off, each chunk standardized with the model's own mean and std. */
#include "nn/nn_internal.h"

#include <math.h>
#include <string.h>

enum { EVAL_CHUNK = 1024 };

static int check_data_fits(const tg_model *m, const tg_dataset *ds, const char *what)
{
    for (int64_t f = 0; !ds->x && ds->row_ptr && m->mean && f < m->inputs; f++)
        if (m->mean[f] != 0) {
            tg_error("%s is sparse (CSR, from a libsvm file) but the model centres its inputs (mean[%lld] is %g): "
                     "sparse data is scaled only, never centred",
                     what, (long long)f, (double)m->mean[f]);
            return -1;
        }
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

/* The chunks go through the gathering and the forward that training uses: a sparse data set's rows into one
 * reused CSR batch, divided by the model's std (scaled, never centred), its first layer tg_sparse_linear. */
static int for_each_chunk(const tg_model *m, const tg_dataset *ds, chunk_fn fn, void *ctx)
{
    int status = -1;
    int64_t chunk = ds->rows < EVAL_CHUNK ? (ds->rows ? ds->rows : 1) : EVAL_CHUNK;
    batch_buffers buffers;
    tg_tape *tape = tg_tape_new();
    if (!tape || tg_batch_buffers_init_data(&buffers, m->dtype, ds, chunk, true)) {
        tg_tape_free(tape);
        return -1;
    }
    tg_tape_set_recording(tape, 0);
    for (int64_t start = 0; start < ds->rows; start += chunk) {
        int64_t n = ds->rows - start < chunk ? ds->rows - start : chunk;
        batch_tensors b = tg_batch_buffers_for(&buffers, n);
        tg_tape_reset(tape);
        if (tg_gather_rows(m, ds, NULL, start, n, b))
            goto done;
        tg_tensor *logits = tg_model_forward_batch(m, tape, b, m->params);
        if (!logits)
            goto done;
        fn(ctx, logits, b.y, start);
    }
    status = 0;
done:
    tg_batch_buffers_free(&buffers);
    tg_tape_free(tape);
    return status;
}

typedef struct {
    tg_eval *ev;
    double loss_sum;
} eval_acc;

/* Logit k of row r for a model of c classes. A binary model's one logit x (c = 2) stands for the two
 * logits (0, x): their softmax is (1 - sigmoid(x), sigmoid(x)), their cross-entropy binary cross-entropy
 * with logits. */
static double logit(const tg_tensor *logits, int64_t r, int64_t k, int64_t c)
{
    if (c == 2 && logits->shape[1] == 1)
        return k ? tg_get(logits, r) : 0.0;
    return tg_get(logits, r * c + k);
}

/* Row r of logits [rows, c]: its max and argmax, and the sum of exp(logit - max); the exps go into e
 * when it is not NULL. Shared by evaluation (loss, argmax) and prediction (probabilities). */
static double row_exp_sum(const tg_tensor *logits, int64_t r, int64_t c, double *max, int64_t *argmax, double *e)
{
    *max = -INFINITY;
    *argmax = 0;
    for (int64_t k = 0; k < c; k++) {
        double v = logit(logits, r, k, c);
        if (v > *max) {
            *max = v;
            *argmax = k;
        }
    }
    double sum = 0;
    for (int64_t k = 0; k < c; k++) {
        double v = exp(logit(logits, r, k, c) - *max);
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
        acc->loss_sum += (max - logit(logits, r, truth, c)) + log(sum);
        acc->ev->confusion[truth * c + best]++;
    }
}

int tg_evaluate(const tg_model *m, const tg_dataset *ds, tg_eval *out)
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
        tg_eval_clear(out);
        return -1;
    }
    for (int64_t k = 0; k < m->classes; k++)
        out->correct += out->confusion[k * m->classes + k];
    out->loss = ds->rows ? acc.loss_sum / (double)ds->rows : NAN;
    out->accuracy = ds->rows ? (double)out->correct / (double)ds->rows : NAN;
    return 0;
}

void tg_eval_free(tg_eval *ev) { tg_eval_clear(ev); }

void tg_eval_clear(tg_eval *ev)
{
    if (!ev)
        return;
    tg_dealloc(ev->confusion);
    ev->confusion = NULL;
}

typedef struct {
    double *probs;
    int64_t classes;
} predict_out;

static void predict_chunk(void *ctx, const tg_tensor *logits, const tg_tensor *y, int64_t first_row)
{
    (void)y;
    const predict_out *out = ctx;
    double *probs = out->probs;
    int64_t c = out->classes;
    for (int64_t r = 0; r < logits->shape[0]; r++) {
        double max, *p = probs + (first_row + r) * c;
        int64_t best;
        double sum = row_exp_sum(logits, r, c, &max, &best, p);
        for (int64_t k = 0; k < c; k++)
            p[k] /= sum;
    }
}

int tg_predict(const tg_model *m, const tg_dataset *ds, double *probs)
{
    if (!m || !ds || !probs) {
        tg_error("predict: model, data and probs are required");
        return -1;
    }
    if (check_data_fits(m, ds, "the data"))
        return -1;
    predict_out out = { probs, m->classes };
    return for_each_chunk(m, ds, predict_chunk, &out);
}
