/* Softmax regression over sparse rows: a libsvm training and test file, a
 * float32 weight [features, classes] trained with tg_sparse_matmul (plus a
 * bias) and lazy Adam, test accuracy at the end. Every step costs O(non-zeros in the batch).
 *   sparse_classifier TRAIN.svm TEST.svm [epochs] [lr] [batch]
 * (defaults 5, 0.01, 256). Prints test accuracy, seconds, peak RSS. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getrusage */

#include <tapegrad.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what)
{
    fprintf(stderr, "sparse_classifier: %s: %s\n", what, tg_last_error());
    return 1;
}

/* Fraction of ds's rows whose largest logit is their label. */
static double accuracy(const tg_dataset *ds, tg_tensor *w, tg_tensor *b, tg_sparse_csr *batch, tg_tape *tape)
{
    int64_t right = 0, classes = tg_dim(w, 1);
    int was = tg_tape_set_recording(tape, 0);
    for (int64_t start = 0; start < ds->rows; start += 1024) {
        int64_t n = ds->rows - start < 1024 ? ds->rows - start : 1024;
        tg_tape_reset(tape);
        if (tg_sparse_csr_gather(batch, ds, NULL, start, n))
            return -1;
        tg_tensor *logits = tg_add(tape, tg_sparse_matmul(tape, batch, w), b);
        if (!logits)
            return -1;
        const float *l = tg_data(logits);
        for (int64_t i = 0; i < n; i++) {
            int64_t best = 0;
            for (int64_t c = 1; c < classes; c++)
                if (l[i * classes + c] > l[i * classes + best])
                    best = c;
            right += best == ds->y[start + i];
        }
    }
    tg_tape_set_recording(tape, was);
    return (double)right / (double)ds->rows;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: sparse_classifier TRAIN.svm TEST.svm [epochs] [lr] [batch]\n");
        return 2;
    }
    int epochs = argc > 3 ? atoi(argv[3]) : 5;
    double lr = argc > 4 ? atof(argv[4]) : 0.01;
    int64_t batch_size = argc > 5 ? atoll(argv[5]) : 256;
    double t0 = now();
    tg_dataset *train = tg_libsvm_load(argv[1], NULL);
    if (!train)
        return fail("train");
    /* the test file in the training file's feature space and label mapping */
    tg_libsvm_opts test_opts = { .features = train->features,
                                 .skip_unknown_features = 1,
                                 .label_names = train->label_names,
                                 .n_label_names = train->classes };
    tg_dataset *test = tg_libsvm_load(argv[2], &test_opts);
    if (!test)
        return fail("test");
    double t_load = now();

    tg_tensor *w = tg_tensor_new(TG_F32, 2, (int64_t[]){ train->features, train->classes });
    tg_tensor *b = tg_tensor_new(TG_F32, 1, (int64_t[]){ train->classes });
    tg_tensor *y = tg_tensor_new(TG_I64, 1, (int64_t[]){ batch_size });
    tg_tensor *y_last =
        tg_tensor_new(TG_I64, 1, (int64_t[]){ train->rows % batch_size ? train->rows % batch_size : 1 });
    tg_sparse_csr *batch = tg_sparse_csr_new(TG_F32, 0, 0, 0, NULL, NULL, NULL);
    tg_tape *tape = tg_tape_new();
    int64_t *order = malloc((size_t)train->rows * sizeof *order);
    if (!w || !b || !y || !y_last || !batch || !tape || !order)
        return fail("set-up");
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(b, 1);
    tg_optim_opts opts = TG_ADAM_DEFAULT(lr);
    opts.lazy = 1;
    tg_tensor *params[2] = { w, b };
    tg_optimizer *opt = tg_optimizer_new(&opts, 2, params);
    if (!opt)
        return fail("optimizer");
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    for (int64_t i = 0; i < train->rows; i++)
        order[i] = i;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        for (int64_t i = train->rows - 1; i > 0; i--) { /* a new shuffle each epoch */
            int64_t j = (int64_t)tg_rng_below(&rng, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double loss_sum = 0;
        int64_t steps = 0;
        for (int64_t start = 0; start < train->rows; start += batch_size, steps++) {
            int64_t n = train->rows - start < batch_size ? train->rows - start : batch_size;
            tg_tensor *labels = n == batch_size ? y : y_last;
            tg_tape_reset(tape);
            tg_optimizer_zero_grad(opt);
            if (tg_sparse_csr_gather(batch, train, order + start, 0, n))
                return fail("gather");
            int64_t *l = tg_data(labels);
            for (int64_t i = 0; i < n; i++)
                l[i] = train->y[order[start + i]];
            tg_tensor *logits = tg_add(tape, tg_sparse_matmul(tape, batch, w), b);
            tg_tensor *loss = tg_cross_entropy(tape, logits, labels, NULL);
            if (!loss || tg_backward(tape, loss) || tg_optimizer_step(opt))
                return fail("step");
            loss_sum += tg_get(loss, 0);
        }
        printf("epoch %d: train loss %.4f\n", epoch, loss_sum / (double)steps);
    }
    double t_train = now();
    double acc = accuracy(test, w, b, batch, tape);
    if (acc < 0)
        return fail("evaluate");
    double t_end = now();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%lld train rows, %lld test rows, %lld features, %lld classes, %lld + %lld non-zeros\n",
           (long long)train->rows, (long long)test->rows, (long long)train->features, (long long)train->classes,
           (long long)train->nnz, (long long)test->nnz);
    printf("test accuracy %.4f\n", acc);
    printf("seconds: load %.2f, train %.2f, evaluate %.2f, total %.2f; peak RSS %ld MiB\n", t_load - t0,
           t_train - t_load, t_end - t_train, t_end - t0, ru.ru_maxrss / 1024);
    free(order);
    tg_optimizer_free(opt);
    tg_tape_free(tape);
    tg_sparse_csr_free(batch);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_tensor_free(y);
    tg_tensor_free(y_last);
    tg_dataset_free(train);
    tg_dataset_free(test);
    return 0;
}
