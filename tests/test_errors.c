/* Every refusal returns NULL or non-zero and says what went wrong: which op,
 * which shapes or dtypes, what was expected. */
#define _POSIX_C_SOURCE 200809L /* pthread_barrier_t */

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "helpers.h"

/* Asserts that the last error contains each of the given fragments. */
#define assert_error_mentions(...)                                                                                     \
    do {                                                                                                               \
        const char *fragments_[] = { __VA_ARGS__ };                                                                    \
        for (size_t i_ = 0; i_ < sizeof fragments_ / sizeof *fragments_; i_++)                                         \
            cr_assert_not_null(strstr(tg_last_error(), fragments_[i_]), "expected \"%s\" in the error \"%s\"",         \
                               fragments_[i_], tg_last_error());                                                       \
    } while (0)

static tg_tensor *f64(int ndim, const int64_t *shape)
{
    return tg_tensor_new(TG_F64, ndim, shape);
}

Test(errors, add_shape_mismatch_names_op_and_both_shapes)
{
    tg_tensor *a = f64(2, (int64_t[]){ 2, 3 });
    tg_tensor *b = f64(2, (int64_t[]){ 4, 3 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_null(tg_add(tape, a, b));
    assert_error_mentions("add", "[2, 3]", "[4, 3]");
    /* The other broadcasting ops name themselves. */
    cr_assert_null(tg_sub(tape, a, b));
    assert_error_mentions("sub", "[2, 3]", "[4, 3]");
    cr_assert_null(tg_mul(tape, b, a));
    assert_error_mentions("mul", "[4, 3]", "[2, 3]");
    cr_assert_null(tg_div(tape, a, b));
    assert_error_mentions("div");
    /* Broadcasting shapes are not an error. */
    tg_tensor *row = f64(1, (int64_t[]){ 3 });
    cr_assert_not_null(tg_add(tape, a, row), "%s", tg_last_error());
    cr_assert_eq(tg_tape_size(tape), 0);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(row);
}

Test(errors, float32_and_float64_do_not_mix)
{
    tg_tensor *a = tg_tensor_new(TG_F32, 1, (int64_t[]){ 3 });
    tg_tensor *b = tg_tensor_new(TG_F64, 1, (int64_t[]){ 3 });
    tg_tensor *w = tg_tensor_new(TG_F64, 2, (int64_t[]){ 2, 3 });
    tg_tensor *x = tg_tensor_new(TG_F32, 2, (int64_t[]){ 4, 3 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_null(tg_add(tape, a, b));
    assert_error_mentions("add", "float32", "float64", "do not mix");
    cr_assert_null(tg_mul(tape, b, a));
    assert_error_mentions("mul", "do not mix");
    cr_assert_null(tg_linear(tape, x, w, NULL));
    assert_error_mentions("linear", "do not mix");
    tg_tensor *col = tg_tensor_new(TG_F64, 2, (int64_t[]){ 3, 1 });
    cr_assert_null(tg_matmul(tape, x, col));
    assert_error_mentions("matmul", "do not mix");
    tg_tensor_free(col);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(w);
    tg_tensor_free(x);
}

Test(errors, integer_tensors_are_not_op_inputs)
{
    tg_tensor *labels = tg_tensor_new(TG_I64, 1, (int64_t[]){ 3 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_null(tg_exp(tape, labels));
    assert_error_mentions("exp", "int64");
    tg_set_requires_grad(labels, 1);
    cr_assert_eq(tg_requires_grad(labels), 0, "an int64 tensor cannot require a gradient");
    tg_tape_free(tape);
    tg_tensor_free(labels);
}

Test(errors, matmul_inner_dimension_mismatch)
{
    tg_tensor *a = f64(2, (int64_t[]){ 2, 3 });
    tg_tensor *b = f64(2, (int64_t[]){ 4, 5 });
    tg_tensor *v = f64(1, (int64_t[]){ 3 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_null(tg_matmul(tape, a, b));
    assert_error_mentions("matmul", "[2, 3]", "[4, 5]");
    cr_assert_null(tg_matmul(tape, a, v));
    assert_error_mentions("matmul", "[3]");
    /* linear: x [2, 3] with a weight of 5 inputs */
    cr_assert_null(tg_linear(tape, a, b, NULL));
    assert_error_mentions("linear", "[2, 3]", "[4, 5]");
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(v);
}

Test(errors, bad_axes)
{
    tg_tensor *x = f64(2, (int64_t[]){ 2, 3 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_null(tg_sum(tape, x, 2));
    assert_error_mentions("sum", "axis 2", "[2, 3]");
    cr_assert_null(tg_sum(tape, x, -3));
    assert_error_mentions("sum", "-3");
    cr_assert_null(tg_mean(tape, x, 7));
    assert_error_mentions("mean", "7");
    cr_assert_null(tg_softmax(tape, x, 2));
    assert_error_mentions("softmax", "2", "[2, 3]");
    cr_assert_null(tg_softmax(tape, x, -3));
    assert_error_mentions("softmax", "-3");
    cr_assert_null(tg_log_softmax(tape, x, 5));
    assert_error_mentions("log_softmax", "5");
    cr_assert_null(tg_transpose(tape, x, 0, 2));
    assert_error_mentions("transpose", "[2, 3]");
    cr_assert_null(tg_transpose(tape, x, -3, 1));
    assert_error_mentions("transpose", "-3");
    /* Negative axes in range are fine. */
    cr_assert_not_null(tg_sum(tape, x, -1), "%s", tg_last_error());
    cr_assert_not_null(tg_softmax(tape, x, -2), "%s", tg_last_error());
    cr_assert_not_null(tg_transpose(tape, x, -1, 0), "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(errors, reshape_to_incompatible_shape)
{
    tg_tensor *x = f64(2, (int64_t[]){ 2, 3 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_null(tg_reshape(tape, x, 2, (int64_t[]){ 4, 2 }));
    assert_error_mentions("reshape", "[2, 3]", "[4, 2]");
    cr_assert_null(tg_reshape(tape, x, 2, (int64_t[]){ -1, -1 }));
    assert_error_mentions("reshape", "-1");
    cr_assert_null(tg_reshape(tape, x, 1, (int64_t[]){ -2 }));
    assert_error_mentions("reshape", "-2");
    cr_assert_null(tg_reshape(tape, x, TG_MAX_DIMS + 1, (int64_t[TG_MAX_DIMS + 1]){ 1, 1, 1, 1, 1, 1, 1, 2, 3 }));
    assert_error_mentions("reshape");
    tg_tensor *y = tg_reshape(tape, x, 2, (int64_t[]){ 3, -1 });
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_dim(y, 1), 2);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(errors, reshape_with_an_inferred_dimension_that_cannot_fit)
{
    /* The -1 is legal; what fails is splitting 6 elements into rows of 4 (or
     * of 0), and the error should say so with both shapes, not blame the -1. */
    tg_tensor *x = f64(2, (int64_t[]){ 2, 3 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_null(tg_reshape(tape, x, 2, (int64_t[]){ 4, -1 }));
    assert_error_mentions("reshape", "[2, 3]", "[4, -1]");
    cr_assert_null(tg_reshape(tape, x, 2, (int64_t[]){ 0, -1 }));
    assert_error_mentions("reshape", "[2, 3]", "[0, -1]");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(errors, tensor_new_bad_shapes)
{
    tg_clear_error();
    cr_assert_null(tg_tensor_new(TG_F64, 2, (int64_t[]){ 2, -3 }));
    assert_error_mentions("tg_tensor_new", "-3");
    cr_assert_null(tg_tensor_new(TG_F64, TG_MAX_DIMS + 1, (int64_t[TG_MAX_DIMS + 1]){ 1, 1, 1, 1, 1, 1, 1, 1, 1 }));
    assert_error_mentions("tg_tensor_new", "9", "8");
    cr_assert_null(tg_tensor_new(TG_F64, -1, NULL));
    assert_error_mentions("tg_tensor_new", "-1");
    cr_assert_null(tg_tensor_new(TG_F64, 2, NULL));
    assert_error_mentions("tg_tensor_new");
    cr_assert_null(tg_tensor_new(TG_F64, 2, (int64_t[]){ INT64_MAX / 2, 16 }));
    assert_error_mentions("tg_tensor_new", "too large");
    cr_assert_null(tg_tensor_new((tg_dtype)42, 1, (int64_t[]){ 1 }));
    assert_error_mentions("tg_tensor_new", "dtype");
    /* Eight dimensions and zero-sized dimensions are fine. */
    tg_tensor *eight = tg_tensor_new(TG_F64, TG_MAX_DIMS, (int64_t[TG_MAX_DIMS]){ 1, 1, 1, 1, 1, 1, 2, 3 });
    cr_assert_not_null(eight, "%s", tg_last_error());
    cr_assert_eq(tg_numel(eight), 6);
    tg_tensor *empty = tg_tensor_new(TG_F64, 2, (int64_t[]){ 0, 3 });
    cr_assert_not_null(empty, "%s", tg_last_error());
    cr_assert_eq(tg_numel(empty), 0);
    tg_tensor_free(eight);
    tg_tensor_free(empty);
}

/* ---- tg_last_error is per thread ---- */

typedef struct {
    pthread_barrier_t *barrier;
    int64_t rows; /* this thread's mismatching shape: [rows, 7] */
    char seen[512];
} thread_job;

static void *fail_and_read_back(void *arg)
{
    thread_job *job = arg;
    tg_tensor *a = tg_tensor_new(TG_F64, 2, (int64_t[]){ job->rows, 7 });
    tg_tensor *b = tg_tensor_new(TG_F64, 2, (int64_t[]){ 5, 5 });
    tg_tape *tape = tg_tape_new();
    tg_tensor *sum = tg_add(tape, a, b); /* fails, naming [rows, 7] */
    /* Both threads have set their error before either reads it back. */
    pthread_barrier_wait(job->barrier);
    snprintf(job->seen, sizeof job->seen, "%s", sum ? "(the add succeeded)" : tg_last_error());
    pthread_barrier_wait(job->barrier);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    return NULL;
}

Test(errors, last_error_is_per_thread)
{
    tg_tensor *x = f64(1, (int64_t[]){ 2 });
    tg_tape *tape = tg_tape_new();
    cr_assert_null(tg_sum(tape, x, 9));
    char main_error[512];
    snprintf(main_error, sizeof main_error, "%s", tg_last_error());

    pthread_barrier_t barrier;
    cr_assert_eq(pthread_barrier_init(&barrier, NULL, 2), 0);
    thread_job jobs[2] = { { .barrier = &barrier, .rows = 111 }, { .barrier = &barrier, .rows = 222 } };
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, fail_and_read_back, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&barrier);

    cr_assert_not_null(strstr(jobs[0].seen, "[111, 7]"), "thread 0 saw \"%s\"", jobs[0].seen);
    cr_assert_null(strstr(jobs[0].seen, "[222, 7]"), "thread 0 saw \"%s\"", jobs[0].seen);
    cr_assert_not_null(strstr(jobs[1].seen, "[222, 7]"), "thread 1 saw \"%s\"", jobs[1].seen);
    cr_assert_null(strstr(jobs[1].seen, "[111, 7]"), "thread 1 saw \"%s\"", jobs[1].seen);
    cr_assert_str_eq(tg_last_error(), main_error, "the main thread's error changed to \"%s\"", tg_last_error());
    cr_assert_not_null(strstr(main_error, "sum"), "%s", main_error);

    tg_clear_error();
    cr_assert_str_eq(tg_last_error(), "");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* ---- tg_gradcheck's own refusals ---- */

static tg_tensor *sum_of_exp(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    (void)ctx;
    return tg_sum(tape, tg_exp(tape, inputs[0]), TG_ALL);
}

Test(errors, gradcheck_refuses_float32_and_no_gradient_inputs)
{
    tg_tensor *x32 = random_tensor(TG_F32, 1, (int64_t[]){ 3 }, 31, -1, 1);
    tg_set_requires_grad(x32, 1);
    tg_clear_error();
    tg_gradcheck_report report;
    cr_assert_eq(tg_gradcheck(sum_of_exp, 1, &x32, NULL, NULL, &report), -1);
    assert_error_mentions("tg_gradcheck", "float32", "float64");

    tg_tensor *x64 = random_tensor(TG_F64, 1, (int64_t[]){ 3 }, 32, -1, 1);
    tg_clear_error();
    cr_assert_eq(tg_gradcheck(sum_of_exp, 1, &x64, NULL, NULL, NULL), -1);
    assert_error_mentions("tg_gradcheck", "requires a gradient");

    /* Bad options and a tape tensor as input are refused too. */
    tg_set_requires_grad(x64, 1);
    tg_clear_error();
    cr_assert_eq(
        tg_gradcheck(sum_of_exp, 1, &x64, NULL, &(tg_gradcheck_opts){ .eps = 0, .atol = 1e-5, .rtol = 1e-3 }, NULL),
        -1);
    assert_error_mentions("tg_gradcheck", "eps");
    tg_tape *tape = tg_tape_new();
    tg_tensor *on_tape = tg_exp(tape, x64);
    tg_clear_error();
    cr_assert_eq(tg_gradcheck(sum_of_exp, 1, &on_tape, NULL, NULL, NULL), -1);
    assert_error_mentions("tg_gradcheck", "tape");

    /* And with everything right it passes. */
    cr_assert_eq(tg_gradcheck(sum_of_exp, 1, &x64, NULL, NULL, &report), 0, "%s", tg_last_error());
    cr_assert_eq(report.passed, 1);
    cr_assert_eq(report.checked, 3);
    tg_tape_free(tape);
    tg_tensor_free(x32);
    tg_tensor_free(x64);
}

Test(errors, backward_refusals)
{
    tg_tensor *x = f64(1, (int64_t[]){ 3 });
    tg_tensor *labels = tg_tensor_new(TG_I64, 1, (int64_t[]){ 1 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_neq(tg_backward(NULL, x), 0);
    assert_error_mentions("tg_backward", "tape");
    cr_assert_neq(tg_backward(tape, NULL), 0);
    assert_error_mentions("tg_backward", "loss");
    cr_assert_neq(tg_backward(tape, labels), 0);
    assert_error_mentions("tg_backward", "int64");
    /* A loss that depends on nothing requiring a gradient. */
    tg_tensor *loss = tg_sum(tape, x, TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_neq(tg_backward(tape, loss), 0);
    assert_error_mentions("tg_backward", "requires a gradient");
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(labels);
}
