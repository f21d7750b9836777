/* Minibatch training across ranks (src/train/data_parallel.c; docs/distributed.md): each rank takes its
 * part of every global batch of the epoch's order (the batch's rows it holds, when each rank read its own
 * part of the file; else a slice), and after its backward the ranks' gradients are added into every rank's
 * copy (tg_dist_sum), scaled so that the sum is the gradient of the global batch's mean loss. The trainer
 * (trainer.c) keeps its one-process path and calls these only when tg_dist_parallel(). */
#ifndef TAPEGRAD_DATA_PARALLEL_H
#define TAPEGRAD_DATA_PARALLEL_H

#include "dist/dist.h"
#include "train/train.h"

typedef struct {
    const tg_dataset *train;
    const tg_model *model;
    const tg_tensor *class_weight; /* cross-entropy's weights, or NULL: the mean's denominator */
    bool cross_entropy; /* else binary cross-entropy, whose weighted mean divides by the row count */
    int64_t batch; /* the global batch */
    int64_t rows; /* the training rows of every rank */
    int64_t *local_of; /* [rows] each training row's index in this rank's train, -1 when another rank holds it;
                        * NULL when every rank holds every row (then a rank takes a slice of each batch) */
    int64_t *idx; /* [batch] this rank's rows of the current batch */
    batch_buffers buffers[2]; /* this rank's part of a full batch and of the last, shorter one, dense or CSR */
    binary_targets bce; /* target[0] for buffers[0]'s part, target[1] for buffers[1]'s */
    void *sums; /* the gradients, the loss and the denominator, packed for the sum, in the model's dtype */
    int64_t n_sums;
    double den; /* this step's part of the global mean's denominator: its rows' (count or class weights) */
    bool streamed; /* data.stream: every rank streams the file and takes a slice of each batch it reads */
    tg_tensor x_view, y_view; /* streamed: the slice of the stream's batch, views into its tensors */
    tg_sparse_csr csr_view;
} tg_data_parallel;

/* Across ranks: 0 when this rank trains the config rank 0 trains (the same text) on as many rows, features
 * and classes; else -1 with an error naming this rank, which then ends the job. 0 in one process. */
int tg_dp_check_same_run(const tg_config *cfg, const tg_dataset *train, int64_t rows);
/* The config part of it, before any data are read (loading across ranks runs collectives that ranks with
 * other data sections would not run alike). */
int tg_dp_check_same_config(const tg_config *cfg);
/* NULL with no error when the run is one process; else the parts for batches of `batch` rows out of `rows`:
 * train is this rank's rows, position[i] where its row i stands (src/io/shard.c), or, position NULL, train
 * is every row (streamed: the stream's header, every rank reading the whole file). Allocates the parameters' gradients, so a rank whose part of a
 * batch is empty still has them to receive the sum into. */
tg_data_parallel *tg_dp_new(const tg_config *cfg, const tg_dataset *train, const int64_t *position, int64_t rows,
                            tg_model *m, int64_t batch, const tg_tensor *class_weight, bool streamed, bool *failed);
void tg_dp_free(tg_data_parallel *dp);
/* This rank's part of batch s of the batcher's order, gathered and standardized; advances the batcher past
 * the batch. 1 with the part in *b (dense x or a CSR slice, and y) and the targets in *bce; 0 when the part
 * is empty (no row of the batch is this rank's); -1 on error. */
int tg_dp_next(tg_data_parallel *dp, tg_batcher *batches, int64_t s, batch_tensors *b, binary_targets **bce);
/* data.stream: b (the stream's whole batch, which every rank reads alike) becomes this rank's slice of it,
 * rows [n r / N, n (r + 1) / N) as views (nothing is copied); 1, or 0 when the slice is empty. */
int tg_dp_slice(tg_data_parallel *dp, batch_tensors *b);
/* After this rank's backward (or none, for an empty slice): every rank's gradients summed into each, and
 * *loss (this rank's mean on entry) made the global batch's mean. 0, or -1 with the error set. */
int tg_dp_sum(tg_data_parallel *dp, tg_model *m, double *loss);

#endif
