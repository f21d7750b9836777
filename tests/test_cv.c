/* Cross-validation's library parts: stratified folds (checked by counting) and
 * training on data sets the caller gives. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR ".."
#endif
#define IRIS TAPEGRAD_SOURCE_DIR "/data/iris.csv"
#define CANCER TAPEGRAD_SOURCE_DIR "/data/breast_cancer.csv"

/* Every row in one fold; each class split across folds within one row of count / k; sizes within one of rows / k. */
static void check_folds(const tg_dataset *ds, int k, const int *fold)
{
    int64_t per[16][4] = { { 0 } }, size[16] = { 0 }, count[4] = { 0 };
    for (int64_t r = 0; r < ds->rows; r++) {
        cr_assert(fold[r] >= 0 && fold[r] < k, "row %lld in fold %d", (long long)r, fold[r]);
        per[fold[r]][ds->y[r]]++;
        size[fold[r]]++;
        count[ds->y[r]]++;
    }
    for (int f = 0; f < k; f++) {
        cr_expect(llabs(size[f] * k - ds->rows) < k, "fold %d has %lld of %lld rows", f, (long long)size[f],
                  (long long)ds->rows);
        for (int64_t c = 0; c < ds->classes; c++)
            cr_expect(per[f][c] == count[c] / k || per[f][c] == count[c] / k + 1, "fold %d: %lld of class %lld's %lld",
                      f, (long long)per[f][c], (long long)c, (long long)count[c]);
    }
}

Test(cv, stratified_folds_keep_class_proportions_and_repeat_from_the_seed)
{
    const char *files[2] = { IRIS, CANCER };
    for (int i = 0; i < 2; i++) {
        tg_dataset *ds = tg_csv_load(files[i], NULL);
        cr_assert_not_null(ds, "%s", tg_last_error());
        int *a = malloc((size_t)ds->rows * sizeof *a), *b = malloc((size_t)ds->rows * sizeof *b);
        for (int k = 2; k <= 10; k += 3) {
            tg_rng rng;
            tg_rng_seed(&rng, 5);
            cr_assert_eq(tg_stratified_folds(ds, k, &rng, a), 0, "%s", tg_last_error());
            check_folds(ds, k, a);
            tg_rng_seed(&rng, 5);
            cr_assert_eq(tg_stratified_folds(ds, k, &rng, b), 0);
            cr_expect_eq(memcmp(a, b, (size_t)ds->rows * sizeof *a), 0, "the same seed gives the same folds");
            tg_rng_seed(&rng, 6);
            cr_assert_eq(tg_stratified_folds(ds, k, &rng, b), 0);
            cr_expect_neq(memcmp(a, b, (size_t)ds->rows * sizeof *a), 0, "another seed, other folds");
        }
        free(a);
        free(b);
        tg_dataset_free(ds);
    }
}

Test(cv, folds_below_2_or_above_the_smallest_class_are_refused)
{
    tg_dataset *ds = tg_csv_load(IRIS, NULL);
    cr_assert_not_null(ds);
    int *fold = malloc((size_t)ds->rows * sizeof *fold);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    cr_expect_neq(tg_stratified_folds(ds, 1, &rng, fold), 0);
    cr_expect(strstr(tg_last_error(), "at least 2"), "%s", tg_last_error());
    cr_expect_eq(tg_stratified_folds(ds, 50, &rng, fold), 0, "50 rows per class: 50 folds fit");
    cr_expect_neq(tg_stratified_folds(ds, 51, &rng, fold), 0);
    cr_expect(strstr(tg_last_error(), "51 folds but class setosa has 50 rows"), "%s", tg_last_error());
    free(fold);
    tg_dataset_free(ds);
}

Test(cv, train_on_data_trains_on_the_given_rows_and_leaves_them_alone)
{
    const char *json = "{ \"data\": { \"train\": \"" IRIS "\" }, \"model\": { \"layers\": [ "
                       "{ \"type\": \"linear\", \"out\": 3 } ] }, \"optimizer\": { \"type\": \"sgd\", \"lr\": 0.1 }, "
                       "\"train\": { \"epochs\": 30, \"batch_size\": 16 } }";
    tg_config *cfg = tg_config_parse(json, NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_dataset *ds = tg_csv_load(IRIS, NULL);
    float first = ds->x[0];
    tg_training *t = tg_train_on_data(cfg, ds, NULL, NULL, NULL);
    cr_assert_not_null(t, "%s", tg_last_error());
    cr_expect_eq(t->train->rows, 150);
    cr_expect_eq(t->validation->rows, 0);
    cr_expect_eq(t->test->rows, 0);
    cr_expect_eq(t->epochs_run, 30);
    cr_expect_eq(ds->x[0], first);
    tg_eval ev;
    cr_assert_eq(tg_evaluate(t->model, ds, &ev), 0);
    cr_expect_gt(ev.accuracy, 0.9);
    tg_eval_clear(&ev);
    tg_training_free(t);
    tg_dataset_free(ds);
    tg_config_free(cfg);
    cr_expect_null(tg_train_on_data(NULL, NULL, NULL, NULL, NULL));
}
