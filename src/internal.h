/* What the layers share and users must not see. */
#ifndef TAPEGRAD_INTERNAL_H
#define TAPEGRAD_INTERNAL_H

#include "tapegrad.h"

#include <stdbool.h>

/* ---- allocation and errors (src/tensor/alloc.c, src/tensor/error.c) ---- */

void *tg_alloc(size_t bytes); /* sets the error on failure */
void *tg_alloc_zeroed(size_t bytes);
void *tg_realloc(void *p, size_t bytes);
void tg_dealloc(void *p);
/* Sets this thread's error (printf format); returns NULL so ops can `return tg_error(...)`. */
void *tg_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Formats a shape as "[2, 3]" into buf. */
const char *tg_shape_str(char *buf, size_t size, int ndim, const int64_t *shape);
#define TG_SHAPE_BUF 160

/* ---- tensors (src/tensor/tensor.c) ---- */

typedef enum { TG_OWNED_BY_CALLER, TG_OWNED_BY_TAPE } tg_owner;

struct tg_node;

struct tg_tensor {
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t numel;
    void *data;
    tg_tensor *grad;
    bool requires_grad;
    tg_owner owner;
    struct tg_node *node; /* the node that made it, NULL for a leaf */
};

/* Checks ndim and shape and computes numel with overflow checks; op names the caller. */
int tg_shape_check(const char *op, int ndim, const int64_t *shape, int64_t *numel);
/* Fills a tensor header (no data) from dtype and shape. */
void tg_tensor_init(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape, int64_t numel, tg_owner owner);
bool tg_same_shape(const tg_tensor *a, const tg_tensor *b);
bool tg_is_float(tg_dtype dtype);
/* Normalises a possibly negative axis; -1 when out of range. */
int tg_axis(int axis, int ndim);
/* The same for an op's axis argument, setting the error ("op: axis 3 is out of range for shape [2, 3]"). */
int tg_resolve_axis(const char *op, const tg_tensor *x, int axis);

/* Runs the statements once with T typedef'd to the element type of a float dtype. */
#define TG_FLOAT_DISPATCH(dtype, T, ...)                                                                           \
    do {                                                                                                         \
        if ((dtype) == TG_F32) {                                                                                 \
            typedef float T;                                                                                     \
            __VA_ARGS__                                                                                          \
        } else {                                                                                                 \
            typedef double T;                                                                                    \
            __VA_ARGS__                                                                                          \
        }                                                                                                        \
    } while (0)

/* ---- broadcasting (src/tensor/broadcast.c) ---- */

/* numpy's rule: shapes aligned at the right, each pair equal or one of them 1. */
int tg_broadcast_shape(const char *op, const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape);
/* Strides (in elements) of t seen through out_shape: 0 along broadcast axes. */
void tg_broadcast_strides(const tg_tensor *t, int out_ndim, const int64_t *out_shape, int64_t *strides);
/* dst += src summed over the axes along which dst was broadcast to src's shape
 * (the backward of every broadcast). Same dtype. */
void tg_unbroadcast_add(tg_tensor *dst, const tg_tensor *src);

/* ---- the tape (src/autograd/tape.c) ---- */

#define TG_NODE_MAX_INPUTS 8

typedef struct tg_node tg_node;
/* A backward adds dL/d(input) into the inputs' gradients given dL/d(out) = node->out->grad. */
typedef int (*tg_backward_fn)(tg_tape *tape, tg_node *node);

struct tg_node {
    const char *op; /* the op's name, for errors and DOT */
    tg_backward_fn backward;
    tg_tensor *out;
    int n_inputs;
    tg_tensor *inputs[TG_NODE_MAX_INPUTS];
    int64_t iarg[4]; /* small saved arguments (axes, options) */
    double darg[2];
    void *saved; /* op-specific saved state, allocated from the tape */
    int64_t id;
    tg_node *prev;
};

/* Arena memory that lives until the next reset; 64-byte aligned, NULL on failure. */
void *tg_tape_alloc(tg_tape *tape, size_t bytes);
/* A tape tensor; data zero-filled when zero is true. */
tg_tensor *tg_tape_new_tensor(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape, bool zero);
/* Whether an op with these inputs must be recorded: recording on and some input requires a gradient. */
bool tg_tape_should_record(const tg_tape *tape, tg_tensor *const *inputs, int n_inputs);
/* Appends a node for out; marks out as requiring a gradient. NULL on failure. */
tg_node *tg_tape_record(tg_tape *tape, const char *op, tg_backward_fn backward, tg_tensor *out,
                        tg_tensor *const *inputs, int n_inputs);
/* The gradient buffer of t, made (zeroed) on first use: from the tape for tape
 * tensors, from the allocator for caller-owned ones. NULL when t needs no
 * gradient, or on allocation failure (then the error is set and *failed is true). */
tg_tensor *tg_grad_buffer(tg_tape *tape, tg_tensor *t, bool *failed);
/* The newest node, or NULL. */
tg_node *tg_tape_last(const tg_tape *tape);

/* ---- shared op helpers (src/ops/elementwise.c) ---- */

/* Validates a single-input op: non-NULL, float dtype. */
bool tg_check_float_input(const char *op, const tg_tensor *x);
/* Validates a two-input op: non-NULL, same float dtype. */
bool tg_check_float_pair(const char *op, const tg_tensor *a, const tg_tensor *b);

/* ---- shared op helpers ---- */

/* Views x as [outer, n, inner] around axis (already normalised). */
void tg_axis_split(const tg_tensor *x, int axis, int64_t *outer, int64_t *n, int64_t *inner);
/* That view, as an op along one axis saves it for its backward. */
typedef struct {
    int64_t outer, n, inner;
} tg_axis_lines;

/* C (m x n) = op(A) op(B), or C += op(A) op(B) when accumulate. Row-major;
 * op(A) is m x k (A stored k x m when trans_a), op(B) is k x n (B stored
 * n x k when trans_b). The one place matrix products are computed. */
void tg_gemm(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
             const void *b, void *c, bool accumulate);
/* The library's own kernels for a thin product (src/ops/gemm_thin.c): A B^T
 * with n <= TG_THIN, or A^T B with m <= TG_THIN. false when the shape is not
 * one of those (then nothing was computed). */
#define TG_THIN 16
bool tg_gemm_thin(tg_dtype dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void *a,
                  const void *b, void *c, bool accumulate);

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

/* Layer names indexed by tg_layer_type, NULL-terminated (src/nn/model.c): the choices a config offers. */
extern const char *const tg_layer_names[];

/* A copy of s from the library's allocator; NULL (error set) on failure. */
char *tg_strdup(const char *s);
/* Frees an array of n strings and the array. */
void tg_free_strings(char **strings, int64_t n);
/* The first byte of s that does not start a valid UTF-8 sequence, or NULL when s is UTF-8. */
const char *tg_utf8_first_invalid(const char *s);

/* The number of cells on the first non-blank line of a CSV file (src/io/csv.c). */
int tg_csv_count_columns(const char *path, char delimiter, int64_t *columns);

/* 2^53: larger integers do not survive a JSON number (cJSON reads doubles). */
#define TG_JSON_MAX_INTEGER 9007199254740992.0

/* Before each cJSON call: routes cJSON through the allocator hooks (once per
 * process) and clears this thread's out-of-memory flag (src/io/json_alloc.c). */
void tg_json_begin(void);
/* Whether a cJSON allocation failed since tg_json_begin on this thread. */
bool tg_json_out_of_memory(void);

/* The save path's file-system calls, through tg_set_io_hooks (src/io/io_hooks.c). */
size_t tg_io_write(const void *data, size_t size, size_t n, FILE *f);
int tg_io_flush(FILE *f);
int tg_io_sync(int fd);
int tg_io_rename(const char *from, const char *to);

/* out[i] = exp(x[i] - shift) over a row; returns the sum of out (src/ops/exp_kernel.c).
 * Vectorised: within 2 ulp of libm's expf / exp; results below FLT_MIN / DBL_MIN flush to 0. */
float tg_exp_row_f32(const float *x, float shift, float *out, int64_t n);
double tg_exp_row_f64(const double *x, double shift, double *out, int64_t n);
/* out[i] = log(x[i]) for x[i] >= 1 (a softmax row's sum of exps), vectorised, within 2 ulp of logf. */
void tg_log_row_f32(const float *x, float *out, int64_t n);
/* The largest element of a row, NaNs skipped (-inf for an empty or all-NaN row). */
float tg_max_row_f32(const float *x, int64_t n);

/* Threads to use for a loop over `work` elements: 1 below the size where a
 * parallel region pays, else the budget (src/tensor/threads.c). */
int tg_threads_for(int64_t work);
#define TG_PRAGMA(x) _Pragma(#x)
/* for (int64_t I = 0; I < N; I++) BODY, split over `threads` threads when there are several. One
 * thread runs a plain loop: entering an OpenMP region costs a team set-up (a malloc) even for one. */
#ifdef _OPENMP
#define TG_FOR_ROWS(threads, I, N, ...)                                                                             \
    do {                                                                                                         \
        if ((threads) > 1) {                                                                                     \
            TG_PRAGMA(omp parallel for num_threads(threads) schedule(static))                                    \
            for (int64_t I = 0; I < (N); I++)                                                                    \
                __VA_ARGS__                                                                                      \
        } else {                                                                                                 \
            for (int64_t I = 0; I < (N); I++)                                                                    \
                __VA_ARGS__                                                                                      \
        }                                                                                                        \
    } while (0)
#else
#define TG_FOR_ROWS(threads, I, N, ...)                                                                             \
    do {                                                                                                         \
        (void)(threads);                                                                                         \
        for (int64_t I = 0; I < (N); I++)                                                                        \
            __VA_ARGS__                                                                                          \
    } while (0)
#endif

/* The whole file, NUL-terminated, in *len bytes (src/io/read_file.c). Refuses a
 * directory and, when max_bytes is not 0, a larger file; `what` names the
 * expected content in messages ("a CSV file"). */
char *tg_read_file(const char *path, const char *what, size_t max_bytes, size_t *len);

/* The widest vector the target has, for the kernels written with GCC vector types. */
#if defined(__AVX512F__)
#define TG_VEC_BYTES 64
#elif defined(__AVX__)
#define TG_VEC_BYTES 32
#else
#define TG_VEC_BYTES 16
#endif

/* tg_dataset_split without the copy of the first part: ds keeps those rows, in the same order
 * tg_dataset_split would give them (its block shrinks to fit), and *second gets the rest. */
int tg_dataset_split_off(tg_dataset *ds, double fraction, tg_rng *rng, tg_dataset **second);

/* A safetensors header read as strictly as the reference reader (src/io/json_strict.c): one JSON
 * object with only white space after it; checkpoint rules add: no duplicate key in any object, no
 * \u0000 in a string, shape and data_offsets as bare unsigned integers. */
typedef enum { JSON_OK, JSON_SYNTAX, JSON_DUPLICATE_KEY, JSON_NOT_UNSIGNED, JSON_NUL_IN_STRING, JSON_NO_MEMORY } json_fault;
json_fault tg_json_strict_object(const char *text, size_t n, bool checkpoint, size_t *fault_at);

#endif
