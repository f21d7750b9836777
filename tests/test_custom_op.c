/* Ops of the user's own through tg_custom: recorded like built-in ops,
 * checked by tg_gradcheck, and a failing backward fails tg_backward. */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "helpers.h"

/* ---- y = x^3 elementwise ---- */

static int cube_forward(tg_tensor *const *inputs, int n_inputs, tg_tensor *out, void *ctx)
{
    (void)n_inputs, (void)ctx;
    for (int64_t i = 0; i < tg_numel(out); i++) {
        double x = tg_get(inputs[0], i);
        tg_set(out, i, x * x * x);
    }
    return 0;
}

/* dx += g * 3x^2 */
static int cube_backward(tg_tensor *const *inputs, int n_inputs, const tg_tensor *out, const tg_tensor *grad_out,
                         tg_tensor *const *grad_inputs, void *ctx)
{
    (void)n_inputs, (void)out, (void)ctx;
    tg_tensor *gx = grad_inputs[0];
    for (int64_t i = 0; gx && i < tg_numel(gx); i++) {
        double x = tg_get(inputs[0], i);
        tg_set(gx, i, tg_get(gx, i) + tg_get(grad_out, i) * 3 * x * x);
    }
    return 0;
}

/* The classic slip: dx += g * 2x^2 */
static int cube_backward_wrong(tg_tensor *const *inputs, int n_inputs, const tg_tensor *out, const tg_tensor *grad_out,
                               tg_tensor *const *grad_inputs, void *ctx)
{
    (void)n_inputs, (void)out, (void)ctx;
    tg_tensor *gx = grad_inputs[0];
    for (int64_t i = 0; gx && i < tg_numel(gx); i++) {
        double x = tg_get(inputs[0], i);
        tg_set(gx, i, tg_get(gx, i) + tg_get(grad_out, i) * 2 * x * x);
    }
    return 0;
}

static int backward_fails(tg_tensor *const *inputs, int n_inputs, const tg_tensor *out, const tg_tensor *grad_out,
                          tg_tensor *const *grad_inputs, void *ctx)
{
    (void)inputs, (void)n_inputs, (void)out, (void)grad_out, (void)grad_inputs, (void)ctx;
    return 1;
}

static int forward_fails(tg_tensor *const *inputs, int n_inputs, tg_tensor *out, void *ctx)
{
    (void)inputs, (void)n_inputs, (void)out, (void)ctx;
    return 1;
}

static const tg_custom_op cube_op = { .name = "cube", .forward = cube_forward, .backward = cube_backward };
static const tg_custom_op wrong_cube_op = { .name = "wrong_cube",
                                            .forward = cube_forward,
                                            .backward = cube_backward_wrong };

static tg_tensor *cube(tg_tape *tape, const tg_custom_op *op, tg_tensor *x)
{
    return x ? tg_custom(tape, op, 1, &x, tg_ndim(x), tg_shape(x), NULL) : NULL;
}

static tg_tensor *cube_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx) { return cube(tape, ctx, inputs[0]); }

/* sum(cube(tanh(x)) * w): the custom op between built-in ops, w broadcast over rows */
static tg_tensor *cube_in_a_graph(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    (void)ctx;
    return tg_sum(tape, tg_mul(tape, cube(tape, &cube_op, tg_tanh(tape, inputs[0])), inputs[1]), TG_ALL);
}

Test(custom_op, cube_backward_by_hand)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, -1 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = cube(tape, &cube_op, x);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_tape_size(tape), 1, "the custom op is recorded");
    cr_assert_float_eq(tg_get(y, 1), 8.0, 1e-12);
    cr_assert_float_eq(tg_get(y, 2), -1.0, 1e-12);
    tg_tensor *loss = tg_sum(tape, y, TG_ALL);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    static const double expected[3] = { 3, 12, 3 };
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(tg_get(tg_grad(x), i), expected[i], 1e-12, "element %d", i);

    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(tg_tape_dot(tape, f), 0, "%s", tg_last_error());
    char text[4096] = { 0 };
    rewind(f);
    cr_assert_gt(fread(text, 1, sizeof text - 1, f), 0);
    fclose(f);
    cr_assert_not_null(strstr(text, "cube"), "the DOT graph names the custom op: %s", text);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(custom_op, correct_backward_passes_gradcheck)
{
    tg_tensor *x = random_tensor(TG_F64, 2, (int64_t[]){ 3, 4 }, 41, -2, 2);
    tg_set_requires_grad(x, 1);
    tg_gradcheck_report report;
    cr_assert_eq(tg_gradcheck(cube_fn, 1, &x, (void *)&cube_op, NULL, &report), 0, "%s", tg_last_error());
    cr_assert_eq(report.passed, 1);
    cr_assert_eq(report.checked, 12);

    /* Composed with built-in ops, with a broadcast second input. */
    tg_tensor *w = random_tensor(TG_F64, 1, (int64_t[]){ 4 }, 42, -1, 1);
    tg_set_requires_grad(w, 1);
    tg_tensor *inputs[2] = { x, w };
    cr_assert_eq(tg_gradcheck(cube_in_a_graph, 2, inputs, NULL, NULL, &report), 0, "%s", tg_last_error());
    cr_assert_eq(report.checked, 16);
    tg_tensor_free(x);
    tg_tensor_free(w);
}

Test(custom_op, gradcheck_leaves_values_and_gradients_as_they_were)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, -1 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    cr_assert_eq(tg_backward(tape, tg_sum(tape, cube(tape, &cube_op, x), TG_ALL)), 0, "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor *grad = tg_grad(x);
    cr_assert_eq(tg_gradcheck(cube_fn, 1, &x, (void *)&cube_op, NULL, NULL), 0, "%s", tg_last_error());
    cr_assert_eq(tg_grad(x), grad, "the caller's gradient tensor was replaced");
    static const double values[3] = { 1, 2, -1 }, grads[3] = { 3, 12, 3 };
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tg_get(x, i), values[i], "value %d not restored", i);
        cr_assert_float_eq(tg_get(grad, i), grads[i], 1e-12, "gradient %d changed", i);
    }
    tg_tensor_free(x);
}

Test(custom_op, wrong_backward_fails_gradcheck_everywhere)
{
    tg_tensor *x = random_tensor(TG_F64, 1, (int64_t[]){ 5 }, 43, 0.5, 2);
    tg_set_requires_grad(x, 1);
    tg_gradcheck_report report;
    tg_clear_error();
    cr_assert_eq(tg_gradcheck(cube_fn, 1, &x, (void *)&wrong_cube_op, NULL, &report), 1);
    cr_assert_eq(report.passed, 0);
    cr_assert_eq(report.worst_input, 0);
    cr_assert(report.worst_index >= 0 && report.worst_index < 5, "worst_index %lld", (long long)report.worst_index);
    cr_assert_eq(report.checked, 5);
    /* Every element's analytic value is 2/3 of the truth, whatever the upstream vector. */
    cr_assert_float_eq(report.analytic / report.numeric, 2.0 / 3.0, 1e-6, "analytic %g numeric %g", report.analytic,
                       report.numeric);
    cr_assert_float_eq(report.abs_err, fabs(report.analytic - report.numeric), 1e-15);
    cr_assert_neq(tg_last_error()[0], '\0', "a failed check says which element");
    tg_tensor_free(x);
}

/* ---- y = a * b^3 elementwise, with a backward wrong only for b[2] ---- */

static int scaled_cube_forward(tg_tensor *const *inputs, int n_inputs, tg_tensor *out, void *ctx)
{
    (void)n_inputs, (void)ctx;
    for (int64_t i = 0; i < tg_numel(out); i++) {
        double a = tg_get(inputs[0], i), b = tg_get(inputs[1], i);
        tg_set(out, i, a * b * b * b);
    }
    return 0;
}

/* da += g b^3, db += g a 3b^2 (but 2b^2 at element 2) */
static int scaled_cube_backward_wrong_at_2(tg_tensor *const *inputs, int n_inputs, const tg_tensor *out,
                                           const tg_tensor *grad_out, tg_tensor *const *grad_inputs, void *ctx)
{
    (void)n_inputs, (void)out, (void)ctx;
    for (int64_t i = 0; i < tg_numel(out); i++) {
        double a = tg_get(inputs[0], i), b = tg_get(inputs[1], i), g = tg_get(grad_out, i);
        if (grad_inputs[0])
            tg_set(grad_inputs[0], i, tg_get(grad_inputs[0], i) + g * b * b * b);
        if (grad_inputs[1])
            tg_set(grad_inputs[1], i, tg_get(grad_inputs[1], i) + g * a * (i == 2 ? 2 : 3) * b * b);
    }
    return 0;
}

static tg_tensor *scaled_cube_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    static const tg_custom_op op = { .name = "scaled_cube",
                                     .forward = scaled_cube_forward,
                                     .backward = scaled_cube_backward_wrong_at_2 };
    (void)ctx;
    return tg_custom(tape, &op, 2, inputs, tg_ndim(inputs[0]), tg_shape(inputs[0]), NULL);
}

Test(custom_op, wrong_backward_report_names_the_element)
{
    tg_tensor *a = random_tensor(TG_F64, 1, (int64_t[]){ 4 }, 44, 0.5, 1.5);
    tg_tensor *b = random_tensor(TG_F64, 1, (int64_t[]){ 4 }, 45, 0.5, 1.5);
    tg_set_requires_grad(a, 1);
    tg_set_requires_grad(b, 1);
    tg_tensor *inputs[2] = { a, b };
    tg_gradcheck_report report;
    tg_clear_error();
    cr_assert_eq(tg_gradcheck(scaled_cube_fn, 2, inputs, NULL, NULL, &report), 1);
    cr_assert_eq(report.passed, 0);
    cr_assert_eq(report.worst_input, 1);
    cr_assert_eq(report.worst_index, 2);
    cr_assert_eq(report.checked, 8);
    cr_assert_float_eq(report.analytic / report.numeric, 2.0 / 3.0, 1e-6, "analytic %g numeric %g", report.analytic,
                       report.numeric);
    cr_assert_gt(report.abs_err, 1e-3);
    cr_assert(strstr(tg_last_error(), "input 1") && strstr(tg_last_error(), "element 2"), "%s", tg_last_error());

    /* With a not requiring a gradient, the backward gets NULL for it, and b is still caught. */
    tg_set_requires_grad(a, 0);
    cr_assert_eq(tg_gradcheck(scaled_cube_fn, 2, inputs, NULL, NULL, &report), 1);
    cr_assert_eq(report.worst_input, 1);
    cr_assert_eq(report.worst_index, 2);
    cr_assert_eq(report.checked, 4);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

/* ---- a scaled dot product of two inputs: y = s <a, b>, a 0-dimensional output ---- */

static int dot_forward(tg_tensor *const *inputs, int n_inputs, tg_tensor *out, void *ctx)
{
    (void)n_inputs;
    double sum = 0;
    for (int64_t i = 0; i < tg_numel(inputs[0]); i++)
        sum += tg_get(inputs[0], i) * tg_get(inputs[1], i);
    tg_set(out, 0, *(const double *)ctx * sum);
    return 0;
}

/* da += g s b, db += g s a */
static int dot_backward(tg_tensor *const *inputs, int n_inputs, const tg_tensor *out, const tg_tensor *grad_out,
                        tg_tensor *const *grad_inputs, void *ctx)
{
    (void)n_inputs, (void)out;
    double gs = tg_get(grad_out, 0) * *(const double *)ctx;
    for (int64_t i = 0; i < tg_numel(inputs[0]); i++)
        for (int k = 0; k < 2; k++)
            if (grad_inputs[k])
                tg_set(grad_inputs[k], i, tg_get(grad_inputs[k], i) + gs * tg_get(inputs[1 - k], i));
    return 0;
}

static tg_tensor *scaled_dot_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    static const tg_custom_op op = { .name = "scaled_dot", .forward = dot_forward, .backward = dot_backward };
    return tg_custom(tape, &op, 2, inputs, 0, NULL, ctx);
}

Test(custom_op, scaled_dot_product)
{
    double scale = 0.5;
    tg_tensor *a = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_tensor *b = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 4, -5, 6 });
    tg_set_requires_grad(a, 1);
    tg_set_requires_grad(b, 1);
    tg_tensor *inputs[2] = { a, b };
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = scaled_dot_fn(tape, inputs, &scale);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_ndim(y), 0);
    cr_assert_float_eq(tg_get(y, 0), 0.5 * (4 - 10 + 18), 1e-12);
    cr_assert_eq(tg_backward(tape, y), 0, "%s", tg_last_error());
    for (int i = 0; i < 3; i++) {
        cr_assert_float_eq(tg_get(tg_grad(a), i), scale * tg_get(b, i), 1e-12);
        cr_assert_float_eq(tg_get(tg_grad(b), i), scale * tg_get(a, i), 1e-12);
    }
    tg_tape_free(tape);
    tg_gradcheck_report report;
    cr_assert_eq(tg_gradcheck(scaled_dot_fn, 2, inputs, &scale, NULL, &report), 0, "%s", tg_last_error());
    cr_assert_eq(report.checked, 6);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(custom_op, same_tensor_as_both_inputs)
{
    /* y = s <x, x>: dy/dx = 2 s x, both inputs' contributions landing in x */
    double scale = 1.5;
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, -2, 0.5 });
    tg_set_requires_grad(x, 1);
    tg_tensor *inputs[2] = { x, x };
    tg_tape *tape = tg_tape_new();
    cr_assert_eq(tg_backward(tape, scaled_dot_fn(tape, inputs, &scale)), 0, "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor *grad = tg_grad(x);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(tg_get(grad, i), 2 * scale * tg_get(x, i), 1e-12, "element %d", i);

    /* gradcheck with x listed twice: it passes, and x's gradient is left as it was. */
    tg_gradcheck_report report;
    cr_assert_eq(tg_gradcheck(scaled_dot_fn, 2, inputs, &scale, NULL, &report), 0, "%s", tg_last_error());
    cr_assert_eq(tg_grad(x), grad, "the caller's gradient was freed or replaced (now %p)", (void *)tg_grad(x));
    for (int i = 0; tg_grad(x) && i < 3; i++)
        cr_assert_float_eq(tg_get(tg_grad(x), i), 2 * scale * tg_get(x, i), 1e-12, "element %d", i);
    tg_tensor_free(x);
}

Test(custom_op, dot_escapes_the_op_name)
{
    /* A user's name goes into a quoted DOT label: quotes and backslashes must be escaped. */
    static const tg_custom_op op = { .name = "my \"cube\" \\ op", .forward = cube_forward, .backward = cube_backward };
    tg_tensor *x = tg_tensor_new(TG_F64, 1, (int64_t[]){ 2 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    cr_assert_not_null(cube(tape, &op, x), "%s", tg_last_error());
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(tg_tape_dot(tape, f), 0, "%s", tg_last_error());
    char text[4096] = { 0 };
    rewind(f);
    cr_assert_gt(fread(text, 1, sizeof text - 1, f), 0);
    fclose(f);
    cr_assert_not_null(strstr(text, "my \\\"cube\\\" \\\\ op"), "the label is not escaped:\n%s", text);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(custom_op, failing_backward_fails_tg_backward)
{
    static const tg_custom_op op = { .name = "fragile_cube", .forward = cube_forward, .backward = backward_fails };
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1, 2 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_sum(tape, cube(tape, &op, x), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    tg_clear_error();
    cr_assert_neq(tg_backward(tape, loss), 0);
    cr_assert_not_null(strstr(tg_last_error(), "fragile_cube"), "the error names the op: \"%s\"", tg_last_error());
    cr_assert_not_null(strstr(tg_last_error(), "backward"), "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(custom_op, failing_forward_and_bad_definitions)
{
    static const tg_custom_op failing = { .name = "fragile_forward",
                                          .forward = forward_fails,
                                          .backward = cube_backward };
    static const tg_custom_op no_backward = { .name = "forward_only", .forward = cube_forward, .backward = NULL };
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1, 2 });
    tg_tensor *x32 = tg_tensor_new(TG_F32, 1, (int64_t[]){ 2 });
    tg_tensor *labels = tg_tensor_new(TG_I64, 1, (int64_t[]){ 2 });
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    cr_assert_null(cube(tape, &failing, x));
    cr_assert(strstr(tg_last_error(), "fragile_forward") && strstr(tg_last_error(), "forward"), "%s", tg_last_error());
    cr_assert_eq(tg_tape_size(tape), 0);

    /* Without a backward it runs for inference but refuses to record. */
    cr_assert_not_null(cube(tape, &no_backward, x), "%s", tg_last_error());
    tg_set_requires_grad(x, 1);
    cr_assert_null(cube(tape, &no_backward, x));
    cr_assert_not_null(strstr(tg_last_error(), "forward_only"), "%s", tg_last_error());

    tg_tensor *mixed[2] = { x, x32 };
    cr_assert_null(tg_custom(tape, &cube_op, 2, mixed, 1, (int64_t[]){ 2 }, NULL));
    cr_assert(strstr(tg_last_error(), "cube") && strstr(tg_last_error(), "do not mix"), "%s", tg_last_error());
    cr_assert_null(tg_custom(tape, &cube_op, 1, &labels, 1, (int64_t[]){ 2 }, NULL));
    cr_assert_not_null(strstr(tg_last_error(), "cube"), "%s", tg_last_error());
    tg_tensor *nine[9] = { x, x, x, x, x, x, x, x, x };
    cr_assert_null(tg_custom(tape, &cube_op, 9, nine, 1, (int64_t[]){ 2 }, NULL));
    cr_assert_not_null(strstr(tg_last_error(), "cube"), "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(x32);
    tg_tensor_free(labels);
}
