/* Every refusal returns NULL or non-zero and says what went wrong: which op,
 * which shapes or dtypes, what was expected. */
#define _POSIX_C_SOURCE 200809L /* pthread_barrier_t */

#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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

static tg_tensor *f64(int ndim, const int64_t *shape) { return tg_tensor_new(TG_F64, ndim, shape); }

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

/* ---- issue 10: out-of-range values and setters that validate like constructors ---- */

Test(errors, rng_below_zero_and_null_rng_are_errors)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_clear_error();
    cr_assert_eq(tg_rng_below(&rng, 0), 0); /* divided by zero before */
    assert_error_mentions("tg_rng_below", "n is 0");
    cr_assert_eq(tg_rng_below(&rng, 1), 0); /* [0, 1) holds only 0 */
    cr_assert_eq(tg_rng_next(NULL), 0);
    assert_error_mentions("tg_rng_next", "NULL");
    cr_assert(isnan(tg_rng_uniform(NULL)));
    cr_assert(isnan(tg_rng_normal(NULL)));
}

Test(errors, get_and_set_refuse_an_index_out_of_range)
{
    tg_tensor *t = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_clear_error();
    cr_assert(isnan(tg_get(t, 3)));
    assert_error_mentions("tg_get", "index 3", "3 elements");
    cr_assert(isnan(tg_get(t, -1)));
    tg_set(t, 3, 9.0);
    assert_error_mentions("tg_set", "index 3");
    cr_assert_eq(tg_get(t, 2), 3.0);
    cr_assert_eq((int)tg_dtype_of(NULL), -1);
    tg_tensor_free(t);
}

Test(errors, set_lr_refuses_what_the_constructor_refuses)
{
    tg_tensor *w = f64(1, (int64_t[]){ 2 });
    tg_set_requires_grad(w, 1);
    tg_optim_opts o = TG_SGD_DEFAULT(0.1);
    tg_optimizer *opt = tg_optimizer_new(&o, 1, &w);
    double refused[] = { NAN, -0.1, 0.0, INFINITY };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        o.lr = refused[i];
        cr_assert_null(tg_optimizer_new(&o, 1, &w), "the constructor refuses lr %g", refused[i]);
        tg_clear_error();
        cr_assert_neq(tg_optimizer_set_lr(opt, refused[i]), 0, "lr %g", refused[i]);
        assert_error_mentions("lr must be a finite number > 0");
        cr_assert_eq(tg_optimizer_lr(opt), 0.1, "a refused rate leaves the old one");
    }
    cr_assert_eq(tg_optimizer_set_lr(opt, 0.05), 0);
    cr_assert_eq(tg_optimizer_lr(opt), 0.05);
    cr_assert(isnan(tg_optimizer_lr(NULL)));
    cr_assert_neq(tg_optimizer_set_lr(NULL, 0.1), 0);
    tg_optimizer_free(opt);
    tg_tensor_free(w);
}

Test(errors, clip_grad_norm_refuses_bad_arguments)
{
    tg_tensor *w = f64(1, (int64_t[]){ 2 });
    tg_clear_error();
    cr_assert_eq(tg_clip_grad_norm(&w, 1, 0.0), -1);
    assert_error_mentions("max_norm");
    cr_assert_eq(tg_clip_grad_norm(&w, 1, NAN), -1);
    cr_assert_eq(tg_clip_grad_norm(&w, -1, 1.0), -1);
    assert_error_mentions("n_params");
    cr_assert_eq(tg_clip_grad_norm(NULL, 1, 1.0), -1);
    cr_assert_eq(tg_clip_grad_norm(NULL, 0, 1.0), 0.0, "no parameters: norm 0");
    tg_tensor_free(w);
}

static tg_model *model_3_inputs(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 2, 1 } };
    tg_model *m = tg_model_new(TG_F32, 3, 1, layers, &rng);
    cr_assert_not_null(m, "%s", tg_last_error());
    return m;
}

Test(errors, standardization_refuses_std_not_positive_or_not_finite)
{
    tg_model *m = model_3_inputs();
    float mean[3] = { 0, 0, 0 };
    struct {
        float std[3];
        const char *says;
    } cases[] = {
        { { 1, 0, 1 }, "std[1] is 0" },
        { { 1, 1, -2 }, "std[2] is -2" },
        { { NAN, 1, 1 }, "std[0] is nan" },
        { { 1, INFINITY, 1 }, "std[1] is inf" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tg_clear_error();
        cr_assert_neq(tg_model_set_standardization(m, mean, cases[i].std), 0, "case %zu", i);
        assert_error_mentions("tg_model_set_standardization", cases[i].says);
        cr_assert_null(tg_model_std(m), "a refused standardization leaves none");
    }
    cr_assert_neq(tg_model_set_standardization(m, (float[]){ 0, NAN, 0 }, (float[]){ 1, 1, 1 }), 0);
    assert_error_mentions("mean[1] is nan");
    cr_assert_neq(tg_model_set_standardization(m, mean, NULL), 0);
    assert_error_mentions("std is NULL");
    cr_assert_eq(tg_model_set_standardization(m, mean, (float[]){ 1, 2, 3 }), 0, "%s", tg_last_error());
    cr_assert_eq(tg_model_std(m)[2], 3.0f);
    tg_model_free(m);
}

Test(errors, checkpoint_with_std_zero_is_refused_naming_file_and_index)
{
    char *dir = make_temp_dir("tapegrad-std"), *path = join_path(dir, "model.safetensors");
    tg_model *m = model_3_inputs();
    cr_assert_eq(tg_model_set_standardization(m, (float[]){ 0, 0, 0 }, (float[]){ 1.5f, 2.5f, 3.5f }), 0);
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    /* The metadata holds "[1.5,2.5,3.5]": 2.5 becomes 0.0, the same length, so offsets stay valid. */
    char *at = NULL;
    for (size_t i = 0; !at && i + 13 <= size; i++)
        if (memcmp(bytes + i, "[1.5,2.5,3.5]", 13) == 0)
            at = (char *)bytes + i;
    cr_assert_not_null(at);
    memcpy(at + 5, "0.0", 3);
    write_bytes(path, bytes, size);
    tg_clear_error();
    cr_assert_null(tg_model_load(path));
    assert_error_mentions(path, "std[1] is 0", "> 0");
    free(bytes);
    tg_model_free(m);
    remove(path);
    remove(dir);
    free(path);
    free(dir);
}

Test(errors, set_labels_refuses_a_null_name)
{
    tg_model *m = model_3_inputs();
    char *names[] = { "a", NULL };
    tg_clear_error();
    cr_assert_neq(tg_model_set_labels(m, 2, names), 0);
    assert_error_mentions("names[1] is NULL");
    cr_assert_neq(tg_model_set_labels(m, 2, NULL), 0);
    cr_assert_null(tg_model_label(m, 0));
    tg_model_free(m);
}

/* ---- issue 10: stale tape tensors ---- */

static tg_tensor *square_sum(tg_tape *tape, tg_tensor *x) { return tg_sum(tape, tg_mul(tape, x, x), TG_ALL); }

Test(errors, an_op_given_a_tensor_from_before_reset_says_so)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *old = tg_mul(tape, x, x);
    cr_assert_not_null(old);
    tg_tape_reset(tape);
    /* Right after the reset, and after the same ops ran again (the arena replays them). */
    for (int round = 0; round < 2; round++) {
        tg_clear_error();
        cr_assert_null(tg_add(tape, x, old));
        assert_error_mentions("add", "second input", "before the last tg_tape_reset");
        cr_assert_null(tg_relu(tape, old));
        assert_error_mentions("relu", "input", "before the last tg_tape_reset");
        cr_assert_null(tg_reshape(tape, old, 1, (int64_t[]){ 3 }));
        assert_error_mentions("reshape", "stale");
        cr_assert_null(tg_matmul(tape, old, x));
        assert_error_mentions("matmul", "first input");
        cr_assert_not_null(tg_mul(tape, x, x), "%s", tg_last_error());
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(errors, backward_on_a_stale_loss_is_refused_even_when_the_step_is_replayed)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    /* A stale loss from 1 to 15 resets back, each time after the very same step ran again. */
    for (int distance = 1; distance < 16; distance++) {
        tg_tensor *old = square_sum(tape, x);
        cr_assert_not_null(old);
        tg_tensor *fresh = NULL;
        for (int k = 0; k < distance; k++) {
            tg_tape_reset(tape);
            fresh = square_sum(tape, x);
        }
        cr_assert_neq(old, fresh, "distance %d: the replayed loss sits elsewhere", distance);
        tg_clear_error();
        cr_assert_neq(tg_backward(tape, old), 0, "distance %d", distance);
        assert_error_mentions("tg_backward", "the loss", "before the last tg_tape_reset");
        tg_zero_grad(x);
        cr_assert_eq(tg_backward(tape, fresh), 0, "%s", tg_last_error());
        cr_assert_eq(tg_get(tg_grad(x), 2), 6.0); /* d/dx sum x^2 = 2x */
        tg_tape_reset(tape);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
}

static int copy_forward(tg_tensor *const *in, int n, tg_tensor *out, void *ctx)
{
    (void)n, (void)ctx;
    for (int64_t i = 0; i < tg_numel(out); i++)
        tg_set(out, i, tg_get(in[0], i));
    return 0;
}

/* sum(x^2) after `extra` pairs of neg ops that cancel: a step of 2 + 2 extra tape tensors. */
static tg_tensor *square_sum_after(tg_tape *tape, tg_tensor *x, int extra)
{
    tg_tensor *y = x;
    for (int k = 0; k < extra; k++)
        y = tg_neg(tape, tg_neg(tape, y));
    return square_sum(tape, y);
}

typedef struct {
    int extra, distance; /* the step's extra neg pairs; how many resets back the loss is */
} stale_case;

/* The tape's header arena once came back to the same addresses every 16 resets: a loss kept from 16, 32,
 * ... resets back, with the very same step replayed in between, sat on the live loss's header and passed
 * as current. Every multiple of 16 up to 1024 resets back, and a few others, for a step of 2 tape
 * tensors; and for a step of 20, every distance up to 1375 resets that is a multiple of 16 or around
 * a lap of the header arena (86 steps of 20 headers). */
Test(errors, a_stale_loss_is_refused_at_every_multiple_of_16_resets_back)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    stale_case cases[400];
    int n = 0;
    for (int d = 16; d <= 1024; d += 16)
        cases[n++] = (stale_case){ 0, d };
    cases[n++] = (stale_case){ 0, 17 };
    cases[n++] = (stale_case){ 0, 255 };
    cases[n++] = (stale_case){ 0, 257 };
    for (int d = 16; d <= 1375; d += 16)
        cases[n++] = (stale_case){ 9, d };
    for (int lap = 1; lap < 16; lap++)
        for (int d = 86 * lap - 1; d <= 86 * lap + 1; d++)
            cases[n++] = (stale_case){ 9, d };
    cases[n++] = (stale_case){ 9, 1375 };
    for (int k = 0; k < n; k++) {
        tg_tape_reset(tape);
        tg_tensor *old = square_sum_after(tape, x, cases[k].extra), *fresh = NULL;
        cr_assert_not_null(old);
        for (int r = 0; r < cases[k].distance; r++) {
            tg_tape_reset(tape);
            fresh = square_sum_after(tape, x, cases[k].extra);
        }
        tg_clear_error();
        cr_assert_neq(tg_backward(tape, old), 0, "a loss %d resets back (a step of %d tensors) passed as current",
                      cases[k].distance, 2 + 2 * cases[k].extra);
        assert_error_mentions("tg_backward", "the loss", "before the last tg_tape_reset");
        tg_clear_error();
        cr_assert_null(tg_neg(tape, old), "an op took a tensor %d resets back", cases[k].distance);
        assert_error_mentions("neg", "before the last tg_tape_reset");
        tg_zero_grad(x);
        cr_assert_eq(tg_backward(tape, fresh), 0, "%s", tg_last_error());
        cr_assert_eq(tg_get(tg_grad(x), 2), 6.0); /* d/dx sum x^2 = 2x */
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(errors, a_custom_op_given_a_stale_input_names_it)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1, 2 });
    tg_tape *tape = tg_tape_new();
    tg_tensor *old = tg_neg(tape, x);
    tg_tape_reset(tape);
    tg_custom_op op = { "double_it", copy_forward, NULL };
    tg_tensor *inputs[2] = { x, old };
    tg_clear_error();
    cr_assert_null(tg_custom(tape, &op, 2, inputs, 1, (int64_t[]){ 2 }, NULL));
    assert_error_mentions("double_it", "input 1", "before the last tg_tape_reset");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* ---- issue 10: a shape overflow names the op ---- */

Test(errors, shape_overflow_names_the_op)
{
    tg_tape *tape = tg_tape_new();
    tg_custom_op op = { "huge", copy_forward, NULL };
    tg_tensor *x = f64(1, (int64_t[]){ 2 });
    tg_clear_error();
    cr_assert_null(tg_custom(tape, &op, 1, &x, 2, (int64_t[]){ INT64_MAX / 4, INT64_MAX / 4 }, NULL));
    assert_error_mentions("custom op huge", "shape too large");
    tg_tensor_free(x);
    tg_tape_free(tape);
}

Test(errors, matmul_shape_overflow_names_matmul)
{
    /* [2^40, 0] x [0, 2^40]: both inputs are empty, the product would have 2^80 elements. */
    tg_tensor *a = tg_tensor_new(TG_F64, 2, (int64_t[]){ (int64_t)1 << 40, 0 });
    tg_tensor *b = tg_tensor_new(TG_F64, 2, (int64_t[]){ 0, (int64_t)1 << 40 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_null(tg_matmul(tape, a, b));
    assert_error_mentions("matmul:", "shape too large");
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

static void *malloc_below_1gb(size_t n) { return n > ((size_t)1 << 30) ? NULL : malloc(n); }

Test(errors, softmax_jacobian_out_of_memory_names_the_op)
{
    /* The Jacobian of 60000 logits is 60000 x 60000 float32: 14.4 GB, over the allocator's 1 GB cap. */
    tg_tensor *x = tg_tensor_new(TG_F32, 1, (int64_t[]){ 60000 });
    tg_tape *tape = tg_tape_new();
    tg_set_allocator(malloc_below_1gb, NULL, NULL);
    tg_clear_error();
    cr_assert_null(tg_softmax_jacobian(tape, x, 0));
    tg_set_allocator(NULL, NULL, NULL);
    assert_error_mentions("softmax_jacobian: out of memory", "[60000, 60000]");
    tg_tape_free(tape);
    tg_tensor_free(x);
}
