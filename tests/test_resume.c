/* Training checkpoints: a run stopped at a step boundary (mid-epoch or at an
 * epoch's end), saved with tg_training_save and resumed with
 * tg_train_config_opts must end with the same bits as the run that was never
 * stopped: weights, curves and the saved file. The reference is that
 * uninterrupted run. Also: periodic checkpoints, what a training checkpoint
 * looks like to tg_model_load, and the resumes that are refused. */
#define _POSIX_C_SOURCE 200809L

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#ifndef TAPEGRAD_SOURCE_DIR
#define TAPEGRAD_SOURCE_DIR ".."
#endif
#define IRIS_CSV TAPEGRAD_SOURCE_DIR "/data/iris.csv"

/* SGD with momentum and nesterov, an MLP, a step schedule. */
#define SGD_MOMENTUM                                                                                                   \
    "{'data': {'train': '%s', 'test_split': 0.2},"                                                                     \
    " 'model': {'layers': [{'type': 'linear', 'out': 8}, {'type': 'tanh'}, {'type': 'linear', 'out': 3}]},"            \
    " 'optimizer': {'type': 'sgd', 'lr': 0.05, 'momentum': 0.9, 'nesterov': true, 'weight_decay': 0.001},"             \
    " 'train': {'epochs': 12, 'batch_size': 16, 'lr_schedule': {'type': 'step', 'step_size': 4, 'gamma': 0.5}},"       \
    " 'seed': 3}"
/* Adam, a cosine schedule, early stopping on a validation split, gradient clipping. */
#define ADAM_EARLY                                                                                                     \
    "{'data': {'train': '%s', 'test_split': 0.2, 'validation_split': 0.25},"                                           \
    " 'model': {'layers': [{'type': 'linear', 'out': 16}, {'type': 'relu'}, {'type': 'linear', 'out': 3}]},"           \
    " 'optimizer': {'type': 'adam', 'lr': 0.05},"                                                                      \
    " 'train': {'epochs': 60, 'batch_size': 8, 'clip_grad_norm': 5,"                                                   \
    "           'lr_schedule': {'type': 'cosine', 'min_lr': 0.001}, 'early_stopping': {'patience': 4}},"               \
    " 'seed': 11}"

static tg_config *parse_config(const char *single_quoted) { return config_from_text(single_quoted, IRIS_CSV); }

/* Where to stop: epoch (1-based) and step (1-based; 0: at the epoch's end); epoch 0: never. */
typedef struct {
    int epoch;
    int64_t step;
} stop_point;

static int stop_there(const tg_progress *p, void *ctx)
{
    const stop_point *at = ctx;
    return p->epoch == at->epoch && (at->step == 0 ? p->finished : !p->finished && p->step == at->step);
}

/* Trains cfg, stopping at `at` (epoch 0: never), resuming from resume (or NULL). */
static tg_training *run(const tg_config *cfg, stop_point at, const char *resume)
{
    tg_train_opts opts = { .progress = stop_there, .ctx = &at, .resume = resume };
    tg_training *t = tg_train_config_opts(cfg, &opts);
    cr_assert_not_null(t, "%s", tg_last_error());
    return t;
}
#define NEVER ((stop_point){ 0, 0 })

static void expect_same_bits(const tg_training *a, const tg_training *b, const char *what)
{
    cr_assert_eq(a->epochs_run, b->epochs_run, "%s: %d epochs against %d", what, a->epochs_run, b->epochs_run);
    cr_assert_eq(a->stopped_early, b->stopped_early, "%s", what);
    for (int e = 0; e < a->epochs_run; e++) {
        cr_assert_eq(memcmp(&a->train_loss[e], &b->train_loss[e], sizeof(double)), 0, "%s: train loss %d", what, e);
        cr_assert_eq(memcmp(&a->val_loss[e], &b->val_loss[e], sizeof(double)), 0, "%s: val loss %d", what, e);
        cr_assert_eq(memcmp(&a->val_accuracy[e], &b->val_accuracy[e], sizeof(double)), 0, "%s: val acc %d", what, e);
    }
    for (int i = 0; i < tg_model_n_params(a->model); i++) {
        const tg_tensor *pa = tg_model_param(a->model, i), *pb = tg_model_param(b->model, i);
        size_t bytes = (size_t)tg_numel(pa) * tg_dtype_size(tg_dtype_of(pa));
        cr_assert_eq(memcmp(tg_data(pa), tg_data(pb), bytes), 0, "%s: %s differs", what,
                     tg_model_param_name(a->model, i));
    }
}

/* The model files of two runs, byte for byte. */
static void expect_same_files(const tg_training *a, const tg_training *b, const char *dir)
{
    char *pa = join_path(dir, "a.safetensors"), *pb = join_path(dir, "b.safetensors");
    cr_assert_eq(tg_model_save(a->model, pa), 0, "%s", tg_last_error());
    cr_assert_eq(tg_model_save(b->model, pb), 0, "%s", tg_last_error());
    size_t na, nb;
    unsigned char *ba = read_bytes(pa, &na), *bb = read_bytes(pb, &nb);
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(ba, bb, na), 0, "the saved models differ");
    free(ba);
    free(bb);
    unlink(pa);
    unlink(pb);
    free(pa);
    free(pb);
}

/* The solver's report of two full-batch runs: iterations, evaluations, status, objective and gradient. */
static void expect_same_solver(const tg_training *a, const tg_training *b, const char *what)
{
    cr_assert_eq(a->solver.status, b->solver.status, "%s: %s against %s", what, tg_lbfgs_status_text(a->solver.status),
                 tg_lbfgs_status_text(b->solver.status));
    cr_assert_eq(a->solver.iterations, b->solver.iterations, "%s", what);
    cr_assert_eq(a->solver.evaluations, b->solver.evaluations, "%s", what);
    cr_assert_eq(memcmp(&a->solver.objective, &b->solver.objective, sizeof(double)), 0, "%s", what);
    cr_assert_eq(memcmp(&a->solver.grad_norm, &b->solver.grad_norm, sizeof(double)), 0, "%s", what);
    cr_assert_eq(memcmp(&a->objective, &b->objective, sizeof(double)), 0, "%s", what);
}

/* Stops the run (config, with data for its %s) at each point of stops[] in turn, saving and resuming
 * between, then compares the end with the uninterrupted run: weights, curves, the saved file, and a
 * full-batch run's solver report. Under lbfgs a stop's epoch is the iteration (0 or less: counted back
 * from the uninterrupted run's last). */
static void expect_resume_exact_on(const char *config, const char *data, const stop_point *stops, int n_stops)
{
    tg_config *cfg = config_from_text(config, data);
    char *dir = make_temp_dir("tapegrad-resume"), *ckpt = join_path(dir, "run.safetensors");
    tg_training *whole = run(cfg, NEVER, NULL);
    const char *resume = NULL;
    for (int k = 0; k < n_stops; k++) {
        stop_point at = stops[k];
        if (at.epoch <= 0)
            at.epoch += whole->epochs_run;
        cr_assert_gt(whole->epochs_run, at.epoch - 1, "the reference run ends after %d", whole->epochs_run);
        tg_training *part = run(cfg, at, resume);
        cr_assert(part->stopped_by_caller && !part->finished, "stop %d did not stop the run", k);
        cr_assert_eq(part->epochs_run, at.step ? at.epoch - 1 : at.epoch);
        cr_assert_eq(part->steps_done, at.step);
        if (part->full_batch)
            cr_assert(part->solver.status == TG_LBFGS_STOPPED && part->solver.iterations == at.epoch);
        cr_assert_eq(tg_training_save(part, ckpt), 0, "%s", tg_last_error());
        tg_training_free(part);
        resume = ckpt;
    }
    tg_training *resumed = run(cfg, NEVER, resume);
    cr_assert(resumed->finished);
    expect_same_bits(whole, resumed, config);
    if (whole->full_batch)
        expect_same_solver(whole, resumed, config);
    expect_same_files(whole, resumed, dir);
    tg_training_free(whole);
    tg_training_free(resumed);
    unlink(ckpt);
    free(ckpt);
    rmdir(dir);
    free(dir);
    tg_config_free(cfg);
}

static void expect_resume_exact(const char *config, const stop_point *stops, int n_stops)
{
    expect_resume_exact_on(config, IRIS_CSV, stops, n_stops);
}

Test(resume, sgd_with_momentum_resumes_mid_epoch_bit_identical)
{
    expect_resume_exact(SGD_MOMENTUM, (stop_point[]){ { 3, 3 } }, 1);
}

Test(resume, sgd_with_momentum_resumes_at_an_epochs_end_bit_identical)
{
    expect_resume_exact(SGD_MOMENTUM, (stop_point[]){ { 4, 0 } }, 1); /* the next epoch's lr is halved */
}

Test(resume, adam_with_a_schedule_and_early_stopping_resumes_mid_epoch_bit_identical)
{
    tg_config *cfg = parse_config(ADAM_EARLY);
    tg_training *whole = run(cfg, NEVER, NULL);
    cr_assert(whole->stopped_early, "the reference run should stop early (ran %d epochs)", whole->epochs_run);
    cr_assert_gt(whole->epochs_run, 8);
    tg_training_free(whole);
    tg_config_free(cfg);
    /* mid-epoch 7, then again mid-epoch 9 of the resumed run */
    expect_resume_exact(ADAM_EARLY, (stop_point[]){ { 7, 5 }, { 9, 2 } }, 2);
}

Test(resume, adam_with_a_schedule_and_early_stopping_resumes_at_an_epochs_end_bit_identical)
{
    /* the best epoch is 7 of 11: stops where epochs without improvement are being counted */
    expect_resume_exact(ADAM_EARLY, (stop_point[]){ { 6, 0 }, { 9, 0 } }, 2);
}

static int count_checkpoints(const tg_training *t, void *ctx)
{
    (void)t;
    ++*(int *)ctx;
    return 0;
}

/* A one-output binary model (binary cross-entropy with balanced class weights) on breast_cancer.csv. */
Test(resume, a_binary_model_resumes_mid_epoch_bit_identical)
{
    char config[1024];
    snprintf(config, sizeof config,
             "{'data': {'train': '%s', 'test_split': 0.25, 'validation_split': 0.2},"
             " 'model': {'layers': [{'type': 'linear', 'out': 4}, {'type': 'tanh'}, {'type': 'linear', 'out': 1}]},"
             " 'loss': {'type': 'binary_cross_entropy', 'class_weight': 'balanced', 'pos_weight': 1.5},"
             " 'optimizer': {'type': 'adamw', 'lr': 0.01}, 'train': {'epochs': 8, 'batch_size': 32}, 'seed': 7}",
             TAPEGRAD_SOURCE_DIR "/data/breast_cancer.csv");
    expect_resume_exact(config, (stop_point[]){ { 3, 4 } }, 1);
}

Test(resume, periodic_checkpoints_resume_bit_identical)
{
    tg_config *cfg = parse_config(SGD_MOMENTUM);
    char *dir = make_temp_dir("tapegrad-resume"), *ckpt = join_path(dir, "every.safetensors");
    tg_training *whole = run(cfg, NEVER, NULL);
    /* every 5 epochs of 12: checkpoints after epochs 5 and 10, the second one kept */
    tg_train_opts opts = { .checkpoint_every = 5, .checkpoint_path = ckpt };
    tg_training *t = tg_train_config_opts(cfg, &opts);
    cr_assert_not_null(t, "%s", tg_last_error());
    expect_same_bits(whole, t, "with checkpoints");
    tg_training_free(t);
    tg_training *resumed = run(cfg, NEVER, ckpt);
    expect_same_bits(whole, resumed, "resumed from the periodic checkpoint");
    tg_training_free(resumed);
    /* the callback form is called at the same epochs */
    int calls = 0;
    opts = (tg_train_opts){ .checkpoint_every = 5, .checkpoint = count_checkpoints, .ctx = &calls };
    t = tg_train_config_opts(cfg, &opts);
    cr_assert_not_null(t, "%s", tg_last_error());
    cr_assert_eq(calls, 2);
    tg_training_free(t);
    tg_training_free(whole);
    unlink(ckpt);
    free(ckpt);
    rmdir(dir);
    free(dir);
    tg_config_free(cfg);
}

/* The training checkpoint is also a model file: tg_model_load gives the weights the stopped run returned
 * (the best so far under early stopping), not the last ones. */
Test(resume, a_training_checkpoint_loads_as_the_model_the_stopped_run_returned)
{
    tg_config *cfg = parse_config(ADAM_EARLY);
    char *dir = make_temp_dir("tapegrad-resume"), *ckpt = join_path(dir, "run.safetensors");
    tg_training *part = run(cfg, (stop_point){ 9, 4 }, NULL);
    cr_assert_eq(tg_training_save(part, ckpt), 0, "%s", tg_last_error());
    tg_model *back = tg_model_load(ckpt);
    cr_assert_not_null(back, "%s", tg_last_error());
    for (int i = 0; i < tg_model_n_params(back); i++) {
        const tg_tensor *a = tg_model_param(part->model, i), *b = tg_model_param(back, i);
        cr_assert_eq(memcmp(tg_data(a), tg_data(b), (size_t)tg_numel(a) * sizeof(float)), 0, "%s",
                     tg_model_param_name(back, i));
    }
    tg_eval ev;
    cr_assert_eq(tg_evaluate(back, part->validation, &ev), 0, "%s", tg_last_error());
    double best = INFINITY;
    for (int e = 0; e < part->epochs_run; e++)
        best = part->val_loss[e] < best ? part->val_loss[e] : best;
    cr_assert(close_enough(ev.loss, best, 1e-12 * best), "loaded val loss %.17g, best epoch's %.17g", ev.loss, best);
    tg_eval_clear(&ev);
    tg_model_free(back);
    tg_training_free(part);
    unlink(ckpt);
    free(ckpt);
    rmdir(dir);
    free(dir);
    tg_config_free(cfg);
}

/* Saves a stopped SGD_MOMENTUM run into dir; returns the path. */
static char *stopped_checkpoint(const char *dir, stop_point stop_at)
{
    tg_config *cfg = parse_config(SGD_MOMENTUM);
    char *ckpt = join_path(dir, "run.safetensors");
    tg_training *part = run(cfg, stop_at, NULL);
    cr_assert_eq(tg_training_save(part, ckpt), 0, "%s", tg_last_error());
    tg_training_free(part);
    tg_config_free(cfg);
    return ckpt;
}

static void expect_resume_refused(const char *config, const char *ckpt, const char *piece)
{
    tg_config *cfg = parse_config(config);
    tg_train_opts opts = { .resume = ckpt };
    tg_clear_error();
    tg_training *t = tg_train_config_opts(cfg, &opts);
    cr_assert_null(t, "resumed although %s", piece);
    cr_assert(strstr(tg_last_error(), piece), "expected '%s' in: %s", piece, tg_last_error());
    cr_assert(strstr(tg_last_error(), ckpt), "the error does not name the checkpoint: %s", tg_last_error());
    cr_log_info("resume: %s", tg_last_error());
    tg_config_free(cfg);
}

Test(resume, a_config_that_differs_from_the_checkpoints_is_refused_naming_the_difference)
{
    char *dir = make_temp_dir("tapegrad-resume"), *ckpt = stopped_checkpoint(dir, (stop_point){ 3, 3 });
    char config[2048];
    /* another learning rate */
    snprintf(config, sizeof config, "%s", SGD_MOMENTUM);
    memcpy(strstr(config, "'lr': 0.05"), "'lr': 0.07", 10);
    expect_resume_refused(config, ckpt, "optimizer.lr 0.05 but the config gives 0.07");
    /* another model */
    snprintf(config, sizeof config, "%s", SGD_MOMENTUM);
    memcpy(strstr(config, "'out': 8"), "'out': 9", 8);
    expect_resume_refused(config, ckpt, "model.layers \"linear 8, tanh, linear 3\" but the config gives \"linear 9");
    /* another optimizer */
    snprintf(config, sizeof config, "%s", SGD_MOMENTUM);
    memcpy(strstr(config, "'momentum': 0.9"), "'momentum': 0.8", 15);
    expect_resume_refused(config, ckpt, "optimizer.momentum 0.9 but the config gives 0.8");
    /* other rows: another seed splits the data otherwise */
    snprintf(config, sizeof config, "%s", SGD_MOMENTUM);
    memcpy(strstr(config, "'seed': 3"), "'seed': 4", 9);
    expect_resume_refused(config, ckpt, "seed \"3\" but the config gives \"4\"");
    unlink(ckpt);
    free(ckpt);
    rmdir(dir);
    free(dir);
}

Test(resume, other_data_of_the_same_shape_is_refused)
{
    char *dir = make_temp_dir("tapegrad-resume"), *ckpt = stopped_checkpoint(dir, (stop_point){ 3, 3 });
    /* iris with one value changed in its first data row */
    size_t size;
    char *text = (char *)read_bytes(IRIS_CSV, &size), *csv = join_path(dir, "iris.csv");
    char *row = strchr(text, '\n') + 1;
    cr_assert(row[0] >= '0' && row[0] <= '8');
    row[0]++;
    write_bytes(csv, text, size);
    tg_config *cfg = config_from_text(SGD_MOMENTUM, csv);
    tg_train_opts opts = { .resume = ckpt };
    tg_training *t = tg_train_config_opts(cfg, &opts);
    cr_assert_null(t);
    cr_assert(strstr(tg_last_error(), "rows differ"), "%s", tg_last_error());
    tg_config_free(cfg);
    free(text);
    unlink(csv);
    free(csv);
    unlink(ckpt);
    free(ckpt);
    rmdir(dir);
    free(dir);
}

Test(resume, a_plain_model_or_a_finished_run_is_refused)
{
    char *dir = make_temp_dir("tapegrad-resume"), *ckpt = join_path(dir, "model.safetensors");
    tg_config *cfg = parse_config(SGD_MOMENTUM);
    tg_training *t = run(cfg, NEVER, NULL);
    cr_assert_eq(tg_model_save(t->model, ckpt), 0, "%s", tg_last_error());
    expect_resume_refused(SGD_MOMENTUM, ckpt, "not a training checkpoint");
    cr_assert_eq(tg_training_save(t, ckpt), 0, "%s", tg_last_error());
    expect_resume_refused(SGD_MOMENTUM, ckpt, "nothing to resume");
    tg_training_free(t);
    tg_config_free(cfg);
    unlink(ckpt);
    free(ckpt);
    rmdir(dir);
    free(dir);
}

Test(resume, a_row_order_that_is_not_a_permutation_is_refused)
{
    char *dir = make_temp_dir("tapegrad-resume"), *ckpt = stopped_checkpoint(dir, (stop_point){ 3, 3 });
    size_t size;
    unsigned char *bytes = read_bytes(ckpt, &size);
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++)
        header_len |= (uint64_t)bytes[i] << (8 * i);
    char *header = strndup((const char *)bytes + 8, header_len);
    char *entry = strstr(header, "\"training.order\"");
    cr_assert_not_null(entry);
    long long begin;
    cr_assert_eq(sscanf(strstr(entry, "data_offsets") + 15, "%lld", &begin), 1);
    unsigned char *order = bytes + 8 + header_len + begin;
    memcpy(order + 8, order, 8); /* row order[1] = order[0]: a repeated row */
    write_bytes(ckpt, bytes, size);
    expect_resume_refused(SGD_MOMENTUM, ckpt, "not a permutation");
    free(header);
    free(bytes);
    unlink(ckpt);
    free(ckpt);
    rmdir(dir);
    free(dir);
}

/* ---- the full-batch solver (optimizer.type lbfgs): stopped at an iteration, resumed ---- */

/* Softmax regression on digits (640 variables), L2 with C 0.5, float32 model: the solver's float64 point
 * must come back from the checkpoint, not the model's rounding of it. */
#define LBFGS_MULTINOMIAL                                                                                              \
    "{'data': {'train': '%s', 'label': 'digit', 'test_split': 0.2, 'validation_split': 0.1, 'standardize': true},"     \
    " 'model': {'layers': [{'type': 'linear', 'out': 10}]},"                                                           \
    " 'loss': {'penalty': 'l2', 'C': 0.5}, 'optimizer': {'type': 'lbfgs', 'max_iter': 60, 'history_size': 7},"         \
    " 'seed': 5}"
/* Logistic regression with one output on breast_cancer.csv, L2 and balanced class weights. */
#define LBFGS_BINARY_WITH(optimizer_keys)                                                                              \
    "{'data': {'train': '%s', 'test_split': 0.25, 'standardize': true},"                                               \
    " 'model': {'layers': [{'type': 'linear', 'out': 1}], 'dtype': 'float64'},"                                        \
    " 'loss': {'type': 'binary_cross_entropy', 'class_weight': 'balanced', 'penalty': 'l2', 'C': 2},"                  \
    " 'optimizer': {'type': 'lbfgs', 'max_iter': 200, 'block_rows': 100" optimizer_keys "}, 'seed': 1}"
#define LBFGS_BINARY LBFGS_BINARY_WITH("")
/* OWL-QN: L1 on iris, with a history of 4 pairs, so that the ring has wrapped when the run stops. */
#define LBFGS_L1                                                                                                       \
    "{'data': {'train': '%s', 'test_split': 0.2, 'standardize': true},"                                                \
    " 'model': {'layers': [{'type': 'linear', 'out': 3}]},"                                                            \
    " 'loss': {'penalty': 'l1', 'C': 0.3}, 'optimizer': {'type': 'lbfgs', 'max_iter': 400, 'history_size': 4},"        \
    " 'seed': 9}"

/* An lbfgs run stopped after each iteration of stops[] in turn (0 or less: from the end). */
static void expect_lbfgs_resume_exact(const char *config, const char *data, const int *stops, int n_stops)
{
    stop_point points[4];
    cr_assert_leq(n_stops, 4);
    for (int k = 0; k < n_stops; k++)
        points[k] = (stop_point){ stops[k], 0 };
    expect_resume_exact_on(config, data, points, n_stops);
}

#define DIGITS_CSV TAPEGRAD_SOURCE_DIR "/data/digits.csv"
#define BREAST_CANCER_CSV TAPEGRAD_SOURCE_DIR "/data/breast_cancer.csv"

Test(resume, lbfgs_l2_multinomial_resumes_bit_identical)
{
    expect_lbfgs_resume_exact(LBFGS_MULTINOMIAL, DIGITS_CSV, (int[]){ 13 }, 1);
}

Test(resume, lbfgs_l2_multinomial_stopped_twice_and_at_the_first_iteration_resumes_bit_identical)
{
    expect_lbfgs_resume_exact(LBFGS_MULTINOMIAL, DIGITS_CSV, (int[]){ 1, 9 }, 2);
}

Test(resume, lbfgs_l2_binary_resumes_bit_identical)
{
    expect_lbfgs_resume_exact(LBFGS_BINARY, BREAST_CANCER_CSV, (int[]){ 6 }, 1);
}

/* Stopped at the very iteration where the objective's change fell below tolerance_change: the resumed
 * run ends there too (the test that followed the stop runs first), not one iteration later. */
Test(resume, lbfgs_stopped_at_its_last_iteration_ends_there_when_resumed)
{
    const char *config = LBFGS_BINARY_WITH(", 'tolerance_change': 1e-7");
    tg_config *cfg = config_from_text(config, BREAST_CANCER_CSV);
    tg_training *whole = run(cfg, NEVER, NULL);
    cr_assert_eq(whole->solver.status, TG_LBFGS_CONVERGED_CHANGE, "%s", tg_lbfgs_status_text(whole->solver.status));
    tg_training_free(whole);
    tg_config_free(cfg);
    expect_lbfgs_resume_exact(config, BREAST_CANCER_CSV, (int[]){ 0 }, 1);
}

Test(resume, lbfgs_l1_owlqn_resumes_bit_identical_after_the_history_wrapped)
{
    expect_lbfgs_resume_exact(LBFGS_L1, IRIS_CSV, (int[]){ 11 }, 1);
    /* the run did reach exact zeros through OWL-QN: the resume kept them */
    tg_config *cfg = config_from_text(LBFGS_L1, IRIS_CSV);
    tg_training *t = run(cfg, NEVER, NULL);
    const tg_tensor *w = tg_model_param(t->model, 0);
    int zeros = 0;
    for (int64_t k = 0; k < tg_numel(w); k++)
        zeros += tg_get(w, k) == 0.0;
    cr_assert_gt(zeros, 0, "no weight is exactly 0 under L1");
    tg_training_free(t);
    tg_config_free(cfg);
}

/* Checkpoints every 4 iterations: the last one resumes to the same bits; the file loads as a model. */
Test(resume, lbfgs_periodic_checkpoints_count_iterations_and_resume_bit_identical)
{
    tg_config *cfg = config_from_text(LBFGS_MULTINOMIAL, DIGITS_CSV);
    char *dir = make_temp_dir("tapegrad-resume"), *ckpt = join_path(dir, "every.safetensors");
    tg_training *whole = run(cfg, NEVER, NULL);
    int calls = 0;
    tg_train_opts opts = { .checkpoint_every = 4, .checkpoint = count_checkpoints, .ctx = &calls };
    tg_training *t = tg_train_config_opts(cfg, &opts);
    cr_assert_not_null(t, "%s", tg_last_error());
    cr_assert_eq(calls, (whole->solver.iterations - 1) / 4, "%d checkpoints in %d iterations", calls,
                 whole->solver.iterations);
    tg_training_free(t);
    /* stopped after iteration 10: the file holds iteration 8's state */
    opts = (tg_train_opts){
        .checkpoint_every = 4, .checkpoint_path = ckpt, .progress = stop_there, .ctx = &(stop_point){ 10, 0 }
    };
    t = tg_train_config_opts(cfg, &opts);
    cr_assert_not_null(t, "%s", tg_last_error());
    tg_training_free(t);
    tg_model *back = tg_model_load(ckpt);
    cr_assert_not_null(back, "a training checkpoint of lbfgs does not load as a model: %s", tg_last_error());
    tg_model_free(back);
    tg_training *resumed = run(cfg, NEVER, ckpt);
    expect_same_bits(whole, resumed, "resumed from iteration 8's checkpoint");
    expect_same_solver(whole, resumed, "resumed from iteration 8's checkpoint");
    tg_training_free(resumed);
    tg_training_free(whole);
    unlink(ckpt);
    free(ckpt);
    rmdir(dir);
    free(dir);
    tg_config_free(cfg);
}

Test(resume, lbfgs_resume_with_other_solver_settings_or_a_finished_run_is_refused)
{
    char *dir = make_temp_dir("tapegrad-resume"), *ckpt = join_path(dir, "run.safetensors");
    tg_config *cfg = config_from_text(LBFGS_L1, IRIS_CSV);
    tg_training *part = run(cfg, (stop_point){ 5, 0 }, NULL);
    cr_assert_eq(tg_training_save(part, ckpt), 0, "%s", tg_last_error());
    tg_training_free(part);
    char config[2048];
    snprintf(config, sizeof config, "%s", LBFGS_L1);
    memcpy(strstr(config, "'C': 0.3"), "'C': 0.4", 8);
    tg_config *other = config_from_text(config, IRIS_CSV);
    tg_train_opts opts = { .resume = ckpt };
    cr_assert_null(tg_train_config_opts(other, &opts));
    cr_assert(strstr(tg_last_error(), "loss.C 0.3 but the config gives 0.4"), "%s", tg_last_error());
    tg_config_free(other);
    snprintf(config, sizeof config, "%s", LBFGS_L1);
    memcpy(strstr(config, "'history_size': 4"), "'history_size': 5", 17);
    other = config_from_text(config, IRIS_CSV);
    cr_assert_null(tg_train_config_opts(other, &opts));
    cr_assert(strstr(tg_last_error(), "optimizer.history_size 4 but the config gives 5"), "%s", tg_last_error());
    tg_config_free(other);
    tg_training *whole = run(cfg, NEVER, NULL);
    cr_assert_eq(tg_training_save(whole, ckpt), 0, "%s", tg_last_error());
    cr_assert_null(tg_train_config_opts(cfg, &opts));
    cr_assert(strstr(tg_last_error(), "nothing to resume"), "%s", tg_last_error());
    tg_training_free(whole);
    tg_config_free(cfg);
    unlink(ckpt);
    free(ckpt);
    rmdir(dir);
    free(dir);
}
