/* Minibatch training across ranks. Every rank draws the same epoch order from
 * the same seed, so global batch s is the same rows on every rank. When each
 * rank read its own part of the file (src/io/shard.c), a rank takes the
 * batch's rows it holds; when every rank holds every row (a caller's data),
 * rank r takes rows [s B + B r / N, s B + B (r + 1) / N) of the order. Its
 * loss is the mean over its part; times its part's denominator (rows, or the
 * class weights of cross-entropy's weighted mean) it is a sum, and the ranks'
 * sums and denominators, added, give the global batch's mean and gradient.
 * After the sum every rank applies the same penalty, clipping and update to
 * the same weights, so the weights never need sending.
 *
 * A rank's part of a batch has as many rows as the batch holds of its own: the
 * tensors are made once for a full batch, and their first dimension is set to
 * the part's rows at each step (the first n rows of a contiguous tensor are a
 * tensor of n rows), so no step allocates. */
#include "train/data_parallel.h"

#include <string.h>

static int64_t slice_rows(int64_t n)
{
    int64_t first, end;
    tg_dist_share(n, &first, &end);
    return end - first;
}

/* The buffers of this rank's parts: of a full batch (part 0) and of the last, shorter one (part 1); holding
 * its own rows, one buffer of a full batch, whose first dimension each step sets. */
static int open_parts(tg_data_parallel *dp, const tg_config *cfg, int64_t rows, bool weighted)
{
    int64_t sizes[2] = { slice_rows(dp->batch), rows % dp->batch ? slice_rows(rows % dp->batch) : 0 };
    if (dp->local_of) {
        sizes[0] = dp->batch;
        sizes[1] = 0;
    }
    bool binary = cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY;
    binary_targets last = { 0 };
    for (int i = 0; i < 2; i++) {
        if (sizes[i] == 0)
            continue;
        /* streamed: the stream's batches are sliced in place, no rows are gathered here */
        if (!dp->streamed && tg_batch_buffers_init_data(&dp->buffers[i], dp->model->dtype, dp->train, sizes[i], true))
            return -1;
        if (binary && tg_binary_targets_init(i ? &last : &dp->bce, dp->model->dtype, sizes[i], sizes[i], weighted,
                                             cfg->loss.pos_weight))
            return -1;
    }
    /* one binary_targets whose pair is (full slice, last slice), as tg_binary_targets_fill picks by rows */
    dp->bce.target[1] = last.target[0];
    dp->bce.weight[1] = last.weight[0];
    last.target[0] = last.weight[0] = NULL;
    if (!dp->bce.pos_weight) {
        dp->bce.pos_weight = last.pos_weight;
        last.pos_weight = NULL;
    }
    tg_binary_targets_free(&last);
    return 0;
}

/* FNV-1a of a string (NULL: of nothing). */
static uint64_t text_hash(const char *text)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *c = (const unsigned char *)text; c && *c; c++)
        h = (h ^ *c) * 0x100000001b3u;
    return h;
}

int tg_dp_check_same_config(const tg_config *cfg)
{
    if (!tg_dist_parallel())
        return 0;
    uint64_t mine = text_hash(cfg->json), lead = mine;
    if (tg_dist_broadcast(&lead, sizeof lead, 0))
        return -1;
    if (mine != lead) {
        tg_error("train: rank %d was given another config than rank 0: every rank must train the same one",
                 tg_dist_rank());
        return -1;
    }
    return 0;
}

int tg_dp_check_same_run(const tg_config *cfg, const tg_dataset *train, int64_t rows)
{
    if (!tg_dist_parallel())
        return 0;
    uint64_t mine[4] = { text_hash(cfg->json), (uint64_t)rows, (uint64_t)train->features, (uint64_t)train->classes },
             lead[4];
    memcpy(lead, mine, sizeof lead);
    if (tg_dist_broadcast(lead, sizeof lead, 0))
        return -1;
    if (mine[0] != lead[0]) {
        tg_error("train: rank %d was given another config than rank 0: every rank must train the same one",
                 tg_dist_rank());
        return -1;
    }
    if (memcmp(mine, lead, sizeof mine) != 0) {
        tg_error("train: rank %d loaded %llu training rows of %llu features and %llu classes, rank 0 %llu, %llu and "
                 "%llu: every rank must read the same data",
                 tg_dist_rank(), (unsigned long long)mine[1], (unsigned long long)mine[2], (unsigned long long)mine[3],
                 (unsigned long long)lead[1], (unsigned long long)lead[2], (unsigned long long)lead[3]);
        return -1;
    }
    return 0;
}

tg_data_parallel *tg_dp_new(const tg_config *cfg, const tg_dataset *train, const int64_t *position, int64_t rows,
                            tg_model *m, int64_t batch, const tg_tensor *class_weight, bool streamed, bool *failed)
{
    *failed = false;
    if (!tg_dist_parallel())
        return NULL;
    if (tg_dp_check_same_run(cfg, train, rows)) {
        *failed = true;
        return NULL;
    }
    if (cfg->optimizer.lazy) { /* the ranks' sum is dense: every column of W changes on every rank */
        *failed = true;
        return tg_error("train: optimizer.lazy (updates of the touched columns only) does not run across ranks: "
                        "drop it (the summed gradient is dense), or train in one process");
    }
    tg_data_parallel *dp = tg_alloc_zeroed(sizeof *dp);
    if (!dp) {
        *failed = true;
        return NULL;
    }
    *dp = (tg_data_parallel){ .train = train,
                              .rows = rows,
                              .model = m,
                              .class_weight = cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY ? NULL : class_weight,
                              .cross_entropy = cfg->loss.type != TG_LOSS_BINARY_CROSS_ENTROPY,
                              .batch = batch,
                              .streamed = streamed };
    for (int i = 0; i < m->n_params; i++)
        dp->n_sums += m->params[i]->numel;
    dp->n_sums += 2; /* the loss and the denominator, last */
    bool bad = !(dp->idx = tg_alloc((size_t)batch * sizeof *dp->idx));
    if (!bad && position) {
        if ((dp->local_of = tg_alloc((size_t)rows * sizeof *dp->local_of))) {
            for (int64_t p = 0; p < rows; p++)
                dp->local_of[p] = -1;
            for (int64_t r = 0; r < train->rows; r++)
                dp->local_of[position[r]] = r;
        }
        bad = !dp->local_of;
    }
    bad = bad || open_parts(dp, cfg, rows, class_weight != NULL) ||
          !(dp->sums = tg_alloc((size_t)dp->n_sums * tg_dtype_size(m->dtype)));
    for (int i = 0; !bad && i < m->n_params; i++) {
        tg_tensor *p = m->params[i];
        if (!p->grad && !(p->grad = tg_tensor_new(p->dtype, p->ndim, p->shape)))
            bad = true;
    }
    if (bad) {
        tg_dp_free(dp);
        *failed = true;
        return NULL;
    }
    return dp;
}

void tg_dp_free(tg_data_parallel *dp)
{
    if (!dp)
        return;
    for (int i = 0; i < 2; i++)
        tg_batch_buffers_free(&dp->buffers[i]);
    tg_binary_targets_free(&dp->bce);
    tg_dealloc(dp->sums);
    tg_dealloc(dp->local_of);
    tg_dealloc(dp->idx);
    tg_dealloc(dp);
}

/* The denominator of the mean loss over rows idx[0 .. n) of train (idx NULL: the rows of classes y[0 .. n)):
 * the row count, or cross-entropy's class weights. */
static double denominator(const tg_data_parallel *dp, const int64_t *idx, const int64_t *y, int64_t n)
{
    if (!dp->class_weight)
        return (double)n;
    double sum = 0;
    for (int64_t r = 0; r < n; r++)
        sum += tg_get(dp->class_weight, idx ? dp->train->y[idx[r]] : y[r]);
    return sum;
}

/* The first n rows of t (made for more: contiguous, so they are a tensor of n rows). */
static void set_rows(tg_tensor *t, int64_t n)
{
    if (!t)
        return;
    t->numel = t->numel / t->shape[0] * n;
    t->shape[0] = n;
}

int tg_dp_next(tg_data_parallel *dp, tg_batcher *batches, int64_t s, batch_tensors *b, binary_targets **bce)
{
    int64_t rows = dp->rows, start = s * dp->batch;
    if (start >= rows) {
        tg_error("train: no batch %lld of %lld rows", (long long)s + 1, (long long)rows);
        return -1;
    }
    int64_t n = rows - start < dp->batch ? rows - start : dp->batch, mine = 0;
    const int64_t *order = tg_batcher_order(batches) + start;
    tg_batcher_seek(batches, s + 1);
    *bce = &dp->bce;
    if (dp->local_of) { /* the batch's rows this rank holds, in the batch's order */
        for (int64_t k = 0; k < n; k++)
            if (dp->local_of[order[k]] >= 0)
                dp->idx[mine++] = dp->local_of[order[k]];
    } else {
        int64_t first, end;
        tg_dist_share(n, &first, &end);
        for (int64_t k = first; k < end; k++)
            dp->idx[mine++] = order[k];
    }
    dp->den = denominator(dp, dp->idx, NULL, mine);
    if (mine == 0)
        return 0;
    batch_tensors part =
        dp->local_of ? dp->buffers[0].full : tg_batch_buffers_for(&dp->buffers[n == dp->batch ? 0 : 1], mine);
    if (dp->local_of) {
        set_rows(part.x, mine);
        set_rows(part.y, mine);
        set_rows(dp->bce.target[0], mine);
        set_rows(dp->bce.weight[0], mine);
    }
    if (tg_gather_rows(dp->model, dp->train, dp->idx, 0, mine, part))
        return -1;
    *b = part;
    return 1;
}

int tg_dp_slice(tg_data_parallel *dp, batch_tensors *b)
{
    int64_t n = b->y->shape[0], first, end;
    tg_dist_share(n, &first, &end);
    int64_t m = end - first;
    dp->den = denominator(dp, NULL, (const int64_t *)b->y->data + first, m);
    if (m == 0)
        return 0;
    /* views of rows [first, end): a copy of each header (its seal covers tape, generation and owner, which
     * stay), its data moved to the slice and its first dimension cut */
    dp->y_view = *b->y;
    dp->y_view.data = (int64_t *)b->y->data + first;
    dp->y_view.shape[0] = m;
    dp->y_view.numel = m;
    b->y = &dp->y_view;
    if (b->x) {
        int64_t f = b->x->shape[1];
        dp->x_view = *b->x;
        dp->x_view.data = (char *)b->x->data + (size_t)(first * f) * tg_dtype_size(b->x->dtype);
        dp->x_view.shape[0] = m;
        dp->x_view.numel = m * f;
        b->x = &dp->x_view;
    } else {
        dp->csr_view = *b->sparse; /* row_ptr's entries index the whole batch's col and val */
        dp->csr_view.rows = m;
        dp->csr_view.row_ptr = b->sparse->row_ptr + first;
        b->sparse = &dp->csr_view;
    }
    return 1;
}

int tg_dp_sum(tg_data_parallel *dp, tg_model *m, double *loss)
{
    double den = dp->den; /* this rank's mean times its denominator is its sum */
    TG_FLOAT_DISPATCH(m->dtype, T, {
        T *packed = dp->sums;
        for (int i = 0; i < m->n_params; i++) {
            const T *g = m->params[i]->grad->data;
            for (int64_t k = 0; k < m->params[i]->numel; k++)
                *packed++ = (T)(g[k] * den);
        }
        *packed++ = (T)(*loss * den);
        *packed = (T)den;
    });
    if (tg_dist_sum(dp->sums, dp->n_sums, m->dtype))
        return -1;
    TG_FLOAT_DISPATCH(m->dtype, T, {
        T *packed = dp->sums;
        double total = (double)packed[dp->n_sums - 1], scale = total > 0 ? 1.0 / total : 0.0;
        for (int i = 0; i < m->n_params; i++) {
            tg_tensor *p = m->params[i];
            T *g = p->grad->data;
            for (int64_t k = 0; k < p->numel; k++)
                g[k] = (T)(packed[k] * scale);
            p->grad_dense = true;
            packed += p->numel;
        }
        *loss = (double)*packed * scale;
    });
    return 0;
}
