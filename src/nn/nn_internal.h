/* What the toolkit's files (src/nn/) share: the model's fields, the layer
 * names, batches gathered from a dataset, the clock. */
#ifndef TAPEGRAD_NN_INTERNAL_H
#define TAPEGRAD_NN_INTERNAL_H

#include "ops/ops.h"

/* ---- models (src/nn/model.c), shared with the checkpoint reader ---- */

struct tg_model {
    tg_dtype dtype;
    int64_t inputs, classes;
    int n_layers;
    tg_layer_spec *layers;
    tg_linear_layer *linear; /* [n_layers]; weight NULL for activation layers */
    int n_params;
    tg_tensor **params; /* [n_params], pointers into linear */
    char **param_names; /* "0.weight", ... */
    int64_t n_labels;
    char **labels;
    float *mean, *std; /* [inputs] each, or NULL */
    char *config_json;
};

/* Refuses a standardization the model could not apply: one of mean and std NULL, a mean that is not
 * finite, a std <= 0 or not finite; `where` starts the message (src/nn/model.c). 0 when usable. */
int tg_check_standardization(const char *where, int64_t inputs, const float *mean, const float *std);

/* Layer names indexed by tg_layer_type, NULL-terminated (src/nn/model.c): the choices a config offers. */
extern const char *const tg_layer_names[];

/* Reused input and label tensors for batches of `size` rows, and a second pair
 * for the final, shorter batch when `size` does not divide the row count: a
 * tensor's shape is never rewritten after it is made (one exception: across
 * MPI ranks, src/train/data_parallel.c cuts a full batch's first dimension to
 * the rows a rank holds of each batch). Sparse data go into one
 * reused CSR batch instead of x (its buffers grow to the largest batch). */
typedef struct {
    tg_tensor *x, *y; /* x: dense rows, NULL for sparse data; y is NULL when labels are not wanted */
    tg_sparse_csr *sparse; /* sparse rows, or NULL for dense data */
} batch_tensors;
typedef struct {
    int64_t size;
    batch_tensors full, last;
    bool has_last; /* size does not divide the rows */
    tg_sparse_csr *sparse; /* owned; full.sparse and last.sparse point to it */
} batch_buffers;

/* 0 on success; on failure nothing is left allocated. features 0: no x (sparse rows go elsewhere). */
int tg_batch_buffers_init(batch_buffers *b, tg_dtype dtype, int64_t features, int64_t size, int64_t rows, bool labels);
/* Buffers for batches of ds's rows, dense or sparse as ds is (a sparse batch sized for the `size` longest
 * rows, so that no gather allocates). */
int tg_batch_buffers_init_data(batch_buffers *b, tg_dtype dtype, const tg_dataset *ds, int64_t size, bool labels);
void tg_batch_buffers_free(batch_buffers *b);
/* The pair whose first dimension is n (size, or the final batch's rows). */
batch_tensors tg_batch_buffers_for(const batch_buffers *b, int64_t n);
/* t = ds rows idx[0..n) (or start .. start + n when idx is NULL) with the model's standardization, in t's
 * dtype; y too when t.y is set. n is t's row count. 0 on success (a sparse batch may fail to grow). */
int tg_gather_rows(const tg_model *m, const tg_dataset *ds, const int64_t *idx, int64_t start, int64_t n,
                   batch_tensors t);
/* The same with the standardization given (mean and std NULL: rows as they are). Sparse rows are divided
 * by std and never centred. */
int tg_gather_batch(const float *mean, const float *std, const tg_dataset *ds, const int64_t *idx, int64_t start,
                    int64_t n, batch_tensors t);
/* The dense loop under tg_gather_batch: x [n, features] from rows idx (or start on), y when not NULL. */
void tg_gather_standardized(const float *mean, const float *std, const tg_dataset *ds, const int64_t *idx,
                            int64_t start, tg_tensor *x, tg_tensor *y);
/* The same for n rows written from row `at` of x and y on (a batch gathered in parts: streaming). */
void tg_gather_standardized_at(const float *mean, const float *std, const tg_dataset *ds, const int64_t *idx,
                               int64_t start, int64_t n, tg_tensor *x, tg_tensor *y, int64_t at);
/* The model over sparse rows (src/nn/model.c): its linear first layer through tg_sparse_linear, then the
 * rest of its layers as tg_model_forward_with runs them. */
tg_tensor *tg_model_forward_sparse(const tg_model *m, tg_tape *tape, const tg_sparse_csr *x, tg_tensor *const *params);
/* The model over a gathered batch, dense or sparse. */
tg_tensor *tg_model_forward_batch(const tg_model *m, tg_tape *tape, batch_tensors t, tg_tensor *const *params);

/* The optimizer's state, for training checkpoints (src/nn/optim.c): buffer k of parameter i (k 0: SGD's
 * momentum buffer or Adam's first moment; 1: Adam's second moment), the parameter's dtype and numel, or
 * NULL when the optimizer keeps none; and the per-parameter step counts [n_params]. */
void *tg_optimizer_buffer(const tg_optimizer *o, int k, int i);
int64_t *tg_optimizer_steps(const tg_optimizer *o);

/* A batcher that also takes sparse data (the trainer's; tg_batcher_new refuses them), and its next batch
 * as gathered tensors: 1, 0 at the epoch's end, -1 on failure (src/nn/batcher.c). */
tg_batcher *tg_batcher_open(const tg_dataset *ds, int64_t batch_size, tg_dtype dtype, const tg_batcher_opts *opts);
int tg_batcher_next_batch(tg_batcher *b, batch_tensors *out);
/* A batcher of the order alone (reset, seek, order; no batches): across ranks, where each rank holds only
 * some of the rows that the epoch's order arranges. */
tg_batcher *tg_batcher_open_order(int64_t rows, int64_t batch_size);

/* The batcher's row order [rows], for training checkpoints, and a seek to batch `batch` of the
 * current epoch (src/nn/batcher.c). */
int64_t *tg_batcher_order(tg_batcher *b);
/* tg_batcher_reset's shuffle of order[0..n) in place (Fisher-Yates from the last entry down, one
 * tg_rng_below(r + 1) each): also a stream's (src/io/stream.c), so one window holding a file is
 * shuffled as the batcher shuffles the same rows. */
void tg_shuffle_order(int64_t *order, int64_t n, tg_rng *rng);
void tg_batcher_seek(tg_batcher *b, int64_t batch);

/* The loss's per-class weights for the training data (src/nn/class_weight.c): loss.weight, or
 * loss.class_weight ("balanced" or a label map, checked against the data's labels), as a new
 * caller-owned [classes] tensor of dtype; *out stays NULL when the config gives none. */
int tg_loss_weight_tensor(const tg_config *cfg, const tg_dataset *train, tg_dtype dtype, tg_tensor **out);
/* The same when train is this rank's share of `rows` training rows (src/io/shard.c): "balanced" counts the
 * classes over every rank. rows 0: train is every row. */
int tg_loss_weight_tensor_ranks(const tg_config *cfg, const tg_dataset *train, int64_t rows, tg_dtype dtype,
                                tg_tensor **out);

/* "file: " before a config's message when the config came from a file, else "" (src/nn/class_weight.c). */
const char *tg_config_file_prefix(const tg_config *cfg, char *buf, size_t size);

/* Binary models (src/nn/binary.c). Turns the data so that the positive class (loss.positive_class, else the
 * label that sorts second, as scikit-learn) is class 1 in all three sets (validation and test may be NULL);
 * refuses training data without exactly two classes, or a positive_class that is not one of its labels. */
int tg_binary_orient(const tg_config *cfg, tg_dataset *train, tg_dataset *validation, tg_dataset *test);
/* Float targets [n, 1] (and per-row class weights) for batches of size rows and for the final shorter one,
 * allocated once; pos_weight as a [1] tensor when it is not 1. */
typedef struct {
    tg_tensor *target[2], *weight[2], *pos_weight;
} binary_targets;
int tg_binary_targets_init(binary_targets *b, tg_dtype dtype, int64_t size, int64_t rows, bool weighted,
                           double pos_weight);
void tg_binary_targets_free(binary_targets *b);
/* The target of the batch whose classes are y (1.0 for class 1), and opts with its weights set. */
tg_tensor *tg_binary_targets_fill(binary_targets *b, const tg_tensor *y, const tg_tensor *class_weight,
                                  tg_bce_opts *opts);

/* Seconds on the monotonic clock. */
double tg_now_seconds(void);

#endif
