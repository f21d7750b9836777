/* Training on a streamed file (data.stream, CSV or libsvm): the training file stays on disk
 * and is read in blocks each epoch (src/io/stream.c); t->train describes it
 * (rows, features, classes, names) without holding a row (x and y NULL). The
 * test set is the config's data.test file, in memory as always; there is no
 * validation split. What needs the rows in memory is refused with a message:
 * the full-batch solver, early stopping (no validation rows) and
 * class_weight "balanced" (computed from the training labels). */
#include "train/train.h"

#include <string.h>

/* A copy of src's names (n of them), or NULL when src is NULL. *fail set on allocation failure. */
static char **copy_names(char *const *src, int64_t n, bool *fail)
{
    if (!src || n == 0)
        return NULL;
    char **names = tg_alloc_zeroed((size_t)n * sizeof *names);
    for (int64_t i = 0; names && i < n; i++)
        if (!(names[i] = tg_strdup(src[i]))) {
            tg_free_strings(names, n);
            names = NULL;
        }
    *fail |= !names;
    return names;
}

/* What the stream's file is, without its rows. */
static tg_dataset *describe(const tg_dataset *h)
{
    tg_dataset *d = tg_alloc_zeroed(sizeof *d);
    if (!d)
        return NULL;
    bool fail = false;
    d->rows = h->rows;
    d->features = h->features;
    d->classes = h->classes;
    d->label_names = copy_names(h->label_names, h->classes, &fail);
    d->feature_names = copy_names(h->feature_names, h->features, &fail);
    if (fail) {
        tg_dataset_free(d);
        return NULL;
    }
    return d;
}

static int refuse_unstreamable(const tg_config *cfg)
{
    char prefix[512];
    tg_config_file_prefix(cfg, prefix, sizeof prefix);
    if (cfg->optimizer.type == TG_OPTIM_LBFGS)
        return tg_error("%soptimizer.type lbfgs (the full-batch solver) needs the training set in memory, and "
                        "data.stream keeps it on disk: use sgd or adam with data.stream, or drop data.stream",
                        prefix),
               -1;
    if (cfg->train.patience > 0)
        return tg_error("%strain.early_stopping needs a validation set, and data.stream holds no rows back: "
                        "remove early_stopping (or drop data.stream)",
                        prefix),
               -1;
    if (cfg->loss.class_weight_balanced)
        return tg_error("%sloss.class_weight \"balanced\" is computed from the training labels in memory, and "
                        "data.stream keeps them on disk: give the weights per label instead",
                        prefix),
               -1;
    return 0;
}

/* Binary cross-entropy's positive class, decided on the labels alone (the rows stay on disk): the
 * stream reads classes swapped when the test set's are. */
static int orient_binary(const tg_config *cfg, tg_training *t)
{
    tg_dataset names_only = *t->train;
    names_only.rows = 0; /* no row to swap: only the names */
    char *first = names_only.label_names ? names_only.label_names[0] : NULL;
    if (tg_binary_orient(cfg, &names_only, t->validation, t->test))
        return -1;
    if (names_only.label_names[0] != first) {
        tg_stream_swap_binary(t->state->stream);
        t->train->label_names = names_only.label_names; /* the same array, its two entries exchanged */
    }
    return 0;
}

int tg_train_open_stream(const tg_config *cfg, tg_training *t)
{
    struct tg_train_state *st = t->state;
    if (refuse_unstreamable(cfg))
        return -1;
    tg_block_source src;
    if (cfg->data.format && strcmp(cfg->data.format, "libsvm") == 0) {
        tg_libsvm_opts l = { .features = cfg->data.features, .skip_unknown_features = cfg->data.skip_unseen_features };
        if (tg_libsvm_block_source(cfg->data.train, &l, cfg->data.block_rows, &src))
            return -1;
    } else {
        tg_csv_opts o;
        tg_config_csv_opts(cfg, NULL, &o);
        if (tg_csv_block_source(cfg->data.train, &o, cfg->data.block_rows, &src))
            return -1;
    }
    if (!(st->stream = tg_stream_open(src, cfg->data.shuffle_window, cfg->data.standardize != 0)))
        return -1;
    const tg_dataset *h = tg_stream_header(st->stream);
    if (!(t->train = describe(h)) || !(t->test = tg_load_config_file(cfg, cfg->data.test, NULL, h)))
        return -1;
    if (t->test->features != h->features)
        return tg_error("%s has %lld feature columns but %s has %lld", cfg->data.test, (long long)t->test->features,
                        cfg->data.train, (long long)h->features),
               -1;
    if (!(t->validation = tg_dataset_subset(t->test, NULL, 0)))
        return -1;
    st->data_hash = tg_stream_hash(st->stream);
    st->hashed = true;
    return cfg->loss.type == TG_LOSS_BINARY_CROSS_ENTROPY ? orient_binary(cfg, t) : 0;
}
