/* Stratified K-fold assignment for cross-validation. */
#include "nn/nn_internal.h"

int tg_stratified_folds(const tg_dataset *ds, int k, tg_rng *rng, int *fold)
{
    if (!ds || !rng || !fold) {
        tg_error("stratified_folds: the data set, rng and fold are required");
        return -1;
    }
    if (k < 2) {
        tg_error("stratified_folds: %d folds; at least 2 are needed", k);
        return -1;
    }
    int64_t c = ds->classes > 0 ? ds->classes : 1;
    int64_t *count = tg_alloc_zeroed((size_t)c * sizeof *count),
            *rows = tg_alloc((size_t)(ds->rows ? ds->rows : 1) * sizeof *rows);
    if (!count || !rows) {
        tg_dealloc(count);
        tg_dealloc(rows);
        return -1;
    }
    for (int64_t r = 0; r < ds->rows; r++)
        count[ds->y[r]]++;
    int status = 0;
    for (int64_t j = 0; j < ds->classes && !status; j++)
        if (count[j] < k) {
            tg_error("stratified_folds: %d folds but class %s has %lld rows; each class needs at least one row per "
                     "fold",
                     k, ds->label_names ? ds->label_names[j] : "?", (long long)count[j]);
            status = -1;
        }
    /* Class by class: its rows in file order, shuffled, dealt round-robin from where the last class stopped. */
    int next = 0;
    for (int64_t j = 0; j < ds->classes && !status; j++) {
        int64_t n = 0;
        for (int64_t r = 0; r < ds->rows; r++)
            if (ds->y[r] == j)
                rows[n++] = r;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t swap = (int64_t)tg_rng_below(rng, (uint64_t)i + 1), tmp = rows[i];
            rows[i] = rows[swap];
            rows[swap] = tmp;
        }
        for (int64_t i = 0; i < n; i++) {
            fold[rows[i]] = next;
            next = (next + 1) % k;
        }
    }
    tg_dealloc(count);
    tg_dealloc(rows);
    return status;
}
