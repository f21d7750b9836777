/* What the trainer's files (src/train/) share: the state that carries a run from step to step, which
 * trainer.c runs and train_state.c saves and restores. */
#ifndef TAPEGRAD_TRAIN_H
#define TAPEGRAD_TRAIN_H

#include "io/io_internal.h"
#include "solve/lbfgs.h"

/* What carries a run from one step to the next, beyond the model and curves: owned by the tg_training
 * (t->state) so that a stopped run can be saved (tg_training_save) and resumed. */
struct tg_train_state {
    tg_optimizer *opt;
    tg_rng shuffle; /* the data seed's stream: splits first, then each epoch's order */
    int64_t rows; /* training rows (across ranks: of every rank) */
    int64_t *position; /* across ranks: where each of this rank's rows (t->train) stands among the rows one
                        * process trains on (src/io/shard.c); NULL in one process */
    tg_batcher *batches; /* the training rows in the epoch's order (each epoch reshuffles the last) */
    tg_stream *stream; /* data.stream: the training file in blocks, in place of batches (src/io/stream.c) */
    double loss_sum; /* the losses of the t->steps_done steps taken in the current epoch */
    bool early; /* early stopping is on */
    double best_val; /* the best validation loss so far (inf before the first) */
    int since_best; /* epochs since it */
    tg_tensor **best; /* [n_params] when early: the best weights; after the run, when swapped, the last ones */
    bool swapped; /* the model holds the best weights and best the last ones (the run has ended) */
    uint64_t data_hash; /* of the training and validation rows, once hashed */
    bool hashed;
    char *settings; /* JSON: what a resumed run's config must repeat (train_state.c) */
    /* optimizer.type lbfgs (full_batch.c): the solver's point, in float64 whatever the model's dtype,
     * and its state between iterations */
    double *w;
    tg_lbfgs_state lbfgs;
};
/* Across ranks: the data hash of training checkpoints, computed by every rank now (it is a sum over the
 * ranks' rows, and a save is rank 0's alone). A no-op in one process. */
int tg_train_hash_ranks(tg_training *t);
/* optimizer.type lbfgs: the full-batch objective minimised by tg_lbfgs_minimize
 * on t->model over t->train (src/train/full_batch.c). 0 on success. */
int tg_train_full_batch(const tg_config *cfg, tg_training *t, const tg_train_opts *opts, double started);
/* The periodic checkpoint of opts (checkpoint_path, or the checkpoint callback) for t now; 0 when
 * there is none to make or it succeeded. */
int tg_train_checkpoint(const tg_training *t, const tg_train_opts *opts);
/* Multiply-adds of a full-batch evaluation per worker thread at least (4 Mi): smaller problems use fewer
 * threads. Tests lower it to make small problems run on several. */
extern int64_t tg_full_batch_min_work;
/* The full-batch solver's kernels for one dense linear layer (src/train/linear_blocks.c), float64, row-major:
 * z [n, out] = x [n, d] w^T (w [out, d]) + b (b may be NULL); gw [out, d] += g^T x and gb [out] += the column
 * sums of g [n, out] (gb may be NULL). Fused multiply-adds: the same bits run to run, not tg_linear's bits. */
void tg_block_logits(int64_t n, int64_t d, int64_t out, const double *x, const double *w, const double *b, double *z);
void tg_block_weight_grad(int64_t n, int64_t d, int64_t out, const double *x, const double *g, double *gw, double *gb);
/* Cross-entropy (reduction sum, no class weights or smoothing) of logits z [n, out] against class ids y [n]:
 * the sum into *loss, z overwritten by its gradient softmax(z) - onehot(y). -1, with z untouched and no error
 * set, when a label is outside [0, out) (the tape's tg_cross_entropy then decides: ignore_index or an error). */
int tg_block_softmax_cross_entropy(int64_t n, int64_t out, const int64_t *y, double *z, double *loss);
/* data.stream: opens the training file as a stream (st->stream), the test file, an empty validation
 * set, and refuses what a stream cannot do (src/train/stream_data.c). */
int tg_train_open_stream(const tg_config *cfg, tg_training *t);
/* Fills what train_state.c derives from the config (the settings a resume must repeat). */
int tg_train_state_describe(tg_training *t, const tg_config *cfg);
void tg_train_state_free(struct tg_train_state *st);
/* Continues t (opened from cfg, not yet trained) from the training checkpoint at path; under lbfgs,
 * t->state's w and lbfgs (allocated) are restored. */
int tg_trainer_restore_state(tg_training *t, const tg_config *cfg, const char *path);

#endif
