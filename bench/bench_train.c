/* The training-loop benchmark for tapegrad, through the public API only. It
 * mirrors bench/torch_digits.py and bench/torch_fashion.py step for step:
 *
 *     tape reset; loss = cross_entropy(model(x), y); zero_grad; backward; step
 *
 * and times only the step loop: data loading, shuffling and evaluation stay
 * outside the clock. Two ways to feed batches, the same in both scripts:
 *   --pregather  every batch of the run is gathered into its own tensor before
 *                the clock starts; one sample per run (the digits loop);
 *   default      each step copies its shuffled rows into a reused tensor inside
 *                the clock; one sample per epoch (Fashion-MNIST).
 *
 * usage: bench_train (--csv TRAIN TEST | --idx TRAIN_IMAGES TRAIN_LABELS TEST_IMAGES TEST_LABELS)
 *                    [--hidden H] (--sgd LR MOMENTUM | --adam LR) [--epochs E] [--batch B]
 *                    [--reps R] [--dtype f32|f64] [--seed S] [--pregather] [--textbook]
 *
 * --textbook writes each layer the way a textbook does, x·W + b with
 * tg_matmul and tg_add and W as [in, out], instead of tg_linear with W as
 * [out, in]: the same initial weights (transposed), the same steps.
 *
 * Run r of the R runs draws its initial weights and batch order from seed S + r.
 * CSV files have no header and the class id in the last column; their
 * features are standardized with TRAIN's moments. IDX pixels are scaled by
 * 1/255. Prints one JSON object per line: a "sample" per timed run or epoch
 * (wall time; an epoch also gives the CPU time of all threads),
 * then a "result" per run (test accuracy, allocator calls after the first
 * step, peak RSS when training ended). */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *csv_train, *csv_test;
    const char *idx[4];
    int64_t hidden;
    tg_optim_opts optim;
    int epochs, reps, pregather, textbook;
    int64_t batch;
    tg_dtype dtype;
    uint64_t seed;
} options;

static void usage(void)
{
    fprintf(stderr, "usage: bench_train (--csv TRAIN TEST | --idx TRAIN_IMAGES TRAIN_LABELS TEST_IMAGES TEST_LABELS)\n"
                    "                   [--hidden H] (--sgd LR MOMENTUM | --adam LR) [--epochs E] [--batch B]\n"
                    "                   [--reps R] [--dtype f32|f64] [--seed S] [--pregather] [--textbook]\n");
    exit(2);
}

static options parse(int argc, char **argv)
{
    options o = { .epochs = 1, .reps = 1, .batch = 32, .dtype = TG_F32, .seed = 1 };
    int have_optim = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int left = argc - i - 1;
        if (!strcmp(a, "--csv") && left >= 2) {
            o.csv_train = argv[++i];
            o.csv_test = argv[++i];
        } else if (!strcmp(a, "--idx") && left >= 4) {
            for (int k = 0; k < 4; k++)
                o.idx[k] = argv[++i];
        } else if (!strcmp(a, "--hidden") && left >= 1) {
            o.hidden = atoll(argv[++i]);
        } else if (!strcmp(a, "--sgd") && left >= 2) {
            o.optim = TG_SGD_DEFAULT(atof(argv[i + 1]));
            o.optim.momentum = atof(argv[i + 2]);
            i += 2;
            have_optim = 1;
        } else if (!strcmp(a, "--adam") && left >= 1) {
            o.optim = TG_ADAM_DEFAULT(atof(argv[++i]));
            have_optim = 1;
        } else if (!strcmp(a, "--epochs") && left >= 1) {
            o.epochs = atoi(argv[++i]);
        } else if (!strcmp(a, "--batch") && left >= 1) {
            o.batch = atoll(argv[++i]);
        } else if (!strcmp(a, "--reps") && left >= 1) {
            o.reps = atoi(argv[++i]);
        } else if (!strcmp(a, "--seed") && left >= 1) {
            o.seed = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(a, "--dtype") && left >= 1) {
            const char *d = argv[++i];
            if (strcmp(d, "f32") && strcmp(d, "f64"))
                usage();
            o.dtype = strcmp(d, "f64") ? TG_F32 : TG_F64;
        } else if (!strcmp(a, "--pregather")) {
            o.pregather = 1;
        } else if (!strcmp(a, "--textbook")) {
            o.textbook = 1;
        } else {
            usage();
        }
    }
    if (!have_optim || (!o.csv_train && !o.idx[0]) || o.epochs < 1 || o.reps < 1 || o.batch < 1 || o.hidden < 0)
        usage();
    return o;
}

static tg_dataset *load_csv(const char *path)
{
    tg_csv_opts csv = TG_CSV_OPTS_DEFAULT;
    csv.header = 0;
    tg_dataset *ds = tg_csv_load(path, &csv);
    if (!ds)
        bench_fail("loading a CSV file");
    return ds;
}

/* x[r] = row order[r] of ds, in x's dtype; y[r] its class. */
static void gather(const tg_dataset *ds, const int64_t *order, int64_t n, tg_tensor *x, tg_tensor *y)
{
    int64_t f = ds->features;
    int64_t *labels = tg_data(y);
    for (int64_t r = 0; r < n; r++) {
        const float *src = ds->x + order[r] * f;
        if (tg_dtype_of(x) == TG_F32) {
            memcpy((float *)tg_data(x) + r * f, src, (size_t)f * sizeof(float));
        } else {
            double *dst = (double *)tg_data(x) + r * f;
            for (int64_t j = 0; j < f; j++)
                dst[j] = src[j];
        }
        labels[r] = ds->y[order[r]];
    }
}

static void shuffle(int64_t *order, int64_t n, tg_rng *rng)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)tg_rng_below(rng, (uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static tg_tensor *new_tensor(tg_dtype dtype, int ndim, int64_t rows, int64_t cols)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, (int64_t[]){ rows, cols });
    if (!t)
        bench_fail("making a batch tensor");
    return t;
}

/* The model written the textbook way: per layer W [in, out] and b [out], h = relu(h·W + b). The
 * weights are transposed copies of a tg_model's, the biases the model's own; copy_back puts the
 * trained weights into the model for evaluation. */
typedef struct {
    int n_params;
    tg_tensor *params[4]; /* W1, b1[, W2, b2] */
    tg_tensor *model_params[4];
} textbook;

static void transpose_into(tg_tensor *dst, const tg_tensor *src)
{
    int64_t rows = tg_dim(src, 0), cols = tg_dim(src, 1);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            tg_set(dst, j * rows + i, tg_get(src, i * cols + j));
}

static textbook textbook_of(tg_model *m)
{
    textbook tb = { .n_params = tg_model_n_params(m) };
    for (int i = 0; i < tb.n_params; i++) {
        tg_tensor *p = tb.model_params[i] = tg_model_param(m, i);
        if (tg_ndim(p) != 2) {
            tb.params[i] = p;
            continue;
        }
        tb.params[i] = tg_tensor_new(tg_dtype_of(p), 2, (int64_t[]){ tg_dim(p, 1), tg_dim(p, 0) });
        if (!tb.params[i])
            bench_fail("making a textbook weight");
        transpose_into(tb.params[i], p);
        tg_set_requires_grad(tb.params[i], 1);
    }
    return tb;
}

static void textbook_free(textbook *tb, int copy_back)
{
    for (int i = 0; i < tb->n_params; i++)
        if (tb->params[i] != tb->model_params[i]) {
            if (copy_back)
                transpose_into(tb->model_params[i], tb->params[i]);
            tg_tensor_free(tb->params[i]);
        }
}

static tg_tensor *textbook_forward(const textbook *tb, tg_tape *tape, tg_tensor *x)
{
    tg_tensor *h = x;
    for (int i = 0; i + 1 < tb->n_params; i += 2) {
        if (i > 0)
            h = tg_relu(tape, h);
        h = tg_add(tape, tg_matmul(tape, h, tb->params[i]), tb->params[i + 1]);
    }
    return h;
}

/* One training step, the same five calls as the PyTorch loop. */
static void train_step(tg_model *m, const textbook *tb, tg_tape *tape, tg_optimizer *opt, tg_tensor *x, tg_tensor *y)
{
    tg_tape_reset(tape);
    tg_tensor *logits = tb ? textbook_forward(tb, tape, x) : tg_model_forward(m, tape, x);
    tg_tensor *loss = tg_cross_entropy(tape, logits, y, NULL);
    if (!loss)
        bench_fail("forward");
    tg_optimizer_zero_grad(opt);
    if (tg_backward(tape, loss))
        bench_fail("backward");
    if (tg_optimizer_step(opt))
        bench_fail("optimizer step");
}

typedef struct {
    tg_model *model;
    int64_t steps;
    uint64_t calls_after_first_step; /* allocator calls from the end of step 1 to the end of the last step */
} run_result;

static run_result train_run(const options *o, const tg_dataset *train, int rep)
{
    tg_rng init, order_rng;
    tg_rng_seed(&init, o->seed + (uint64_t)rep);
    tg_rng_seed(&order_rng, 1000003 * (o->seed + (uint64_t)rep));
    tg_layer_spec lr_layers[] = { { TG_LAYER_LINEAR, train->classes, 1 } };
    tg_layer_spec mlp_layers[] = { { TG_LAYER_LINEAR, o->hidden, 1 },
                                   { TG_LAYER_RELU, 0, 0 },
                                   { TG_LAYER_LINEAR, train->classes, 1 } };
    tg_model *m = o->hidden ? tg_model_new(o->dtype, train->features, 3, mlp_layers, &init)
                            : tg_model_new(o->dtype, train->features, 1, lr_layers, &init);
    if (!m)
        bench_fail("making the model");
    tg_tensor *params[4];
    int n_params = tg_model_n_params(m);
    if (n_params > 4)
        bench_fail("the model has more parameters than this driver expects");
    for (int i = 0; i < n_params; i++)
        params[i] = tg_model_param(m, i);
    textbook tb = { 0 };
    if (o->textbook) {
        tb = textbook_of(m);
        for (int i = 0; i < n_params; i++)
            params[i] = tb.params[i];
    }
    const textbook *form = o->textbook ? &tb : NULL;
    tg_optimizer *opt = tg_optimizer_new(&o->optim, n_params, params);
    tg_tape *tape = tg_tape_new();
    int64_t rows = train->rows, batch = o->batch < rows ? o->batch : rows;
    int64_t per_epoch = (rows + batch - 1) / batch, last = rows - (per_epoch - 1) * batch;
    int64_t *order = malloc((size_t)rows * sizeof *order);
    if (!opt || !tape || !order)
        bench_fail("making the optimizer and tape");
    for (int64_t r = 0; r < rows; r++)
        order[r] = r;

    run_result res = { m, per_epoch * o->epochs, 0 };
    uint64_t after_first = 0;
    if (o->pregather) {
        int64_t steps = res.steps;
        tg_tensor **xs = malloc((size_t)steps * sizeof *xs), **ys = malloc((size_t)steps * sizeof *ys);
        if (!xs || !ys)
            bench_fail("allocating batch lists");
        for (int e = 0, s = 0; e < o->epochs; e++) {
            shuffle(order, rows, &order_rng);
            for (int64_t b = 0; b < per_epoch; b++, s++) {
                int64_t n = b + 1 < per_epoch ? batch : last;
                xs[s] = new_tensor(o->dtype, 2, n, train->features);
                ys[s] = new_tensor(TG_I64, 1, n, 0);
                gather(train, order + b * batch, n, xs[s], ys[s]);
            }
        }
        double start = bench_now();
        for (int64_t s = 0; s < steps; s++) {
            train_step(m, form, tape, opt, xs[s], ys[s]);
            if (s == 0)
                after_first = bench_allocator_calls();
        }
        double seconds = bench_now() - start;
        res.calls_after_first_step = bench_allocator_calls() - after_first;
        printf("{\"sample\": \"run\", \"rep\": %d, \"seconds\": %.9f, \"steps\": %lld}\n", rep, seconds,
               (long long)steps);
        for (int64_t s = 0; s < steps; s++) {
            tg_tensor_free(xs[s]);
            tg_tensor_free(ys[s]);
        }
        free(xs);
        free(ys);
    } else {
        /* A partial last batch needs a tensor of its own shape: the public API cannot resize one. */
        tg_tensor *x = new_tensor(o->dtype, 2, batch, train->features), *y = new_tensor(TG_I64, 1, batch, 0);
        tg_tensor *x_last = new_tensor(o->dtype, 2, last, train->features), *y_last = new_tensor(TG_I64, 1, last, 0);
        for (int e = 0; e < o->epochs; e++) {
            shuffle(order, rows, &order_rng);
            double start = bench_now(), cpu_start = bench_cpu_now();
            for (int64_t b = 0; b < per_epoch; b++) {
                int is_last = b + 1 == per_epoch;
                tg_tensor *bx = is_last ? x_last : x, *by = is_last ? y_last : y;
                gather(train, order + b * batch, is_last ? last : batch, bx, by);
                train_step(m, form, tape, opt, bx, by);
                if (e == 0 && b == 0)
                    after_first = bench_allocator_calls();
            }
            double seconds = bench_now() - start, cpu = bench_cpu_now() - cpu_start;
            printf("{\"sample\": \"epoch\", \"rep\": %d, \"epoch\": %d, \"seconds\": %.9f, \"cpu_seconds\": %.9f, "
                   "\"steps\": %lld}\n",
                   rep, e + 1, seconds, cpu, (long long)per_epoch);
            fflush(stdout);
        }
        res.calls_after_first_step = bench_allocator_calls() - after_first;
        tg_tensor_free(x);
        tg_tensor_free(y);
        tg_tensor_free(x_last);
        tg_tensor_free(y_last);
    }
    free(order);
    textbook_free(&tb, 1);
    tg_tape_free(tape);
    tg_optimizer_free(opt);
    return res;
}

int main(int argc, char **argv)
{
    options o = parse(argc, argv);
    bench_count_allocations();

    tg_dataset *train;
    float *mean = NULL, *std = NULL;
    if (o.csv_train) {
        train = load_csv(o.csv_train);
        mean = malloc((size_t)train->features * sizeof *mean);
        std = malloc((size_t)train->features * sizeof *std);
        if (!mean || !std || tg_dataset_moments(train, mean, std))
            bench_fail("standardizing");
        tg_dataset_standardize(train, mean, std);
    } else if (!(train = tg_idx_load(o.idx[0], o.idx[1], 1.0 / 255.0))) {
        bench_fail("loading the IDX training files");
    }

    run_result *runs = malloc((size_t)o.reps * sizeof *runs);
    if (!runs)
        bench_fail("allocating");
    for (int r = 0; r < o.reps; r++)
        runs[r] = train_run(&o, train, r);
    long rss_kib = bench_peak_rss_kib();
    int64_t train_rows = train->rows, features = train->features;
    tg_dataset_free(train);

    /* The test set is loaded after training so that the peak RSS above is the training run's. */
    tg_dataset *test = o.csv_train ? load_csv(o.csv_test) : tg_idx_load(o.idx[2], o.idx[3], 1.0 / 255.0);
    if (!test)
        bench_fail("loading the test set");
    if (mean)
        tg_dataset_standardize(test, mean, std);
    for (int r = 0; r < o.reps; r++) {
        tg_eval ev;
        if (tg_evaluate(runs[r].model, test, &ev))
            bench_fail("evaluating");
        printf("{\"result\": \"run\", \"rep\": %d, \"form\": \"%s\", \"dtype\": \"%s\", \"train_rows\": %lld, "
               "\"features\": %lld, \"steps\": %lld, \"test_rows\": %lld, \"test_accuracy\": %.6f, "
               "\"allocator_calls_after_first_step\": %llu, \"peak_rss_train_kib\": %ld}\n",
               r, o.textbook ? "textbook" : "linear", tg_dtype_name(o.dtype), (long long)train_rows,
               (long long)features, (long long)runs[r].steps, (long long)test->rows, ev.accuracy,
               (unsigned long long)runs[r].calls_after_first_step, rss_kib);
        tg_eval_clear(&ev);
        tg_model_free(runs[r].model);
    }
    tg_dataset_free(test);
    free(runs);
    free(mean);
    free(std);
    return 0;
}
