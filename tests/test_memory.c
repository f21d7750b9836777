/* Allocation behaviour, observed through the allocator hooks: a training step
 * allocates nothing after the first, everything is given back, and every
 * failed allocation is reported and cleaned up. Criterion runs each test in
 * its own process, so the counters can be globals. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#include <signal.h>
#include <sys/wait.h>
#include <zlib.h>

static struct {
    int64_t attempts; /* calls to malloc or realloc, failed ones included */
    int64_t fail_at; /* the attempt (1-based) that fails; 0: none */
    int64_t allocations; /* successful mallocs and realloc(NULL, ...) */
    int64_t frees;
    int64_t live;
} counts;

static void *counting_malloc(size_t bytes)
{
    if (++counts.attempts == counts.fail_at)
        return NULL;
    void *p = malloc(bytes);
    if (p) {
        counts.allocations++;
        counts.live++;
    }
    return p;
}

static void *counting_realloc(void *old, size_t bytes)
{
    if (++counts.attempts == counts.fail_at)
        return NULL;
    void *p = realloc(old, bytes);
    if (p && !old) {
        counts.allocations++;
        counts.live++;
    }
    return p;
}

static void counting_free(void *p)
{
    if (!p)
        return;
    counts.frees++;
    counts.live--;
    free(p);
}

static void install_counting_allocator(void)
{
    memset(&counts, 0, sizeof counts);
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
}

/* ---- a softmax classifier trained by hand-written SGD ---- */

enum { ROWS = 32, FEATURES = 4, CLASSES = 3 };

static void sgd(tg_tensor *param, double lr)
{
    tg_tensor *g = tg_grad(param);
    for (int64_t i = 0; i < tg_numel(param); i++)
        tg_set(param, i, tg_get(param, i) - lr * tg_get(g, i));
}

static void train_without_allocating(tg_dtype dtype)
{
    install_counting_allocator();
    tg_tensor *x = random_tensor(dtype, 2, (int64_t[]){ ROWS, FEATURES }, 11, -1, 1);
    tg_tensor *labels = tg_tensor_new(TG_I64, 1, (int64_t[]){ ROWS });
    tg_tensor *w = tg_tensor_new(dtype, 2, (int64_t[]){ CLASSES, FEATURES });
    tg_tensor *b = tg_tensor_new(dtype, 1, (int64_t[]){ CLASSES });
    tg_tape *tape = tg_tape_new();
    cr_assert(x && labels && w && b && tape, "%s", tg_last_error());
    cr_assert_gt(counts.allocations, 0, "the hooks are not in use");
    /* Learnable labels: the argmax of a fixed linear map of the features. */
    static const double teacher[CLASSES][FEATURES] = { { 2, -1, 0, 1 }, { -1, 2, 1, 0 }, { 0, 0, -2, 1 } };
    for (int64_t i = 0; i < ROWS; i++) {
        int64_t best = 0;
        double best_score = -INFINITY;
        for (int64_t c = 0; c < CLASSES; c++) {
            double score = 0;
            for (int64_t f = 0; f < FEATURES; f++)
                score += teacher[c][f] * tg_get(x, i * FEATURES + f);
            if (score > best_score) {
                best_score = score;
                best = c;
            }
        }
        tg_set(labels, i, (double)best);
    }
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(b, 1);

    int64_t allocations_after_first_step = 0;
    size_t capacity_after_first_step = 0;
    double first_loss = 0, last_loss = 0;
    for (int step = 0; step < 1000; step++) {
        tg_tape_reset(tape);
        tg_tensor *loss = tg_cross_entropy(tape, tg_linear(tape, x, w, b), labels, NULL);
        cr_assert_not_null(loss, "step %d: %s", step, tg_last_error());
        tg_zero_grad(w);
        tg_zero_grad(b);
        cr_assert_eq(tg_backward(tape, loss), 0, "step %d: %s", step, tg_last_error());
        sgd(w, 0.5);
        sgd(b, 0.5);
        last_loss = tg_get(loss, 0);
        if (step == 0) {
            first_loss = last_loss;
            allocations_after_first_step = counts.allocations;
            capacity_after_first_step = tg_tape_capacity(tape);
        } else if (counts.allocations != allocations_after_first_step ||
                   tg_tape_capacity(tape) != capacity_after_first_step) {
            cr_assert_fail("step %d allocated: %lld allocations (%lld after the first step), capacity %zu (%zu)", step,
                           (long long)counts.allocations, (long long)allocations_after_first_step,
                           tg_tape_capacity(tape), capacity_after_first_step);
        }
    }
    cr_assert_float_eq(first_loss, log(CLASSES), 1e-6, "zero weights give uniform probabilities");
    cr_assert_lt(last_loss, 0.5 * first_loss, "training did not learn: %g -> %g", first_loss, last_loss);

    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(labels);
    tg_tensor_free(w);
    tg_tensor_free(b);
    cr_assert_eq(counts.live, 0, "%lld allocations leaked", (long long)counts.live);
    cr_assert_eq(counts.allocations, counts.frees);
    tg_set_allocator(NULL, NULL, NULL);
}

Test(memory, training_loop_allocates_only_in_its_first_step_float64) { train_without_allocating(TG_F64); }

Test(memory, training_loop_allocates_only_in_its_first_step_float32) { train_without_allocating(TG_F32); }

/* ---- failure injection ---- */

typedef struct {
    tg_tensor *x, *w, *b, *labels, *x_copy, *big;
    tg_tape *tape;
} world;

static int make_world(world *s)
{
    memset(s, 0, sizeof *s);
    if (!(s->x = random_tensor(TG_F64, 2, (int64_t[]){ 6, 4 }, 21, -1, 1)))
        return -1;
    if (!(s->w = random_tensor(TG_F64, 2, (int64_t[]){ 3, 4 }, 22, -1, 1)))
        return -1;
    if (!(s->b = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 0.1, -0.2, 0.3 })))
        return -1;
    if (!(s->labels = random_labels(6, 3, 23)))
        return -1;
    if (!(s->x_copy = tg_tensor_clone(s->x)))
        return -1;
    /* 1.28 MB: more than the tape's first block, so the arena has to grow. */
    if (!(s->big = random_tensor(TG_F64, 2, (int64_t[]){ 400, 400 }, 24, -1, 1)))
        return -1;
    if (!(s->tape = tg_tape_new()))
        return -1;
    tg_set_requires_grad(s->w, 1);
    tg_set_requires_grad(s->b, 1);
    tg_set_requires_grad(s->big, 1);
    return 0;
}

/* y = x^2 elementwise, as a custom op (its backward needs scratch from the tape) */
static int square_forward(tg_tensor *const *inputs, int n_inputs, tg_tensor *out, void *ctx)
{
    (void)n_inputs, (void)ctx;
    for (int64_t i = 0; i < tg_numel(out); i++)
        tg_set(out, i, tg_get(inputs[0], i) * tg_get(inputs[0], i));
    return 0;
}

/* dx += 2 x g */
static int square_backward(tg_tensor *const *inputs, int n_inputs, const tg_tensor *out, const tg_tensor *grad_out,
                           tg_tensor *const *grad_inputs, void *ctx)
{
    (void)n_inputs, (void)out, (void)ctx;
    for (int64_t i = 0; grad_inputs[0] && i < tg_numel(grad_out); i++)
        tg_set(grad_inputs[0], i, tg_get(grad_inputs[0], i) + 2 * tg_get(inputs[0], i) * tg_get(grad_out, i));
    return 0;
}

static const tg_custom_op square_op = { .name = "square", .forward = square_forward, .backward = square_backward };

/* loss = cross_entropy(relu(linear(x))) + mean(tanh(big)) + sum(x_copy * x) + sum(square(w)), then backward */
static int step(world *s, double *loss_value)
{
    tg_tape_reset(s->tape);
    tg_tensor *h = tg_relu(s->tape, tg_linear(s->tape, s->x, s->w, s->b));
    tg_tensor *classifier = tg_cross_entropy(s->tape, h, s->labels, NULL);
    tg_tensor *regulariser = tg_mean(s->tape, tg_tanh(s->tape, s->big), TG_ALL);
    tg_tensor *constant = tg_sum(s->tape, tg_mul(s->tape, s->x_copy, s->x), TG_ALL);
    tg_tensor *weight_decay =
        tg_sum(s->tape, tg_custom(s->tape, &square_op, 1, &s->w, tg_ndim(s->w), tg_shape(s->w), NULL), TG_ALL);
    tg_tensor *loss =
        tg_add(s->tape, tg_add(s->tape, tg_add(s->tape, classifier, regulariser), constant), weight_decay);
    if (!loss)
        return -1;
    tg_zero_grad(s->w);
    tg_zero_grad(s->b);
    tg_zero_grad(s->big);
    if (tg_backward(s->tape, loss) != 0)
        return -1;
    *loss_value = tg_get(loss, 0);
    return 0;
}

static void free_world(world *s)
{
    tg_tape_free(s->tape);
    tg_tensor_free(s->x);
    tg_tensor_free(s->w);
    tg_tensor_free(s->b);
    tg_tensor_free(s->labels);
    tg_tensor_free(s->x_copy);
    tg_tensor_free(s->big);
}

Test(memory, every_failed_allocation_is_reported_and_cleaned_up)
{
    install_counting_allocator();
    world s;
    double reference = 0;
    cr_assert_eq(make_world(&s), 0, "%s", tg_last_error());
    cr_assert_eq(step(&s, &reference), 0, "%s", tg_last_error());
    double reference_grad = tg_get(tg_grad(s.w), 0);
    free_world(&s);
    int64_t needed = counts.attempts;
    cr_assert_eq(counts.live, 0, "%lld allocations leaked without any failure", (long long)counts.live);

    bool finished = false;
    for (int64_t n = 1; n <= needed + 1 && !finished; n++) {
        memset(&counts, 0, sizeof counts);
        counts.fail_at = n;
        tg_clear_error();
        double value = 0;
        int made = make_world(&s);
        int rc = made == 0 ? step(&s, &value) : -1;
        if (rc == 0)
            rc = step(&s, &value); /* a second step on the reset tape */
        if (counts.attempts < n) {
            cr_assert_eq(rc, 0, "no allocation failed, yet: %s", tg_last_error());
            finished = true;
        } else {
            cr_assert_neq(rc, 0, "allocation %lld failed but the scenario succeeded", (long long)n);
            cr_assert_not_null(strstr(tg_last_error(), "out of memory"), "allocation %lld: \"%s\"", (long long)n,
                               tg_last_error());
            if (made == 0) {
                /* A failed step leaves the tape and tensors usable. */
                counts.fail_at = 0;
                cr_assert_eq(step(&s, &value), 0, "retry after allocation %lld failed: %s", (long long)n,
                             tg_last_error());
                cr_assert_float_eq(value, reference, 1e-12, "retry after allocation %lld", (long long)n);
                cr_assert_float_eq(tg_get(tg_grad(s.w), 0), reference_grad, 1e-12, "retry after allocation %lld",
                                   (long long)n);
            }
        }
        free_world(&s);
        cr_assert_eq(counts.live, 0, "allocation %lld failed: %lld allocations leaked", (long long)n,
                     (long long)counts.live);
        cr_assert_eq(counts.allocations, counts.frees);
    }
    cr_assert(finished, "the scenario never ran without a failure");
    tg_set_allocator(NULL, NULL, NULL);
}

Test(memory, failed_tensor_and_tape_creation)
{
    install_counting_allocator();
    /* The header's allocation fails, then the data's. */
    for (int64_t n = 1; n <= 2; n++) {
        memset(&counts, 0, sizeof counts);
        counts.fail_at = n;
        tg_clear_error();
        cr_assert_null(tg_tensor_new(TG_F64, 2, (int64_t[]){ 3, 3 }));
        cr_assert_not_null(strstr(tg_last_error(), "out of memory"), "%s", tg_last_error());
        cr_assert_eq(counts.live, 0);
    }
    memset(&counts, 0, sizeof counts);
    counts.fail_at = 1;
    tg_clear_error();
    cr_assert_null(tg_tape_new());
    cr_assert_not_null(strstr(tg_last_error(), "out of memory"), "%s", tg_last_error());
    cr_assert_eq(counts.live, 0);

    /* An op whose output does not fit the tape's memory leaves the tape empty and usable. */
    counts.fail_at = 0;
    tg_tape *tape = tg_tape_new();
    tg_tensor *x = tg_tensor_new(TG_F64, 1, (int64_t[]){ 4 });
    tg_set_requires_grad(x, 1);
    cr_assert(tape && x);
    counts.fail_at = counts.attempts + 1;
    tg_clear_error();
    cr_assert_null(tg_exp(tape, x));
    cr_assert_not_null(strstr(tg_last_error(), "out of memory"), "%s", tg_last_error());
    cr_assert_eq(tg_tape_size(tape), 0);
    counts.fail_at = 0;
    tg_tensor *y = tg_sum(tape, tg_exp(tape, x), TG_ALL);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_float_eq(tg_get(y, 0), 4.0, 1e-12);
    cr_assert_eq(tg_backward(tape, y), 0, "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor_free(x);
    cr_assert_eq(counts.live, 0);
    tg_set_allocator(NULL, NULL, NULL);
}

static tg_tensor *tanh_of_product(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    (void)ctx;
    return tg_tanh(tape, tg_mul(tape, inputs[0], inputs[1]));
}

Test(memory, gradcheck_under_allocation_failure)
{
    install_counting_allocator();
    tg_tensor *a = random_tensor(TG_F64, 2, (int64_t[]){ 2, 3 }, 51, -1, 1);
    tg_tensor *b = random_tensor(TG_F64, 1, (int64_t[]){ 3 }, 52, -1, 1);
    tg_tape *tape = tg_tape_new();
    cr_assert(a && b && tape);
    tg_set_requires_grad(a, 1);
    tg_set_requires_grad(b, 1);
    /* Give a and b gradients of their own, which the check must leave alone. */
    cr_assert_eq(tg_backward(tape, tg_sum(tape, tg_mul(tape, a, b), TG_ALL)), 0, "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor *grad_a = tg_grad(a), *grad_b = tg_grad(b);
    double grad_a0 = tg_get(grad_a, 0), grad_b0 = tg_get(grad_b, 0);
    int64_t live_before = counts.live;

    bool finished = false;
    for (int64_t n = 1; n <= 100 && !finished; n++) {
        counts.attempts = 0;
        counts.fail_at = n;
        tg_clear_error();
        tg_tensor *inputs[2] = { a, b };
        int rc = tg_gradcheck(tanh_of_product, 2, inputs, NULL, NULL, NULL);
        if (counts.attempts < n) {
            cr_assert_eq(rc, 0, "%s", tg_last_error());
            finished = true;
        } else {
            cr_assert_eq(rc, -1, "allocation %lld failed, gradcheck returned %d", (long long)n, rc);
            cr_assert_not_null(strstr(tg_last_error(), "out of memory"), "allocation %lld: \"%s\"", (long long)n,
                               tg_last_error());
        }
        cr_assert_eq(tg_grad(a), grad_a, "allocation %lld: a's gradient was replaced", (long long)n);
        cr_assert_eq(tg_grad(b), grad_b, "allocation %lld: b's gradient was replaced", (long long)n);
        cr_assert_eq(tg_get(grad_a, 0), grad_a0);
        cr_assert_eq(tg_get(grad_b, 0), grad_b0);
        cr_assert_eq(counts.live, live_before, "allocation %lld failed: %lld allocations leaked", (long long)n,
                     (long long)(counts.live - live_before));
    }
    cr_assert(finished, "gradcheck never ran without a failure");
    counts.fail_at = 0;
    tg_tensor_free(a);
    tg_tensor_free(b);
    cr_assert_eq(counts.live, 0);
    tg_set_allocator(NULL, NULL, NULL);
}

/* ---- the library's own training loop ---- */

typedef struct {
    int64_t attempts_at_last_step; /* allocator calls seen at the previous step's callback; -1 before the first */
    int64_t steps_checked;
    int64_t allocating_steps;
    char where[128];
} step_watch;

/* Called after every step but an epoch's last, and once more at each epoch's end (after validation). */
static int watch_steps(const tg_progress *p, void *ctx)
{
    step_watch *w = ctx;
    if (p->finished) {
        w->attempts_at_last_step = counts.attempts; /* validation between epochs may allocate; steps may not */
        return 0;
    }
    bool first_step_of_training = p->epoch == 1 && p->step == 1;
    if (!first_step_of_training && w->attempts_at_last_step >= 0) {
        w->steps_checked++;
        if (counts.attempts != w->attempts_at_last_step && !w->allocating_steps++)
            snprintf(w->where, sizeof w->where, "epoch %d, step %lld: %lld allocator calls", p->epoch,
                     (long long)p->step, (long long)(counts.attempts - w->attempts_at_last_step));
    }
    w->attempts_at_last_step = counts.attempts;
    return 0;
}

/* data: the data section's keys; NULL for digits.csv. */
static void library_loop_allocates_only_in_its_first_step_on(const char *data, const char *layers,
                                                             const char *optimizer)
{
    char json[1024], digits[256];
    snprintf(digits, sizeof digits, "\"train\": \"%s/data/digits.csv\"", TAPEGRAD_SOURCE_DIR);
    snprintf(json, sizeof json,
             "{\"data\": {%s%s},"
             " \"model\": {\"layers\": %s}, \"optimizer\": %s,"
             " \"train\": {\"epochs\": 3, \"batch_size\": 32, \"clip_grad_norm\": 5}, \"seed\": 3}",
             data ? data : digits,
             data && strstr(data, "\"stream\"") ? "" : ", \"test_split\": 0.2, \"validation_split\": 0.1", layers,
             optimizer);
    install_counting_allocator();
    tg_config *cfg = tg_config_parse(json, NULL);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    step_watch w = { .attempts_at_last_step = -1 };
    tg_training *t = tg_train_config(cfg, watch_steps, &w);
    cr_assert_not_null(t, "%s", tg_last_error());
    cr_assert_gt(w.steps_checked, 100, "only %lld steps were watched", (long long)w.steps_checked);
    cr_assert_eq(w.allocating_steps, 0, "%lld of %lld steps called the allocator; first: %s",
                 (long long)w.allocating_steps, (long long)w.steps_checked, w.where);
    tg_training_free(t);
    tg_config_free(cfg);
    cr_assert_eq(counts.live, 0, "%lld blocks still allocated", (long long)counts.live);
    tg_set_allocator(NULL, NULL, NULL);
}

static void library_loop_allocates_only_in_its_first_step(const char *layers, const char *optimizer)
{
    library_loop_allocates_only_in_its_first_step_on(NULL, layers, optimizer);
}

Test(memory, train_config_steps_do_not_allocate_logistic_regression_sgd)
{
    library_loop_allocates_only_in_its_first_step("[{\"type\": \"linear\", \"out\": 10}]",
                                                  "{\"type\": \"sgd\", \"lr\": 0.05, \"momentum\": 0.9}");
}

Test(memory, train_config_steps_do_not_allocate_mlp_adam)
{
    library_loop_allocates_only_in_its_first_step(
        "[{\"type\": \"linear\", \"out\": 32}, {\"type\": \"relu\"}, {\"type\": \"linear\", \"out\": 10}]",
        "{\"type\": \"adam\", \"lr\": 0.001}");
}

/* libsvm rows of 1 to 40 non-zeros (the longest late in the file, so later batches hold more than the
 * first), written to a temporary file named in path. */
static void write_svm_rows(char *path, size_t size)
{
    char *text = malloc(2000 * 40 * 12 + 1);
    cr_assert_not_null(text);
    size_t n = 0;
    for (int r = 0; r < 2000; r++) {
        int length = r < 1500 ? 1 + r % 7 : 1 + (r * 13) % 40;
        n += (size_t)sprintf(text + n, "%d", r % 4);
        for (int k = 0; k < length; k++)
            n += (size_t)sprintf(text + n, " %d:%d.5", 1 + k * 5 + r % 5, (r + k) % 3);
        text[n++] = '\n';
    }
    write_temp(path, size, "tg_memory_svm", text, n);
    free(text);
}

/* libsvm rows: the reused CSR batch is sized for the largest batch before the first step. */
Test(memory, train_config_steps_do_not_allocate_on_libsvm_rows_lazy_adam)
{
    char path[64];
    write_svm_rows(path, sizeof path);
    char data[128];
    snprintf(data, sizeof data, "\"format\": \"libsvm\", \"train\": \"%s\", \"standardize\": \"scale\"", path);
    library_loop_allocates_only_in_its_first_step_on(data, "[{\"type\": \"linear\", \"out\": 4}]",
                                                     "{\"type\": \"adam\", \"lr\": 0.01, \"lazy\": true}");
    unlink(path);
}

/* The same rows streamed (data.stream, windows of 3 blocks of 64 rows): the window and the CSR batch are sized
 * from the first pass's counts before the first step, so no step allocates, whatever window it reads. */
Test(memory, streamed_libsvm_steps_do_not_allocate)
{
    char path[64];
    write_svm_rows(path, sizeof path);
    char data[256];
    snprintf(data, sizeof data,
             "\"format\": \"libsvm\", \"train\": \"%s\", \"test\": \"%s\", \"standardize\": \"scale\", \"stream\": "
             "true, \"block_rows\": 64, \"shuffle_window\": 3",
             path, path);
    library_loop_allocates_only_in_its_first_step_on(data, "[{\"type\": \"linear\", \"out\": 4}]",
                                                     "{\"type\": \"adam\", \"lr\": 0.01, \"lazy\": true}");
    unlink(path);
}

/* ---- issue 10: memory bounded and named ---- */

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

Test(memory, dev_zero_as_a_data_file_fails_fast_naming_it)
{
    double start = seconds_now();
    tg_clear_error();
    cr_assert_null(tg_csv_load("/dev/zero", NULL));
    cr_assert(strstr(tg_last_error(), "/dev/zero: not a regular file (a character device), expected a CSV file"), "%s",
              tg_last_error());
    tg_clear_error();
    cr_assert_null(tg_idx_load("/dev/zero", "/dev/zero", 1.0 / 255));
    cr_assert(
        strstr(tg_last_error(), "/dev/zero: not a regular file (a character device), expected an IDX images file"),
        "%s", tg_last_error());
    /* A config is read whole: a device gives at most 64 MiB before the reader stops. */
    tg_clear_error();
    cr_assert_null(tg_config_load("/dev/zero"));
    cr_assert(strstr(tg_last_error(), "/dev/zero"), "%s", tg_last_error());
    cr_assert_lt(seconds_now() - start, 5.0, "refusing /dev/zero took %.1f s", seconds_now() - start);
}

Test(memory, a_fifo_is_refused_without_blocking)
{
    char *dir = make_temp_dir("tapegrad-fifo"), *fifo = join_path(dir, "data.csv");
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    /* Opening a FIFO blocks until a writer comes: keep one open so the loader gets as far as its check. */
    pid_t writer = fork();
    if (writer == 0) {
        FILE *f = fopen(fifo, "w");
        for (int i = 0; f && i < 1000000 && fputs("1,2,0\n", f) >= 0; i++)
            ;
        _exit(0);
    }
    tg_clear_error();
    cr_assert_null(tg_csv_load(fifo, NULL));
    cr_assert(strstr(tg_last_error(), "not a regular file (a FIFO), expected a CSV file"), "%s", tg_last_error());
    kill(writer, SIGKILL);
    waitpid(writer, NULL, 0);
    unlink(fifo);
    rmdir(dir);
    free(fifo);
    free(dir);
}

Test(memory, csv_lines_longer_than_the_read_chunk_and_across_chunks)
{
    /* 300,000 features of "0.5" or "1.5" on each of 3 rows: each line is 1.2 MB, longer than the 1 MiB
     * buffer, so the reader grows it and lines cross chunk boundaries; the values follow from the column. */
    enum { WIDE = 300000 };
    char *dir = make_temp_dir("tapegrad-wide"), *path = join_path(dir, "wide.csv");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int r = 0; r < 3; r++) {
        for (int c = 0; c < WIDE; c++)
            fputs((c + r) % 2 ? "1.5," : "0.5,", f);
        fprintf(f, "%d\r\n", r);
    }
    fclose(f);
    tg_dataset *ds = tg_csv_load(path, NULL);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_assert_eq(ds->rows, 3);
    cr_assert_eq(ds->features, WIDE);
    cr_assert_eq(ds->classes, 3);
    for (int r = 0; r < 3; r++) {
        cr_assert_eq(ds->y[r], r);
        for (int c = 0; c < WIDE; c += 9973)
            cr_assert_eq(ds->x[(int64_t)r * WIDE + c], (c + r) % 2 ? 1.5f : 0.5f, "row %d column %d", r, c);
        cr_assert_eq(ds->x[(int64_t)r * WIDE + WIDE - 1], (WIDE - 1 + r) % 2 ? 1.5f : 0.5f);
    }
    tg_dataset_free(ds);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
}

Test(memory, a_gzip_idx_declaring_more_than_deflate_can_hold_fails_before_reading)
{
    /* 2^31 images of 1 x 1 pixels declared by a gzip file of a few hundred bytes: deflate expands at
     * most about 1032 times, so the file cannot hold them. */
    char *dir = make_temp_dir("tapegrad-bomb"), *images = join_path(dir, "images.idx.gz"),
         *labels = join_path(dir, "labels.idx.gz");
    unsigned char header[16] = { 0, 0, 8, 3, 0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1 };
    unsigned char zeros[4096] = { 0 };
    const char *paths[2] = { images, labels };
    for (int k = 0; k < 2; k++) {
        gzFile gz = gzopen(paths[k], "wb9");
        cr_assert_not_null(gz);
        if (k == 1) {
            header[3] = 1; /* labels: magic 0x801 and the count only */
            gzwrite(gz, header, 8);
        } else {
            gzwrite(gz, header, 16);
        }
        gzwrite(gz, zeros, sizeof zeros);
        gzclose(gz);
    }
    install_counting_allocator();
    double start = seconds_now();
    tg_clear_error();
    cr_assert_null(tg_idx_load(images, labels, 1.0 / 255));
    tg_set_allocator(NULL, NULL, NULL);
    cr_assert(strstr(tg_last_error(), "declares 2147483648 bytes of images but a"), "%s", tg_last_error());
    cr_assert(strstr(tg_last_error(), images), "%s", tg_last_error());
    cr_assert_lt(counts.allocations, 4, "nothing is allocated for the payload");
    cr_assert_lt(seconds_now() - start, 2.0);
    unlink(images);
    unlink(labels);
    rmdir(dir);
    free(images);
    free(labels);
    free(dir);
}

Test(memory, a_model_too_large_for_the_machine_is_refused_naming_the_layer_before_allocating)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    /* 4 inputs -> 1e9 -> 3: 16 GB then 12 GB of float32 weights; the machine is asked, not the allocator. */
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 1000000000, 1 }, { TG_LAYER_RELU, 0, 0 }, { TG_LAYER_LINEAR, 3, 1 } };
    install_counting_allocator();
    tg_clear_error();
    tg_model *m = tg_model_new(TG_F32, 4000, 3, layers, &rng);
    tg_set_allocator(NULL, NULL, NULL);
    cr_assert_null(m);
    cr_assert(strstr(tg_last_error(), "model: layer 0 (linear, 4000 -> 1000000000)"), "%s", tg_last_error());
    cr_assert(strstr(tg_last_error(), "memory"), "%s", tg_last_error());
    cr_assert_eq(counts.allocations, 0, "refused before any allocation");
    /* Past the library's 2^40-byte limit whatever the machine. */
    tg_layer_spec huge[] = { { TG_LAYER_LINEAR, (int64_t)1 << 40, 1 } };
    cr_assert_null(tg_model_new(TG_F64, 1 << 20, 1, huge, &rng));
    cr_assert(strstr(tg_last_error(), "layer 0 (linear, 1048576 -> 1099511627776)"), "%s", tg_last_error());
}

Test(memory, a_failed_layer_allocation_names_the_layer)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 8, 1 }, { TG_LAYER_RELU, 0, 0 }, { TG_LAYER_LINEAR, 3, 1 } };
    /* Fail each allocation of the model in turn: the weights' messages say which layer. */
    bool named = false;
    for (int64_t k = 1; k < 40; k++) {
        install_counting_allocator();
        counts.fail_at = k;
        tg_model *m = tg_model_new(TG_F32, 4, 3, layers, &rng);
        tg_set_allocator(NULL, NULL, NULL);
        if (m) {
            tg_model_free(m);
            break;
        }
        cr_assert(strstr(tg_last_error(), "out of memory"), "%s", tg_last_error());
        named |= strstr(tg_last_error(), "layer 2 (linear, 8 -> 3)") != NULL;
    }
    cr_assert(named, "some failure names layer 2");
}
