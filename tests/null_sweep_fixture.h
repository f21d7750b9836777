/* Valid arguments for every pointer type of the public header, for the NULL sweep
 * (tests/gen_null_sweep.py generates a test that takes its arguments from here). */
#ifndef TAPEGRAD_NULL_SWEEP_FIXTURE_H
#define TAPEGRAD_NULL_SWEEP_FIXTURE_H

#include <tapegrad.h>

typedef struct {
    tg_tape *tape;
    tg_tensor *x; /* float64 [2, 3], requires a gradient */
    tg_tensor *x2; /* float64 [2, 3]: a second operand for the binary ops */
    tg_tensor *xt; /* float64 [3, 2]: x's partner for matmul */
    tg_tensor *weight; /* float64 [4, 3] */
    tg_tensor *bias; /* float64 [4] */
    tg_tensor *logits; /* float64 [2, 4], requires a gradient */
    tg_tensor *target; /* int64 [2] = {0, 3} */
    tg_tensor *loss; /* a tape scalar: mean(x) */
    tg_tensor *grad_output; /* float64 [] = 1 */
    tg_tensor *inputs[1]; /* { x } for gradcheck and custom ops */
    tg_tensor *params[2]; /* { weight, bias } */
    int64_t shape[2]; /* {2, 3} */
    int64_t out_shape[2]; /* {2, 3} */
    int64_t idx[2]; /* {0, 1} */
    tg_rng rng;
    tg_model *model; /* 3 inputs -> linear 4 -> relu -> linear 3 (iris) */
    tg_optimizer *opt; /* SGD over params */
    tg_dataset *ds; /* data/iris.csv: 150 rows, 4 features, 3 classes */
    tg_dataset *ds3; /* the first 10 rows of iris with 3 features: fits model */
    tg_config *cfg; /* examples/iris.json with 1 epoch */
    tg_linear_layer layer;
    tg_layer_spec layers[3];
    tg_optim_opts optim_opts;
    tg_ce_opts ce_opts;
    tg_csv_opts csv_opts;
    tg_gradcheck_opts gradcheck_opts;
    tg_gradcheck_report report;
    tg_custom_op custom_op; /* the identity */
    tg_eval eval;
    tg_io_hooks hooks; /* all NULL: the C library's */
    tg_tensor *p01; /* float64 [2, 3], values in (0, 1): probabilities and binary targets */
    tg_tensor *model_params[4]; /* model's parameters, for tg_model_forward_with */
    tg_bce_opts bce_opts;
    tg_batcher_opts batcher_opts;
    tg_batcher *batcher; /* over ds3, batches of 4, float64 */
    tg_tensor *batch_x, *batch_y;
    int64_t batch_rows;
    int folds[150]; /* a fold per row of ds */
    int64_t metric_y[10]; /* 0, 1, 2, 0, 1, 2, ... */
    double metric_probs[30]; /* [10, 3], each row summing to 1 */
    double metric_score[10]; /* in [0, 1] */
    double curve_a[16], curve_b[16], curve_c[16];
    int64_t curve_count[16];
    tg_metrics metrics;
    tg_penalty penalty; /* l2, C 1 */
    tg_lbfgs_opts lbfgs_opts; /* the defaults, max_iter 2 */
    tg_lbfgs_result lbfgs_result;
    float mean[3], std[3], moments_mean[4], moments_std[4];
    double probs[30];
    char *label_names[3];
    tg_dataset *split_first, *split_second, *train, *validation, *test;
    FILE *out; /* an open temporary file */
    char dir[256]; /* a fresh temporary folder holding the files below */
    char path[256]; /* a path in it, for saves */
    tg_sparse_csr *csr; /* float64 [2, 3]: rows [0.5 0 0], [0 0 1] */
    int64_t csr_row_ptr[3];
    int32_t csr_col[2];
    double csr_val[2];
    tg_dataset *sparse_ds; /* libsvm_path loaded: 2 rows, 2 features */
    char libsvm_path[300];
    const char *csv_path, *config_path, *config_json, *base_dir, *images_path, *labels_path, *checkpoint_path;
} sweep_fixture;

/* Builds every argument (asserts on failure) / frees what is left. */
void sweep_setup(sweep_fixture *f);
void sweep_teardown(sweep_fixture *f);
/* The function-pointer arguments: an expression builder for gradcheck, a progress callback, allocator hooks. */
tg_tensor *sweep_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx);
int sweep_progress(const tg_progress *p, void *ctx);
/* f(w) = |w|^2 / 2 for tg_lbfgs_minimize. */
int sweep_lbfgs_fn(int64_t n, const double *w, double *f, double *grad, void *ctx);

#endif
