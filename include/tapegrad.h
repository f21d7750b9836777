/*
 * tapegrad — a small reverse-mode autograd library for classifiers in C.
 *
 * Read this header top to bottom: tensors, random numbers, the tape, ops
 * (elementwise, products, reductions, softmax, the losses), backward, ops of
 * your own, gradient checking; then the classifier toolkit: data (CSV, IDX,
 * libsvm), minibatches, layers and models, optimizers, penalties, the
 * full-batch L-BFGS / OWL-QN solver, configs, checkpoints, training and
 * evaluation, interrupting and resuming, metrics; then errors, allocation,
 * threads and I/O hooks. Every function here carries TG_API; nothing else is
 * exported.
 *
 * Ownership in one paragraph: tensors made with tg_tensor_new / tg_tensor_from
 * are the caller's and are freed with tg_tensor_free (parameters, inputs,
 * targets). Every tensor an op returns belongs to the tape it ran on and is
 * valid until tg_tape_reset or tg_tape_free; calling tg_tensor_free on it does
 * nothing. The gradient of a caller-owned tensor (tg_grad) belongs to that
 * tensor; the gradient of a tape tensor belongs to the tape.
 *
 * Errors in one paragraph: a function that makes a tensor returns NULL on
 * failure, a function that returns int returns non-zero; tg_last_error() then
 * says what went wrong (which op, which shapes, what was expected). Every op
 * given a NULL input returns NULL and keeps the first error, so an expression
 * can be checked once at its end. The library never prints and never exits.
 *
 * NULL in one paragraph: every function accepts NULL in every pointer argument
 * without crashing. Functions that make or compute something return their
 * failure value (NULL, -1, NaN) with tg_last_error set; a getter returns its
 * "none" value (NULL, -1 or 0, (tg_dtype)-1); tg_*_free, tg_fill and tg_zero_grad
 * on NULL do nothing. Where NULL means something (a NULL bias, NULL opts for
 * the defaults) the function's comment says so. tests/gen_null_sweep.py
 * generates a test from this header that calls each function with NULL in
 * each pointer argument in turn.
 */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every public function carries TG_API: the shared library is built with hidden
 * visibility, so only what this header declares can be linked against. */
#if defined(TAPEGRAD_BUILDING) && defined(__GNUC__)
#define TG_API __attribute__((visibility("default")))
#else
#define TG_API
#endif

/* Marks an old spelling kept so existing programs compile; the message names the new one. */
#if defined(__GNUC__)
#define TG_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define TG_DEPRECATED(msg)
#endif

#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 1
#define TG_VERSION_PATCH 0

#define TG_MAX_DIMS 8 /* tensors have 0 to TG_MAX_DIMS dimensions */
#define TG_ALL INT32_MIN /* the axis argument that means "every axis" */

/* ------------------------------------------------------------------------ */
/* Tensors                                                                   */
/* ------------------------------------------------------------------------ */

/* TG_F32 and TG_F64 hold values; TG_I64 holds class labels (targets). */
typedef enum { TG_F32, TG_F64, TG_I64 } tg_dtype;

typedef struct tg_tensor tg_tensor;
typedef struct tg_tape tg_tape;

/* Zero-filled, contiguous row-major. Caller owns; free with tg_tensor_free. */
TG_API tg_tensor *tg_tensor_new(tg_dtype dtype, int ndim, const int64_t *shape);
/* Like tg_tensor_new, then copies numel * dtype-size bytes from data. */
TG_API tg_tensor *tg_tensor_from(tg_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* A caller-owned deep copy of t's values (not its gradient). */
TG_API tg_tensor *tg_tensor_clone(const tg_tensor *t);
/* Frees a caller-owned tensor and its gradient. NULL and tape tensors: no-op. */
TG_API void tg_tensor_free(tg_tensor *t);

/* Marks a leaf as a parameter: tg_backward fills tg_grad(t). */
TG_API void tg_set_requires_grad(tg_tensor *t, int on);
TG_API int tg_requires_grad(const tg_tensor *t);

TG_API void *tg_data(const tg_tensor *t); /* contiguous, row-major */
TG_API tg_tensor *tg_grad(const tg_tensor *t); /* NULL before backward */
TG_API tg_dtype tg_dtype_of(const tg_tensor *t);
TG_API int tg_ndim(const tg_tensor *t);
TG_API int64_t tg_dim(const tg_tensor *t, int axis); /* negative axis counts from the end; -1 if out of range */
TG_API const int64_t *tg_shape(const tg_tensor *t);
TG_API int64_t tg_numel(const tg_tensor *t);
TG_API size_t tg_dtype_size(tg_dtype dtype);
TG_API const char *tg_dtype_name(tg_dtype dtype);

/* Element i (flat, row-major) read or written as a double, any dtype. An index
 * outside [0, numel) (or a NULL tensor) is an error: tg_get returns NaN, tg_set
 * writes nothing. tg_dtype_of(NULL) is (tg_dtype)-1. */
TG_API double tg_get(const tg_tensor *t, int64_t i);
TG_API void tg_set(tg_tensor *t, int64_t i, double v);
/* Sets every element to v. */
TG_API void tg_fill(tg_tensor *t, double v);
/* Sets the gradient to zero (keeps its memory); no-op when there is none. */
TG_API void tg_zero_grad(tg_tensor *t);

/* ------------------------------------------------------------------------ */
/* Random numbers: a seeded generator, the same on every platform            */
/* ------------------------------------------------------------------------ */

/* xoshiro256** seeded through splitmix64. No global state: the caller keeps it.
 * A NULL rng is an error: 0 from the integer draws, NaN from the real ones. */
typedef struct {
    uint64_t s[4];
} tg_rng;
TG_API void tg_rng_seed(tg_rng *rng, uint64_t seed);
TG_API uint64_t tg_rng_next(tg_rng *rng);
TG_API double tg_rng_uniform(tg_rng *rng); /* [0, 1), 53 random bits */
TG_API double tg_rng_normal(tg_rng *rng); /* mean 0, variance 1 (Box-Muller) */
TG_API uint64_t tg_rng_below(tg_rng *rng, uint64_t n); /* uniform in [0, n), unbiased; n = 0: 0 and an error */
/* Fills t with uniform values in [lo, hi). */
TG_API void tg_rng_fill_uniform(tg_rng *rng, tg_tensor *t, double lo, double hi);

/* ------------------------------------------------------------------------ */
/* The tape                                                                  */
/* ------------------------------------------------------------------------ */

/* A tape records the ops run on it (define-by-run) and owns their outputs.
 * Its memory is an arena: tg_tape_reset drops every recorded node and tensor
 * at once but keeps the blocks, so a training loop that does the same work
 * each step allocates nothing after its first step. A tape tensor kept past
 * the reset that dropped it is stale: every op and tg_backward refuse it with
 * an error naming the op and the input (docs/robustness.md says how). */
TG_API tg_tape *tg_tape_new(void);
TG_API void tg_tape_reset(tg_tape *tape);
TG_API void tg_tape_free(tg_tape *tape);
/* With recording off, ops compute their outputs but keep no graph (inference).
 * Returns the previous setting. */
TG_API int tg_tape_set_recording(tg_tape *tape, int on);
TG_API int tg_tape_recording(const tg_tape *tape);
/* Number of nodes recorded since the last reset. */
TG_API int64_t tg_tape_size(const tg_tape *tape);
/* Bytes the tape holds from the allocator (its blocks), used or not. */
TG_API size_t tg_tape_capacity(const tg_tape *tape);
/* Writes the recorded graph as Graphviz DOT: one node per op with its output
 * shape, one box per leaf, edges from inputs. Does not close out. 0 on success. */
TG_API int tg_tape_dot(const tg_tape *tape, FILE *out);
/* A zero-filled tensor that belongs to the tape (for a custom op's scratch or
 * output), valid until the next reset. */
TG_API tg_tensor *tg_tape_tensor(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape);

/* ------------------------------------------------------------------------ */
/* Ops. Each returns a tape tensor, or NULL with tg_last_error set.          */
/* Inputs of one op must share a float dtype: float32 and float64 do not mix. */
/* ------------------------------------------------------------------------ */

/* Elementwise with numpy broadcasting; gradients are summed back to each
 * input's shape. */
TG_API tg_tensor *tg_add(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_sub(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_mul(tg_tape *tape, tg_tensor *a, tg_tensor *b);
TG_API tg_tensor *tg_div(tg_tape *tape, tg_tensor *a, tg_tensor *b);

/* Elementwise. log(0) = -inf and log(x<0) = NaN, as in C and PyTorch;
 * relu'(0) = 0. */
TG_API tg_tensor *tg_neg(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_exp(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_log(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_relu(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_sigmoid(tg_tape *tape, tg_tensor *x);
TG_API tg_tensor *tg_tanh(tg_tape *tape, tg_tensor *x);

/* [m, k] x [k, n] -> [m, n]. */
TG_API tg_tensor *tg_matmul(tg_tape *tape, tg_tensor *a, tg_tensor *b);
/* y = x W^T + b as one node: x [m, in], W [out, in] (PyTorch's nn.Linear
 * layout), b [out] or NULL -> [m, out]. */
TG_API tg_tensor *tg_linear(tg_tape *tape, tg_tensor *x, tg_tensor *weight, tg_tensor *bias);

/* Sum / mean over one axis (the axis is removed) or over all (axis TG_ALL,
 * giving a 0-dimensional scalar). Negative axes count from the end. */
TG_API tg_tensor *tg_sum(tg_tape *tape, tg_tensor *x, int axis);
TG_API tg_tensor *tg_mean(tg_tape *tape, tg_tensor *x, int axis);

/* Same data, new shape; one entry of shape may be -1 (inferred). */
TG_API tg_tensor *tg_reshape(tg_tape *tape, tg_tensor *x, int ndim, const int64_t *shape);
/* Swaps two axes (the result is a contiguous copy). */
TG_API tg_tensor *tg_transpose(tg_tape *tape, tg_tensor *x, int axis0, int axis1);

/* Numerically stable (the max is subtracted; log_softmax uses log-sum-exp).
 * Negative axes count from the end. */
TG_API tg_tensor *tg_softmax(tg_tape *tape, tg_tensor *x, int axis);
TG_API tg_tensor *tg_log_softmax(tg_tape *tape, tg_tensor *x, int axis);
/* The explicit Jacobian of softmax along axis, for tests and teaching:
 * for x of shape [..., n, ...] the result has x's shape without axis, then
 * [n, n]; entry [.., i, j] = y_i (delta_ij - y_j). Not recorded. */
TG_API tg_tensor *tg_softmax_jacobian(tg_tape *tape, tg_tensor *x, int axis);

typedef enum { TG_MEAN, TG_SUM, TG_NONE } tg_reduction;
typedef struct {
    tg_reduction reduction; /* TG_MEAN, TG_SUM, or TG_NONE (a loss per position, the target's shape: [K] for
                               [K, C], [N, d1, ..., dk] for [N, C, d1, ..., dk]); the mean is PyTorch's:
                               class-index targets divide by the sum of the target classes' weights over the
                               positions not ignored, probability targets divide by the number of positions */
    const tg_tensor *weight; /* per-class weights [C] of the input's dtype, or NULL */
    int64_t ignore_index; /* positions with this class index add nothing, whatever its value (negative or
                             outside [0, C) too); PyTorch's default -100 */
    double label_smoothing; /* finite, in [0, 1] */
} tg_ce_opts;
#define TG_CE_OPTS_DEFAULT                                                                                             \
    ((tg_ce_opts){ .reduction = TG_MEAN, .weight = NULL, .ignore_index = -100, .label_smoothing = 0.0 })

/* Fused softmax + cross-entropy over logits [K, C], [C] for one row, or
 * [N, C, d1, ..., dk] (k >= 1: one row of C logits per position, class axis
 * 1, as PyTorch and ONNX). target: class indices (TG_I64) of the logits'
 * shape without axis 1 ([K], a 0-d tensor, [N, d1, ..., dk]), or
 * probabilities (the logits' dtype and shape). The gradient is
 * (softmax(x) * sum(q) - q) scaled by the reduction, q being the weighted,
 * smoothed target; one pass, walking the class axis with its stride (no
 * transposed copy), never taking a log of softmax, so it stays finite for any
 * finite logits. opts NULL: TG_CE_OPTS_DEFAULT. With every position ignored
 * (or every kept one's target weight 0) the mean is NaN (0/0, as in PyTorch),
 * sum and none are 0, and the gradient is zero. NULL, with a message naming
 * the shapes and the first offending axis or position, for a target of
 * another shape, a class id outside [0, C) that is not ignore_index, a weight
 * that is not [C] of the logits' dtype, a label_smoothing outside [0, 1]. */
TG_API tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, tg_tensor *target, const tg_ce_opts *opts);
/* Negative log-likelihood over log-probabilities [K, C], [C] or
 * [N, C, d1, ..., dk] with class indices of their shape without axis 1: per
 * position p, loss_p = -w[t_p] logp[.., t_p, ..]; weight, ignore_index,
 * reduction and errors as in tg_cross_entropy (label_smoothing must be 0). */
TG_API tg_tensor *tg_nll_loss(tg_tape *tape, tg_tensor *log_probs, tg_tensor *target, const tg_ce_opts *opts);

/* Options of the binary losses. weight and pos_weight are constants (they get no gradient), of the
 * input's dtype, and broadcast to the input's shape by numpy's rules (aligned at the right, each
 * dimension equal or 1; they never make the loss larger than the input). */
typedef struct {
    tg_reduction reduction; /* TG_MEAN (over every element, whatever the weights: PyTorch's rule),
                               TG_SUM, or TG_NONE (a loss per element, the input's shape) */
    const tg_tensor *weight; /* per-element weight w, or NULL */
    const tg_tensor *pos_weight; /* weight p of the positive term, e.g. [C] for one per class on the last
                                    axis, or NULL; tg_binary_cross_entropy_with_logits only */
} tg_bce_opts;
#define TG_BCE_OPTS_DEFAULT ((tg_bce_opts){ .reduction = TG_MEAN, .weight = NULL, .pos_weight = NULL })

/* Fused sigmoid + binary cross-entropy, PyTorch's BCEWithLogitsLoss, over logits of any shape with a
 * target y of the same shape and dtype (probabilities in [0, 1]; like PyTorch, other values are not
 * refused and go through the same formula). Per element
 *   loss = -w [p y log s(x) + (1 - y) log(1 - s(x))] = w [p y softplus(-x) + (1 - y) softplus(x)],
 * computed with softplus(+-x) = max(+-x, 0) + log1p(exp(-|x|)), so it is finite for any finite
 * logit, and the small loss of a confident right answer keeps its relative precision.
 * The gradient is w ((1 + (p - 1) y) s(x) - p y) (w (s(x) - y) without pos_weight) times the
 * reduction's scale; one node, no log of a sigmoid. A target that requires a gradient gets
 * w (p softplus(-x) - softplus(x)). opts NULL: TG_BCE_OPTS_DEFAULT. An empty input's mean is NaN. */
TG_API tg_tensor *tg_binary_cross_entropy_with_logits(tg_tape *tape, tg_tensor *logits, tg_tensor *target,
                                                      const tg_bce_opts *opts);
/* Binary cross-entropy over probabilities p of any shape, PyTorch's BCELoss: per element
 *   loss = -w [y max(log p, -100) + (1 - y) max(log(1 - p), -100)],
 * each log clamped at -100 as PyTorch does, so p = 0 or 1 gives a finite loss (at most 100 w).
 * Every p must be in [0, 1] (NaN is refused too, as in PyTorch): else NULL, naming the first
 * offending element. target, weight and reduction as in the with-logits form; pos_weight must be
 * NULL. The gradient is PyTorch's w (p - y) / max(p (1 - p), 1e-12); a target that requires a
 * gradient gets w (max(log(1 - p), -100) - max(log p, -100)), the derivative of the clamped loss
 * (PyTorch 1.13 leaves these logs unclamped: infinite at p = 0 or 1). From logits, prefer
 * tg_binary_cross_entropy_with_logits: sigmoid then this loses everything past |x| of about 37. */
TG_API tg_tensor *tg_binary_cross_entropy(tg_tape *tape, tg_tensor *probs, tg_tensor *target, const tg_bce_opts *opts);
/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(exp(-|x|)), finite for every finite x; derivative
 * sigmoid(x). PyTorch's softplus returns x itself above its threshold 20; this one stays exact
 * there (the two differ by less than 2.1e-9). */
TG_API tg_tensor *tg_softplus(tg_tape *tape, tg_tensor *x);
/* log(sigmoid(x)) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)); derivative sigmoid(-x). */
TG_API tg_tensor *tg_log_sigmoid(tg_tape *tape, tg_tensor *x);

/* ------------------------------------------------------------------------ */
/* Backward                                                                  */
/* ------------------------------------------------------------------------ */

/* Walks the tape in reverse from a one-element loss and accumulates (+=)
 * dL/dx into tg_grad(x) of every tensor that requires a gradient. Gradients
 * of caller-owned tensors accumulate across calls until tg_zero_grad, as in
 * PyTorch; the tape may be walked again (its intermediates' gradients are
 * cleared first). 0 on success. */
TG_API int tg_backward(tg_tape *tape, tg_tensor *loss);
/* The vector-Jacobian product: like tg_backward, seeded with grad_output
 * (same shape and dtype as output) instead of 1. */
TG_API int tg_backward_with(tg_tape *tape, tg_tensor *output, const tg_tensor *grad_output);

/* ------------------------------------------------------------------------ */
/* Ops of your own                                                           */
/* ------------------------------------------------------------------------ */

/* forward fills out (already allocated with the requested shape and the
 * inputs' dtype, zero-filled). backward receives the upstream gradient and
 * adds into grad_inputs[i] (zero-filled, the shape of inputs[i]; NULL for an
 * input that needs no gradient). Each returns 0, or non-zero to fail the op
 * or the backward pass. */
typedef struct {
    const char *name;
    int (*forward)(tg_tensor *const *inputs, int n_inputs, tg_tensor *out, void *ctx);
    int (*backward)(tg_tensor *const *inputs, int n_inputs, const tg_tensor *out, const tg_tensor *grad_out,
                    tg_tensor *const *grad_inputs, void *ctx);
} tg_custom_op;
/* Runs op->forward and records the op on the tape. ctx must outlive the tape's
 * next reset. At most 8 inputs. */
TG_API tg_tensor *tg_custom(tg_tape *tape, const tg_custom_op *op, int n_inputs, tg_tensor *const *inputs, int out_ndim,
                            const int64_t *out_shape, void *ctx);

/* ------------------------------------------------------------------------ */
/* Gradient checking                                                         */
/* ------------------------------------------------------------------------ */

/* fn builds an expression from inputs on the tape it is given and returns its output */
typedef tg_tensor *(*tg_fn)(tg_tape *tape, tg_tensor *const *inputs, void *ctx);
typedef struct {
    double eps, atol, rtol;
} tg_gradcheck_opts; /* NULL: eps 1e-6, atol 1e-5, rtol 1e-3 (PyTorch's) */
#define TG_GRADCHECK_OPTS_DEFAULT ((tg_gradcheck_opts){ .eps = 1e-6, .atol = 1e-5, .rtol = 1e-3 })
typedef struct {
    int passed;
    int worst_input; /* the input holding the worst element */
    int64_t worst_index; /* its flat index */
    double analytic, numeric, abs_err;
    int64_t checked; /* elements compared */
} tg_gradcheck_report;
/* Checks every float64 input that requires a gradient (at least one must):
 * the analytic vector-Jacobian product with a random upstream vector against
 * central differences. Inputs' values are restored and their gradients left
 * as they were. Returns 0 when every gradient agrees (|a - n| <= atol +
 * rtol |n|), 1 when one does not (report names the worst), -1 on error.
 * report may be NULL. */
TG_API int tg_gradcheck(tg_fn fn, int n_inputs, tg_tensor *const *inputs, void *ctx, const tg_gradcheck_opts *opts,
                        tg_gradcheck_report *report);

/* ======================================================================== */
/* The classifier toolkit: data, layers, optimizers, configs, checkpoints    */
/* ======================================================================== */

/* ---- Data (src/io/csv.c, src/io/idx.c, src/io/dataset.c) ---- */

/* A labelled data set, dense (x: one contiguous float32 block) or sparse
 * (x NULL, the features in CSR form: what tg_libsvm_load makes). Caller owns
 * it; free with tg_dataset_free. Every tg_dataset_* function below takes both
 * kinds, and so do tg_evaluate and tg_predict; tg_batcher and training take
 * dense data only and say so when given sparse data. */
typedef struct {
    int64_t rows, features, classes;
    float *x; /* [rows, features], row-major; NULL when the data set is sparse */
    int64_t *y; /* [rows], class ids in [0, classes) */
    char **label_names; /* [classes]: the label text of each class id (integer labels: "0", "1", ...) */
    char **feature_names; /* [features] from the CSV header, or NULL */
    /* Sparse (CSR) storage, used when x is NULL: row r's stored values are
     * val[row_ptr[r] .. row_ptr[r + 1]) at the 0-based feature columns col[...],
     * strictly increasing within a row; every other feature is 0. Explicit
     * zeros written in the file are kept. All NULL / 0 for a dense data set. */
    int64_t *row_ptr; /* [rows + 1], row_ptr[0] = 0, row_ptr[rows] = nnz */
    int32_t *col; /* [nnz] */
    float *val; /* [nnz] */
    int64_t nnz;
} tg_dataset;

typedef struct {
    int header; /* 1: the first row is a header; 0: no header; -1: detect (a first row with a non-numeric feature cell) */
    int64_t label_column; /* index of the label column; negative counts from the end (-1 = last) */
    const char *label_name; /* or the label column by header name (overrides label_column) */
    const int64_t *columns; /* feature column indices, or NULL for every column but the label */
    int64_t n_columns;
    char delimiter; /* 0 = ',' */
    /* Labels are class ids (integers 0..C-1) or strings mapped to ids in order
     * of first appearance. To map a second file (a test set) the same way,
     * pass the first file's names: then an unknown label is an error. */
    char *const *label_names;
    int64_t n_label_names;
    /* 1: the file has no label column (data to predict): every selected column
     * is a feature, y is all zeros and classes is 0. */
    int unlabeled;
} tg_csv_opts;
#define TG_CSV_OPTS_DEFAULT ((tg_csv_opts){ .header = -1, .label_column = -1 })

/* Loads a CSV file. Errors name the file, line and column: a ragged row, a
 * non-numeric cell, NaN or Inf, an unknown label, a missing or empty file. */
TG_API tg_dataset *tg_csv_load(const char *path, const tg_csv_opts *opts);
/* The libsvm / svmlight text format, one row a line: `label index:value ...`
 * with 1-based, strictly increasing indices; `#` starts a comment (a whole
 * line or the rest of one); blank lines are skipped; CRLF line ends and a
 * missing last newline are accepted. Labels are texts mapped to class ids as
 * tg_csv_load maps them (integers 0, 1, ... are class ids; anything else, "+1"
 * and "-1" included, is a name in order of first appearance; label_names
 * fixes the mapping for a second file). A `qid:` token (ranking data) is
 * refused. Values must be finite and within float32's range. */
typedef struct {
    /* 0: the feature count is the largest index in the file. N > 0: fixed
     * (e.g. the training file's count for a test file); an index above N is an
     * error, or with skip_unknown_features 1 the pair is dropped. */
    int64_t features;
    int skip_unknown_features;
    char *const *label_names; /* as tg_csv_opts.label_names: an unknown label is then an error */
    int64_t n_label_names;
} tg_libsvm_opts;
#define TG_LIBSVM_OPTS_DEFAULT ((tg_libsvm_opts){ .features = 0 })
/* Loads a libsvm file as a sparse data set (x NULL, CSR filled; opts NULL:
 * the defaults). Errors name the file, line and column (1-based byte of the
 * line): index 0, a decreasing or repeated index, an index above 2^31 - 1 or
 * above opts->features, a pair that is not index:value, NaN or Inf, an empty
 * file, no feature anywhere, an unknown label. */
TG_API tg_dataset *tg_libsvm_load(const char *path, const tg_libsvm_opts *opts);
/* CSV and IDX paths must name regular files (a device or FIFO is refused at
 * once). The CSV is streamed: memory is the data set plus a 1 MiB buffer. */
/* Loads MNIST-format IDX files (gzipped or not): images [N, rows, cols] of
 * unsigned bytes scaled by `scale` (1/255 maps pixels to [0, 1]) and labels [N]. */
TG_API tg_dataset *tg_idx_load(const char *images_path, const char *labels_path, double scale);
TG_API void tg_dataset_free(tg_dataset *ds);
/* Copies the rows idx[0..n) into a new data set (same classes and names;
 * sparse stays sparse). */
TG_API tg_dataset *tg_dataset_subset(const tg_dataset *ds, const int64_t *idx, int64_t n);
/* Shuffles the row order with rng and splits off the last round(fraction * rows)
 * rows into *second, the rest into *first. Both caller-owned. 0 on success. */
TG_API int tg_dataset_split(const tg_dataset *ds, double fraction, tg_rng *rng, tg_dataset **first,
                            tg_dataset **second);
/* Per-feature mean and standard deviation (population, as sklearn's StandardScaler;
 * a zero deviation is stored as 1 so constant columns pass through centred).
 * Sparse data: scaling only, as StandardScaler(with_mean=False): std is the
 * same population deviation (implicit zeros counted) and mean is set to 0,
 * since centring would make every zero non-zero. */
TG_API int tg_dataset_moments(const tg_dataset *ds, float *mean, float *std);
/* scikit-learn's class_weight="balanced": weights[k] = rows / (classes * rows of class k), [classes]
 * values. A class without rows is refused (its weight would be infinite). */
TG_API int tg_balanced_class_weights(const tg_dataset *ds, double *weights);
/* x = (x - mean) / std, in place. Sparse data: the stored values are divided
 * by std and mean is not used (pass what tg_dataset_moments gave: zeros), so
 * the data stays sparse. */
TG_API void tg_dataset_standardize(tg_dataset *ds, const float *mean, const float *std);

/* ---- Sparse inputs (src/tensor/sparse.c, src/ops/sparse_linear.c; docs/ops.md) ---- */

/* A batch of sparse rows in CSR form: row offsets int64, column indices int32
 * (0-based, strictly increasing within a row), values in a float dtype (the
 * model's). It is data, not a tensor: it never needs a gradient, so it is the
 * left operand of its own product op (tg_sparse_linear) and tg_tensor stays
 * dense. Caller owns it; free with tg_sparse_csr_free. */
typedef struct tg_sparse_csr tg_sparse_csr;
/* Copies and checks a CSR matrix [rows, cols]: row_ptr [rows + 1] from 0 to
 * nnz, non-decreasing; col [nnz] in [0, cols), increasing within each row;
 * values [nnz] of dtype (finite not required). rows and nnz may be 0 (then the
 * arrays may be NULL): an empty buffer for tg_sparse_csr_gather. */
TG_API tg_sparse_csr *tg_sparse_csr_new(tg_dtype dtype, int64_t rows, int64_t cols, int64_t nnz, const int64_t *row_ptr,
                                        const int32_t *col, const void *values);
TG_API void tg_sparse_csr_free(tg_sparse_csr *s);
/* Fills dst with rows idx[0..n) of a sparse data set (idx NULL: rows first ..
 * first + n), values converted to dst's dtype, cols = ds->features. dst's
 * buffers grow when a batch needs more and are kept: after the largest batch
 * has been seen, a gather allocates nothing. 0 on success. */
TG_API int tg_sparse_csr_gather(tg_sparse_csr *dst, const tg_dataset *ds, const int64_t *idx, int64_t first, int64_t n);
TG_API int64_t tg_sparse_csr_rows(const tg_sparse_csr *s);
TG_API int64_t tg_sparse_csr_cols(const tg_sparse_csr *s);
TG_API int64_t tg_sparse_csr_nnz(const tg_sparse_csr *s);
TG_API tg_dtype tg_sparse_csr_dtype(const tg_sparse_csr *s); /* (tg_dtype)-1 for NULL */
/* A caller-owned dense copy [rows, cols] (for tests and small batches). */
TG_API tg_tensor *tg_sparse_csr_to_dense(const tg_sparse_csr *s);
/* y = x W^T + b for a sparse x [m, F], W [out, F] (nn.Linear's layout, as
 * tg_linear), b [out] or NULL -> [m, out] on the tape: tg_linear with a sparse
 * left operand. A separate op because the operand is not a tg_tensor. Cost
 * O(nnz * out) forward and backward, whatever F is. The backward adds into
 * dW and db only (x needs no gradient), and dW only in the columns that occur
 * in the batch; those columns are remembered with W's gradient, so a lazy
 * optimizer (tg_optim_opts.lazy) updates and clears just them. x must stay
 * unchanged until the backward has run. */
TG_API tg_tensor *tg_sparse_linear(tg_tape *tape, const tg_sparse_csr *x, tg_tensor *weight, tg_tensor *bias);
/* y = x W for a sparse x [m, F] and W [F, out] -> [m, out]: tg_matmul with a
 * sparse left operand (add a bias with tg_add). The faster layout for large
 * F: a non-zero reads and updates one contiguous row of W, where
 * tg_sparse_linear's [out, F] has `out` values F apart. The backward adds
 * into the rows of dW that occur in the batch and remembers them, as above. */
TG_API tg_tensor *tg_sparse_matmul(tg_tape *tape, const tg_sparse_csr *x, tg_tensor *w);

/* ---- Minibatches (src/nn/batcher.c) ---- */

/* A data set's rows in batches of batch_size (the last one shorter when
 * batch_size does not divide the row count; batch_size above the row count
 * means one batch of every row), gathered into x [n, features] in dtype
 * (TG_F32 or TG_F64) and y [n] (TG_I64 labels). Every tensor it hands out is
 * made in tg_batcher_new: x and y are refilled by each tg_batcher_next, and
 * the last, shorter batch has its own pair (a tensor's shape never changes),
 * so an epoch allocates nothing. tapegrad train draws its batches from it.
 *
 *     tg_batcher *b = tg_batcher_new(train, 32, TG_F32, NULL);
 *     for (int epoch = 0; epoch < epochs; epoch++) {
 *         tg_batcher_reset(b, &rng);           // a new epoch, rows shuffled
 *         tg_tensor *x, *y;
 *         while (tg_batcher_next(b, &x, &y) == 1) { ... one step on x, y ... }
 *     }
 *     tg_batcher_free(b);
 */
typedef struct tg_batcher tg_batcher;
typedef struct {
    /* [features] each, both or neither: x = (row - mean) / std, computed in
     * float32 as tapegrad train does (a model's: tg_model_mean, tg_model_std).
     * Copied by tg_batcher_new. NULL: rows as they are. */
    const float *mean, *std;
} tg_batcher_opts;
/* ds must outlive the batcher; opts NULL: no standardization. The first epoch
 * takes the rows in order (0, 1, 2, ...) until tg_batcher_reset shuffles
 * them. Free with tg_batcher_free. */
TG_API tg_batcher *tg_batcher_new(const tg_dataset *ds, int64_t batch_size, tg_dtype dtype,
                                  const tg_batcher_opts *opts);
TG_API void tg_batcher_free(tg_batcher *b);
/* Starts a new epoch at the first batch. With shuffle non-NULL, first
 * shuffles the row order (Fisher-Yates over the previous epoch's order, from
 * the last row down, one tg_rng_below(shuffle, r + 1) per row r): the same
 * seed gives the same batches. NULL keeps the order. */
TG_API void tg_batcher_reset(tg_batcher *b, tg_rng *shuffle);
/* The epoch's next batch into *x and *y (y may be NULL when labels are not
 * wanted): returns 1 while there is one, 0 at the end of the epoch (then *x
 * and *y are NULL until tg_batcher_reset), -1 on error. The tensors belong to
 * the batcher and are overwritten by the next call. */
TG_API int tg_batcher_next(tg_batcher *b, tg_tensor **x, tg_tensor **y);
/* Batches per epoch, and the rows of a full batch (batch_size, or the row count if smaller). */
TG_API int64_t tg_batcher_batches(const tg_batcher *b);
TG_API int64_t tg_batcher_batch_size(const tg_batcher *b);
/* The data set's row ids of the batch tg_batcher_next returned last, and in *n
 * how many (0 before the epoch's first batch; n may be NULL). Valid until the next reset. */
TG_API const int64_t *tg_batcher_rows(const tg_batcher *b, int64_t *n);

/* ---- Layers and models (src/nn/) ---- */

typedef enum { TG_LAYER_LINEAR, TG_LAYER_RELU, TG_LAYER_SIGMOID, TG_LAYER_TANH } tg_layer_type;
/* The names configs and checkpoints use ("linear", "relu", "sigmoid", "tanh"):
 * NULL for a value outside the enum; the type of a name, or -1 when unknown. */
TG_API const char *tg_layer_type_name(tg_layer_type type);
TG_API int tg_layer_type_from_name(const char *name);
typedef struct {
    tg_layer_type type;
    int64_t out; /* linear: output features */
    int bias; /* linear: 1 to add a bias */
} tg_layer_spec;

/* A linear layer's parameters in nn.Linear's layout: weight [out, in], bias
 * [out] or NULL. Weights are drawn uniformly with Glorot's bound
 * sqrt(6 / (in + out)), or He's sqrt(6 / in) when the layer feeds a ReLU
 * (he = 1); biases start at zero. Caller owns both tensors. */
typedef struct {
    tg_tensor *weight, *bias;
} tg_linear_layer;
/* rng NULL: the weights stay zero. */
TG_API int tg_linear_layer_init(tg_linear_layer *layer, tg_dtype dtype, int64_t in, int64_t out, int bias, int he,
                                tg_rng *rng);
TG_API void tg_linear_layer_free(tg_linear_layer *layer);

/* A feed-forward classifier: layers in order, logits out. Owns its parameters,
 * and optionally what a checkpoint carries along: label names, the input
 * standardization and the config text. */
typedef struct tg_model tg_model;
/* Builds and initialises a model from rng. Every linear layer must have a
 * positive out; the last layer must be linear (its out is the class count).
 * A binary model has one output and two classes, P(class 1) = sigmoid(its
 * logit), as scikit-learn's binary LogisticRegression: a last layer with out
 * 1, then tg_model_set_labels with two names (training does both). */
TG_API tg_model *tg_model_new(tg_dtype dtype, int64_t inputs, int n_layers, const tg_layer_spec *layers, tg_rng *rng);
TG_API void tg_model_free(tg_model *model);
/* Logits [rows, classes] for x [rows, inputs] ([rows, 1] for a binary model), recorded on the tape. */
TG_API tg_tensor *tg_model_forward(tg_model *model, tg_tape *tape, tg_tensor *x);
/* The same forward with params[i] in place of tg_model_param(model, i) (all
 * tg_model_n_params of them, same shapes): a functional call, e.g. to check
 * the gradient with respect to one parameter through a tape tensor. */
TG_API tg_tensor *tg_model_forward_with(const tg_model *model, tg_tape *tape, tg_tensor *x, tg_tensor *const *params);
TG_API int64_t tg_model_inputs(const tg_model *model);
TG_API int64_t tg_model_classes(const tg_model *model);
TG_API tg_dtype tg_model_dtype(const tg_model *model);
TG_API int tg_model_n_layers(const tg_model *model);
TG_API const tg_layer_spec *tg_model_layer(const tg_model *model, int i);
/* Parameters in state_dict order ("0.weight", "0.bias", "2.weight", ...). */
TG_API int tg_model_n_params(const tg_model *model);
TG_API tg_tensor *tg_model_param(tg_model *model, int i); /* mutable: the optimizer's parameter */
TG_API const tg_tensor *tg_model_param_const(const tg_model *model, int i); /* read-only view */
TG_API const char *tg_model_param_name(const tg_model *model, int i);
/* What a checkpoint carries besides the weights; setters copy their inputs.
 * classes must be the model's; two names for a one-output model make it binary. */
TG_API int tg_model_set_labels(tg_model *model, int64_t classes, char *const *names);
TG_API const char *tg_model_label(const tg_model *model, int64_t class_id); /* NULL when none */
/* mean and std [inputs] each, or both NULL to clear. Refused (-1, the model
 * unchanged, the message names the first bad index): only one of them NULL, a
 * mean that is not finite, a std <= 0 or not finite. tg_model_load applies the
 * same rule to a checkpoint's standardization. */
TG_API int tg_model_set_standardization(tg_model *model, const float *mean, const float *std);
TG_API const float *tg_model_mean(const tg_model *model); /* NULL when none */
TG_API const float *tg_model_std(const tg_model *model);
TG_API int tg_model_set_config_json(tg_model *model, const char *json);
TG_API const char *tg_model_config_json(const tg_model *model); /* NULL when none */

/* ---- Optimizers (src/nn/optim.c) ---- */

/* TG_OPTIM_LBFGS is the full-batch solver of a config (tg_lbfgs_minimize);
 * tg_optimizer_new refuses it. */
typedef enum { TG_OPTIM_SGD, TG_OPTIM_ADAM, TG_OPTIM_ADAMW, TG_OPTIM_LBFGS } tg_optim_type;
/* PyTorch's torch.optim semantics and names. */
typedef struct {
    tg_optim_type type;
    double lr;
    double momentum, dampening; /* SGD */
    int nesterov; /* SGD */
    double weight_decay; /* SGD and Adam: L2 added to the gradient; AdamW: decoupled */
    double beta1, beta2, eps; /* Adam, AdamW */
    /* 1: a parameter whose gradient came from tg_sparse_linear (or
     * tg_sparse_matmul) only is updated in the columns (rows) the batch
     * touched, nothing else (PyTorch's SparseAdam for
     * Adam: moments and bias correction of the other columns are left as they
     * were; see docs/nn.md). SGD and Adam, without momentum or weight_decay.
     * Other parameters get the dense update. */
    int lazy;
} tg_optim_opts;
#define TG_SGD_DEFAULT(learning_rate) ((tg_optim_opts){ .type = TG_OPTIM_SGD, .lr = (learning_rate) })
#define TG_ADAM_DEFAULT(learning_rate)                                                                                 \
    ((tg_optim_opts){ .type = TG_OPTIM_ADAM, .lr = (learning_rate), .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 })
#define TG_ADAMW_DEFAULT(learning_rate)                                                                                \
    ((tg_optim_opts){ .type = TG_OPTIM_ADAMW,                                                                          \
                      .lr = (learning_rate),                                                                           \
                      .beta1 = 0.9,                                                                                    \
                      .beta2 = 0.999,                                                                                  \
                      .eps = 1e-8,                                                                                     \
                      .weight_decay = 0.01 })

typedef struct tg_optimizer tg_optimizer;
/* The optimizer keeps pointers to params (which must outlive it) and owns its
 * state (momentum, moments), allocated here once. */
TG_API tg_optimizer *tg_optimizer_new(const tg_optim_opts *opts, int n_params, tg_tensor *const *params);
TG_API void tg_optimizer_free(tg_optimizer *opt);
/* One update from the parameters' gradients (a parameter without one is skipped). */
TG_API int tg_optimizer_step(tg_optimizer *opt);
/* Zeroes the gradients; lazy: only the touched columns of a sparse gradient. */
TG_API void tg_optimizer_zero_grad(tg_optimizer *opt);
/* Refuses what tg_optimizer_new refuses (lr not a finite number > 0): -1, the
 * rate unchanged. Returned void before 0.2; callers that ignore the result
 * still compile. */
TG_API int tg_optimizer_set_lr(tg_optimizer *opt, double lr);
TG_API double tg_optimizer_lr(const tg_optimizer *opt);
/* Scales all gradients so that their global L2 norm is at most max_norm
 * (torch.nn.utils.clip_grad_norm_); returns the norm before clipping, or -1
 * (error set) for max_norm not > 0, n_params < 0 or NULL params. */
TG_API double tg_clip_grad_norm(tg_tensor *const *params, int n_params, double max_norm);

/* ---- Penalties with scikit-learn's meaning (src/nn/penalty.c; docs/nn.md) ---- */

/* R(W) over every linear layer's weight (biases are never penalized):
 * l2: ||W||^2 / 2; l1: ||W||_1; elasticnet: l1_ratio ||W||_1 + (1 - l1_ratio) ||W||^2 / 2.
 * The objective is C * sum_i loss_i + R(W), as scikit-learn's LogisticRegression
 * (loss_i weighted by its class weight). Minibatch optimizers minimise the same
 * thing divided by C * n (n training rows): each step's mean loss plus R / (C n). */
typedef enum { TG_PENALTY_NONE, TG_PENALTY_L2, TG_PENALTY_L1, TG_PENALTY_ELASTICNET } tg_penalty_type;
typedef struct {
    tg_penalty_type type;
    double C; /* inverse strength, > 0 */
    double l1_ratio; /* elasticnet only, in [0, 1] */
} tg_penalty;
#define TG_PENALTY_DEFAULT ((tg_penalty){ .type = TG_PENALTY_NONE, .C = 1.0, .l1_ratio = 0.0 })
/* R(W) of the model's weights (in double); NaN with the error set when p is invalid. */
TG_API double tg_penalty_value(const tg_penalty *p, const tg_model *model);
/* Adds scale * dR/dW to every weight's gradient (allocating it when missing).
 * Only the smooth part: an L1 term has no gradient at 0, so its L1 part is
 * refused here (-1) and left to OWL-QN (tg_lbfgs_minimize's l1). 0 on success. */
TG_API int tg_penalty_add_grad(const tg_penalty *p, tg_model *model, double scale);
/* The weights of R's L1 and L2 parts: l1 = 1, 0 / l2 = 0, 1 / elasticnet = l1_ratio, 1 - l1_ratio. */
TG_API void tg_penalty_parts(const tg_penalty *p, double *l1, double *l2);

/* ---- Full-batch L-BFGS and OWL-QN (src/solve/lbfgs.c; docs/nn.md) ---- */

/* The objective: f(w) into *f and its gradient into grad ([n], the callback
 * overwrites it) at w ([n]). Return non-zero to stop the solver (an error). */
typedef int (*tg_lbfgs_fn)(int64_t n, const double *w, double *f, double *grad, void *ctx);
typedef struct {
    int history_size; /* curvature pairs kept (m) */
    int max_iter; /* iterations at most; 0 only evaluates */
    int max_linesearch; /* objective evaluations per line search at most */
    double tolerance_grad; /* converged when max |g_j| (OWL-QN: the pseudo-gradient's) <= this */
    double tolerance_change; /* converged when |F_k-1 - F_k| <= this * max(|F_k-1|, |F_k|, 1); 0: off */
    double l1; /* OWL-QN: minimises f(w) + l1 * sum_j |w_j| over the masked j; 0: plain L-BFGS */
    const unsigned char *l1_mask; /* [n], 1 where the L1 term applies; NULL: everywhere */
    /* Called after each iteration with ctx; non-zero stops the run (status TG_LBFGS_STOPPED). */
    int (*progress)(int iteration, double objective, double grad_norm, void *ctx);
} tg_lbfgs_opts;
#define TG_LBFGS_OPTS_DEFAULT                                                                                          \
    ((tg_lbfgs_opts){                                                                                                  \
        .history_size = 10, .max_iter = 1000, .max_linesearch = 40, .tolerance_grad = 1e-8, .tolerance_change = 0.0 })
typedef enum {
    TG_LBFGS_RUNNING,
    TG_LBFGS_CONVERGED_GRAD,
    TG_LBFGS_CONVERGED_CHANGE,
    TG_LBFGS_CONVERGED_ROUNDING, /* the next step's predicted decrease is below f's float64 rounding */
    TG_LBFGS_MAX_ITER, /* a warning, as scikit-learn's ConvergenceWarning: w is the last iterate */
    TG_LBFGS_LINESEARCH_FAILED,
    TG_LBFGS_NOT_FINITE,
    TG_LBFGS_CALLBACK_FAILED,
    TG_LBFGS_STOPPED
} tg_lbfgs_status;
typedef struct {
    tg_lbfgs_status status;
    int iterations, evaluations;
    double objective; /* f + the L1 term at the returned w */
    double grad_norm; /* max |g_j| (the pseudo-gradient's under OWL-QN) there */
} tg_lbfgs_result;
/* Minimises f (+ the L1 term) from w, in place; deterministic, and no
 * allocation after the buffers it makes at the start ((2 m + 5) n doubles).
 * Strong-Wolfe line search for L-BFGS; OWL-QN's projected backtracking when
 * l1 > 0, so masked coordinates end exactly at 0 where that is optimal.
 * Returns 0 when it converged, hit max_iter or was stopped by progress;
 * -1 when a line search failed, f or its gradient became NaN/Inf, or the
 * callback failed: then w holds the last good point and tg_last_error says
 * which. opts NULL: TG_LBFGS_OPTS_DEFAULT. result may be NULL. */
TG_API int tg_lbfgs_minimize(int64_t n, double *w, tg_lbfgs_fn fg, void *ctx, const tg_lbfgs_opts *opts,
                             tg_lbfgs_result *result);
TG_API const char *tg_lbfgs_status_text(tg_lbfgs_status status);

/* ---- Model configs (src/io/config.c; docs/config.md) ---- */

/* data.standardize "scale": features divided by their deviation, not centred. */
#define TG_STANDARDIZE_SCALE 2

typedef enum { TG_SCHEDULE_CONSTANT, TG_SCHEDULE_STEP, TG_SCHEDULE_COSINE } tg_schedule_type;
/* loss.type: softmax cross-entropy over one output per class, or binary cross-entropy with logits over one
 * output (a last linear layer with "out": 1) for two classes. */
typedef enum { TG_LOSS_CROSS_ENTROPY, TG_LOSS_BINARY_CROSS_ENTROPY } tg_loss_type;

typedef struct {
    char *path; /* the config file, and the folder relative paths are resolved against */
    char *json; /* the config's text, as read */
    struct {
        char *format; /* "csv" (default), "idx" or "libsvm" */
        char *train, *test; /* resolved paths; test NULL when test_split is used */
        char *train_labels, *test_labels; /* idx only */
        double test_split; /* fraction of train held out as the test set (when no test file) */
        double validation_split; /* fraction of the training rows used for validation / early stopping */
        int header; /* -1 detect, 0, 1 */
        int64_t label_column; /* default -1 (last) */
        char *label_name; /* or NULL */
        int64_t *columns; /* or NULL: all but the label */
        int64_t n_columns;
        int standardize; /* 1: centre and scale (default for csv); 0: off (default for idx and libsvm);
                            TG_STANDARDIZE_SCALE: divide by the deviation only (the only scaling libsvm takes) */
        double scale; /* idx pixel scale, default 1/255 */
        uint64_t shuffle_seed; /* default: the top-level seed */
        int64_t features; /* libsvm: the feature count (0: the largest index of the training file) */
        int skip_unseen_features; /* libsvm, data.unseen_features "ignore": a pair above the count is dropped */
        /* Data larger than memory (docs/data.md): 1 reads the training file in blocks of block_rows rows
         * each epoch, shuffling rows within windows of shuffle_window blocks; the test set is data.test
         * (required) and no rows are held out. csv only; default 0. */
        int stream;
        int64_t block_rows; /* default TG_STREAM_BLOCK_ROWS */
        int64_t shuffle_window; /* blocks; default TG_STREAM_SHUFFLE_WINDOW */
    } data;
    struct {
        tg_dtype dtype; /* default float32 */
        int n_layers;
        tg_layer_spec *layers;
    } model;
    struct {
        double label_smoothing;
        double *class_weights; /* or NULL */
        int64_t n_class_weights;
        /* loss.class_weight: "balanced" (n_rows / (n_classes * rows of the class), on the training split), or
         * a map from label to weight (classes it leaves out weigh 1, as in scikit-learn); resolved against the
         * training data when training starts. */
        int class_weight_balanced;
        char **class_weight_labels; /* [n_class_weight_labels], or NULL */
        double *class_weight_values;
        int64_t n_class_weight_labels;
        /* binary_cross_entropy: the class whose probability the output is (default: the label that sorts
         * second, as scikit-learn's classes_[1]) and the weight of its term (PyTorch's pos_weight, default 1). */
        tg_loss_type type;
        char *positive_class; /* or NULL */
        double pos_weight;
        tg_penalty penalty; /* default none; lbfgs: l2, C 1 (scikit-learn's) */
    } loss;
    tg_optim_opts optimizer;
    struct {
        tg_lbfgs_opts opts; /* optimizer.type "lbfgs": its keys */
        int64_t block_rows; /* rows per block of the full-batch objective */
    } lbfgs;
    struct {
        int epochs;
        int64_t batch_size;
        tg_schedule_type schedule;
        int step_size; /* step: epochs between decays */
        double gamma; /* step: decay factor */
        double min_lr; /* cosine: the floor */
        double clip_grad_norm; /* 0: off */
        int patience; /* early stopping: epochs without improvement of validation loss; 0: off */
        double min_delta;
    } train;
    uint64_t seed;
} tg_config;

#define TG_STREAM_BLOCK_ROWS 16384
#define TG_STREAM_SHUFFLE_WINDOW 4

/* Reads and validates a config; NULL with tg_last_error naming the JSON path
 * (e.g. "optimizer.lr") and what was expected. Caller owns the result. */
TG_API tg_config *tg_config_load(const char *path);
/* The same from text; relative paths resolve against base_dir (NULL: "."). */
TG_API tg_config *tg_config_parse(const char *json, const char *base_dir);
TG_API void tg_config_free(tg_config *cfg);
/* The learning rate of epoch (0-based) under the config's schedule. */
TG_API double tg_config_lr_at(const tg_config *cfg, int epoch);

/* ---- Checkpoints (src/io/safetensors_write.c, safetensors_read.c; docs/checkpoint.md) ---- */

/* Saves the model as safetensors: tensors named as the state_dict of the
 * equivalent torch.nn.Sequential, metadata (layers, labels, standardization,
 * config) under __metadata__. Writes a temporary file in the same folder,
 * flushes, fsyncs, then renames it over path: the old file survives any failure,
 * and no temporary file is left on any failure. path must be a regular file or
 * a new path: a folder, device, FIFO or socket is refused (the rename would
 * replace the node). A symbolic link is followed: its target is replaced and
 * the link kept; a link to a missing file is refused. */
TG_API int tg_model_save(const tg_model *model, const char *path);
/* Loads a model saved by tg_model_save, checking every offset and size
 * against the file. Caller owns the result. */
TG_API tg_model *tg_model_load(const char *path);
/* 0 when a save (tg_model_save, tg_training_save) may write path: a new path, a regular file, or a
 * symbolic link to a regular file; -1 with the reason ("is a character device; only a regular file or a
 * new path is written") otherwise. Checks the path's kind only, not the folder's permissions. */
TG_API int tg_check_save_path(const char *path);

/* ---- Training and evaluation (src/train/trainer.c, src/nn/evaluate.c, src/io/load_data.c) ---- */

typedef struct {
    int epoch; /* 1-based */
    int epochs;
    int64_t step, steps_per_epoch; /* progress within the epoch (for a live bar) */
    double train_loss; /* mean over the epoch's batches so far */
    double val_loss, val_accuracy; /* NaN without a validation set */
    double lr;
    double seconds; /* since training started */
    int finished; /* 1 on the epoch's last call */
    int full_batch; /* 1 under optimizer lbfgs: epoch counts solver iterations, train_loss is the objective / (C n) */
} tg_progress;
/* Called after each step and at each epoch's end (finished = 1). Return
 * non-zero to stop training. */
typedef int (*tg_progress_fn)(const tg_progress *p, void *ctx);

typedef struct {
    int64_t classes;
    int64_t rows;
    double loss, accuracy;
    int64_t *confusion; /* [classes * classes], row = true class, column = predicted */
    int64_t correct; /* rows classified correctly: the confusion matrix's trace */
} tg_eval;
/* Mean cross-entropy, accuracy and confusion matrix of model on ds. Applies
 * the model's standardization when it has one (ds holds raw features). Release
 * the contents with tg_eval_clear. */
TG_API int tg_evaluate(const tg_model *model, const tg_dataset *ds, tg_eval *out);
/* Frees what tg_evaluate put in ev (not ev itself, which is usually on the stack). */
TG_API void tg_eval_clear(tg_eval *ev);
TG_API TG_DEPRECATED("tg_eval_free frees contents only: call tg_eval_clear") void tg_eval_free(tg_eval *ev);
/* Class probabilities [rows, classes] of ds under model into probs (caller's
 * buffer, rows * classes doubles). Applies the model's stored standardization
 * (mean and std saved with it), so ds holds raw features, as read from the file.
 * A binary model's row is (1 - sigmoid(x), sigmoid(x)). */
TG_API int tg_predict(const tg_model *model, const tg_dataset *ds, double *probs);

typedef struct {
    tg_model *model;
    tg_dataset *train, *validation, *test; /* raw features: the model standardizes as it reads them. With
                                              data.stream, train describes the file (rows, features, classes,
                                              names) with x and y NULL, and validation is empty. Across MPI
                                              ranks (docs/distributed.md) train holds this rank's rows only
                                              (tg_training_rows counts every rank's), and test is empty on
                                              every rank but 0 */
    int epochs_run;
    int stopped_early;
    /* per epoch: train loss, validation loss, validation accuracy ([epochs_run] each) */
    double *train_loss, *val_loss, *val_accuracy;
    int stopped_by_caller; /* the progress callback asked to stop (stopped_early is patience only) */
    int full_batch; /* 1 when optimizer.type is lbfgs: solver holds how it ended, the curves are per iteration */
    tg_lbfgs_result solver; /* its objective and gradient are the solver's: scikit-learn's divided by C n */
    double objective; /* scikit-learn's: C * sum_i w_y(i) loss_i + R(W), at the returned weights */
    /* Where a stopped run stands: steps_done steps of epoch epochs_run + 1 were taken (0 when it stopped at
     * an epoch's end), of steps_per_epoch. A resumed run continues from exactly there. */
    int64_t steps_done, steps_per_epoch;
    double input_scale; /* the largest |x| of the training rows when data.standardize is off (else 0): a
                           diverging run's hint names it from TG_LARGE_INPUT on */
    int finished; /* 1: nothing left to run (every epoch ran, or early stopping ended it); 0: the caller
                     stopped it with epochs left, and a training checkpoint of it can be resumed */
    struct tg_train_state *state; /* what tg_training_save writes besides the model (internal) */
} tg_training;
/* Loads the data a config names and splits it as training does (same seed,
 * same rows): test from data.test or data.test_split, validation from
 * data.validation_split. validation and test may be empty, never NULL. With
 * binary_cross_entropy the positive class is class 1, as training makes it.
 * All three are caller-owned and raw (not standardized). 0 on success. */
TG_API int tg_config_load_data(const tg_config *cfg, tg_dataset **train, tg_dataset **validation, tg_dataset **test);
/* Everything a config asks for: loads the data, splits it, standardizes it,
 * builds the model, trains it with the optimizer, schedule and early stopping
 * (the best validation-loss weights are kept), and records the curves.
 * Detects a NaN/Inf loss ("loss became NaN at epoch E, step S") and stops
 * with an error. Caller owns the result: tg_training_free. */
/* With optimizer.type "lbfgs" training is one full-batch solve (docs/nn.md):
 * the curves have a point per iteration (train_loss: the objective / (C n);
 * validation only at the last), solver says how it ended, and a solver that
 * fails on the way (line search, NaN) still returns the training, with the
 * last good weights, solver.status saying which and tg_last_error the message. */
TG_API tg_training *tg_train_config(const tg_config *cfg, tg_progress_fn progress, void *ctx);
TG_API void tg_training_free(tg_training *t);
/* The training rows of t: t->train->rows, or across MPI ranks every rank's (0 for NULL). */
TG_API int64_t tg_training_rows(const tg_training *t);
/* The same training on data sets the caller gives (cross-validation folds)
 * instead of the files the config names; the config's data section is not
 * read. train is required; validation may be NULL (no early stopping). Both
 * stay the caller's: the result holds copies, and an empty test set. */
TG_API tg_training *tg_train_on_data(const tg_config *cfg, const tg_dataset *train, const tg_dataset *validation,
                                     tg_progress_fn progress, void *ctx);
/* Stratified K-fold assignment (as scikit-learn's StratifiedKFold with
 * shuffle): each class's rows are shuffled with rng and dealt to the folds in
 * turn, continuing from fold to fold across classes, so every fold holds each
 * class in proportion and fold sizes differ by at most one. fold[r] in [0, k)
 * for each row. Refused: k < 2, or k above the smallest class's row count
 * (that class, its count and k are named). 0 on success. */
TG_API int tg_stratified_folds(const tg_dataset *ds, int k, tg_rng *rng, int *fold);

/* Unstandardized inputs this large (|x|) are named in the hint for a diverging run. */
#define TG_LARGE_INPUT 10.0

/* ---- Interrupting and resuming training (src/train/train_state.c; docs/checkpoint.md) ---- */

/* A run stopped by its progress callback (at a step boundary, mid-epoch or at an epoch's end; under
 * optimizer lbfgs, after a solver iteration) can be saved with tg_training_save and continued with
 * opts.resume: the resumed run's weights, curves and files (and an lbfgs run's solver report) are
 * bit-identical to those of a run that was never stopped (same config, same thread count). */
typedef struct {
    tg_progress_fn progress; /* as for tg_train_config; non-zero stops at that step boundary */
    void *ctx;
    const char *resume; /* a training checkpoint to continue, or NULL to start afresh. The config must
                           match the one it was made with (model, optimizer, schedule, data, seeds): a
                           difference is refused, naming it */
    int checkpoint_every; /* > 0: at the end of every this many epochs (not after the last; under lbfgs,
                             after every this many solver iterations, not at max_iter), ... */
    const char *checkpoint_path; /* ... save a training checkpoint here, ... */
    int (*checkpoint)(const tg_training *t, void *ctx); /* ... or call this (with ctx) instead, e.g. to
                           save with signals held; non-zero fails training (set tg_last_error) */
} tg_train_opts;
/* tg_train_config with the options above; opts NULL is tg_train_config(cfg, NULL, NULL). */
TG_API tg_training *tg_train_config_opts(const tg_config *cfg, const tg_train_opts *opts);
/* Saves a training checkpoint: the model file tg_model_save writes (the weights tg_train_config would
 * return now: the best so far under early stopping), plus the optimizer state, row order, random
 * state, position, early-stopping state, last weights and curves (under lbfgs: the solver's point,
 * gradient, objective and history pairs) as extra "training.*" tensors and a "training" metadata
 * entry (docs/checkpoint.md). tg_model_load, tapegrad eval / predict and PyTorch's
 * load_state_dict(strict=False) read it as a plain model. Same atomic write and path rules as
 * tg_model_save. t must come from tg_train_config(_opts). 0 on success. */
TG_API int tg_training_save(const tg_training *t, const char *path);
/* Loads a data file for a trained model: a CSV mapped with the model's label
 * names, and checked for the model's input size (both numbers in the error).
 * With opts->unlabeled -1 it decides from the column count: as many columns
 * as the model has inputs means no label column. */
TG_API tg_dataset *tg_load_data_for_model(const tg_model *model, const char *path, const tg_csv_opts *opts);

/* ---- Metrics (src/nn/metrics.c; docs/nn.md) ---- */

/* scikit-learn's classification metrics (sklearn.metrics 1.2) from true class
 * ids y [rows] in [0, classes) and predicted probabilities probs [rows,
 * classes] (row-major, as tg_predict gives them). The predicted class is the
 * first largest probability (numpy.argmax). Precision, recall and F1 are 0
 * where undefined (zero_division's default); the macro means run over the
 * classes that occur in y or in the predictions (sklearn's default labels),
 * the weighted means weight by support. Binary metrics (classes == 2) use
 * P(positive) = probs[:, positive]: brier_score_loss, and roc_auc_score and
 * average_precision_score of that class. With more classes: the Brier score
 * is the multiclass one, mean over rows of sum_k (p_k - [y = k])^2 (sklearn
 * 1.2 has none; it is the sum of the per-class binary scores), and ROC-AUC and
 * average precision are one-vs-rest macro means over the classes where each
 * is defined (a class absent from y has neither; sklearn refuses such data).
 * log_loss clips to [eps, 1 - eps] (eps of float64) and renormalizes each row,
 * as sklearn does. Undefined values are NaN. */
typedef struct {
    int64_t rows, classes;
    int64_t positive; /* the binary metrics' positive class (2 classes), else -1 */
    double accuracy, balanced_accuracy, log_loss, brier;
    double precision_macro, recall_macro, f1_macro;
    double precision_weighted, recall_weighted, f1_weighted;
    double roc_auc, average_precision;
    double *precision, *recall, *f1; /* [classes] */
    int64_t *support, *predicted; /* [classes]: rows whose true / predicted class is k */
} tg_metrics;
/* Fills out (free with tg_metrics_free). positive: 0 or 1 with two classes,
 * ignored with more. Non-finite probabilities and classes out of range are
 * refused with their index. 0 on success. */
TG_API int tg_metrics_compute(int64_t rows, int64_t classes, const int64_t *y, const double *probs, int64_t positive,
                              tg_metrics *out);
TG_API void tg_metrics_free(tg_metrics *m);
/* The binary metrics alone: rows whose y is `positive` are the positives,
 * score[i] their score (any finite values; ties are one threshold). NaN with
 * tg_last_error set when undefined (no positive, or for ROC-AUC no negative, rows). */
TG_API double tg_roc_auc(int64_t n, const int64_t *y, const double *score, int64_t positive);
TG_API double tg_average_precision(int64_t n, const int64_t *y, const double *score, int64_t positive);
/* sklearn.metrics.roc_curve(drop_intermediate=False): (0, 0) with threshold
 * +inf, then one point per distinct score, highest first. fpr, tpr (and
 * threshold, or NULL) hold n + 1 values. Returns the number of points, -1 on error. */
TG_API int64_t tg_roc_curve(int64_t n, const int64_t *y, const double *score, int64_t positive, double *fpr,
                            double *tpr, double *threshold);
/* sklearn.calibration.calibration_curve(strategy="uniform"): bins equal slices
 * of [0, 1] (each (lo, hi], the first [0, hi]); for each non-empty bin in
 * order, the mean score, the fraction of positives and (count, or NULL) its
 * rows. Scores must lie in [0, 1]. Each array holds bins values. Returns the
 * number of non-empty bins, -1 on error. */
TG_API int tg_calibration_curve(int64_t n, const int64_t *y, const double *score, int64_t positive, int bins,
                                double *mean_predicted, double *fraction_positive, int64_t *count);

/* ---- Training across processes with MPI (src/dist/dist.c; docs/distributed.md) ---- */

/* A library built with -DTAPEGRAD_MPI=ON trains data-parallel when the
 * program was started by mpirun and called tg_dist_init first: each rank
 * reads its own part of the training file (tg_train_config) and computes
 * its share of every batch (its rows, for the full-batch solver), and the
 * gradients are summed across ranks in a fixed order, so every rank holds the
 * same weights after every step, and a given number of ranks gives the same
 * bits run after run. Every rank is given the same config. Without the
 * option, or without mpirun, these functions do nothing and training runs in
 * one process as before. */

/* Starts MPI when built with it and started by mpirun (MPI_Init, funneled:
 * only the calling thread talks to MPI); otherwise nothing. 0, or -1 with the
 * error set: also when the library was built without MPI and mpirun started
 * more than one process (each would train alone). Call once, before any
 * training. */
TG_API int tg_dist_init(void);
/* 1 when the library was built with -DTAPEGRAD_MPI=ON, else 0. */
TG_API int tg_dist_built_with_mpi(void);
/* This process's rank (0 when not distributed) and the number of ranks (1). */
TG_API int tg_dist_rank(void);
TG_API int tg_dist_size(void);
/* Ends MPI (MPI_Finalize) if tg_dist_init started it; the process is then one again. */
TG_API void tg_dist_finalize(void);
/* Ends every rank of the job with exit status code (MPI_Abort): what a rank
 * that failed calls after saying why, so the others do not wait for it
 * forever. Returns, doing nothing, when not distributed. */
TG_API void tg_dist_abort(int code);

/* ------------------------------------------------------------------------ */
/* Errors and allocation                                                     */
/* ------------------------------------------------------------------------ */

/* The last error on this thread ("" when none). Valid until the next error. */
TG_API const char *tg_last_error(void);
TG_API void tg_clear_error(void);

/* Every allocation of the library, cJSON's included, goes through these.
 * Set them before making any tensor or tape; NULL arguments restore the C
 * library's. Not thread-safe with respect to other calls: set once at start. */
TG_API void tg_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t), void (*free_fn)(void *));

/* The thread budget shared by the library's row-parallel loops (OpenMP) and
 * BLAS: TAPEGRAD_NUM_THREADS from the environment, else the number of cores.
 * The library's own loops give bit-identical results for any thread count
 * (work is split by rows; sums across rows are taken in row order after the
 * loop). OpenBLAS does not promise that: with BLAS on, wide matrix products
 * (an MLP's hidden layers) may round differently with another thread count,
 * so results are bit-identical for a given count. Set once at start. */
TG_API void tg_set_num_threads(int n);
TG_API int tg_num_threads(void);

/* The file-system calls a save makes (tg_model_save): write, flush, fsync and
 * rename. Replaceable so a test can fail each one in turn and show the old file
 * survives; NULL members (or a NULL hooks) restore the C library's. Set once,
 * like the allocator. */
typedef struct {
    size_t (*write)(const void *data, size_t size, size_t n, FILE *f);
    int (*flush)(FILE *f);
    int (*sync)(int fd);
    int (*rename)(const char *from, const char *to);
} tg_io_hooks;
TG_API void tg_set_io_hooks(const tg_io_hooks *hooks);

#ifdef __cplusplus
}
#endif

#endif /* TAPEGRAD_H */
