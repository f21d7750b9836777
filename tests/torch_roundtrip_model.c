/* The C side of the PyTorch round trip (scripts/torch-roundtrip.sh):
 *   torch_roundtrip_model write DIR        saves a seeded model of every layer kind in float32 and float64
 *                                          (DIR/m_<dtype>.safetensors) and its logits on 50 rows
 *                                          (DIR/cases_<dtype>.csv: inputs, then logits); the same with a
 *                                          one-output binary head (DIR/m_binary_<dtype>.safetensors, ...)
 *                                          and a training checkpoint of a run stopped mid-epoch
 *                                          (DIR/m_training.safetensors, with its cases_training.csv) and
 *                                          of a full-batch (lbfgs) run stopped after iteration 3
 *                                          (DIR/m_training_lbfgs.safetensors, ...), and a model trained
 *                                          on libsvm rows (DIR/m_sparse.safetensors, ...)
 *   torch_roundtrip_model same A B         loads both checkpoints and exits 0 when every parameter,
 *                                          label and standardization value is bit-identical */
#include <tapegrad.h>

#include <stdio.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "torch_roundtrip_model: %s: %s\n", what, tg_last_error());
    return 1;
}

/* binary: a one-output model (two labels, one logit), as binary_cross_entropy trains. */
static int write_model(const char *dir, tg_dtype dtype, const char *name, int binary)
{
    enum { INPUTS = 6, ROWS = 50 };
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 12, 1 },
                               { TG_LAYER_RELU, 0, 0 },
                               { TG_LAYER_LINEAR, 9, 0 },
                               { TG_LAYER_TANH, 0, 0 },
                               { TG_LAYER_LINEAR, 7, 1 },
                               { TG_LAYER_SIGMOID, 0, 0 },
                               { TG_LAYER_LINEAR, binary ? 1 : 4, 1 } };
    char *labels[] = { "cat", "dog", "crème brûlée", "a,b" };
    int64_t classes = binary ? 2 : 4, outs = binary ? 1 : 4;
    float mean[INPUTS] = { 0.5f, -1, 2, 0, 3.25f, -0.125f }, std[INPUTS] = { 1, 2, 0.5f, 4, 1, 3 };
    tg_rng rng;
    tg_rng_seed(&rng, 20261122);
    tg_model *m = tg_model_new(dtype, INPUTS, 7, layers, &rng);
    tg_tensor *x = tg_tensor_new(dtype, 2, (int64_t[]){ ROWS, INPUTS });
    tg_tape *tape = tg_tape_new();
    if (!m || !x || !tape || tg_model_set_labels(m, classes, labels) || tg_model_set_standardization(m, mean, std) ||
        tg_model_set_config_json(m, "{\"note\": \"round trip\"}"))
        return fail("building the model");
    tg_rng_fill_uniform(&rng, x, -2, 2);
    tg_tape_set_recording(tape, 0);
    tg_tensor *logits = tg_model_forward(m, tape, x);
    char path[4096];
    snprintf(path, sizeof path, "%s/m_%s%s.safetensors", dir, binary ? "binary_" : "", name);
    if (!logits || tg_model_save(m, path))
        return fail(path);
    snprintf(path, sizeof path, "%s/cases_%s%s.csv", dir, binary ? "binary_" : "", name);
    FILE *f = fopen(path, "w");
    if (!f)
        return fprintf(stderr, "torch_roundtrip_model: cannot write %s\n", path), 1;
    for (int r = 0; r < ROWS; r++) {
        for (int c = 0; c < INPUTS; c++)
            fprintf(f, "%.17g,", tg_get(x, r * INPUTS + c));
        for (int64_t k = 0; k < outs; k++)
            fprintf(f, k < outs - 1 ? "%.17g," : "%.17g\n", tg_get(logits, r * outs + k));
    }
    if (fclose(f) != 0)
        return fprintf(stderr, "torch_roundtrip_model: writing %s failed\n", path), 1;
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_model_free(m);
    return 0;
}

/* CASES rows of `inputs` uniform values in [-2, 2) and the model's logits on them (no standardization),
 * written to DIR/cases_NAME.csv: inputs, then logits. */
static int write_cases(const char *dir, const char *name, const tg_model *m, tg_rng *rng, int rows)
{
    int64_t inputs = tg_model_inputs(m), outs = tg_model_classes(m);
    char path[4096];
    tg_tensor *x = tg_tensor_new(TG_F32, 2, (int64_t[]){ rows, inputs });
    tg_tape *tape = tg_tape_new();
    if (!x || !tape)
        return fail("the cases");
    tg_rng_fill_uniform(rng, x, -2, 2);
    tg_tape_set_recording(tape, 0);
    tg_tensor *logits = tg_model_forward((tg_model *)m, tape, x);
    snprintf(path, sizeof path, "%s/cases_%s.csv", dir, name);
    FILE *f = logits ? fopen(path, "w") : NULL;
    if (!f)
        return fail(path);
    for (int r = 0; r < rows; r++) {
        for (int64_t c = 0; c < inputs; c++)
            fprintf(f, "%.17g,", tg_get(x, r * inputs + c));
        for (int64_t k = 0; k < outs; k++)
            fprintf(f, k < outs - 1 ? "%.17g," : "%.17g\n", tg_get(logits, r * outs + k));
    }
    int rc = fclose(f) != 0;
    tg_tape_free(tape);
    tg_tensor_free(x);
    return rc;
}

/* Mid-epoch 3, or after lbfgs's iteration 3. */
static int stop_mid_epoch(const tg_progress *p, void *ctx)
{
    (void)ctx;
    return p->epoch == 3 && (p->full_batch || p->step == 2);
}

/* A training checkpoint DIR/m_<name>.safetensors: an MLP trained with the optimizer and train sections
 * given on 120 seeded rows, stopped by stop_mid_epoch. */
static int write_training(const char *dir, const char *name, const char *optimizer_and_train)
{
    enum { INPUTS = 5, ROWS = 120, CASES = 20 };
    char path[4096], json[8192];
    snprintf(path, sizeof path, "%s/train.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return fprintf(stderr, "torch_roundtrip_model: cannot write %s\n", path), 1;
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (int r = 0; r < ROWS; r++) {
        double sum = 0;
        for (int c = 0; c < INPUTS; c++) {
            double v = 4 * tg_rng_uniform(&rng) - 2;
            sum += v * (c + 1);
            fprintf(f, "%.6f,", v);
        }
        fprintf(f, "%d\n", sum > 1 ? 2 : sum > -1 ? 1 : 0);
    }
    if (fclose(f) != 0)
        return 1;
    snprintf(json, sizeof json,
             "{\"data\": {\"train\": \"%s\", \"test_split\": 0.2, \"validation_split\": 0.2},"
             " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 8}, {\"type\": \"tanh\"},"
             " {\"type\": \"linear\", \"out\": 3}]}, %s, \"seed\": 5}",
             path, optimizer_and_train);
    tg_config *cfg = tg_config_parse(json, NULL);
    tg_train_opts opts = { .progress = stop_mid_epoch };
    tg_training *t = cfg ? tg_train_config_opts(cfg, &opts) : NULL;
    if (!t)
        return fail("training");
    snprintf(path, sizeof path, "%s/m_%s.safetensors", dir, name);
    if (tg_training_save(t, path))
        return fail(path);
    int rc = write_cases(dir, name, t->model, &rng, CASES);
    tg_training_free(t);
    tg_config_free(cfg);
    return rc;
}

/* A model trained from a libsvm config (sparse rows, scaled, a hidden layer): its checkpoint is the same
 * nn.Sequential's state_dict as any other (DIR/m_sparse.safetensors, DIR/cases_sparse.csv). */
static int write_sparse(const char *dir)
{
    enum { INPUTS = 7, ROWS = 90, CASES = 20 };
    char path[4096], json[8192];
    snprintf(path, sizeof path, "%s/train.svm", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return fprintf(stderr, "torch_roundtrip_model: cannot write %s\n", path), 1;
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    for (int r = 0; r < ROWS; r++) {
        double v[INPUTS], sum = 0;
        for (int c = 0; c < INPUTS; c++) {
            v[c] = c == INPUTS - 1 || tg_rng_uniform(&rng) < 0.5 ? 4 * tg_rng_uniform(&rng) - 2 : 0;
            sum += v[c] * (c % 3 - 1);
        }
        fprintf(f, "%s", sum > 0.5 ? "up" : sum < -0.5 ? "down" : "flat");
        for (int c = 0; c < INPUTS; c++)
            if (v[c] != 0)
                fprintf(f, " %d:%.6f", c + 1, v[c]);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0)
        return 1;
    snprintf(json, sizeof json,
             "{\"data\": {\"format\": \"libsvm\", \"train\": \"%s\", \"standardize\": \"scale\"},"
             " \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 6}, {\"type\": \"tanh\"},"
             " {\"type\": \"linear\", \"out\": 3}]}, \"optimizer\": {\"type\": \"adam\", \"lr\": 0.02, \"lazy\": true},"
             " \"train\": {\"epochs\": 5, \"batch_size\": 16}, \"seed\": 5}",
             path);
    tg_config *cfg = tg_config_parse(json, NULL);
    tg_training *t = cfg ? tg_train_config(cfg, NULL, NULL) : NULL;
    if (!t)
        return fail("training on libsvm rows");
    snprintf(path, sizeof path, "%s/m_sparse.safetensors", dir);
    if (tg_model_save(t->model, path))
        return fail(path);
    int rc = write_cases(dir, "sparse", t->model, &rng, CASES);
    tg_training_free(t);
    tg_config_free(cfg);
    return rc;
}

static int same(const char *a_path, const char *b_path)
{
    tg_model *a = tg_model_load(a_path), *b = tg_model_load(b_path);
    if (!a || !b)
        return fail(a ? b_path : a_path);
    int differ = tg_model_n_params(a) != tg_model_n_params(b) || tg_model_classes(a) != tg_model_classes(b);
    for (int i = 0; !differ && i < tg_model_n_params(a); i++) {
        tg_tensor *p = tg_model_param(a, i), *q = tg_model_param(b, i);
        differ = strcmp(tg_model_param_name(a, i), tg_model_param_name(b, i)) != 0 || tg_numel(p) != tg_numel(q) ||
                 memcmp(tg_data(p), tg_data(q), (size_t)tg_numel(p) * tg_dtype_size(tg_dtype_of(p))) != 0;
    }
    for (int64_t k = 0; !differ && k < tg_model_classes(a); k++)
        differ = strcmp(tg_model_label(a, k), tg_model_label(b, k)) != 0;
    for (int64_t k = 0; !differ && k < tg_model_inputs(a); k++)
        differ = tg_model_mean(a)[k] != tg_model_mean(b)[k] || tg_model_std(a)[k] != tg_model_std(b)[k];
    printf("%s %s %s\n", a_path, differ ? "DIFFERS from" : "is bit-identical to", b_path);
    tg_model_free(a);
    tg_model_free(b);
    return differ;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "write") == 0)
        return write_model(argv[2], TG_F32, "float32", 0) || write_model(argv[2], TG_F64, "float64", 0) ||
               write_model(argv[2], TG_F32, "float32", 1) || write_model(argv[2], TG_F64, "float64", 1) ||
               write_training(argv[2], "training",
                              "\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01}, \"train\": {\"epochs\": 10, "
                              "\"batch_size\": 16, \"early_stopping\": {\"patience\": 3}}") ||
               write_training(argv[2], "training_lbfgs", "\"optimizer\": {\"type\": \"lbfgs\", \"history_size\": 2}") ||
               write_sparse(argv[2]);
    if (argc == 4 && strcmp(argv[1], "same") == 0)
        return same(argv[2], argv[3]);
    fprintf(stderr, "usage: %s write DIR | same A.safetensors B.safetensors\n", argv[0]);
    return 2;
}
