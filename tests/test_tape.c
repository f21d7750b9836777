#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "helpers.h"

Test(tape, chain_rule_by_hand)
{
    /* L = sum((a * b) + a) with a = [1, 2], b = [3, 4]: dL/da = b + 1, dL/db = a */
    tg_tensor *a = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1, 2 });
    tg_tensor *b = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 3, 4 });
    tg_set_requires_grad(a, 1);
    tg_set_requires_grad(b, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_sum(tape, tg_add(tape, tg_mul(tape, a, b), a), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_float_eq(tg_get(loss, 0), 1 * 3 + 2 * 4 + 1 + 2, 1e-12);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    cr_assert_float_eq(tg_get(tg_grad(a), 0), 4.0, 1e-12);
    cr_assert_float_eq(tg_get(tg_grad(a), 1), 5.0, 1e-12);
    cr_assert_float_eq(tg_get(tg_grad(b), 0), 1.0, 1e-12);
    cr_assert_float_eq(tg_get(tg_grad(b), 1), 2.0, 1e-12);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(tape, tensor_used_twice_gets_both_contributions)
{
    /* L = sum(a * a) : dL/da = 2a (both operands of one op are a) */
    static const double values[3] = { -1.5, 0.25, 2.0 };
    tg_tensor *a = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, values);
    tg_set_requires_grad(a, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, a, a), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(tg_get(tg_grad(a), i), 2 * values[i], 1e-12, "element %d", i);
    tg_tensor_free(a);

    /* A diamond through an intermediate: h = tanh(x), L = sum(h * h + h):
     * dL/dx = (2h + 1)(1 - h^2), h's two consumers both flowing back */
    tg_tape_reset(tape);
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, values);
    tg_set_requires_grad(x, 1);
    tg_tensor *h = tg_tanh(tape, x);
    loss = tg_sum(tape, tg_add(tape, tg_mul(tape, h, h), h), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    for (int i = 0; i < 3; i++) {
        long double hv = tanhl(values[i]);
        double expected = (double)((2 * hv + 1) * (1 - hv * hv));
        cr_assert_float_eq(tg_get(tg_grad(x), i), expected, 1e-12, "element %d: %.17g vs %.17g", i,
                           tg_get(tg_grad(x), i), expected);
    }
    tg_tape_free(tape);
    tg_tensor_free(x);
}

/* L = sum(w * x) + sum(w) on a fresh tape: dL/dw = x + 1 */
static tg_tensor *weighted_sum(tg_tape *tape, tg_tensor *w, tg_tensor *x)
{
    return tg_add(tape, tg_sum(tape, tg_mul(tape, w, x), TG_ALL), tg_sum(tape, w, TG_ALL));
}

Test(tape, caller_gradients_accumulate_until_zero_grad)
{
    static const double xs[3] = { 0.5, -2.0, 3.0 };
    tg_tensor *w = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, xs);
    tg_set_requires_grad(w, 1);
    tg_tape *tape = tg_tape_new();

    /* Two steps, each a fresh graph, without tg_zero_grad: the gradients add up (PyTorch). */
    for (int step = 1; step <= 2; step++) {
        tg_tape_reset(tape);
        tg_tensor *loss = weighted_sum(tape, w, x);
        cr_assert_not_null(loss, "%s", tg_last_error());
        cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
        for (int i = 0; i < 3; i++)
            cr_assert_float_eq(tg_get(tg_grad(w), i), step * (xs[i] + 1), 1e-12, "step %d element %d", step, i);
    }
    cr_assert_null(tg_grad(x), "x does not require a gradient and must not get one");

    /* tg_zero_grad zeroes and keeps the buffer; the next step starts from zero. */
    tg_tensor *grad_before = tg_grad(w);
    tg_zero_grad(w);
    cr_assert_eq(tg_grad(w), grad_before);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(tg_get(tg_grad(w), i), 0.0);
    tg_tape_reset(tape);
    tg_tensor *loss = weighted_sum(tape, w, x);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq(tg_get(tg_grad(w), i), xs[i] + 1, 1e-12, "after zero_grad, element %d", i);

    tg_tape_free(tape);
    tg_tensor_free(w);
    tg_tensor_free(x);
}

Test(tape, walking_the_same_tape_twice)
{
    /* L = sum(exp(a) * b): dL/da = exp(a) b, dL/db = exp(a). Intermediates'
     * gradients are cleared between walks, so the second walk adds exactly one
     * more contribution to the caller's gradients. */
    static const double av[2] = { 0.3, -1.2 }, bv[2] = { 2.0, -0.5 };
    tg_tensor *a = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, av);
    tg_tensor *b = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, bv);
    tg_set_requires_grad(a, 1);
    tg_set_requires_grad(b, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, tg_exp(tape, a), b), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    int64_t nodes = tg_tape_size(tape);
    for (int walk = 1; walk <= 2; walk++) {
        cr_assert_eq(tg_backward(tape, loss), 0, "walk %d: %s", walk, tg_last_error());
        cr_assert_eq(tg_tape_size(tape), nodes, "backward must not record nodes");
        for (int i = 0; i < 2; i++) {
            double e = (double)expl(av[i]);
            cr_assert_float_eq(tg_get(tg_grad(a), i), walk * e * bv[i], 1e-12, "walk %d da[%d]", walk, i);
            cr_assert_float_eq(tg_get(tg_grad(b), i), walk * e, 1e-12, "walk %d db[%d]", walk, i);
        }
    }
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}

Test(tape, backward_with_is_the_vector_jacobian_product)
{
    /* Y = tanh(A B), A [2, 3], B [3, 2], upstream G [2, 2]:
     * dZ = G * (1 - Y^2), dA = dZ B^T, dB = A^T dZ, computed here in long double. */
    enum { M = 2, K = 3, N = 2 };
    static const double av[M * K] = { 0.1, -0.4, 0.7, 0.9, 0.2, -0.3 };
    static const double bv[K * N] = { 0.5, -0.6, 0.05, 0.8, -0.25, 0.3 };
    static const double gv[M * N] = { 1.0, -2.0, 0.5, 3.0 };
    tg_tensor *a = tg_tensor_from(TG_F64, 2, (int64_t[]){ M, K }, av);
    tg_tensor *b = tg_tensor_from(TG_F64, 2, (int64_t[]){ K, N }, bv);
    tg_tensor *g = tg_tensor_from(TG_F64, 2, (int64_t[]){ M, N }, gv);
    tg_set_requires_grad(a, 1);
    tg_set_requires_grad(b, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_tanh(tape, tg_matmul(tape, a, b));
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_eq(tg_backward_with(tape, y, g), 0, "%s", tg_last_error());

    long double dz[M * N];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            long double z = 0;
            for (int k = 0; k < K; k++)
                z += (long double)av[i * K + k] * bv[k * N + j];
            long double t = tanhl(z);
            cr_assert_float_eq(tg_get(y, i * N + j), (double)t, 1e-12);
            dz[i * N + j] = gv[i * N + j] * (1 - t * t);
        }
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) {
            long double da = 0;
            for (int j = 0; j < N; j++)
                da += dz[i * N + j] * bv[k * N + j];
            cr_assert_float_eq(tg_get(tg_grad(a), i * K + k), (double)da, 1e-12, "dA[%d, %d]", i, k);
        }
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++) {
            long double db = 0;
            for (int i = 0; i < M; i++)
                db += (long double)av[i * K + k] * dz[i * N + j];
            cr_assert_float_eq(tg_get(tg_grad(b), k * N + j), (double)db, 1e-12, "dB[%d, %d]", k, j);
        }

    /* An upstream gradient of the wrong shape is refused with both shapes named. */
    tg_tensor *wrong = tg_tensor_new(TG_F64, 1, (int64_t[]){ 4 });
    cr_assert_neq(tg_backward_with(tape, y, wrong), 0);
    cr_assert(strstr(tg_last_error(), "[4]") && strstr(tg_last_error(), "[2, 2]"), "%s", tg_last_error());

    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(g);
    tg_tensor_free(wrong);
}

Test(tape, backward_on_non_scalar_loss_fails)
{
    tg_tensor *x = random_tensor(TG_F64, 2, (int64_t[]){ 2, 3 }, 1, -1, 1);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_exp(tape, x);
    cr_assert_not_null(y, "%s", tg_last_error());
    tg_clear_error();
    cr_assert_neq(tg_backward(tape, y), 0);
    const char *msg = tg_last_error();
    cr_assert(strstr(msg, "tg_backward") && strstr(msg, "[2, 3]"), "message should name the call and the shape: %s",
              msg);
    cr_assert_null(tg_grad(x), "a refused backward must not touch the gradients");
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(tape, recording_off_computes_but_keeps_no_graph)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 0, 1, -2 });
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    cr_assert_eq(tg_tape_recording(tape), 1, "a new tape records");
    cr_assert_eq(tg_tape_set_recording(tape, 0), 1, "returns the previous setting");
    cr_assert_eq(tg_tape_recording(tape), 0);

    tg_tensor *loss = tg_sum(tape, tg_exp(tape, x), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_float_eq(tg_get(loss, 0), (double)(expl(0) + expl(1) + expl(-2)), 1e-12);
    cr_assert_eq(tg_tape_size(tape), 0);

    tg_clear_error();
    cr_assert_neq(tg_backward(tape, loss), 0);
    cr_assert_neq(tg_last_error()[0], '\0', "backward without a graph must say why");
    cr_assert_null(tg_grad(x));

    cr_assert_eq(tg_tape_set_recording(tape, 1), 0);
    loss = tg_sum(tape, tg_exp(tape, x), TG_ALL);
    cr_assert_eq(tg_tape_size(tape), 2);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(tape, reset_drops_nodes_and_keeps_capacity)
{
    tg_tensor *x = random_tensor(TG_F64, 2, (int64_t[]){ 8, 5 }, 2, -1, 1);
    tg_set_requires_grad(x, 1);
    tg_tape *tape = tg_tape_new();
    cr_assert_eq(tg_tape_size(tape), 0);
    tg_tensor *loss = tg_mean(tape, tg_relu(tape, tg_tanh(tape, x)), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_tape_size(tape), 3);
    size_t capacity = tg_tape_capacity(tape);
    cr_assert_gt(capacity, 0);

    tg_tape_reset(tape);
    cr_assert_eq(tg_tape_size(tape), 0);
    cr_assert_eq(tg_tape_capacity(tape), capacity, "reset keeps the blocks");
    cr_assert_eq(tg_tape_recording(tape), 1, "reset leaves recording as it was");

    /* The same work again fits in the same blocks. */
    loss = tg_mean(tape, tg_relu(tape, tg_tanh(tape, x)), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    cr_assert_eq(tg_tape_size(tape), 3);
    cr_assert_eq(tg_tape_capacity(tape), capacity);
    tg_tape_free(tape);
    tg_tensor_free(x);
}

Test(tape, dot_output)
{
    tg_tensor *x = random_tensor(TG_F64, 2, (int64_t[]){ 4, 5 }, 3, -1, 1);
    tg_tensor *w = random_tensor(TG_F64, 2, (int64_t[]){ 3, 5 }, 4, -1, 1);
    tg_tensor *b = random_tensor(TG_F64, 1, (int64_t[]){ 3 }, 5, -1, 1);
    tg_tensor *labels = random_labels(4, 3, 6);
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(b, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_cross_entropy(tape, tg_linear(tape, x, w, b), labels, NULL);
    cr_assert_not_null(loss, "%s", tg_last_error());

    FILE *f = tmpfile();
    cr_assert_not_null(f);
    cr_assert_eq(tg_tape_dot(tape, f), 0, "%s", tg_last_error());
    long size = ftell(f);
    cr_assert_gt(size, 0);
    char *text = calloc((size_t)size + 1, 1);
    rewind(f);
    cr_assert_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    fclose(f);

    cr_assert_not_null(strstr(text, "digraph"), "%s", text);
    cr_assert_not_null(strstr(text, "linear"), "%s", text);
    cr_assert_not_null(strstr(text, "cross_entropy"), "%s", text);
    cr_assert_not_null(strstr(text, "[4, 3]"), "the linear node's output shape: %s", text);
    cr_assert_not_null(strstr(text, "->"), "%s", text);
    /* Balanced braces and the leaves drawn as boxes. */
    cr_assert_not_null(strstr(text, "shape=box"), "%s", text);
    int depth = 0;
    for (const char *c = text; *c; c++)
        depth += *c == '{' ? 1 : *c == '}' ? -1 : 0;
    cr_assert_eq(depth, 0, "%s", text);
    free(text);

    cr_assert_neq(tg_tape_dot(tape, NULL), 0);
    cr_assert_neq(tg_last_error()[0], '\0');
    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_tensor_free(labels);
}

Test(tape, null_inputs_keep_the_first_error)
{
    tg_tensor *a = tg_tensor_new(TG_F64, 2, (int64_t[]){ 2, 3 });
    tg_tensor *bad = tg_tensor_new(TG_F64, 2, (int64_t[]){ 4, 5 });
    tg_set_requires_grad(a, 1);
    tg_tape *tape = tg_tape_new();
    tg_clear_error();
    tg_tensor *loss = tg_sum(tape, tg_exp(tape, tg_add(tape, a, bad)), TG_ALL);
    cr_assert_null(loss);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", tg_last_error());
    cr_assert(strstr(msg, "add") && strstr(msg, "[2, 3]") && strstr(msg, "[4, 5]"),
              "the first error (add, both shapes) must survive the later ops: %s", msg);
    cr_assert_eq(tg_tape_size(tape), 0, "nothing recorded for a failed expression");

    /* Every op passes a NULL through without replacing the error. */
    tg_tensor *ok = tg_tensor_new(TG_F64, 2, (int64_t[]){ 2, 3 });
    tg_tensor *sq = tg_tensor_new(TG_F64, 2, (int64_t[]){ 3, 3 });
    tg_tensor *labels = tg_tensor_new(TG_I64, 1, (int64_t[]){ 2 });
    {
        tg_tensor *results[] = {
            tg_add(tape, NULL, ok),
            tg_sub(tape, ok, NULL),
            tg_mul(tape, NULL, ok),
            tg_div(tape, ok, NULL),
            tg_neg(tape, NULL),
            tg_exp(tape, NULL),
            tg_log(tape, NULL),
            tg_relu(tape, NULL),
            tg_sigmoid(tape, NULL),
            tg_tanh(tape, NULL),
            tg_matmul(tape, NULL, sq),
            tg_matmul(tape, ok, NULL),
            tg_linear(tape, NULL, sq, NULL),
            tg_linear(tape, ok, NULL, NULL),
            tg_sum(tape, NULL, 0),
            tg_mean(tape, NULL, TG_ALL),
            tg_reshape(tape, NULL, 1, (int64_t[]){ 6 }),
            tg_transpose(tape, NULL, 0, 1),
            tg_softmax(tape, NULL, 1),
            tg_log_softmax(tape, NULL, 1),
            tg_cross_entropy(tape, NULL, labels, NULL),
            tg_nll_loss(tape, NULL, labels, NULL),
        };
        for (size_t i = 0; i < sizeof results / sizeof *results; i++) {
            cr_assert_null(results[i], "op %zu", i);
            cr_assert_str_eq(tg_last_error(), msg, "op %zu replaced the first error with: %s", i, tg_last_error());
        }
    }
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(bad);
    tg_tensor_free(ok);
    tg_tensor_free(sq);
    tg_tensor_free(labels);
}
