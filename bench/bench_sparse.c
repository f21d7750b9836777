/* Per-step cost of sparse softmax regression with lazy updates (issue 12): a
 * synthetic problem, 10 classes, rows with a fixed number of non-zeros at
 * random columns, labels from a hidden linear model. One step is a batch
 * gather, tg_sparse_linear, the fused cross-entropy, backward, a lazy Adam
 * step and a lazy zero_grad, float32, with W in either layout (tg_sparse_linear's
 * [classes, features], tg_sparse_matmul's [features, classes]). Two curves:
 *   1. features fixed at 1,000,000, non-zeros per batch varied;
 *   2. non-zeros per batch fixed, features varied (with dense Adam beside it).
 * Each point reports the process's CPU time per step (this machine is shared:
 * wall time moves with the other users' load) and the wall time beside it.
 * Usage: bench_sparse [steps]   (default 300 timed steps per point, after 20 untimed) */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include "bench_util.h"

#include <time.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CLASSES = 10, BATCH = 256, ROWS = 8192, WARMUP = 20 };

/* ROWS rows of `per_row` non-zeros at distinct random columns of [0, features), sorted; values in [0, 1);
 * label = argmax of a hidden model's scores (hidden weights drawn per column on the fly from a hash). */
static tg_dataset make_data(int64_t features, int per_row, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_dataset ds = { .rows = ROWS, .features = features, .classes = CLASSES, .nnz = (int64_t)ROWS * per_row };
    ds.y = malloc(ROWS * sizeof *ds.y);
    ds.row_ptr = malloc((ROWS + 1) * sizeof *ds.row_ptr);
    ds.col = malloc((size_t)ds.nnz * sizeof *ds.col);
    ds.val = malloc((size_t)ds.nnz * sizeof *ds.val);
    if (!ds.y || !ds.row_ptr || !ds.col || !ds.val)
        bench_fail("out of memory for the data");
    ds.row_ptr[0] = 0;
    for (int64_t r = 0; r < ROWS; r++) {
        int32_t *col = ds.col + r * per_row;
        float *val = ds.val + r * per_row;
        /* distinct columns by rejection, then an insertion sort (per_row is small) */
        for (int k = 0; k < per_row; k++) {
            int32_t c;
            bool again;
            do {
                c = (int32_t)tg_rng_below(&rng, (uint64_t)features);
                again = false;
                for (int j = 0; j < k; j++)
                    again |= col[j] == c;
            } while (again);
            int j = k;
            for (; j > 0 && col[j - 1] > c; j--)
                col[j] = col[j - 1];
            col[j] = c;
        }
        double score[CLASSES] = { 0 };
        for (int k = 0; k < per_row; k++) {
            val[k] = (float)tg_rng_uniform(&rng);
            uint64_t h = (uint64_t)col[k] * 0x9E3779B97F4A7C15ull;
            score[h % CLASSES] += val[k];
        }
        int64_t best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (score[c] > score[best])
                best = c;
        ds.y[r] = best;
        ds.row_ptr[r + 1] = (r + 1) * per_row;
    }
    return ds;
}

static void free_data(tg_dataset *ds)
{
    free(ds->y);
    free(ds->row_ptr);
    free(ds->col);
    free(ds->val);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double us_per_step, cpu_us_per_step, loss;
    uint64_t allocations; /* allocator calls in the timed steps */
} result;

/* rows_layout: W [features, classes] through tg_sparse_matmul + tg_add; else W [classes, features] through
 * tg_sparse_linear (nn.Linear's layout). */
static result run(const tg_dataset *ds, int lazy, int steps, bool rows_layout)
{
    tg_tensor *w = rows_layout ? tg_tensor_new(TG_F32, 2, (int64_t[]){ ds->features, CLASSES })
                               : tg_tensor_new(TG_F32, 2, (int64_t[]){ CLASSES, ds->features });
    tg_tensor *b = tg_tensor_new(TG_F32, 1, (int64_t[]){ CLASSES });
    tg_tensor *y = tg_tensor_new(TG_I64, 1, (int64_t[]){ BATCH });
    tg_sparse_csr *batch = tg_sparse_csr_new(TG_F32, 0, 0, 0, NULL, NULL, NULL);
    tg_tape *tape = tg_tape_new();
    if (!w || !b || !y || !batch || !tape)
        bench_fail("set-up");
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(b, 1);
    tg_optim_opts opts = TG_ADAM_DEFAULT(0.01);
    opts.lazy = lazy;
    tg_tensor *params[2] = { w, b };
    tg_optimizer *opt = tg_optimizer_new(&opts, 2, params);
    if (!opt)
        bench_fail("optimizer");
    int64_t *idx = malloc(BATCH * sizeof *idx);
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    double start = 0, cpu_start = 0, loss_sum = 0;
    uint64_t calls = 0;
    for (int s = 0; s < WARMUP + steps; s++) {
        if (s == WARMUP) {
            start = bench_now();
            cpu_start = cpu_now();
            calls = bench_allocator_calls();
        }
        for (int i = 0; i < BATCH; i++)
            idx[i] = (int64_t)tg_rng_below(&rng, (uint64_t)ds->rows);
        tg_tape_reset(tape);
        tg_optimizer_zero_grad(opt);
        if (tg_sparse_csr_gather(batch, ds, idx, 0, BATCH))
            bench_fail("gather");
        int64_t *labels = tg_data(y);
        for (int i = 0; i < BATCH; i++)
            labels[i] = ds->y[idx[i]];
        tg_tensor *logits =
            rows_layout ? tg_add(tape, tg_sparse_matmul(tape, batch, w), b) : tg_sparse_linear(tape, batch, w, b);
        tg_tensor *loss = tg_cross_entropy(tape, logits, y, NULL);
        if (!loss || tg_backward(tape, loss) || tg_optimizer_step(opt))
            bench_fail("step");
        if (s >= WARMUP)
            loss_sum += tg_get(loss, 0);
    }
    result r = { .us_per_step = (bench_now() - start) * 1e6 / steps,
                 .cpu_us_per_step = (cpu_now() - cpu_start) * 1e6 / steps,
                 .loss = loss_sum / steps,
                 .allocations = bench_allocator_calls() - calls };
    free(idx);
    tg_optimizer_free(opt);
    tg_tape_free(tape);
    tg_sparse_csr_free(batch);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_tensor_free(y);
    return r;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 300;
    if (steps < 1)
        steps = 300;
    bench_count_allocations();
    printf("# bench_sparse: %d classes, batch %d, float32, lazy Adam, %d timed steps per point, %d thread(s)\n",
           CLASSES, BATCH, steps, tg_num_threads());
    printf("\n## 1. features 1,000,000; non-zeros per batch varied\n\n");
    printf("| nnz per row | nnz per batch | W [10, F]: CPU us per step | CPU ns per nnz | wall us | W [F, 10]: CPU us "
           "per step | CPU ns per nnz | wall us | allocations in timed steps | mean loss |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    const int per_rows[] = { 4, 16, 64, 256 };
    for (size_t i = 0; i < sizeof per_rows / sizeof *per_rows; i++) {
        tg_dataset ds = make_data(1000000, per_rows[i], 1);
        result r = run(&ds, 1, steps, false), t = run(&ds, 1, steps, true);
        int64_t nnz = (int64_t)per_rows[i] * BATCH;
        printf("| %d | %lld | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %llu | %.3f |\n", per_rows[i], (long long)nnz,
               r.cpu_us_per_step, r.cpu_us_per_step * 1e3 / (double)nnz, r.us_per_step, t.cpu_us_per_step,
               t.cpu_us_per_step * 1e3 / (double)nnz, t.us_per_step,
               (unsigned long long)(r.allocations + t.allocations), t.loss);
        fflush(stdout);
        free_data(&ds);
    }
    printf("\n## 2. non-zeros per batch fixed (16 per row, %d per batch); features varied\n\n", 16 * BATCH);
    printf("| features | lazy Adam, W [10, F]: CPU us per step | (wall) | lazy Adam, W [F, 10]: CPU us per step | "
           "(wall) | dense Adam, W [10, F]: CPU us per step | (wall) |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|\n");
    const int64_t features[] = { 10000, 100000, 1000000, 4000000 };
    for (size_t i = 0; i < sizeof features / sizeof *features; i++) {
        tg_dataset ds = make_data(features[i], 16, 2);
        result lazy = run(&ds, 1, steps, false), rows = run(&ds, 1, steps, true);
        result dense = run(&ds, 0, steps / 10 > 10 ? steps / 10 : 10, false);
        printf("| %lld | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", (long long)features[i], lazy.cpu_us_per_step,
               lazy.us_per_step, rows.cpu_us_per_step, rows.us_per_step, dense.cpu_us_per_step, dense.us_per_step);
        fflush(stdout);
        free_data(&ds);
    }
    return 0;
}
