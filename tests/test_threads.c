/* Models trained on separate threads, each with its own tape, give the same
 * bits as the same runs one after the other: the library keeps no shared
 * mutable state (the allocator hooks are only read). scripts/test.sh also
 * runs this scenario under ThreadSanitizer through tests/tsan_threads.c. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "helpers.h"
#include "threads_scenario.h"

Test(threads, concurrent_training_is_bit_identical_to_sequential)
{
    char why[512] = "";
    cr_assert_eq(threads_scenario(TAPEGRAD_SOURCE_DIR "/examples/iris_mlp.json", why, sizeof why), 0, "%s", why);
}

/* Row-parallel loops split rows, never a sum: one thread or two give the same bits. */
Test(threads, cross_entropy_is_bit_identical_for_any_thread_count)
{
    tg_tensor *x = random_tensor(TG_F32, 2, (int64_t[]){ 512, 300 }, 5, -4, 4);
    tg_tensor *y = random_labels(512, 300, 6);
    tg_set_requires_grad(x, 1);
    double loss[2];
    float *grad[2];
    for (int run = 0; run < 2; run++) {
        tg_set_num_threads(run + 1);
        tg_tape *tape = tg_tape_new();
        tg_ce_opts opts = TG_CE_OPTS_DEFAULT;
        opts.label_smoothing = 0.05;
        tg_tensor *l = tg_cross_entropy(tape, x, y, &opts);
        tg_zero_grad(x);
        cr_assert_eq(tg_backward(tape, l), 0, "%s", tg_last_error());
        loss[run] = tg_get(l, 0);
        grad[run] = malloc(512 * 300 * sizeof(float));
        memcpy(grad[run], tg_data(tg_grad(x)), 512 * 300 * sizeof(float));
        tg_tape_free(tape);
    }
    cr_assert_eq(loss[0], loss[1]);
    cr_assert(memcmp(grad[0], grad[1], 512 * 300 * sizeof(float)) == 0);
    free(grad[0]);
    free(grad[1]);
    tg_tensor_free(x);
    tg_tensor_free(y);
}
