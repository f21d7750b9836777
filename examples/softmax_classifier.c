/* A tiny softmax classifier on three Gaussian blobs in 2-D, trained with
 * plain minibatch SGD through the tape: shuffled batches of 32 rows from a
 * tg_batcher (the last batch of each epoch has the 22 rows left over).
 * Prints the loss as it falls.
 * usage: softmax_classifier [steps]   (default 1000) */
#include <tapegrad.h>

#include <stdio.h>
#include <stdlib.h>

enum { ROWS = 150, FEATURES = 2, CLASSES = 3, BATCH = 32 };

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 1000;
    if (steps <= 0) {
        fprintf(stderr, "usage: %s [steps > 0]\n", argv[0]);
        return 2;
    }
    static const double centres[CLASSES][FEATURES] = { { -2, 0 }, { 2, 0 }, { 0, 2.5 } };
    tg_rng rng;
    tg_rng_seed(&rng, 42);

    /* The data set: rows of float32 features and their class ids, in one block each. */
    static float features[ROWS * FEATURES];
    static int64_t classes[ROWS];
    for (int i = 0; i < ROWS; i++) {
        classes[i] = i % CLASSES;
        for (int f = 0; f < FEATURES; f++)
            features[i * FEATURES + f] = (float)(centres[classes[i]][f] + tg_rng_normal(&rng));
    }
    tg_dataset data = { .rows = ROWS, .features = FEATURES, .classes = CLASSES, .x = features, .y = classes };

    tg_batcher *batches = tg_batcher_new(&data, BATCH, TG_F32, NULL); /* every batch tensor is made here */
    tg_tensor *w = tg_tensor_new(TG_F32, 2, (int64_t[]){ CLASSES, FEATURES });
    tg_tensor *b = tg_tensor_new(TG_F32, 1, (int64_t[]){ CLASSES });
    tg_tape *tape = tg_tape_new();
    if (!batches || !w || !b || !tape) {
        fprintf(stderr, "error: %s\n", tg_last_error());
        return 1;
    }
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(b, 1);

    const float lr = 0.5f;
    tg_batcher_reset(batches, &rng); /* the first epoch shuffled too */
    for (int step = 1; step <= steps; step++) {
        tg_tensor *x, *y;
        int more = tg_batcher_next(batches, &x, &y);
        if (more == 0) { /* the epoch is over: reshuffle and start the next */
            tg_batcher_reset(batches, &rng);
            more = tg_batcher_next(batches, &x, &y);
        }
        if (more < 0) {
            fprintf(stderr, "error: %s\n", tg_last_error());
            return 1;
        }
        tg_tape_reset(tape);
        tg_tensor *logits = tg_linear(tape, x, w, b);
        tg_tensor *loss = tg_cross_entropy(tape, logits, y, NULL);
        tg_zero_grad(w);
        tg_zero_grad(b);
        if (!loss || tg_backward(tape, loss) != 0) {
            fprintf(stderr, "error: %s\n", tg_last_error());
            return 1;
        }
        tg_tensor *params[2] = { w, b };
        for (int p = 0; p < 2; p++) {
            float *v = tg_data(params[p]);
            const float *g = tg_data(tg_grad(params[p]));
            for (int64_t k = 0; k < tg_numel(params[p]); k++)
                v[k] -= lr * g[k];
        }
        if (step == 1 || step % (steps / 10 > 0 ? steps / 10 : 1) == 0)
            printf("step %4d  loss %.4f\n", step, tg_get(loss, 0));
    }

    /* Accuracy over every row, with recording off: inference keeps no graph. */
    tg_tensor *x = tg_tensor_from(TG_F32, 2, (int64_t[]){ ROWS, FEATURES }, features);
    if (!x) {
        fprintf(stderr, "error: %s\n", tg_last_error());
        return 1;
    }
    tg_tape_reset(tape);
    tg_tape_set_recording(tape, 0);
    tg_tensor *logits = tg_linear(tape, x, w, b);
    int correct = 0;
    for (int i = 0; i < ROWS; i++) {
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (tg_get(logits, i * CLASSES + c) > tg_get(logits, i * CLASSES + best))
                best = c;
        correct += best == classes[i];
    }
    printf("training accuracy %.3f (%d of %d)\n", (double)correct / ROWS, correct, ROWS);

    tg_tape_free(tape);
    tg_tensor_free(x);
    tg_batcher_free(batches);
    tg_tensor_free(w);
    tg_tensor_free(b);
    return 0;
}
