/* loss.class_weight: scikit-learn's "balanced" rule (checked by hand from the
 * class counts), a label map, and the refusals, each naming the JSON path. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR ".."
#endif
#define CANCER TAPEGRAD_SOURCE_DIR "/data/breast_cancer.csv"

/* breast_cancer.csv: 212 malignant (class 0, the first row's label), 357 benign. */
Test(class_weight, balanced_is_rows_over_classes_times_count)
{
    tg_dataset *ds = tg_csv_load(CANCER, NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_str_eq(ds->label_names[0], "malignant");
    double w[2];
    cr_assert_eq(tg_balanced_class_weights(ds, w), 0);
    cr_expect_eq(w[0], 569.0 / (2.0 * 212.0));
    cr_expect_eq(w[1], 569.0 / (2.0 * 357.0));
    int64_t rows[3] = { 0, 1, 2 }; /* all malignant: benign has no rows */
    tg_dataset *one_class = tg_dataset_subset(ds, rows, 3);
    cr_assert_neq(tg_balanced_class_weights(one_class, w), 0);
    cr_expect(strstr(tg_last_error(), "class benign has no rows"), "%s", tg_last_error());
    tg_dataset_free(one_class);
    tg_dataset_free(ds);
}

static const char *config_fmt =
    "{ \"data\": { \"train\": \"%s\", \"test_split\": 0, \"validation_split\": 0 }, \"model\": { \"layers\": [ "
    "{ \"type\": \"linear\", \"out\": 2 } ] }, \"loss\": %s, "
    "\"optimizer\": { \"type\": \"sgd\", \"lr\": 0.05 }, "
    "\"train\": { \"epochs\": 3, \"batch_size\": 64 }, \"seed\": 3 }";

static tg_config *config_with_loss(const char *loss)
{
    char text[1024];
    snprintf(text, sizeof text, config_fmt, CANCER, loss);
    return tg_config_parse(text, NULL);
}

/* The weights' model: trained 3 epochs; returns its parameters flattened (caller frees). */
static double *train_params(const char *loss, int64_t *n)
{
    tg_config *cfg = config_with_loss(loss);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_training *t = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(t, "%s", tg_last_error());
    *n = 0;
    double *out = NULL;
    for (int i = 0; i < tg_model_n_params(t->model); i++) {
        tg_tensor *p = tg_model_param(t->model, i);
        out = realloc(out, (size_t)(*n + tg_numel(p)) * sizeof *out);
        for (int64_t k = 0; k < tg_numel(p); k++)
            out[(*n)++] = tg_get(p, k);
    }
    tg_training_free(t);
    tg_config_free(cfg);
    return out;
}

/* No split: the training split is the whole file, so "balanced" must equal the list of the hand-computed weights. */
Test(class_weight, balanced_trains_as_the_explicit_list_of_its_weights)
{
    char list[128];
    snprintf(list, sizeof list, "{ \"weight\": [ %.17g, %.17g ] }", 569.0 / (2.0 * 212.0), 569.0 / (2.0 * 357.0));
    int64_t n1, n2;
    double *balanced = train_params("{ \"class_weight\": \"balanced\" }", &n1);
    double *explicit = train_params(list, &n2);
    double *map = train_params("{ \"class_weight\": { \"benign\": 1 } }", &n2);
    double *plain = train_params("{ \"type\": \"cross_entropy\" }", &n2);
    cr_assert_eq(n1, n2);
    for (int64_t i = 0; i < n1; i++)
        cr_expect_eq(balanced[i], explicit[i], "%lld: %.17g %.17g", (long long)i, balanced[i], explicit[i]);
    cr_expect_eq(memcmp(map, plain, (size_t)n1 * sizeof *map), 0, "a map weighing every class 1 changes nothing");
    cr_expect_neq(memcmp(balanced, plain, (size_t)n1 * sizeof *map), 0);
    free(balanced);
    free(explicit);
    free(map);
    free(plain);
}

Test(class_weight, bad_values_are_refused_with_the_json_path)
{
    const char *const cases[][2] = {
        { "{ \"class_weight\": \"balance\" }", "loss.class_weight: expected \"balanced\"" },
        { "{ \"class_weight\": [1, 2] }", "loss.class_weight: expected \"balanced\" or an object" },
        { "{ \"class_weight\": { \"benign\": -1 } }", "loss.class_weight.benign: must be >= 0" },
        { "{ \"class_weight\": { \"benign\": 1, \"benign\": 2 } }", "loss.class_weight.benign: duplicate key" },
        { "{ \"class_weight\": {} }", "loss.class_weight: is empty" },
        { "{ \"class_weight\": \"balanced\", \"weight\": [1, 1] }", "not both" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_config *cfg = config_with_loss(cases[i][0]);
        cr_expect_null(cfg, "%s was accepted", cases[i][0]);
        cr_expect(strstr(tg_last_error(), cases[i][1]), "%s: %s", cases[i][0], tg_last_error());
        tg_config_free(cfg);
    }
}

Test(class_weight, an_unknown_label_is_refused_before_training)
{
    tg_config *cfg = config_with_loss("{ \"class_weight\": { \"benign\": 1, \"healthy\": 2 } }");
    cr_assert_not_null(cfg, "%s", tg_last_error());
    cr_expect_null(tg_train_config(cfg, NULL, NULL));
    cr_expect(strstr(tg_last_error(), "loss.class_weight.healthy: no class 'healthy' in the training data (its "
                                      "classes: malignant, benign)"),
              "%s", tg_last_error());
    cfg->loss.class_weight_values[0] = 0;
    cfg->loss.class_weight_values[1] = 0;
    cr_expect_null(tg_train_config(cfg, NULL, NULL));
    tg_config_free(cfg);
}
