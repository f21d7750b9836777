/* Binary models (one output, binary cross-entropy with logits): which class is
 * the positive one, the data turned so that it is class 1, and each batch's
 * float target. */
#include "nn/nn_internal.h"

#include <stdlib.h>
#include <string.h>

/* scikit-learn's order of two labels: numbers by value, anything else by its bytes. */
static int label_order(const char *a, const char *b)
{
    char *a_end, *b_end;
    double x = strtod(a, &a_end), y = strtod(b, &b_end);
    if (*a && *b && !*a_end && !*b_end)
        return (x > y) - (x < y);
    return strcmp(a, b);
}

/* "a, b" into buf. */
static const char *two_labels(const tg_dataset *ds, char *buf, size_t size)
{
    snprintf(buf, size, "%s, %s", ds->label_names[0], ds->label_names[1]);
    return buf;
}

/* Swaps classes 0 and 1 of ds: its labels and every row's class. */
static void swap_classes(tg_dataset *ds)
{
    if (!ds)
        return;
    if (ds->classes == 2) {
        char *first = ds->label_names[0];
        ds->label_names[0] = ds->label_names[1];
        ds->label_names[1] = first;
    }
    for (int64_t r = 0; r < ds->rows; r++)
        ds->y[r] = 1 - ds->y[r];
}

int tg_binary_orient(const tg_config *cfg, tg_dataset *train, tg_dataset *validation, tg_dataset *test)
{
    char prefix[512], labels[256];
    int last = cfg->model.n_layers - 1;
    if (train->classes != 2) {
        tg_error("model.layers[%d].out is 1 (binary_cross_entropy) but the training data has %lld classes; one "
                 "output fits two classes (for more, give one output per class and use cross_entropy)",
                 last, (long long)train->classes);
        return -1;
    }
    int64_t positive = label_order(train->label_names[0], train->label_names[1]) > 0 ? 0 : 1;
    const char *named = cfg->loss.positive_class;
    if (named) {
        positive = strcmp(train->label_names[0], named) == 0 ? 0 : strcmp(train->label_names[1], named) == 0 ? 1 : -1;
        if (positive < 0) {
            tg_error("%sloss.positive_class: '%s' is not a label of the training data (its labels: %s)",
                     tg_config_file_prefix(cfg, prefix, sizeof prefix), named,
                     two_labels(train, labels, sizeof labels));
            return -1;
        }
    }
    if (positive == 0) {
        swap_classes(train);
        swap_classes(validation);
        swap_classes(test);
    }
    return 0;
}

int tg_binary_targets_init(binary_targets *b, tg_dtype dtype, int64_t size, int64_t rows, bool weighted,
                           double pos_weight)
{
    memset(b, 0, sizeof *b);
    int64_t sizes[2] = { size, rows % size };
    for (int i = 0; i < 2; i++) {
        if (sizes[i] == 0)
            continue;
        int64_t shape[2] = { sizes[i], 1 };
        if (!(b->target[i] = tg_tensor_new(dtype, 2, shape)) ||
            (weighted && !(b->weight[i] = tg_tensor_new(dtype, 2, shape))))
            goto fail;
    }
    if (pos_weight != 1) {
        if (!(b->pos_weight = tg_tensor_new(dtype, 1, (int64_t[]){ 1 })))
            goto fail;
        tg_set(b->pos_weight, 0, pos_weight);
    }
    return 0;
fail:
    tg_binary_targets_free(b);
    return -1;
}

void tg_binary_targets_free(binary_targets *b)
{
    for (int i = 0; i < 2; i++) {
        tg_tensor_free(b->target[i]);
        tg_tensor_free(b->weight[i]);
    }
    tg_tensor_free(b->pos_weight);
    memset(b, 0, sizeof *b);
}

tg_tensor *tg_binary_targets_fill(binary_targets *b, const tg_tensor *y, const tg_tensor *class_weight,
                                  tg_bce_opts *opts)
{
    int64_t n = y->shape[0];
    int i = b->target[0] && b->target[0]->shape[0] == n ? 0 : 1;
    const int64_t *cls = y->data;
    *opts = TG_BCE_OPTS_DEFAULT;
    opts->pos_weight = b->pos_weight;
    for (int64_t r = 0; r < n; r++)
        tg_set(b->target[i], r, (double)cls[r]);
    if (class_weight) {
        for (int64_t r = 0; r < n; r++)
            tg_set(b->weight[i], r, tg_get(class_weight, cls[r]));
        opts->weight = b->weight[i];
    }
    return b->target[i];
}
