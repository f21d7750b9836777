/* Valid arguments for the generated NULL sweep (tests/gen_null_sweep.py). */
#include "null_sweep_fixture.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static int identity_forward(tg_tensor *const *inputs, int n_inputs, tg_tensor *out, void *ctx)
{
    (void)n_inputs;
    (void)ctx;
    memcpy(tg_data(out), tg_data(inputs[0]), (size_t)tg_numel(out) * sizeof(double));
    return 0;
}

static int identity_backward(tg_tensor *const *inputs, int n_inputs, const tg_tensor *out, const tg_tensor *grad_out,
                             tg_tensor *const *grad_inputs, void *ctx)
{
    (void)inputs, (void)n_inputs, (void)out, (void)ctx;
    if (grad_inputs[0])
        for (int64_t i = 0; i < tg_numel(grad_out); i++)
            tg_set(grad_inputs[0], i, tg_get(grad_inputs[0], i) + tg_get(grad_out, i));
    return 0;
}

tg_tensor *sweep_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    (void)ctx;
    return tg_sum(tape, tg_mul(tape, inputs[0], inputs[0]), TG_ALL);
}

int sweep_progress(const tg_progress *p, void *ctx)
{
    (void)p, (void)ctx;
    return 0;
}

int sweep_lbfgs_fn(int64_t n, const double *w, double *f, double *grad, void *ctx)
{
    (void)ctx;
    *f = 0;
    for (int64_t j = 0; j < n; j++) {
        *f += 0.5 * w[j] * w[j];
        grad[j] = w[j];
    }
    return 0;
}

static tg_tensor *f64(int ndim, const int64_t *shape, uint64_t seed)
{
    tg_tensor *t = random_tensor(TG_F64, ndim, shape, seed, -1, 1);
    cr_assert_not_null(t, "%s", tg_last_error());
    return t;
}

static char *temp_file(const char *dir, const char *name, const void *bytes, size_t size)
{
    char *path = join_path(dir, name);
    write_bytes(path, bytes, size);
    return path;
}

void sweep_setup(sweep_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->tape = tg_tape_new();
    f->x = f64(2, (int64_t[]){ 2, 3 }, 1);
    f->x2 = f64(2, (int64_t[]){ 2, 3 }, 2);
    f->xt = f64(2, (int64_t[]){ 3, 2 }, 3);
    f->weight = f64(2, (int64_t[]){ 4, 3 }, 4);
    f->bias = f64(1, (int64_t[]){ 4 }, 5);
    f->logits = f64(2, (int64_t[]){ 2, 4 }, 6);
    f->target = tg_tensor_from(TG_I64, 1, (int64_t[]){ 2 }, (int64_t[]){ 0, 3 });
    f->grad_output = tg_tensor_from(TG_F64, 0, NULL, (double[]){ 1.0 });
    tg_set_requires_grad(f->x, 1);
    tg_set_requires_grad(f->logits, 1);
    tg_set_requires_grad(f->weight, 1);
    tg_set_requires_grad(f->bias, 1);
    f->loss = tg_mean(f->tape, f->x, TG_ALL);
    cr_assert_not_null(f->loss, "%s", tg_last_error());
    f->inputs[0] = f->x;
    f->params[0] = f->weight;
    f->params[1] = f->bias;
    f->shape[0] = f->out_shape[0] = 2;
    f->shape[1] = f->out_shape[1] = 3;
    f->idx[0] = 0;
    f->idx[1] = 1;
    tg_rng_seed(&f->rng, 7);
    f->layers[0] = (tg_layer_spec){ TG_LAYER_LINEAR, 4, 1 };
    f->layers[1] = (tg_layer_spec){ TG_LAYER_RELU, 0, 0 };
    f->layers[2] = (tg_layer_spec){ TG_LAYER_LINEAR, 3, 1 };
    f->model = tg_model_new(TG_F64, 3, 3, f->layers, &f->rng);
    cr_assert_not_null(f->model, "%s", tg_last_error());
    f->optim_opts = TG_SGD_DEFAULT(0.1);
    f->opt = tg_optimizer_new(&f->optim_opts, 2, f->params);
    f->ce_opts = TG_CE_OPTS_DEFAULT;
    f->csv_opts = TG_CSV_OPTS_DEFAULT;
    f->gradcheck_opts = TG_GRADCHECK_OPTS_DEFAULT;
    f->custom_op = (tg_custom_op){ "identity", identity_forward, identity_backward };
    f->csv_path = TAPEGRAD_SOURCE_DIR "/data/iris.csv";
    f->ds = tg_csv_load(f->csv_path, NULL);
    cr_assert_not_null(f->ds, "%s", tg_last_error());
    int64_t cols[3] = { 0, 1, 2 };
    tg_csv_opts three = TG_CSV_OPTS_DEFAULT;
    three.columns = cols;
    three.n_columns = 3;
    tg_dataset *ds3 = tg_csv_load(f->csv_path, &three);
    cr_assert_not_null(ds3, "%s", tg_last_error());
    f->ds3 = tg_dataset_subset(ds3, (int64_t[]){ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 10);
    tg_dataset_free(ds3);
    for (int i = 0; i < 3; i++) {
        f->mean[i] = 0.5f;
        f->std[i] = 2.0f;
        f->label_names[i] = f->ds->label_names[i];
    }
    f->config_json = "{\"data\": {\"train\": \"iris.csv\", \"test_split\": 0.2}, \"model\": {\"layers\": "
                     "[{\"type\": \"linear\", \"out\": 3}]}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, "
                     "\"train\": {\"epochs\": 1, \"batch_size\": 64}, \"seed\": 1}";
    f->base_dir = TAPEGRAD_SOURCE_DIR "/data";
    f->p01 = tg_tensor_from(TG_F64, 2, (int64_t[]){ 2, 3 }, (double[]){ 0.1, 0.2, 0.3, 0.4, 0.5, 0.6 });
    for (int i = 0; i < 4; i++)
        f->model_params[i] = tg_model_param(f->model, i);
    f->bce_opts = TG_BCE_OPTS_DEFAULT;
    f->penalty = (tg_penalty){ .type = TG_PENALTY_L2, .C = 1.0 };
    f->lbfgs_opts = TG_LBFGS_OPTS_DEFAULT;
    f->lbfgs_opts.max_iter = 2;
    for (int r = 0; r < 10; r++) {
        f->metric_y[r] = r % 3;
        f->metric_score[r] = (r + 0.5) / 10;
        for (int c = 0; c < 3; c++)
            f->metric_probs[r * 3 + c] = c == r % 3 ? 0.5 : 0.25;
    }
    f->batcher = tg_batcher_new(f->ds3, 4, TG_F64, NULL);
    cr_assert_not_null(f->batcher, "%s", tg_last_error());
    f->csr_row_ptr[0] = 0, f->csr_row_ptr[1] = 1, f->csr_row_ptr[2] = 2;
    f->csr_col[0] = 0, f->csr_col[1] = 2;
    f->csr_val[0] = 0.5, f->csr_val[1] = 1;
    f->csr = tg_sparse_csr_new(TG_F64, 2, 3, 2, f->csr_row_ptr, f->csr_col, f->csr_val);
    cr_assert_not_null(f->csr, "%s", tg_last_error());
    f->cfg = tg_config_parse(f->config_json, f->base_dir);
    cr_assert_not_null(f->cfg, "%s", tg_last_error());

    char *dir = make_temp_dir("null-sweep");
    static const unsigned char images[] = { 0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8 };
    static const unsigned char labels[] = { 0, 0, 8, 1, 0, 0, 0, 2, 0, 1 };
    static char images_path[256], labels_path[256], config_path[256], checkpoint_path[256];
    char *p = temp_file(dir, "images.idx", images, sizeof images);
    snprintf(images_path, sizeof images_path, "%s", p);
    free(p);
    p = temp_file(dir, "labels.idx", labels, sizeof labels);
    snprintf(labels_path, sizeof labels_path, "%s", p);
    free(p);
    static const char svm[] = "1 1:0.5\n0 2:1\n";
    p = temp_file(dir, "data.svm", svm, sizeof svm - 1);
    snprintf(f->libsvm_path, sizeof f->libsvm_path, "%s", p);
    free(p);
    f->sparse_ds = tg_libsvm_load(f->libsvm_path, NULL);
    cr_assert_not_null(f->sparse_ds, "%s", tg_last_error());
    /* The config names the data by absolute path, so it loads from the temporary folder. */
    char json[1024];
    snprintf(json, sizeof json,
             "{\"data\": {\"train\": \"%s\", \"test_split\": 0.2}, \"model\": {\"layers\": [{\"type\": "
             "\"linear\", \"out\": 3}]}, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, \"train\": {\"epochs\": "
             "1, \"batch_size\": 64}, \"seed\": 1}",
             f->csv_path);
    p = temp_file(dir, "config.json", json, strlen(json));
    snprintf(config_path, sizeof config_path, "%s", p);
    free(p);
    p = join_path(dir, "model.safetensors");
    snprintf(checkpoint_path, sizeof checkpoint_path, "%s", p);
    free(p);
    cr_assert_eq(tg_model_save(f->model, checkpoint_path), 0, "%s", tg_last_error());
    p = join_path(dir, "saved.safetensors");
    snprintf(f->path, sizeof f->path, "%s", p);
    free(p);
    f->images_path = images_path;
    f->labels_path = labels_path;
    f->config_path = config_path;
    f->checkpoint_path = checkpoint_path;
    f->out = tmpfile();
    cr_assert_not_null(f->out);
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    free(dir);
    tg_clear_error();
}

void sweep_teardown(sweep_fixture *f)
{
    tg_tensor *owned[] = { f->x, f->x2, f->xt, f->weight, f->bias, f->logits, f->target, f->grad_output };
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        tg_tensor_free(owned[i]);
    tg_tensor_free(f->p01);
    tg_batcher_free(f->batcher);
    tg_sparse_csr_free(f->csr);
    tg_dataset_free(f->sparse_ds);
    tg_optimizer_free(f->opt);
    tg_model_free(f->model);
    tg_dataset_free(f->ds);
    tg_dataset_free(f->ds3);
    tg_dataset_free(f->split_first);
    tg_dataset_free(f->split_second);
    tg_dataset_free(f->train);
    tg_dataset_free(f->validation);
    tg_dataset_free(f->test);
    tg_config_free(f->cfg);
    tg_linear_layer_free(&f->layer);
    tg_eval_clear(&f->eval);
    tg_metrics_free(&f->metrics);
    tg_tape_free(f->tape);
    if (f->out)
        fclose(f->out);
    const char *files[] = { "images.idx",        "labels.idx",        "config.json",
                            "model.safetensors", "saved.safetensors", "data.svm" };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = join_path(f->dir, files[i]);
        remove(p);
        free(p);
    }
    remove(f->dir);
}
