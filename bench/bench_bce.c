/* Binary cross-entropy with logits, forward + backward, through the public API, mirroring
 * bench/torch_bce.py: logits [N, 1] float32 from N(0, 2^2) with requires_grad, targets in {0, 1};
 * per call a tape reset, the loss (mean) and tg_backward. The loss of one-output logistic
 * regression over a full batch. --composed builds the same loss from sigmoid, log, mul, sub and
 * mean instead, to show what the fused node saves.
 *
 * usage: bench_bce N [--composed] [--blocks B] [--block-seconds S]
 *
 * Calls are timed in blocks of equal count (about S seconds each, default 0.02) after a warm-up;
 * prints one JSON line per block with the seconds per call, then a result line. */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tg_tensor *one;

static void call(tg_tape *tape, tg_tensor *logits, tg_tensor *target, int composed)
{
    tg_tape_reset(tape);
    tg_tensor *loss;
    if (composed) { /* -mean(y log s + (1 - y) log(1 - s)) */
        tg_tensor *s = tg_sigmoid(tape, logits);
        tg_tensor *terms = tg_add(tape, tg_mul(tape, target, tg_log(tape, s)),
                                  tg_mul(tape, tg_sub(tape, one, target), tg_log(tape, tg_sub(tape, one, s))));
        loss = tg_neg(tape, tg_mean(tape, terms, TG_ALL));
    } else {
        loss = tg_binary_cross_entropy_with_logits(tape, logits, target, NULL);
    }
    if (!loss || tg_backward(tape, loss))
        bench_fail("binary_cross_entropy_with_logits");
}

int main(int argc, char **argv)
{
    if (argc < 2)
        goto usage;
    int64_t n = atoll(argv[1]);
    int blocks = 15, composed = 0;
    double block_seconds = 0.02;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--blocks") && i + 1 < argc)
            blocks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--block-seconds") && i + 1 < argc)
            block_seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--composed"))
            composed = 1;
        else
            goto usage;
    }
    if (n < 1 || blocks < 1 || !(block_seconds > 0))
        goto usage;
    bench_count_allocations();

    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *logits = tg_tensor_new(TG_F32, 2, (int64_t[]){ n, 1 });
    tg_tensor *target = tg_tensor_new(TG_F32, 2, (int64_t[]){ n, 1 });
    one = tg_tensor_from(TG_F32, 0, NULL, (float[]){ 1 });
    tg_tape *tape = tg_tape_new();
    if (!logits || !target || !one || !tape)
        bench_fail("setting up");
    float *x = tg_data(logits), *y = tg_data(target);
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(2 * tg_rng_normal(&rng));
        y[i] = (float)tg_rng_below(&rng, 2);
    }
    tg_set_requires_grad(logits, 1);

    call(tape, logits, target, composed);
    uint64_t after_first = bench_allocator_calls();
    int64_t warm = 0;
    double start = bench_now();
    while (bench_now() - start < 0.1 || warm < 3) {
        call(tape, logits, target, composed);
        warm++;
    }
    double per_call = (bench_now() - start) / (double)warm;
    int64_t per_block = (int64_t)(block_seconds / per_call) + 1;
    for (int b = 0; b < blocks; b++) {
        double t0 = bench_now();
        for (int64_t i = 0; i < per_block; i++)
            call(tape, logits, target, composed);
        printf("{\"sample\": \"call\", \"block\": %d, \"calls\": %lld, \"seconds\": %.12f}\n", b, (long long)per_block,
               (bench_now() - t0) / (double)per_block);
    }
    printf("{\"result\": \"bce\", \"n\": %lld, \"composed\": %d, \"allocator_calls_after_first_step\": %llu}\n",
           (long long)n, composed, (unsigned long long)(bench_allocator_calls() - after_first));
    tg_tape_free(tape);
    tg_tensor_free(logits);
    tg_tensor_free(target);
    tg_tensor_free(one);
    return 0;
usage:
    fprintf(stderr, "usage: bench_bce N [--composed] [--blocks B] [--block-seconds S]\n");
    return 2;
}
