/* One training step's forward and backward, written two ways, through the
 * public API (issue 13: "full speed whichever way it is written"):
 *
 *     linear    logits = tg_linear(x, W, b)            W [out, in] (PyTorch's layout)
 *     textbook  logits = tg_add(tg_matmul(x, W), b)    W [in, out]
 *
 * then tg_cross_entropy, zero grads and tg_backward; with --hidden H, a
 * ReLU layer of H units first (the same form for both layers). The two forms
 * get the same numbers (W transposed), so their times compare the ops only.
 *
 * usage: bench_step --form linear|textbook [--batch B] [--in I] [--out O] [--hidden H]
 *                   [--dtype f32|f64] [--blocks N] [--block-seconds S] [--steps N]
 *
 * Steps are timed in blocks of equal count after a warm-up; prints one JSON
 * line per block with the seconds per step, wall and CPU (all threads). --steps N runs exactly N steps in
 * one block with no warm-up: for counting instructions (valgrind --tool=callgrind)
 * as the difference of two counts. */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int textbook;
    tg_tensor *w[2], *b[2]; /* layer l's weight ([out, in] or [in, out]) and bias */
    int layers;
} model;

static tg_tensor *param(tg_dtype dtype, int ndim, int64_t rows, int64_t cols, tg_rng *rng)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, (int64_t[]){ rows, cols });
    if (!t)
        bench_fail("making a parameter");
    tg_rng_fill_uniform(rng, t, -0.05, 0.05);
    tg_set_requires_grad(t, 1);
    return t;
}

static tg_tensor *layer(tg_tape *tape, const model *m, int l, tg_tensor *x)
{
    if (m->textbook)
        return tg_add(tape, tg_matmul(tape, x, m->w[l]), m->b[l]);
    return tg_linear(tape, x, m->w[l], m->b[l]);
}

static void step(tg_tape *tape, const model *m, tg_tensor *x, tg_tensor *y)
{
    tg_tape_reset(tape);
    tg_tensor *h = x;
    for (int l = 0; l < m->layers; l++) {
        h = layer(tape, m, l, h);
        if (l + 1 < m->layers)
            h = tg_relu(tape, h);
    }
    tg_tensor *loss = tg_cross_entropy(tape, h, y, NULL);
    if (!loss)
        bench_fail("forward");
    for (int l = 0; l < m->layers; l++) {
        tg_zero_grad(m->w[l]);
        tg_zero_grad(m->b[l]);
    }
    if (tg_backward(tape, loss))
        bench_fail("backward");
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_step --form linear|textbook [--batch B] [--in I] [--out O] [--hidden H]\n"
                    "                  [--dtype f32|f64] [--blocks N] [--block-seconds S] [--steps N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int64_t batch = 128, in = 784, out = 10, hidden = 0;
    int blocks = 15, form = -1;
    int64_t fixed_steps = 0;
    double block_seconds = 0.02;
    tg_dtype dtype = TG_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--form") && (!strcmp(v, "linear") || !strcmp(v, "textbook")))
            form = !strcmp(v, "textbook");
        else if (!strcmp(a, "--batch"))
            batch = atoll(v);
        else if (!strcmp(a, "--in"))
            in = atoll(v);
        else if (!strcmp(a, "--out"))
            out = atoll(v);
        else if (!strcmp(a, "--hidden"))
            hidden = atoll(v);
        else if (!strcmp(a, "--dtype") && (!strcmp(v, "f32") || !strcmp(v, "f64")))
            dtype = strcmp(v, "f32") ? TG_F64 : TG_F32;
        else if (!strcmp(a, "--blocks"))
            blocks = atoi(v);
        else if (!strcmp(a, "--block-seconds"))
            block_seconds = atof(v);
        else if (!strcmp(a, "--steps"))
            fixed_steps = atoll(v);
        else
            usage();
    }
    if (form < 0 || batch < 1 || in < 1 || out < 1 || hidden < 0 || blocks < 1 || !(block_seconds > 0) ||
        fixed_steps < 0)
        usage();
    bench_count_allocations();

    tg_rng rng;
    tg_rng_seed(&rng, 7);
    model m = { .textbook = form, .layers = hidden ? 2 : 1 };
    int64_t sizes[3] = { in, hidden ? hidden : out, out };
    for (int l = 0; l < m.layers; l++) {
        int64_t fan_in = sizes[l], fan_out = sizes[l + 1];
        m.w[l] = form ? param(dtype, 2, fan_in, fan_out, &rng) : param(dtype, 2, fan_out, fan_in, &rng);
        m.b[l] = param(dtype, 1, fan_out, 0, &rng);
    }
    tg_tensor *x = tg_tensor_new(dtype, 2, (int64_t[]){ batch, in });
    tg_tensor *y = tg_tensor_new(TG_I64, 1, (int64_t[]){ batch });
    tg_tape *tape = tg_tape_new();
    if (!x || !y || !tape)
        bench_fail("setting up");
    tg_rng_fill_uniform(&rng, x, 0, 1);
    int64_t *labels = tg_data(y);
    for (int64_t i = 0; i < batch; i++)
        labels[i] = (int64_t)tg_rng_below(&rng, (uint64_t)out);

    step(tape, &m, x, y);
    uint64_t after_first = bench_allocator_calls();
    int64_t warm = 0, per_block = fixed_steps;
    double start = bench_now();
    while (!fixed_steps && (bench_now() - start < 0.1 || warm < 3)) {
        step(tape, &m, x, y);
        warm++;
    }
    if (fixed_steps)
        blocks = 1;
    else
        per_block = (int64_t)(block_seconds / ((bench_now() - start) / (double)warm)) + 1;
    for (int b = 0; b < blocks; b++) {
        double t0 = bench_now(), c0 = bench_cpu_now();
        for (int64_t i = 0; i < per_block; i++)
            step(tape, &m, x, y);
        double seconds = bench_now() - t0, cpu = bench_cpu_now() - c0;
        printf("{\"sample\": \"step\", \"block\": %d, \"steps\": %lld, \"seconds\": %.12f, \"cpu_seconds\": %.12f}\n",
               b, (long long)per_block, seconds / (double)per_block, cpu / (double)per_block);
    }
    printf("{\"result\": \"step\", \"form\": \"%s\", \"dtype\": \"%s\", \"allocator_calls_after_first_step\": %llu}\n",
           form ? "textbook" : "linear", tg_dtype_name(dtype),
           (unsigned long long)(bench_allocator_calls() - after_first));
    tg_tape_free(tape);
    for (int l = 0; l < m.layers; l++) {
        tg_tensor_free(m.w[l]);
        tg_tensor_free(m.b[l]);
    }
    tg_tensor_free(x);
    tg_tensor_free(y);
    return 0;
}
