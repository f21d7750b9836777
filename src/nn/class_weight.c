/* Per-class loss weights: scikit-learn's "balanced" rule, and the config's
 * loss.weight / loss.class_weight resolved against the training data. */
#include "dist/dist.h"
#include "nn/nn_internal.h"

#include <string.h>

/* rows > 0: ds is this rank's share of `rows` rows, and the counts are summed over every rank (as float64:
 * exact below 2^53). */
static int balanced(const tg_dataset *ds, int64_t rows, double *weights)
{
    if (!ds || !weights) {
        tg_error("balanced class weights: %s is NULL", ds ? "weights" : "the data set");
        return -1;
    }
    double *count = tg_alloc_zeroed((size_t)(ds->classes ? ds->classes : 1) * sizeof *count);
    if (!count)
        return -1;
    for (int64_t r = 0; r < ds->rows; r++)
        count[ds->y[r]]++;
    if (rows > 0 && tg_dist_sum(count, ds->classes, TG_F64)) {
        tg_dealloc(count);
        return -1;
    }
    int status = 0;
    for (int64_t k = 0; k < ds->classes && !status; k++) {
        if (count[k] == 0) {
            tg_error("balanced class weights: class %s has no rows", ds->label_names ? ds->label_names[k] : "?");
            status = -1;
        } else {
            weights[k] = (double)(rows > 0 ? rows : ds->rows) / ((double)ds->classes * count[k]);
        }
    }
    tg_dealloc(count);
    return status;
}

int tg_balanced_class_weights(const tg_dataset *ds, double *weights) { return balanced(ds, 0, weights); }

const char *tg_config_file_prefix(const tg_config *cfg, char *buf, size_t size)
{
    if (!cfg->path)
        return "";
    snprintf(buf, size, "%s: ", cfg->path);
    return buf;
}

/* Fills weights[classes] from the label map; labels it leaves out weigh 1 (as scikit-learn's dict). */
static int map_weights(const tg_config *cfg, const tg_dataset *train, double *weights)
{
    char prefix[512];
    for (int64_t k = 0; k < train->classes; k++)
        weights[k] = 1;
    for (int64_t i = 0; i < cfg->loss.n_class_weight_labels; i++) {
        const char *label = cfg->loss.class_weight_labels[i];
        int64_t k = 0;
        while (k < train->classes && strcmp(train->label_names[k], label) != 0)
            k++;
        if (k == train->classes) {
            char known[256] = "";
            for (int64_t j = 0; j < train->classes && strlen(known) < sizeof known - 40; j++) {
                strcat(known, j ? ", " : "");
                strncat(known, train->label_names[j], sizeof known - strlen(known) - 1);
            }
            tg_error("%sloss.class_weight.%s: no class '%s' in the training data (its classes: %s)",
                     tg_config_file_prefix(cfg, prefix, sizeof prefix), label, label, known);
            return -1;
        }
        weights[k] = cfg->loss.class_weight_values[i];
    }
    return 0;
}

int tg_loss_weight_tensor(const tg_config *cfg, const tg_dataset *train, tg_dtype dtype, tg_tensor **out)
{
    return tg_loss_weight_tensor_ranks(cfg, train, 0, dtype, out);
}

int tg_loss_weight_tensor_ranks(const tg_config *cfg, const tg_dataset *train, int64_t rows, tg_dtype dtype,
                                tg_tensor **out)
{
    *out = NULL;
    bool map = cfg->loss.class_weight_labels != NULL;
    if (!cfg->loss.class_weights && !cfg->loss.class_weight_balanced && !map)
        return 0;
    int64_t c = train->classes;
    double *w = tg_alloc((size_t)(c ? c : 1) * sizeof *w);
    if (!w)
        return -1;
    int status = 0;
    if (cfg->loss.class_weights)
        memcpy(w, cfg->loss.class_weights, (size_t)c * sizeof *w); /* its length was checked against the data */
    else if (cfg->loss.class_weight_balanced)
        status = balanced(train, rows, w);
    else
        status = map_weights(cfg, train, w);
    if (!status) {
        double total = 0;
        for (int64_t k = 0; k < c; k++)
            total += w[k];
        if (!(total > 0)) {
            char prefix[512];
            tg_error("%sloss.class_weight: every class weighs 0; at least one must count",
                     tg_config_file_prefix(cfg, prefix, sizeof prefix));
            status = -1;
        }
    }
    if (!status && !(*out = tg_tensor_new(dtype, 1, &c)))
        status = -1;
    for (int64_t k = 0; !status && k < c; k++)
        tg_set(*out, k, w[k]);
    tg_dealloc(w);
    return status;
}
