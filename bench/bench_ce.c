/* Fused cross-entropy forward + backward through the public API, mirroring
 * bench/torch_ce.py: per call, a tape reset, tg_cross_entropy (mean over the
 * rows, class-index targets) and tg_backward, which accumulates into the
 * logits' gradient as PyTorch's loss.backward() does into x.grad.
 *
 * usage: bench_ce ROWS CLASSES [--spatial D] [--blocks B] [--block-seconds S]
 *
 * --spatial D: logits [ROWS, CLASSES, D] with targets [ROWS, D], the per-position
 * (N-D) form, over as many elements as ROWS * D rows of the 2-D form.
 *
 * Calls are timed in blocks of equal count (about S seconds each, default
 * 0.02) after a warm-up; prints one JSON line per block with the seconds per
 * call, then a result line with the allocator calls made after the first call. */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void call(tg_tape *tape, tg_tensor *logits, tg_tensor *target)
{
    tg_tape_reset(tape);
    tg_tensor *loss = tg_cross_entropy(tape, logits, target, NULL);
    if (!loss || tg_backward(tape, loss))
        bench_fail("cross_entropy");
}

int main(int argc, char **argv)
{
    if (argc < 3)
        goto usage;
    int64_t rows = atoll(argv[1]), classes = atoll(argv[2]);
    int64_t spatial = 0;
    int blocks = 15;
    double block_seconds = 0.02;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--blocks") && i + 1 < argc)
            blocks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--spatial") && i + 1 < argc)
            spatial = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--block-seconds") && i + 1 < argc)
            block_seconds = atof(argv[++i]);
        else
            goto usage;
    }
    if (rows < 1 || classes < 1 || blocks < 1 || !(block_seconds > 0) || spatial < 0)
        goto usage;
    bench_count_allocations();

    tg_rng rng;
    tg_rng_seed(&rng, 7);
    int64_t positions = rows * (spatial ? spatial : 1);
    tg_tensor *logits = spatial ? tg_tensor_new(TG_F32, 3, (int64_t[]){ rows, classes, spatial })
                                : tg_tensor_new(TG_F32, 2, (int64_t[]){ rows, classes });
    tg_tensor *target = spatial ? tg_tensor_new(TG_I64, 2, (int64_t[]){ rows, spatial })
                                : tg_tensor_new(TG_I64, 1, (int64_t[]){ rows });
    tg_tape *tape = tg_tape_new();
    if (!logits || !target || !tape)
        bench_fail("setting up");
    float *x = tg_data(logits);
    for (int64_t i = 0; i < positions * classes; i++)
        x[i] = (float)tg_rng_normal(&rng);
    int64_t *t = tg_data(target);
    for (int64_t i = 0; i < positions; i++)
        t[i] = (int64_t)tg_rng_below(&rng, (uint64_t)classes);
    tg_set_requires_grad(logits, 1);

    call(tape, logits, target);
    uint64_t after_first = bench_allocator_calls();
    /* Warm up for a tenth of a second, which also sizes the blocks. */
    int64_t warm = 0;
    double start = bench_now();
    while (bench_now() - start < 0.1 || warm < 3) {
        call(tape, logits, target);
        warm++;
    }
    double per_call = (bench_now() - start) / (double)warm;
    int64_t per_block = (int64_t)(block_seconds / per_call) + 1;
    for (int b = 0; b < blocks; b++) {
        double t0 = bench_now();
        for (int64_t i = 0; i < per_block; i++)
            call(tape, logits, target);
        printf("{\"sample\": \"call\", \"block\": %d, \"calls\": %lld, \"seconds\": %.12f}\n", b, (long long)per_block,
               (bench_now() - t0) / (double)per_block);
    }
    printf("{\"result\": \"ce\", \"rows\": %lld, \"classes\": %lld, \"spatial\": %lld, "
           "\"allocator_calls_after_first_step\": %llu}\n",
           (long long)rows, (long long)classes, (long long)spatial,
           (unsigned long long)(bench_allocator_calls() - after_first));
    tg_tape_free(tape);
    tg_tensor_free(logits);
    tg_tensor_free(target);
    return 0;
usage:
    fprintf(stderr, "usage: bench_ce ROWS CLASSES [--spatial D] [--blocks B] [--block-seconds S]\n");
    return 2;
}
