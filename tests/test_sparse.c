/* Sparse inputs: tg_sparse_csr, tg_sparse_linear and lazy optimizer updates.
 * The product and its gradients are compared with the same product through
 * tg_linear on a densified copy (the dense op is the oracle: it shares no code
 * with the sparse kernels); lazy SGD with the dense step it must equal; lazy
 * Adam with torch.optim.SparseAdam (numbers from tests/sparse_adam_reference.py). */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* A random CSR [rows, cols] of dtype with about a third of the entries stored, from seed. */
static tg_sparse_csr *random_csr(tg_dtype dtype, int64_t rows, int64_t cols, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    int64_t *row_ptr = calloc((size_t)rows + 1, sizeof *row_ptr);
    int32_t *col = malloc((size_t)(rows * cols) * sizeof *col);
    double *val = malloc((size_t)(rows * cols) * sizeof *val);
    float *val32 = malloc((size_t)(rows * cols) * sizeof *val32);
    cr_assert(row_ptr && col && val && val32);
    int64_t k = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++)
            if (tg_rng_below(&rng, 3) == 0) {
                col[k] = (int32_t)c;
                val[k] = 2 * tg_rng_uniform(&rng) - 1;
                val32[k] = (float)val[k];
                k++;
            }
        row_ptr[r + 1] = k;
    }
    tg_sparse_csr *s = tg_sparse_csr_new(dtype, rows, cols, k, row_ptr, col, dtype == TG_F64 ? (void *)val : val32);
    cr_assert_not_null(s, "%s", tg_last_error());
    free(row_ptr);
    free(col);
    free(val);
    free(val32);
    return s;
}

Test(sparse, csr_new_checks_its_arrays)
{
    const int64_t row_ptr[] = { 0, 2, 3 };
    const int32_t col[] = { 1, 3, 0 };
    const double val[] = { 1, 2, 3 };
    tg_sparse_csr *s = tg_sparse_csr_new(TG_F64, 2, 4, 3, row_ptr, col, val);
    cr_assert_not_null(s, "%s", tg_last_error());
    tg_tensor *d = tg_sparse_csr_to_dense(s);
    const double expected[] = { 0, 1, 0, 2, 3, 0, 0, 0 };
    for (int i = 0; i < 8; i++)
        cr_expect_eq(tg_get(d, i), expected[i], "element %d", i);
    cr_expect_eq(tg_sparse_csr_rows(s), 2);
    cr_expect_eq(tg_sparse_csr_cols(s), 4);
    cr_expect_eq(tg_sparse_csr_nnz(s), 3);
    cr_expect_eq(tg_sparse_csr_dtype(s), TG_F64);
    tg_tensor_free(d);
    tg_sparse_csr_free(s);

    struct {
        const char *name;
        tg_dtype dtype;
        int64_t cols;
        int64_t row_ptr[3];
        int32_t col[3];
        const char *words;
    } bad[] = {
        { "int64 values", TG_I64, 4, { 0, 2, 3 }, { 1, 3, 0 }, "expected float32 or float64" },
        { "a column out of range", TG_F64, 3, { 0, 2, 3 }, { 1, 3, 0 }, "col[1] (row 0) is 3, expected [0, 3)" },
        { "a negative column", TG_F64, 4, { 0, 2, 3 }, { 1, 3, -1 }, "col[2] (row 1) is -1" },
        { "columns not increasing", TG_F64, 4, { 0, 2, 3 }, { 3, 1, 0 }, "is 1 after 3" },
        { "row_ptr not ending at nnz", TG_F64, 4, { 0, 2, 2 }, { 1, 3, 0 }, "expected 0 to nnz 3" },
        { "row_ptr decreasing", TG_F64, 4, { 0, 4, 3 }, { 1, 3, 0 }, "row_ptr[1] is 4" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tg_clear_error();
        cr_expect_null(tg_sparse_csr_new(bad[i].dtype, 2, bad[i].cols, 3, bad[i].row_ptr, bad[i].col, val), "%s",
                       bad[i].name);
        cr_expect_not_null(strstr(tg_last_error(), bad[i].words), "%s: %s", bad[i].name, tg_last_error());
    }
    cr_expect_null(tg_sparse_csr_new(TG_F64, 2, 4, 3, NULL, col, val));
    cr_expect_not_null(strstr(tg_last_error(), "is NULL"), "%s", tg_last_error());
}

/* The sparse product and the dense one over a densified copy: same values and gradients. */
static void compare_with_dense(tg_dtype dtype, bool bias, double tol)
{
    int64_t m = 5, in = 9, out = 4;
    tg_sparse_csr *x = random_csr(dtype, m, in, 11);
    tg_tensor *xd = tg_sparse_csr_to_dense(x);
    tg_tensor *w = random_tensor(dtype, 2, (int64_t[]){ out, in }, 12, -1, 1);
    tg_tensor *w2 = tg_tensor_clone(w);
    tg_tensor *b = bias ? random_tensor(dtype, 1, (int64_t[]){ out }, 13, -1, 1) : NULL;
    tg_tensor *b2 = bias ? tg_tensor_clone(b) : NULL;
    tg_tensor *g = random_tensor(dtype, 2, (int64_t[]){ m, out }, 14, -1, 1);
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(w2, 1);
    tg_set_requires_grad(b, 1);
    tg_set_requires_grad(b2, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *y = tg_sparse_linear(tape, x, w, b);
    tg_tensor *yd = tg_linear(tape, xd, w2, b2);
    cr_assert_not_null(y, "%s", tg_last_error());
    cr_assert_not_null(yd, "%s", tg_last_error());
    for (int64_t i = 0; i < m * out; i++)
        cr_expect(close_enough(tg_get(y, i), tg_get(yd, i), tol), "y[%lld]: %.17g vs %.17g", (long long)i, tg_get(y, i),
                  tg_get(yd, i));
    cr_assert_eq(tg_backward_with(tape, y, g), 0, "%s", tg_last_error());
    cr_assert_eq(tg_backward_with(tape, yd, g), 0, "%s", tg_last_error());
    for (int64_t i = 0; i < out * in; i++)
        cr_expect(close_enough(tg_get(tg_grad(w), i), tg_get(tg_grad(w2), i), tol), "dW[%lld]: %.17g vs %.17g",
                  (long long)i, tg_get(tg_grad(w), i), tg_get(tg_grad(w2), i));
    for (int64_t i = 0; bias && i < out; i++)
        cr_expect(close_enough(tg_get(tg_grad(b), i), tg_get(tg_grad(b2), i), tol), "db[%lld]", (long long)i);
    tg_tape_free(tape);
    tg_tensor_free(xd);
    tg_tensor_free(w);
    tg_tensor_free(w2);
    tg_tensor_free(b);
    tg_tensor_free(b2);
    tg_tensor_free(g);
    tg_sparse_csr_free(x);
}

Test(sparse, linear_equals_the_dense_product_float64) { compare_with_dense(TG_F64, true, 1e-12); }
Test(sparse, linear_equals_the_dense_product_without_bias) { compare_with_dense(TG_F64, false, 1e-12); }
Test(sparse, linear_equals_the_dense_product_float32) { compare_with_dense(TG_F32, true, 1e-5); }

static tg_tensor *sparse_linear_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    return tg_sparse_linear(tape, ctx, inputs[0], inputs[1]);
}

Test(sparse, gradcheck)
{
    tg_sparse_csr *x = random_csr(TG_F64, 6, 10, 21);
    tg_tensor *in[2] = { random_tensor(TG_F64, 2, (int64_t[]){ 3, 10 }, 22, -1, 1),
                         random_tensor(TG_F64, 1, (int64_t[]){ 3 }, 23, -1, 1) };
    tg_set_requires_grad(in[0], 1);
    tg_set_requires_grad(in[1], 1);
    tg_gradcheck_report report = { 0 };
    cr_expect_eq(tg_gradcheck(sparse_linear_fn, 2, in, x, NULL, &report), 0,
                 "worst: input %d element %lld, analytic %.10g, numeric %.10g", report.worst_input,
                 (long long)report.worst_index, report.analytic, report.numeric);
    tg_tensor_free(in[0]);
    tg_tensor_free(in[1]);
    tg_sparse_csr_free(x);
}

Test(sparse, the_gradient_touches_only_the_batch_columns)
{
    /* rows [0 2 0 0 1], [0 0 0 0 -1]: columns 1 and 4 only */
    tg_sparse_csr *x =
        tg_sparse_csr_new(TG_F64, 2, 5, 3, (int64_t[]){ 0, 2, 3 }, (int32_t[]){ 1, 4, 4 }, (double[]){ 2, 1, -1 });
    tg_tensor *w = random_tensor(TG_F64, 2, (int64_t[]){ 3, 5 }, 31, -1, 1);
    tg_set_requires_grad(w, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_sum(tape, tg_sparse_linear(tape, x, w, NULL), TG_ALL);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    /* d(sum y)/dW[o, c] = sum_i x[i, c]: column 1 gets 2, column 4 gets 1 - 1 = 0, the rest 0 */
    for (int o = 0; o < 3; o++)
        for (int c = 0; c < 5; c++)
            cr_expect_eq(tg_get(tg_grad(w), o * 5 + c), c == 1 ? 2.0 : 0.0, "dW[%d, %d]", o, c);
    tg_tape_free(tape);
    tg_tensor_free(w);
    tg_sparse_csr_free(x);
}

Test(sparse, bad_inputs_are_named)
{
    tg_sparse_csr *x = random_csr(TG_F64, 2, 4, 41);
    tg_sparse_csr *x32 = random_csr(TG_F32, 2, 4, 41);
    tg_tensor *w = random_tensor(TG_F64, 2, (int64_t[]){ 3, 4 }, 42, -1, 1);
    tg_tensor *w5 = random_tensor(TG_F64, 2, (int64_t[]){ 3, 5 }, 42, -1, 1);
    tg_tensor *b2 = random_tensor(TG_F64, 1, (int64_t[]){ 2 }, 43, -1, 1);
    tg_tensor *w3d = random_tensor(TG_F64, 3, (int64_t[]){ 1, 3, 4 }, 44, -1, 1);
    tg_tape *tape = tg_tape_new();
    struct {
        const tg_sparse_csr *x;
        tg_tensor *w, *b;
        const char *words;
    } cases[] = {
        { x, w5, NULL, "sparse_linear: input [2, 4] (sparse), weight [3, 5], bias none" },
        { x, w, b2, "weight [3, 4], bias [2]" },
        { x, w3d, NULL, "weight [1, 3, 4]" },
        { x32, w, NULL, "the sparse input is float32 and the weight float64" },
        { NULL, w, NULL, "the sparse input is NULL" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tg_clear_error();
        cr_expect_null(tg_sparse_linear(tape, cases[i].x, cases[i].w, cases[i].b));
        cr_expect_not_null(strstr(tg_last_error(), cases[i].words), "case %zu: %s", i, tg_last_error());
    }
    cr_expect_null(tg_sparse_linear(NULL, x, w, NULL));
    tg_tape_free(tape);
    tg_tensor_free(w);
    tg_tensor_free(w5);
    tg_tensor_free(b2);
    tg_tensor_free(w3d);
    tg_sparse_csr_free(x);
    tg_sparse_csr_free(x32);
}

/* ---- gathering batches ---- */

static int64_t allocations;
static void *counting_malloc(size_t n)
{
    allocations++;
    return malloc(n);
}
static void *counting_realloc(void *p, size_t n)
{
    allocations++;
    return realloc(p, n);
}

/* rows [1 0 2 0], [0 0 0 3], [4 5 0 0], [0 0 0 0], [0 6 0 7] as a sparse data set (caller frees) */
static tg_dataset *five_rows(void)
{
    static const int64_t row_ptr[] = { 0, 2, 3, 5, 5, 7 };
    static const int32_t col[] = { 0, 2, 3, 0, 1, 1, 3 };
    static const float val[] = { 1, 2, 3, 4, 5, 6, 7 };
    tg_dataset *ds = calloc(1, sizeof *ds);
    cr_assert_not_null(ds);
    *ds = (tg_dataset){ .rows = 5, .features = 4, .classes = 2, .nnz = 7 };
    ds->y = malloc(5 * sizeof *ds->y);
    ds->row_ptr = malloc(sizeof row_ptr);
    ds->col = malloc(sizeof col);
    ds->val = malloc(sizeof val);
    cr_assert(ds->y && ds->row_ptr && ds->col && ds->val);
    for (int r = 0; r < 5; r++)
        ds->y[r] = r % 2;
    memcpy(ds->row_ptr, row_ptr, sizeof row_ptr);
    memcpy(ds->col, col, sizeof col);
    memcpy(ds->val, val, sizeof val);
    return ds;
}

Test(sparse, gather_copies_rows_and_stops_allocating)
{
    tg_dataset *ds = five_rows();
    tg_sparse_csr *batch = tg_sparse_csr_new(TG_F64, 0, 0, 0, NULL, NULL, NULL);
    cr_assert_not_null(batch, "%s", tg_last_error());
    cr_assert_eq(tg_sparse_csr_gather(batch, ds, (int64_t[]){ 4, 0, 3 }, 0, 3), 0, "%s", tg_last_error());
    tg_tensor *d = tg_sparse_csr_to_dense(batch);
    const double expected[] = { 0, 6, 0, 7, 1, 0, 2, 0, 0, 0, 0, 0 };
    cr_assert_eq(tg_dim(d, 0), 3);
    cr_assert_eq(tg_dim(d, 1), 4);
    for (int i = 0; i < 12; i++)
        cr_expect_eq(tg_get(d, i), expected[i], "element %d", i);
    tg_tensor_free(d);

    /* the largest batch seen, then smaller ones: no allocation */
    cr_assert_eq(tg_sparse_csr_gather(batch, ds, NULL, 0, 5), 0);
    tg_set_allocator(counting_malloc, counting_realloc, free);
    allocations = 0;
    int status = tg_sparse_csr_gather(batch, ds, NULL, 1, 4);
    status |= tg_sparse_csr_gather(batch, ds, (int64_t[]){ 2, 2 }, 0, 2);
    int64_t counted = allocations;
    tg_set_allocator(NULL, NULL, NULL);
    cr_expect_eq(status, 0);
    cr_expect_eq(counted, 0, "%lld allocations in gathers after the largest", (long long)counted);
    cr_expect_eq(tg_sparse_csr_nnz(batch), 4);

    cr_expect_neq(tg_sparse_csr_gather(batch, ds, (int64_t[]){ 5 }, 0, 1), 0);
    cr_expect_not_null(strstr(tg_last_error(), "idx[0] is 5, expected [0, 5)"), "%s", tg_last_error());
    cr_expect_neq(tg_sparse_csr_gather(batch, ds, NULL, 3, 3), 0);
    float x[4] = { 0 };
    int64_t y[1] = { 0 };
    tg_dataset dense = { .rows = 1, .features = 4, .classes = 1, .x = x, .y = y };
    cr_expect_neq(tg_sparse_csr_gather(batch, &dense, NULL, 0, 1), 0);
    cr_expect_not_null(strstr(tg_last_error(), "dense"), "%s", tg_last_error());
    tg_sparse_csr_free(batch);
    tg_dataset_free(ds);
}

/* ---- lazy optimizers ---- */

/* `steps` steps of softmax regression over batches of rows of five_rows, with opts; W [2, 4] and b [2] start
 * from fixed values. A lazy run checks that a step after the first allocates nothing. */
static void train(const tg_optim_opts *opts, int steps, double *w_out, double *b_out)
{
    tg_dataset *ds = five_rows();
    tg_tensor *w = tg_tensor_new(TG_F64, 2, (int64_t[]){ 2, 4 });
    tg_tensor *b = tg_tensor_new(TG_F64, 1, (int64_t[]){ 2 });
    for (int i = 0; i < 8; i++)
        tg_set(w, i, 0.1 * i - 0.35);
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(b, 1);
    tg_tensor *params[2] = { w, b };
    tg_optimizer *opt = tg_optimizer_new(opts, 2, params);
    cr_assert_not_null(opt, "%s", tg_last_error());
    tg_sparse_csr *batch = tg_sparse_csr_new(TG_F64, 0, 0, 0, NULL, NULL, NULL);
    tg_tensor *y = tg_tensor_new(TG_I64, 1, (int64_t[]){ 2 });
    tg_tape *tape = tg_tape_new();
    const int64_t order[][2] = { { 0, 1 }, { 2, 4 }, { 1, 3 }, { 4, 0 } }; /* column sets differ from step to step */
    int64_t counted = 0;
    for (int s = 0; s < steps; s++) {
        if (s == 2)
            tg_set_allocator(counting_malloc, counting_realloc, free), allocations = 0;
        tg_tape_reset(tape);
        tg_optimizer_zero_grad(opt);
        cr_assert_eq(tg_sparse_csr_gather(batch, ds, order[s % 4], 0, 2), 0);
        for (int r = 0; r < 2; r++)
            tg_set(y, r, (double)ds->y[order[s % 4][r]]);
        tg_tensor *loss = tg_cross_entropy(tape, tg_sparse_linear(tape, batch, w, b), y, NULL);
        cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
        cr_assert_eq(tg_optimizer_step(opt), 0);
        if (s == steps - 1 && steps > 2)
            counted = allocations, tg_set_allocator(NULL, NULL, NULL);
    }
    cr_expect_eq(counted, 0, "%lld allocations in steps 3..%d", (long long)counted, steps);
    for (int i = 0; i < 8; i++)
        w_out[i] = tg_get(w, i);
    for (int i = 0; i < 2; i++)
        b_out[i] = tg_get(b, i);
    tg_tape_free(tape);
    tg_tensor_free(y);
    tg_sparse_csr_free(batch);
    tg_optimizer_free(opt);
    tg_tensor_free(w);
    tg_tensor_free(b);
    tg_dataset_free(ds);
}

Test(sparse, lazy_sgd_is_the_dense_step)
{
    double w_lazy[8], b_lazy[2], w_dense[8], b_dense[2];
    tg_optim_opts lazy = TG_SGD_DEFAULT(0.3);
    lazy.lazy = 1;
    train(&lazy, 6, w_lazy, b_lazy);
    tg_optim_opts dense = TG_SGD_DEFAULT(0.3);
    train(&dense, 6, w_dense, b_dense);
    for (int i = 0; i < 8; i++)
        cr_expect_eq(w_lazy[i], w_dense[i], "w[%d]: %.17g vs %.17g", i, w_lazy[i], w_dense[i]);
    for (int i = 0; i < 2; i++)
        cr_expect_eq(b_lazy[i], b_dense[i], "b[%d]", i);
}

Test(sparse, lazy_adam_leaves_untouched_columns_where_dense_adam_moves_them)
{
    /* column 2 occurs in row 0 only: the second step (rows 2 and 4) does not touch it. Lazy Adam leaves
     * W[:, 2] where the first step put it; dense Adam moves it on with its first moment. */
    double w1[8], w2[8], d1[8], d2[8], b[2];
    tg_optim_opts lazy = TG_ADAM_DEFAULT(0.1), dense = TG_ADAM_DEFAULT(0.1);
    lazy.lazy = 1;
    train(&lazy, 1, w1, b);
    train(&lazy, 2, w2, b);
    train(&dense, 1, d1, b);
    train(&dense, 2, d2, b);
    for (int o = 0; o < 2; o++) {
        cr_expect_eq(w2[o * 4 + 2], w1[o * 4 + 2], "lazy: W[%d, 2] moved", o);
        cr_expect_neq(d2[o * 4 + 2], d1[o * 4 + 2], "dense: W[%d, 2] did not move", o);
        cr_expect_neq(w2[o * 4 + 1], w1[o * 4 + 1], "lazy: W[%d, 1] (touched) did not move", o);
    }
}

/* Three steps of lazy Adam on tests/sparse_adam_reference.py's problem, with W [C, F] through tg_sparse_linear or
 * (rows_layout) the script's own W^T [F, C] through tg_sparse_matmul and tg_add; against its torch numbers. */
static void check_sparse_adam(bool rows_layout)
{
    /* tests/sparse_adam_reference.py: SparseAdam on W, Adam on b, lr 0.05, three batches of two rows */
    static const double w_torch[18] = {
        -0.32445871948786958,  -0.23720678006197699,  -0.058811176513398511, 0.031940566487279158, 0.062793179699518309,
        0.26362791299960187,   0.23989094966779512,   -0.26279317842910677,  -0.10897323276404228, -0.13194042411130219,
        -0.037206789827128835, 0.032661991134610657,  0.23923257886831961,   0.26279318769100601,  -0.38861203164832248,
        -0.23194047603574369,  -0.062793173664762281, -0.058673074145880362,
    }; /* [C, F] */
    static const double b_torch[3] = { 0.024641137681495125, -0.043072174750511436, 0.092956751976060487 };
    enum { F = 6, C = 3 };
    tg_tensor *w =
        rows_layout ? tg_tensor_new(TG_F64, 2, (int64_t[]){ F, C }) : tg_tensor_new(TG_F64, 2, (int64_t[]){ C, F });
    tg_tensor *b = tg_tensor_new(TG_F64, 1, (int64_t[]){ C });
    /* element (o, f) of W [C, F], wherever the layout keeps it */
#define AT(o, f) (rows_layout ? (f)*C + (o) : (o)*F + (f))
    for (int o = 0; o < C; o++)
        for (int f = 0; f < F; f++)
            tg_set(w, AT(o, f), 0.1 * ((o * F + f) % 7) - 0.3);
    tg_set_requires_grad(w, 1);
    tg_set_requires_grad(b, 1);
    tg_optim_opts opts = TG_ADAM_DEFAULT(0.05);
    opts.lazy = 1;
    tg_tensor *params[2] = { w, b };
    tg_optimizer *opt = tg_optimizer_new(&opts, 2, params);
    cr_assert_not_null(opt, "%s", tg_last_error());
    /* the batches of the script: rows {0: 1, 2: -2}, {2: 0.5, 5: 3}; {1: 1.5}, {0: -1, 4: 2}; {3: 0.25, 5: -1}, {2: 2} */
    const int64_t row_ptr[3][3] = { { 0, 2, 4 }, { 0, 1, 3 }, { 0, 2, 3 } };
    const int32_t col[3][4] = { { 0, 2, 2, 5 }, { 1, 0, 4 }, { 3, 5, 2 } };
    const double val[3][4] = { { 1, -2, 0.5, 3 }, { 1.5, -1, 2 }, { 0.25, -1, 2 } };
    const int64_t nnz[3] = { 4, 3, 3 };
    const int64_t labels[3][2] = { { 2, 0 }, { 1, 2 }, { 0, 1 } };
    tg_tape *tape = tg_tape_new();
    for (int s = 0; s < 3; s++) {
        tg_sparse_csr *x = tg_sparse_csr_new(TG_F64, 2, F, nnz[s], row_ptr[s], col[s], val[s]);
        tg_tensor *y = tg_tensor_from(TG_I64, 1, (int64_t[]){ 2 }, labels[s]);
        cr_assert(x && y, "%s", tg_last_error());
        tg_tape_reset(tape);
        tg_optimizer_zero_grad(opt);
        tg_tensor *logits =
            rows_layout ? tg_add(tape, tg_sparse_matmul(tape, x, w), b) : tg_sparse_linear(tape, x, w, b);
        tg_tensor *loss = tg_cross_entropy(tape, logits, y, NULL);
        cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
        cr_assert_eq(tg_optimizer_step(opt), 0);
        tg_sparse_csr_free(x);
        tg_tensor_free(y);
    }
    for (int o = 0; o < C; o++)
        for (int f = 0; f < F; f++)
            cr_expect(close_enough(tg_get(w, AT(o, f)), w_torch[o * F + f], 1e-12), "W[%d, %d]: %.17g vs torch %.17g",
                      o, f, tg_get(w, AT(o, f)), w_torch[o * F + f]);
#undef AT
    for (int i = 0; i < C; i++)
        cr_expect(close_enough(tg_get(b, i), b_torch[i], 1e-12), "b[%d]: %.17g vs torch %.17g", i, tg_get(b, i),
                  b_torch[i]);
    tg_tape_free(tape);
    tg_optimizer_free(opt);
    tg_tensor_free(w);
    tg_tensor_free(b);
}

Test(sparse, lazy_adam_matches_torch_sparse_adam) { check_sparse_adam(false); }
Test(sparse, lazy_adam_over_matmul_rows_matches_torch_sparse_adam) { check_sparse_adam(true); }

Test(sparse, a_dense_contribution_makes_the_lazy_step_dense)
{
    /* W used by tg_sparse_linear and by a dense op (an L2 term): its gradient is dense, and lazy Adam must
     * give dense Adam's step */
    double results[2][6];
    for (int lazy = 0; lazy < 2; lazy++) {
        tg_sparse_csr *x = tg_sparse_csr_new(TG_F64, 1, 3, 1, (int64_t[]){ 0, 1 }, (int32_t[]){ 1 }, (double[]){ 2 });
        tg_tensor *w = tg_tensor_new(TG_F64, 2, (int64_t[]){ 2, 3 });
        for (int i = 0; i < 6; i++)
            tg_set(w, i, 0.2 * i - 0.5);
        tg_set_requires_grad(w, 1);
        tg_optim_opts opts = TG_ADAM_DEFAULT(0.1);
        opts.lazy = lazy;
        tg_optimizer *opt = tg_optimizer_new(&opts, 1, &w);
        tg_tape *tape = tg_tape_new();
        for (int s = 0; s < 2; s++) {
            tg_tape_reset(tape);
            tg_optimizer_zero_grad(opt);
            tg_tensor *fit = tg_sum(tape, tg_sparse_linear(tape, x, w, NULL), TG_ALL);
            tg_tensor *l2 = tg_sum(tape, tg_mul(tape, w, w), TG_ALL);
            cr_assert_eq(tg_backward(tape, tg_add(tape, fit, l2)), 0, "%s", tg_last_error());
            cr_assert_eq(tg_optimizer_step(opt), 0);
        }
        for (int i = 0; i < 6; i++)
            results[lazy][i] = tg_get(w, i);
        tg_tape_free(tape);
        tg_optimizer_free(opt);
        tg_tensor_free(w);
        tg_sparse_csr_free(x);
    }
    for (int i = 0; i < 6; i++)
        cr_expect_eq(results[1][i], results[0][i], "w[%d]: lazy %.17g, dense %.17g", i, results[1][i], results[0][i]);
}

Test(sparse, lazy_refuses_rules_that_move_every_weight)
{
    tg_tensor *w = tg_tensor_new(TG_F64, 2, (int64_t[]){ 2, 3 });
    struct {
        tg_optim_opts opts;
        const char *words;
    } cases[] = {
        { { .type = TG_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .lazy = 1 }, "lazy SGD takes no momentum" },
        { { .type = TG_OPTIM_SGD, .lr = 0.1, .weight_decay = 0.1, .lazy = 1 }, "no weight_decay" },
        { { .type = TG_OPTIM_ADAM,
            .lr = 0.1,
            .beta1 = 0.9,
            .beta2 = 0.999,
            .eps = 1e-8,
            .weight_decay = 0.1,
            .lazy = 1 },
          "no weight_decay" },
        { TG_ADAMW_DEFAULT(0.1), "not AdamW" },
        { { .type = TG_OPTIM_SGD, .lr = 0.1, .lazy = 2 }, "lazy must be 0 or 1" },
    };
    cases[3].opts.lazy = 1;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tg_clear_error();
        cr_expect_null(tg_optimizer_new(&cases[i].opts, 1, &w), "case %zu", i);
        cr_expect_not_null(strstr(tg_last_error(), cases[i].words), "case %zu: %s", i, tg_last_error());
    }
    tg_tensor_free(w);
}

Test(sparse, config_optimizer_lazy)
{
    const char *head =
        "{\"data\": {\"train\": \"d.csv\"}, \"model\": {\"layers\": [{\"type\": \"linear\", \"out\": 3}]}, "
        "\"optimizer\": ";
    struct {
        const char *optimizer;
        int lazy;
        const char *words; /* NULL: accepted */
    } cases[] = {
        { "{\"type\": \"adam\", \"lr\": 0.1, \"lazy\": true}", 1, NULL },
        { "{\"type\": \"sgd\", \"lr\": 0.1, \"lazy\": true}", 1, NULL },
        { "{\"type\": \"sgd\", \"lr\": 0.1, \"lazy\": false, \"momentum\": 0.9}", 0, NULL },
        { "{\"type\": \"sgd\", \"lr\": 0.1}", 0, NULL },
        { "{\"type\": \"sgd\", \"lr\": 0.1, \"lazy\": true, \"momentum\": 0.9}", 0, "optimizer.lazy" },
        { "{\"type\": \"adam\", \"lr\": 0.1, \"lazy\": true, \"weight_decay\": 0.01}", 0, "takes no weight_decay" },
        { "{\"type\": \"adamw\", \"lr\": 0.1, \"lazy\": true}", 0, "not \"adamw\"" },
        { "{\"type\": \"adam\", \"lr\": 0.1, \"lazy\": 1}", 0, "optimizer.lazy" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s}", head, cases[i].optimizer);
        tg_clear_error();
        tg_config *cfg = tg_config_parse(text, NULL);
        if (cases[i].words) {
            cr_expect_null(cfg, "accepted: %s", text);
            cr_expect_not_null(strstr(tg_last_error(), cases[i].words), "%s: %s", text, tg_last_error());
        } else {
            cr_assert_not_null(cfg, "%s: %s", text, tg_last_error());
            cr_expect_eq(cfg->optimizer.lazy, cases[i].lazy, "%s", text);
        }
        tg_config_free(cfg);
    }
}

/* ---- tg_sparse_matmul: W [F, out] ---- */

Test(sparse, matmul_equals_the_dense_product)
{
    tg_dtype dtypes[2] = { TG_F64, TG_F32 };
    double tols[2] = { 1e-12, 1e-5 };
    for (int d = 0; d < 2; d++) {
        int64_t m = 5, in = 9, out = 4;
        tg_sparse_csr *x = random_csr(dtypes[d], m, in, 51);
        tg_tensor *xd = tg_sparse_csr_to_dense(x);
        tg_tensor *w = random_tensor(dtypes[d], 2, (int64_t[]){ in, out }, 52, -1, 1);
        tg_tensor *w2 = tg_tensor_clone(w);
        tg_tensor *g = random_tensor(dtypes[d], 2, (int64_t[]){ m, out }, 53, -1, 1);
        tg_set_requires_grad(w, 1);
        tg_set_requires_grad(w2, 1);
        tg_tape *tape = tg_tape_new();
        tg_tensor *y = tg_sparse_matmul(tape, x, w), *yd = tg_matmul(tape, xd, w2);
        cr_assert(y && yd, "%s", tg_last_error());
        for (int64_t i = 0; i < m * out; i++)
            cr_expect(close_enough(tg_get(y, i), tg_get(yd, i), tols[d]), "y[%lld]", (long long)i);
        cr_assert_eq(tg_backward_with(tape, y, g), 0, "%s", tg_last_error());
        cr_assert_eq(tg_backward_with(tape, yd, g), 0, "%s", tg_last_error());
        for (int64_t i = 0; i < in * out; i++)
            cr_expect(close_enough(tg_get(tg_grad(w), i), tg_get(tg_grad(w2), i), tols[d]), "dW[%lld]: %.17g vs %.17g",
                      (long long)i, tg_get(tg_grad(w), i), tg_get(tg_grad(w2), i));
        tg_tape_free(tape);
        tg_tensor_free(xd);
        tg_tensor_free(w);
        tg_tensor_free(w2);
        tg_tensor_free(g);
        tg_sparse_csr_free(x);
    }
}

static tg_tensor *sparse_matmul_fn(tg_tape *tape, tg_tensor *const *inputs, void *ctx)
{
    return tg_sparse_matmul(tape, ctx, inputs[0]);
}

Test(sparse, matmul_gradcheck_and_errors)
{
    tg_sparse_csr *x = random_csr(TG_F64, 6, 10, 61);
    tg_tensor *w = random_tensor(TG_F64, 2, (int64_t[]){ 10, 3 }, 62, -1, 1);
    tg_set_requires_grad(w, 1);
    cr_expect_eq(tg_gradcheck(sparse_matmul_fn, 1, &w, x, NULL, NULL), 0);
    tg_tensor *wrong = random_tensor(TG_F64, 2, (int64_t[]){ 3, 10 }, 63, -1, 1);
    tg_tensor *w32 = random_tensor(TG_F32, 2, (int64_t[]){ 10, 3 }, 63, -1, 1);
    tg_tape *tape = tg_tape_new();
    cr_expect_null(tg_sparse_matmul(tape, x, wrong));
    cr_expect_not_null(strstr(tg_last_error(), "sparse_matmul: input [6, 10] (sparse) times [3, 10]"), "%s",
                       tg_last_error());
    cr_expect_null(tg_sparse_matmul(tape, x, w32));
    cr_expect_not_null(strstr(tg_last_error(), "float64 and the weight float32"), "%s", tg_last_error());
    tg_tape_free(tape);
    tg_tensor_free(w);
    tg_tensor_free(wrong);
    tg_tensor_free(w32);
    tg_sparse_csr_free(x);
}
