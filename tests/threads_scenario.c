#include "threads_scenario.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tapegrad.h>

enum { RUNS = 3 };

typedef struct {
    const char *config_path;
    uint64_t seed;
    double *weights; /* every parameter, in state_dict order */
    int64_t n_weights;
    double accuracy;
    char error[256];
} run_result;

static void *train_one(void *arg)
{
    run_result *r = arg;
    tg_config *cfg = tg_config_load(r->config_path);
    tg_training *t = NULL;
    tg_eval ev = { 0 };
    if (!cfg)
        goto done;
    cfg->seed = r->seed;
    cfg->data.shuffle_seed = r->seed;
    t = tg_train_config(cfg, NULL, NULL);
    if (!t || tg_evaluate(t->model, t->test, &ev))
        goto done;
    r->accuracy = ev.accuracy;
    for (int i = 0; i < tg_model_n_params(t->model); i++)
        r->n_weights += tg_numel(tg_model_param(t->model, i));
    r->weights = malloc((size_t)r->n_weights * sizeof *r->weights);
    int64_t k = 0;
    for (int i = 0; r->weights && i < tg_model_n_params(t->model); i++) {
        tg_tensor *p = tg_model_param(t->model, i);
        for (int64_t j = 0; j < tg_numel(p); j++)
            r->weights[k++] = tg_get(p, j);
    }
done:
    if (!r->weights)
        snprintf(r->error, sizeof r->error, "%s", *tg_last_error() ? tg_last_error() : "out of memory");
    tg_eval_clear(&ev);
    tg_training_free(t);
    tg_config_free(cfg);
    return NULL;
}

int threads_scenario(const char *config_path, char *why, size_t why_size)
{
    run_result sequential[RUNS], concurrent[RUNS];
    memset(sequential, 0, sizeof sequential);
    memset(concurrent, 0, sizeof concurrent);
    pthread_t threads[RUNS];
    int status = 1, started = 0;
    for (int i = 0; i < RUNS; i++) {
        sequential[i].config_path = concurrent[i].config_path = config_path;
        sequential[i].seed = concurrent[i].seed = 100 + (uint64_t)i;
        train_one(&sequential[i]);
        if (sequential[i].error[0]) {
            snprintf(why, why_size, "sequential run %d: %s", i, sequential[i].error);
            goto done;
        }
    }
    for (; started < RUNS; started++)
        if (pthread_create(&threads[started], NULL, train_one, &concurrent[started]) != 0) {
            snprintf(why, why_size, "pthread_create failed");
            break;
        }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (started < RUNS)
        goto done;
    for (int i = 0; i < RUNS; i++) {
        run_result *c = &concurrent[i], *s = &sequential[i];
        if (c->error[0]) {
            snprintf(why, why_size, "thread %d: %s", i, c->error);
            goto done;
        }
        if (c->n_weights != s->n_weights || memcmp(c->weights, s->weights, (size_t)s->n_weights * sizeof(double)) ||
            c->accuracy != s->accuracy) {
            snprintf(why, why_size, "thread %d's model differs from the sequential run's", i);
            goto done;
        }
        if (!(c->accuracy > 0.8)) {
            snprintf(why, why_size, "thread %d learned nothing: accuracy %g", i, c->accuracy);
            goto done;
        }
    }
    /* Different seeds must give different models, or the comparison above proves nothing. */
    if (memcmp(sequential[0].weights, sequential[1].weights, (size_t)sequential[0].n_weights * sizeof(double)) == 0) {
        snprintf(why, why_size, "two seeds gave the same weights");
        goto done;
    }
    status = 0;
done:
    for (int i = 0; i < RUNS; i++) {
        free(sequential[i].weights);
        free(concurrent[i].weights);
    }
    return status;
}
