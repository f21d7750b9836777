/* Models trained on separate threads, each with its own tape, give the same
 * bits as the same runs one after the other: the library has no shared
 * mutable state besides the allocator hooks, which are only read. Run under
 * ThreadSanitizer by scripts/test.sh. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR ".."
#endif

enum { RUNS = 3 };

typedef struct {
    uint64_t seed;
    double *weights; /* every parameter, in state_dict order */
    int64_t n_weights;
    double accuracy;
    char error[256];
} run_result;

static void *train_one(void *arg)
{
    run_result *r = arg;
    tg_config *cfg = tg_config_load(TAPEGRAD_SOURCE_DIR "/examples/iris_mlp.json");
    tg_training *t = NULL;
    tg_eval ev = { 0 };
    if (!cfg)
        goto fail;
    cfg->seed = r->seed;
    cfg->data.shuffle_seed = r->seed;
    t = tg_train_config(cfg, NULL, NULL);
    if (!t || tg_evaluate(t->model, t->test, &ev))
        goto fail;
    r->accuracy = ev.accuracy;
    r->n_weights = 0;
    for (int i = 0; i < tg_model_n_params(t->model); i++)
        r->n_weights += tg_numel(tg_model_param(t->model, i));
    r->weights = malloc((size_t)r->n_weights * sizeof *r->weights);
    int64_t k = 0;
    for (int i = 0; r->weights && i < tg_model_n_params(t->model); i++) {
        tg_tensor *p = tg_model_param(t->model, i);
        for (int64_t j = 0; j < tg_numel(p); j++)
            r->weights[k++] = tg_get(p, j);
    }
    tg_eval_free(&ev);
    tg_training_free(t);
    tg_config_free(cfg);
    return NULL;
fail:
    snprintf(r->error, sizeof r->error, "%s", tg_last_error());
    tg_eval_free(&ev);
    tg_training_free(t);
    tg_config_free(cfg);
    return NULL;
}

Test(threads, concurrent_training_is_bit_identical_to_sequential)
{
    run_result sequential[RUNS] = { 0 }, concurrent[RUNS] = { 0 };
    for (int i = 0; i < RUNS; i++) {
        sequential[i].seed = concurrent[i].seed = 100 + (uint64_t)i;
        train_one(&sequential[i]);
        cr_assert_str_empty(sequential[i].error, "sequential run %d: %s", i, sequential[i].error);
    }
    pthread_t threads[RUNS];
    for (int i = 0; i < RUNS; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, train_one, &concurrent[i]), 0);
    for (int i = 0; i < RUNS; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < RUNS; i++) {
        cr_assert_str_empty(concurrent[i].error, "thread %d: %s", i, concurrent[i].error);
        cr_assert_gt(concurrent[i].accuracy, 0.8, "thread %d learned nothing: accuracy %g", i, concurrent[i].accuracy);
        cr_assert_eq(concurrent[i].n_weights, sequential[i].n_weights);
        cr_assert(memcmp(concurrent[i].weights, sequential[i].weights,
                         (size_t)sequential[i].n_weights * sizeof(double)) == 0,
                  "thread %d's weights differ from the sequential run's", i);
        cr_assert_eq(concurrent[i].accuracy, sequential[i].accuracy);
    }
    /* Different seeds must give different models, or the comparison above proves nothing. */
    cr_assert(memcmp(sequential[0].weights, sequential[1].weights, (size_t)sequential[0].n_weights * sizeof(double)) != 0);
    for (int i = 0; i < RUNS; i++) {
        free(sequential[i].weights);
        free(concurrent[i].weights);
    }
}
