/* One-output binary models (loss binary_cross_entropy): the positive class,
 * P(positive) = sigmoid(logit) and the loss recomputed here in long double from
 * the trained parameters, pos_weight against the equivalent class weight, and
 * the refusals, each naming the JSON path. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR ".."
#endif
#define CANCER TAPEGRAD_SOURCE_DIR "/data/breast_cancer.csv"
#define IRIS TAPEGRAD_SOURCE_DIR "/data/iris.csv"

static tg_config *config(const char *train, const char *layers, const char *loss)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{ \"data\": { \"train\": \"%s\", \"test_split\": 0, \"validation_split\": 0 }, "
             "\"model\": { \"layers\": [ %s ] }, \"loss\": %s, \"optimizer\": { \"type\": \"sgd\", \"lr\": 0.1 }, "
             "\"train\": { \"epochs\": 5, \"batch_size\": 50 }, \"seed\": 11 }",
             train, layers, loss);
    return tg_config_parse(text, NULL);
}

static tg_training *train(const char *loss)
{
    tg_config *cfg = config(CANCER, "{ \"type\": \"linear\", \"out\": 1 }", loss);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_training *t = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(t, "%s", tg_last_error());
    tg_config_free(cfg);
    return t;
}

Test(binary_model, sigmoid_of_the_logit_is_p_positive_and_the_loss_is_bce)
{
    tg_training *t = train("{ \"type\": \"binary_cross_entropy\" }");
    tg_model *m = t->model;
    cr_assert_eq(tg_model_classes(m), 2);
    cr_assert_eq(tg_model_layer(m, 0)->out, 1);
    /* "malignant" sorts after "benign": it is class 1 although the file names it first */
    cr_assert_str_eq(tg_model_label(m, 0), "benign");
    cr_assert_str_eq(tg_model_label(m, 1), "malignant");
    cr_assert_str_eq(t->train->label_names[1], "malignant");
    int64_t rows = t->train->rows, f = t->train->features;
    double *probs = malloc((size_t)rows * 2 * sizeof *probs);
    cr_assert_eq(tg_predict(m, t->train, probs), 0);
    tg_tensor *w = tg_model_param(m, 0), *b = tg_model_param(m, 1);
    long double loss = 0;
    for (int64_t r = 0; r < rows; r++) {
        long double x = tg_get(b, 0);
        for (int64_t j = 0; j < f; j++) /* float32 standardization, as the model applies it */
            x += (long double)tg_get(w, j) *
                 (long double)(float)((t->train->x[r * f + j] - tg_model_mean(m)[j]) / tg_model_std(m)[j]);
        long double p = 1 / (1 + expl(-x));
        cr_expect(fabsl(probs[2 * r + 1] - p) < 1e-6, "row %lld: %.9g vs %.9Lg", (long long)r, probs[2 * r + 1], p);
        cr_expect(fabs(probs[2 * r] + probs[2 * r + 1] - 1) < 1e-12);
        loss += t->train->y[r] ? log1pl(expl(-x)) : log1pl(expl(x));
    }
    tg_eval ev;
    cr_assert_eq(tg_evaluate(m, t->train, &ev), 0);
    cr_expect(fabsl(ev.loss - loss / rows) < 1e-6, "%.9g vs %.9Lg", ev.loss, loss / rows);
    tg_eval_clear(&ev);
    free(probs);
    tg_training_free(t);
}

Test(binary_model, positive_class_names_the_class_of_the_output)
{
    tg_training *t = train("{ \"type\": \"binary_cross_entropy\", \"positive_class\": \"benign\" }");
    cr_expect_str_eq(tg_model_label(t->model, 0), "malignant");
    cr_expect_str_eq(tg_model_label(t->model, 1), "benign");
    tg_training_free(t);
}

/* pos_weight p scales the positive term: the same loss as weighing the positive class p and the other 1. */
Test(binary_model, pos_weight_equals_the_positive_class_weight)
{
    tg_training *a = train("{ \"type\": \"binary_cross_entropy\", \"pos_weight\": 2.5 }");
    tg_training *b = train("{ \"type\": \"binary_cross_entropy\", \"class_weight\": { \"malignant\": 2.5 } }");
    tg_training *c = train("{ \"type\": \"binary_cross_entropy\" }");
    double differ = 0;
    for (int i = 0; i < tg_model_n_params(a->model); i++)
        for (int64_t k = 0; k < tg_numel(tg_model_param(a->model, i)); k++) {
            double pa = tg_get(tg_model_param(a->model, i), k), pb = tg_get(tg_model_param(b->model, i), k);
            cr_expect(fabs(pa - pb) < 1e-5, "param %d[%lld]: %.9g vs %.9g", i, (long long)k, pa, pb);
            differ += fabs(pa - tg_get(tg_model_param(c->model, i), k));
        }
    cr_expect_gt(differ, 1e-3, "pos_weight changed nothing");
    tg_training_free(a);
    tg_training_free(b);
    tg_training_free(c);
}

Test(binary_model, refusals_name_the_json_path)
{
    tg_config *cfg = config(CANCER, "{ \"type\": \"linear\", \"out\": 2 }", "{ \"type\": \"binary_cross_entropy\" }");
    cr_expect_null(cfg);
    cr_expect(strstr(tg_last_error(), "loss.type: binary_cross_entropy scores one output"), "%s", tg_last_error());
    cfg = config(CANCER, "{ \"type\": \"linear\", \"out\": 2 }", "{ \"type\": \"cross_entropy\", \"pos_weight\": 2 }");
    cr_expect_null(cfg);
    cr_expect(strstr(tg_last_error(), "loss.pos_weight: applies to"), "%s", tg_last_error());
    cfg = config(CANCER, "{ \"type\": \"linear\", \"out\": 1 }",
                 "{ \"type\": \"binary_cross_entropy\", \"pos_weight\": 0 }");
    cr_expect_null(cfg);
    cr_expect(strstr(tg_last_error(), "loss.pos_weight"), "%s", tg_last_error());
    cfg = config(CANCER, "{ \"type\": \"linear\", \"out\": 1 }",
                 "{ \"type\": \"binary_cross_entropy\", \"positive_class\": [1] }");
    cr_expect_null(cfg);
    cr_expect(strstr(tg_last_error(), "loss.positive_class: expected a label"), "%s", tg_last_error());

    /* Known only with the data: refused before any training. */
    cfg = config(CANCER, "{ \"type\": \"linear\", \"out\": 1 }",
                 "{ \"type\": \"binary_cross_entropy\", \"positive_class\": \"healthy\" }");
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_expect_null(tg_train_config(cfg, NULL, NULL));
    cr_expect(strstr(tg_last_error(), "loss.positive_class: 'healthy' is not a label of the training data (its "
                                      "labels: malignant, benign)"),
              "%s", tg_last_error());
    tg_config_free(cfg);
    cfg = config(IRIS, "{ \"type\": \"linear\", \"out\": 1 }", "{ \"type\": \"binary_cross_entropy\" }");
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_expect_null(tg_train_config(cfg, NULL, NULL));
    cr_expect(strstr(tg_last_error(), "model.layers[0].out is 1 (binary_cross_entropy) but the training data has 3 "
                                      "classes"),
              "%s", tg_last_error());
    tg_config_free(cfg);
    cfg = config(CANCER, "{ \"type\": \"linear\", \"out\": 1 }", "{ \"type\": \"cross_entropy\" }");
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_expect_null(tg_train_config(cfg, NULL, NULL));
    cr_expect(strstr(tg_last_error(), "needs \"loss\": {\"type\": \"binary_cross_entropy\"}"), "%s", tg_last_error());
    tg_config_free(cfg);
}

/* A checkpoint of a one-output model loads back with its two labels and gives the same probabilities. */
Test(binary_model, a_saved_binary_model_loads_back)
{
    tg_training *t = train("{ \"type\": \"binary_cross_entropy\" }");
    char *dir = make_temp_dir("tg_binary"), *path = join_path(dir, "m.safetensors");
    cr_assert_eq(tg_model_save(t->model, path), 0, "%s", tg_last_error());
    tg_model *back = tg_model_load(path);
    cr_assert_not_null(back, "%s", tg_last_error());
    cr_expect_eq(tg_model_classes(back), 2);
    cr_expect_str_eq(tg_model_label(back, 1), "malignant");
    double p[8], q[8];
    int64_t rows[4] = { 0, 1, 2, 3 };
    tg_dataset *few = tg_dataset_subset(t->train, rows, 4);
    cr_assert_eq(tg_predict(t->model, few, p), 0);
    cr_assert_eq(tg_predict(back, few, q), 0);
    cr_expect_eq(memcmp(p, q, sizeof p), 0);
    tg_dataset_free(few);
    tg_model_free(back);
    tg_training_free(t);
    remove(path);
    remove(dir);
    free(path);
    free(dir);
}
