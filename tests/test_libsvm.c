/* The libsvm / svmlight loader. Accepted files are compared with a CSR written
 * out by hand; refused files with the place (file:line:column) and the words
 * of the message. The `liblinear` column of each table records what Debian's
 * liblinear-train 2.3.0 (`liblinear-train -q FILE /dev/null`, run once on each
 * file when the table was written) does with the same bytes: it agrees on
 * every numeric case except where this loader is stricter on purpose (NaN,
 * Inf and overflowing values, hex and signed indices, a pair cut short, an
 * empty file) or wider (comments, blank lines, text labels). */
#define _POSIX_C_SOURCE 200809L /* mkstemp */

#include <criterion/criterion.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

static tg_dataset *load_len(const char *text, size_t len, const tg_libsvm_opts *opts, char *path, size_t size)
{
    write_temp(path, size, "tg_libsvm", text, len);
    tg_clear_error();
    tg_dataset *ds = tg_libsvm_load(path, opts);
    unlink(path);
    return ds;
}

/* ---- accepted files: the CSR by hand ---- */

typedef struct {
    const char *name, *text;
    bool liblinear_accepts;
    int64_t rows, features, classes, nnz;
    int64_t row_ptr[4];
    int32_t col[4];
    float val[4];
    int64_t y[3];
    const char *labels[3];
} accepted_case;

#define TWO_ROWS                                                                                                       \
    .rows = 2, .features = 3, .classes = 2, .nnz = 3, .row_ptr = { 0, 2, 3 }, .col = { 0, 2, 1 },                      \
    .val = { 0.5f, 2.0f, -1.0f }, .y = { 1, 0 }, .labels = { "0", "1" }

static const accepted_case accepted[] = {
    { "basic", "1 1:0.5 3:2\n0 2:-1\n", true, TWO_ROWS },
    { "crlf", "1 1:0.5 3:2\r\n0 2:-1\r\n", true, TWO_ROWS },
    { "no newline at the end", "1 1:0.5 3:2\n0 2:-1", true, TWO_ROWS },
    { "tabs and runs of spaces", "1\t1:0.5  3:2 \n0   2:-1\t\n", true, TWO_ROWS },
    { "comments and blank lines", "# header\n1 1:0.5 3:2 # trailing\n\n   \n0 2:-1#x\n", false, TWO_ROWS },
    { "byte order mark",
      "\xEF\xBB\xBF"
      "1 1:0.5 3:2\n0 2:-1\n",
      false, TWO_ROWS },
    { "a row with no pair", "1\n0 2:-1\n", true, .rows = 2, .features = 2, .classes = 2, .nnz = 1,
      .row_ptr = { 0, 0, 1 }, .col = { 1 }, .val = { -1.0f }, .y = { 1, 0 }, .labels = { "0", "1" } },
    { "explicit zero kept", "1 1:0 2:1e-3\n0 1:1\n", true, .rows = 2, .features = 2, .classes = 2, .nnz = 3,
      .row_ptr = { 0, 2, 3 }, .col = { 0, 1, 0 }, .val = { 0.0f, 1e-3f, 1.0f }, .y = { 1, 0 }, .labels = { "0", "1" } },
    { "+1 and -1 are names", "+1 1:1\n-1 2:1\n+1 3:1\n", true, .rows = 3, .features = 3, .classes = 2, .nnz = 3,
      .row_ptr = { 0, 1, 2, 3 }, .col = { 0, 1, 2 }, .val = { 1, 1, 1 }, .y = { 0, 1, 0 }, .labels = { "+1", "-1" } },
    { "UTF-8 labels", "caf\xC3\xA9 1:1\nna\xC3\xAFve 2:2\n", false, .rows = 2, .features = 2, .classes = 2, .nnz = 2,
      .row_ptr = { 0, 1, 2 }, .col = { 0, 1 }, .val = { 1, 2 }, .y = { 0, 1 },
      .labels = { "caf\xC3\xA9", "na\xC3\xAFve" } },
    { "largest index, no dense block", "1 2147483647:1.5\n", true, .rows = 1, .features = 2147483647, .classes = 2,
      .nnz = 1, .row_ptr = { 0, 1 }, .col = { 2147483646 }, .val = { 1.5f }, .y = { 1 }, .labels = { "0", "1" } },
    { "exponents and signs", "2 1:-1.5e2 2:+.25 3:7.\n", true, .rows = 1, .features = 3, .classes = 3, .nnz = 3,
      .row_ptr = { 0, 3 }, .col = { 0, 1, 2 }, .val = { -150.0f, 0.25f, 7.0f }, .y = { 2 },
      .labels = { "0", "1", "2" } },
};

static void check_accepted(const accepted_case *c, const tg_dataset *ds)
{
    cr_assert_not_null(ds, "%s: refused: %s", c->name, tg_last_error());
    cr_expect_null(ds->x, "%s: a libsvm data set is sparse", c->name);
    cr_expect_eq(ds->rows, c->rows, "%s: rows %lld", c->name, (long long)ds->rows);
    cr_expect_eq(ds->features, c->features, "%s: features %lld", c->name, (long long)ds->features);
    cr_expect_eq(ds->classes, c->classes, "%s: classes %lld", c->name, (long long)ds->classes);
    cr_assert_eq(ds->nnz, c->nnz, "%s: nnz %lld", c->name, (long long)ds->nnz);
    for (int64_t r = 0; r <= c->rows; r++)
        cr_expect_eq(ds->row_ptr[r], c->row_ptr[r], "%s: row_ptr[%lld]", c->name, (long long)r);
    for (int64_t k = 0; k < c->nnz; k++) {
        cr_expect_eq(ds->col[k], c->col[k], "%s: col[%lld] %d", c->name, (long long)k, ds->col[k]);
        cr_expect_eq(ds->val[k], c->val[k], "%s: val[%lld] %g", c->name, (long long)k, (double)ds->val[k]);
    }
    for (int64_t r = 0; r < c->rows; r++)
        cr_expect_eq(ds->y[r], c->y[r], "%s: y[%lld]", c->name, (long long)r);
    for (int64_t k = 0; k < c->classes; k++)
        cr_expect_str_eq(ds->label_names[k], c->labels[k], "%s: label %lld", c->name, (long long)k);
}

Test(libsvm, accepted_files_give_the_hand_written_csr)
{
    for (size_t i = 0; i < sizeof accepted / sizeof *accepted; i++) {
        char path[64];
        tg_dataset *ds = load_len(accepted[i].text, strlen(accepted[i].text), NULL, path, sizeof path);
        check_accepted(&accepted[i], ds);
        tg_dataset_free(ds);
    }
}

/* ---- refused files: the place and the reason ---- */

typedef struct {
    const char *name, *text;
    bool liblinear_accepts;
    const char *place; /* ":line:column:" or ":line:" */
    const char *words;
} refused_case;

static const refused_case refused[] = {
    { "index 0", "1 0:1\n", false, ":1:3:", "index 0; indices start at 1" },
    { "decreasing indices", "1 3:1 2:1\n", false, ":1:7:", "index 2 comes after index 3" },
    { "a repeated index", "1 2:1 2:1\n", false, ":1:7:", "index 2 repeats" },
    { "index 2^31", "0 1:1\n1 2147483648:1\n", false, ":2:3:", "above 2147483647" },
    { "an index of 30 digits", "1 999999999999999999999999999999:1\n", false, ":1:3:", "above 2147483647" },
    { "NaN", "1 1:1\n0 1:2 4:nan\n", true, ":2:7:", "NaN is not allowed" },
    { "Inf", "1 1:-inf\n", true, ":1:3:", "Inf is not allowed" },
    { "beyond float32", "1 1:1e39\n", true, ":1:3:", "float32 range" },
    { "an empty file", "", true, ":", "the file is empty" },
    { "comments only", "# nothing\n\n  # still nothing\n", false, ":", "the file is empty" },
    { "a pair without a value", "1 1:\n", false, ":1:3:", "not a number" },
    { "a pair cut short at the end of the file", "1 1:0.5 3:", true, ":1:9:", "not a number" },
    { "a pair without an index", "1 :1\n", true, ":1:3:", "not a positive decimal integer" },
    { "a letter for an index", "1 a:1\n", false, ":1:3:", "not a positive decimal integer" },
    { "a negative index", "1 -1:1\n", false, ":1:3:", "not a positive decimal integer" },
    { "a signed index", "1 +1:1\n", true, ":1:3:", "not a positive decimal integer" },
    { "a bare number", "1 1\n", true, ":1:3:", "is not an index:value pair" },
    { "two colons", "1 1:1:1\n", false, ":1:3:", "not a number" },
    { "a hex value", "1 1:0x10\n", true, ":1:3:", "not a number" },
    { "qid", "1 qid:3 1:1\n", false, ":1:3:", "qid (query ids of ranking data) is not supported" },
    { "no label", "1:2 3:4\n", false, ":1:1:", "where the label should be" },
    { "a label that is not UTF-8", "1 1:1\n\xFF 1:1\n", false, ":2:1:", "not valid UTF-8" },
    { "a NUL byte", "1 1:1\n0 1\0:1\n", false, ":2:", "NUL byte" },
    { "a class id too large", "1 1:1\n70000 1:1\n", true, ":2:1:", "too large for a class id" },
    { "no feature anywhere", "1\n0\n", true, ":", "no feature" },
};

Test(libsvm, refused_files_name_the_place)
{
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        const refused_case *c = &refused[i];
        size_t len = strcmp(c->name, "a NUL byte") == 0 ? 12 : strlen(c->text);
        char path[64], place[96];
        tg_dataset *ds = load_len(c->text, len, NULL, path, sizeof path);
        const char *msg = tg_last_error();
        cr_expect_null(ds, "%s: accepted", c->name);
        tg_dataset_free(ds);
        snprintf(place, sizeof place, "%s%s", path, c->place);
        cr_expect_not_null(strstr(msg, place), "%s: expected '%s' in: %s", c->name, place, msg);
        cr_expect_not_null(strstr(msg, c->words), "%s: expected '%s' in: %s", c->name, c->words, msg);
    }
}

/* ---- options ---- */

Test(libsvm, a_fixed_feature_count_refuses_or_drops_a_larger_index)
{
    char path[64];
    const char *text = "1 1:1 3:4\n0 2:5\n";
    tg_libsvm_opts o = TG_LIBSVM_OPTS_DEFAULT;
    o.features = 5; /* more than the file uses: kept */
    tg_dataset *ds = load_len(text, strlen(text), &o, path, sizeof path);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_expect_eq(ds->features, 5);
    cr_expect_eq(ds->nnz, 3);
    tg_dataset_free(ds);

    o.features = 2;
    ds = load_len(text, strlen(text), &o, path, sizeof path);
    cr_expect_null(ds);
    char place[96];
    snprintf(place, sizeof place, "%s:1:7:", path);
    cr_expect_not_null(strstr(tg_last_error(), place), "%s", tg_last_error());
    cr_expect_not_null(strstr(tg_last_error(), "above the feature count 2"), "%s", tg_last_error());

    o.skip_unknown_features = 1;
    ds = load_len(text, strlen(text), &o, path, sizeof path);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_expect_eq(ds->features, 2);
    cr_assert_eq(ds->nnz, 2); /* 3:4 dropped */
    cr_expect_eq(ds->row_ptr[1], 1);
    cr_expect_eq(ds->row_ptr[2], 2);
    cr_expect_eq(ds->col[0], 0);
    cr_expect_eq(ds->col[1], 1);
    cr_expect_eq(ds->val[1], 5.0f);
    tg_dataset_free(ds);

    o = (tg_libsvm_opts){ .features = -1 };
    ds = load_len(text, strlen(text), &o, path, sizeof path);
    cr_expect_null(ds);
    cr_expect_not_null(strstr(tg_last_error(), "features is -1"), "%s", tg_last_error());
}

Test(libsvm, label_names_map_a_second_file_the_same_way)
{
    char path[64];
    char *const names[] = { "spam", "ham" };
    tg_libsvm_opts o = { .label_names = names, .n_label_names = 2 };
    const char *text = "ham 1:1\nham 2:1\nspam 1:2\n";
    tg_dataset *ds = load_len(text, strlen(text), &o, path, sizeof path);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_expect_eq(ds->classes, 2);
    cr_expect_eq(ds->y[0], 1);
    cr_expect_eq(ds->y[1], 1);
    cr_expect_eq(ds->y[2], 0);
    cr_expect_str_eq(ds->label_names[0], "spam");
    tg_dataset_free(ds);

    text = "ham 1:1\neggs 2:1\n";
    ds = load_len(text, strlen(text), &o, path, sizeof path);
    cr_expect_null(ds);
    char place[96];
    snprintf(place, sizeof place, "%s:2:1: unknown label 'eggs'", path);
    cr_expect_not_null(strstr(tg_last_error(), place), "%s", tg_last_error());
}

Test(libsvm, a_very_long_line)
{
    /* one row with 200,000 pairs, each value its index / 8 (exact in float32) */
    enum { PAIRS = 200000 };
    size_t cap = (size_t)PAIRS * 24 + 16, used = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    used += (size_t)snprintf(text, cap, "3");
    for (int i = 1; i <= PAIRS; i++)
        used += (size_t)snprintf(text + used, cap - used, " %d:%.3f", i, i / 8.0);
    char path[64];
    tg_dataset *ds = load_len(text, used, NULL, path, sizeof path);
    free(text);
    cr_assert_not_null(ds, "%s", tg_last_error());
    cr_expect_eq(ds->rows, 1);
    cr_expect_eq(ds->features, PAIRS);
    cr_assert_eq(ds->nnz, PAIRS);
    for (int64_t k = 0; k < PAIRS; k += 9973)
        cr_expect_eq(ds->val[k], (float)((double)(k + 1) / 8.0), "val[%lld]", (long long)k);
    cr_expect_eq(ds->col[PAIRS - 1], PAIRS - 1);
    tg_dataset_free(ds);
}

Test(libsvm, missing_file_and_bad_arguments)
{
    tg_clear_error();
    cr_expect_null(tg_libsvm_load("/nonexistent/file.svm", NULL));
    cr_expect_not_null(strstr(tg_last_error(), "/nonexistent/file.svm"), "%s", tg_last_error());
    cr_expect_null(tg_libsvm_load(NULL, NULL));
    cr_expect_not_null(strstr(tg_last_error(), "path is NULL"), "%s", tg_last_error());
    tg_libsvm_opts o = { .n_label_names = 2 };
    cr_expect_null(tg_libsvm_load("/tmp/x", &o));
    cr_expect_not_null(strstr(tg_last_error(), "label_names is NULL"), "%s", tg_last_error());
}

/* ---- sparse data sets through the tg_dataset_* functions ---- */

/* rows: [0.5 0 2], [0 -1 0], [0 0 4], [3 0 0]; labels 1 0 1 0 */
static tg_dataset *four_rows(void)
{
    char path[64];
    const char *text = "1 1:0.5 3:2\n0 2:-1\n1 3:4\n0 1:3\n";
    tg_dataset *ds = load_len(text, strlen(text), NULL, path, sizeof path);
    cr_assert_not_null(ds, "%s", tg_last_error());
    return ds;
}

Test(libsvm, subset_keeps_the_rows_sparse)
{
    tg_dataset *ds = four_rows();
    tg_dataset *sub = tg_dataset_subset(ds, (int64_t[]){ 3, 0, 3 }, 3);
    cr_assert_not_null(sub, "%s", tg_last_error());
    cr_expect_null(sub->x);
    cr_expect_eq(sub->rows, 3);
    cr_expect_eq(sub->features, 3);
    cr_assert_eq(sub->nnz, 4);
    const int64_t row_ptr[] = { 0, 1, 3, 4 };
    const int32_t col[] = { 0, 0, 2, 0 };
    const float val[] = { 3, 0.5f, 2, 3 };
    for (int i = 0; i < 4; i++)
        cr_expect_eq(sub->row_ptr[i], row_ptr[i]);
    for (int k = 0; k < 4; k++) {
        cr_expect_eq(sub->col[k], col[k]);
        cr_expect_eq(sub->val[k], val[k]);
    }
    cr_expect_eq(sub->y[1], 1);
    cr_expect_str_eq(sub->label_names[1], "1");
    tg_dataset_free(sub);
    tg_dataset_free(ds);
}

Test(libsvm, split_gives_the_rows_a_dense_split_gives)
{
    /* the same data dense: the split must pick the same rows (same seed, same order) */
    float dense_x[] = { 0.5f, 0, 2, 0, -1, 0, 0, 0, 4, 3, 0, 0 };
    int64_t dense_y[] = { 1, 0, 1, 0 };
    tg_dataset dense = { .rows = 4, .features = 3, .classes = 2, .x = dense_x, .y = dense_y };
    tg_dataset *ds = four_rows();
    tg_rng a, b;
    tg_rng_seed(&a, 7);
    tg_rng_seed(&b, 7);
    tg_dataset *d1, *d2, *s1, *s2;
    cr_assert_eq(tg_dataset_split(&dense, 0.5, &a, &d1, &d2), 0);
    cr_assert_eq(tg_dataset_split(ds, 0.5, &b, &s1, &s2), 0);
    const tg_dataset *pairs[2][2] = { { d1, s1 }, { d2, s2 } };
    for (int p = 0; p < 2; p++) {
        const tg_dataset *d = pairs[p][0], *s = pairs[p][1];
        cr_assert_eq(d->rows, s->rows);
        for (int64_t r = 0; r < d->rows; r++) {
            float row[3] = { 0, 0, 0 };
            for (int64_t k = s->row_ptr[r]; k < s->row_ptr[r + 1]; k++)
                row[s->col[k]] = s->val[k];
            for (int f = 0; f < 3; f++)
                cr_expect_eq(row[f], d->x[r * 3 + f], "part %d row %lld feature %d", p, (long long)r, f);
            cr_expect_eq(s->y[r], d->y[r]);
        }
    }
    tg_dataset_free(d1);
    tg_dataset_free(d2);
    tg_dataset_free(s1);
    tg_dataset_free(s2);
    tg_dataset_free(ds);
}

Test(libsvm, standardization_scales_without_centring)
{
    tg_dataset *ds = four_rows();
    float mean[3], std[3];
    cr_assert_eq(tg_dataset_moments(ds, mean, std), 0);
    /* population deviations of the columns [0.5 0 0 3], [0 -1 0 0], [2 0 4 0], by hand:
     * col 0: mean 0.875, E[x^2] = (0.25 + 9) / 4 = 2.3125, var = 2.3125 - 0.765625 = 1.546875
     * col 1: mean -0.25, E[x^2] = 0.25, var = 0.1875
     * col 2: mean 1.5, E[x^2] = 5, var = 2.75 */
    const double var[3] = { 1.546875, 0.1875, 2.75 };
    for (int f = 0; f < 3; f++) {
        cr_expect_eq(mean[f], 0.0f, "mean[%d] %g: sparse data is not centred", f, (double)mean[f]);
        cr_expect(close_enough(std[f], sqrt(var[f]), 1e-6), "std[%d] %g", f, (double)std[f]);
    }
    tg_dataset_standardize(ds, mean, std);
    cr_expect_null(ds->x);
    cr_expect_eq(ds->nnz, 5);
    cr_expect(close_enough(ds->val[0], 0.5 / sqrt(var[0]), 1e-6));
    cr_expect(close_enough(ds->val[2], -1 / sqrt(var[1]), 1e-6));
    tg_dataset_free(ds);
}

/* tg_evaluate and tg_predict on sparse rows against the same rows dense (the dense path is the oracle),
 * without and with a scaling-only standardization; an MLP, so the layers after the sparse one run too. */
Test(libsvm, evaluate_and_predict_take_sparse_data)
{
    tg_dataset *ds = four_rows();
    float dense_x[] = { 0.5f, 0, 2, 0, -1, 0, 0, 0, 4, 3, 0, 0 };
    tg_dataset dense = { .rows = 4, .features = 3, .classes = 2, .x = dense_x, .y = ds->y };
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_layer_spec layers[] = { { .type = TG_LAYER_LINEAR, .out = 5, .bias = 1 },
                               { .type = TG_LAYER_TANH },
                               { .type = TG_LAYER_LINEAR, .out = 2, .bias = 1 } };
    tg_model *m = tg_model_new(TG_F64, 3, 3, layers, &rng);
    cr_assert_not_null(m);
    float mean[3], std[3];
    cr_assert_eq(tg_dataset_moments(ds, mean, std), 0);
    for (int scaled = 0; scaled < 2; scaled++) {
        if (scaled)
            cr_assert_eq(tg_model_set_standardization(m, mean, std), 0, "%s", tg_last_error());
        tg_eval sparse_ev, dense_ev;
        cr_assert_eq(tg_evaluate(m, ds, &sparse_ev), 0, "%s", tg_last_error());
        cr_assert_eq(tg_evaluate(m, &dense, &dense_ev), 0, "%s", tg_last_error());
        cr_expect(close_enough(sparse_ev.loss, dense_ev.loss, 1e-12), "loss %.17g vs %.17g", sparse_ev.loss,
                  dense_ev.loss);
        cr_expect_eq(sparse_ev.accuracy, dense_ev.accuracy);
        for (int k = 0; k < 4; k++)
            cr_expect_eq(sparse_ev.confusion[k], dense_ev.confusion[k]);
        tg_eval_clear(&sparse_ev);
        tg_eval_clear(&dense_ev);
        double p_sparse[8], p_dense[8];
        cr_assert_eq(tg_predict(m, ds, p_sparse), 0, "%s", tg_last_error());
        cr_assert_eq(tg_predict(m, &dense, p_dense), 0, "%s", tg_last_error());
        for (int k = 0; k < 8; k++)
            cr_expect(close_enough(p_sparse[k], p_dense[k], 1e-12), "probs[%d] %.17g vs %.17g (scaled %d)", k,
                      p_sparse[k], p_dense[k], scaled);
    }
    /* a model that centres its inputs cannot take sparse rows */
    const float centred[3] = { 1, 0, 0 };
    cr_assert_eq(tg_model_set_standardization(m, centred, std), 0);
    tg_eval ev;
    cr_expect_neq(tg_evaluate(m, ds, &ev), 0);
    cr_expect_not_null(strstr(tg_last_error(), "mean[0] is 1"), "%s", tg_last_error());
    cr_expect_null(tg_batcher_new(ds, 2, TG_F32, NULL));
    cr_expect_not_null(strstr(tg_last_error(), "sparse"), "%s", tg_last_error());
    tg_model_free(m);
    tg_dataset_free(ds);
}
