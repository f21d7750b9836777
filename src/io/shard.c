/* The training data across ranks (mpirun; docs/distributed.md): each rank
 * reads its own part of the training file (a byte range of a CSV or libsvm
 * file, a row range of IDX), so no rank holds the whole data set. What one
 * process derives from the whole file the ranks agree on: the label map (the
 * union of their tables in rank order is the file's order of first
 * appearance), the feature count (the largest index), the row count. The
 * splits draw the permutation one process draws over the whole file, so a
 * training row keeps its position (what the epoch's order and the batches are
 * made of); each rank keeps its own training rows, the validation rows are
 * gathered to every rank (each runs the early-stopping check) and the test rows
 * to rank 0 (which alone evaluates them), in the order one process has them. */
#include "dist/dist.h"
#include "io/io_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

int tg_label_table_merge_ranks(tg_label_table *t, int64_t *y, int64_t rows)
{
    if (!tg_dist_parallel())
        return 0;
    size_t bytes = 0;
    for (int64_t i = 0; i < t->n; i++)
        bytes += sizeof(int64_t) + strlen(t->names[i]) + 1;
    char *mine = tg_alloc(bytes ? bytes : 1), *at = mine;
    size_t *sizes = tg_alloc((size_t)tg_dist_size() * sizeof *sizes);
    int64_t *map = tg_alloc((size_t)(t->n ? t->n : 1) * sizeof *map);
    void *all = NULL;
    tg_label_table merged = { 0 };
    int status = -1;
    if (!mine || !sizes || !map)
        goto done;
    for (int64_t i = 0; i < t->n; i++) { /* each label: the line it first appeared on, then its text */
        memcpy(at, &t->first_line[i], sizeof(int64_t));
        at += sizeof(int64_t);
        size_t len = strlen(t->names[i]) + 1;
        memcpy(at, t->names[i], len);
        at += len;
    }
    if (tg_dist_gather_all(mine, bytes, &all, sizes))
        goto done;
    const char *p = all, *end = p;
    for (int r = 0; r < tg_dist_size(); r++)
        end += sizes[r];
    while (p < end) {
        int64_t line;
        memcpy(&line, p, sizeof line);
        p += sizeof line;
        if (tg_label_find(&merged, p) < 0 && tg_label_add(&merged, p, line) < 0)
            goto done;
        p += strlen(p) + 1;
    }
    for (int64_t i = 0; i < t->n; i++)
        map[i] = tg_label_find(&merged, t->names[i]);
    for (int64_t r = 0; r < rows; r++)
        y[r] = map[y[r]];
    tg_label_table_free(t);
    *t = merged;
    merged = (tg_label_table){ 0 };
    status = 0;
done:
    tg_label_table_free(&merged);
    tg_dealloc(all);
    tg_dealloc(map);
    tg_dealloc(sizes);
    tg_dealloc(mine);
    return status;
}

/* FNV-1a of up to 4 KiB at the start and at the end of f, and its size: enough to tell two different
 * copies of a data file apart without reading it (each node may hold its own copy). */
static int file_mark(const char *path, uint64_t mark[2])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_error("%s: cannot open: %s", path, strerror(errno)), -1;
    unsigned char buf[4096];
    uint64_t h = 0xcbf29ce484222325u;
    int64_t size = fseek(f, 0, SEEK_END) == 0 ? (int64_t)ftell(f) : -1;
    for (int end = 0; end < 2 && size >= 0; end++) {
        int64_t at = end && size > (int64_t)sizeof buf ? size - (int64_t)sizeof buf : 0;
        size_t got = fseek(f, (long)at, SEEK_SET) == 0 ? fread(buf, 1, sizeof buf, f) : 0;
        for (size_t i = 0; i < got; i++)
            h = (h ^ buf[i]) * 0x100000001b3u;
    }
    fclose(f);
    if (size < 0)
        return tg_error("%s: cannot find its size", path), -1;
    mark[0] = (uint64_t)size;
    mark[1] = h;
    return 0;
}

/* Every rank must read the same bytes: its copy of the file is compared with rank 0's (size and a hash of
 * its ends) before any part is read, so a node with another copy stops the job instead of training on a
 * mix of the two. */
static int same_file_as_rank_0(const char *path)
{
    uint64_t mine[2], lead[2];
    if (!path)
        return 0;
    if (file_mark(path, mine))
        return -1;
    memcpy(lead, mine, sizeof lead);
    if (tg_dist_broadcast(lead, sizeof lead, 0))
        return -1;
    if (memcmp(mine, lead, sizeof mine) != 0)
        return tg_error("%s: rank %d's copy is not rank 0's (%llu bytes against %llu%s): every rank must read the "
                        "same file",
                        path, tg_dist_rank(), (unsigned long long)mine[0], (unsigned long long)lead[0],
                        mine[0] == lead[0] ? ", other bytes" : ""),
               -1;
    return 0;
}

/* This rank's part of the training file, loaded as tg_load_and_split loads the whole. */
static tg_dataset *load_part(const tg_config *cfg, int part, int parts)
{
    const char *format = cfg->data.format ? cfg->data.format : "csv";
    if (same_file_as_rank_0(cfg->data.train) ||
        (strcmp(format, "idx") == 0 && same_file_as_rank_0(cfg->data.train_labels)))
        return NULL;
    if (strcmp(format, "idx") == 0)
        return tg_idx_load_part(cfg->data.train, cfg->data.train_labels, cfg->data.scale, part, parts);
    if (strcmp(format, "libsvm") == 0) {
        tg_libsvm_opts o = { .features = cfg->data.features, .skip_unknown_features = cfg->data.skip_unseen_features };
        return tg_libsvm_load_part(cfg->data.train, &o, part, parts);
    }
    tg_csv_opts o;
    tg_config_csv_opts(cfg, NULL, &o);
    return tg_csv_load_part(cfg->data.train, &o, part, parts);
}

/* One row of a split, as a rank sends it: its position, its class, then its values (dense: the features;
 * sparse: the count, the columns, the values). */
static size_t row_bytes(const tg_dataset *ds, int64_t r)
{
    if (ds->x)
        return 2 * sizeof(int64_t) + (size_t)ds->features * sizeof(float);
    int64_t len = ds->row_ptr[r + 1] - ds->row_ptr[r];
    return 3 * sizeof(int64_t) + (size_t)len * (sizeof(int32_t) + sizeof(float));
}

static char *pack_row(char *at, const tg_dataset *ds, int64_t r, int64_t position)
{
    memcpy(at, &position, sizeof position);
    memcpy(at + sizeof position, &ds->y[r], sizeof(int64_t));
    at += 2 * sizeof(int64_t);
    if (ds->x) {
        memcpy(at, ds->x + r * ds->features, (size_t)ds->features * sizeof(float));
        return at + (size_t)ds->features * sizeof(float);
    }
    int64_t a = ds->row_ptr[r], len = ds->row_ptr[r + 1] - a;
    memcpy(at, &len, sizeof len);
    at += sizeof len;
    memcpy(at, ds->col + a, (size_t)len * sizeof(int32_t));
    at += (size_t)len * sizeof(int32_t);
    memcpy(at, ds->val + a, (size_t)len * sizeof(float));
    return at + (size_t)len * sizeof(float);
}

/* Every rank's rows of a split (ds, this rank's, with their positions) as one data set of `total` rows in
 * position order, on every rank (everyone), or on rank 0, the others getting an empty one. */
static tg_dataset *gather_split(const tg_dataset *ds, const int64_t *position, int64_t total, bool everyone)
{
    size_t bytes = 0;
    for (int64_t r = 0; r < ds->rows; r++)
        bytes += row_bytes(ds, r);
    char *mine = tg_alloc(bytes ? bytes : 1), *at = mine;
    size_t *sizes = tg_alloc((size_t)tg_dist_size() * sizeof *sizes);
    void *all = NULL;
    tg_dataset *out = NULL;
    if (!mine || !sizes)
        goto fail;
    for (int64_t r = 0; r < ds->rows; r++)
        at = pack_row(at, ds, r, position[r]);
    if ((everyone ? tg_dist_gather_all(mine, bytes, &all, sizes) : tg_dist_gather(mine, bytes, &all, sizes, 0)) ||
        !(out = tg_dataset_subset(ds, NULL, 0)))
        goto fail;
    if (!all) { /* not rank 0 */
        tg_dealloc(sizes);
        tg_dealloc(mine);
        return out;
    }
    size_t received = 0;
    for (int r = 0; r < tg_dist_size(); r++)
        received += sizes[r];
    const char *end = (const char *)all + received;
    int64_t f = ds->features, nnz = 0;
    bool sparse = !ds->x;
    /* Sparse: the rows' lengths first (into row_ptr, shifted by one), so each array is allocated once. */
    int64_t *y = tg_alloc((size_t)(total ? total : 1) * sizeof *y);
    if (!y)
        goto fail;
    tg_dealloc(out->y);
    out->y = y;
    out->rows = total;
    if (sparse) {
        tg_dealloc(out->row_ptr);
        if (!(out->row_ptr = tg_alloc_zeroed((size_t)(total + 1) * sizeof(int64_t))))
            goto fail;
        for (const char *p = all; p < end;) {
            int64_t pos, len;
            memcpy(&pos, p, sizeof pos);
            memcpy(&len, p + 2 * sizeof(int64_t), sizeof len);
            out->row_ptr[pos + 1] = len;
            p += 3 * sizeof(int64_t) + (size_t)len * (sizeof(int32_t) + sizeof(float));
        }
        for (int64_t r = 0; r < total; r++)
            out->row_ptr[r + 1] += out->row_ptr[r];
        nnz = out->row_ptr[total];
        tg_dealloc(out->col);
        tg_dealloc(out->val);
        out->col = tg_alloc((size_t)(nnz ? nnz : 1) * sizeof(int32_t));
        out->val = tg_alloc((size_t)(nnz ? nnz : 1) * sizeof(float));
        out->nnz = nnz;
        if (!out->col || !out->val)
            goto fail;
    } else {
        tg_dealloc(out->x);
        if (!(out->x = tg_alloc((size_t)(total ? total : 1) * (size_t)f * sizeof(float))))
            goto fail;
    }
    for (const char *p = all; p < end;) {
        int64_t pos;
        memcpy(&pos, p, sizeof pos);
        memcpy(&out->y[pos], p + sizeof pos, sizeof(int64_t));
        p += 2 * sizeof(int64_t);
        if (!sparse) {
            memcpy(out->x + pos * f, p, (size_t)f * sizeof(float));
            p += (size_t)f * sizeof(float);
            continue;
        }
        int64_t len, a = out->row_ptr[pos];
        memcpy(&len, p, sizeof len);
        p += sizeof len;
        memcpy(out->col + a, p, (size_t)len * sizeof(int32_t));
        p += (size_t)len * sizeof(int32_t);
        memcpy(out->val + a, p, (size_t)len * sizeof(float));
        p += (size_t)len * sizeof(float);
    }
    tg_dealloc(all);
    tg_dealloc(sizes);
    tg_dealloc(mine);
    return out;
fail:
    tg_dataset_free(out);
    tg_dealloc(all);
    tg_dealloc(sizes);
    tg_dealloc(mine);
    return NULL;
}

/* The rows of `part` (rows [first, first + part->rows) of the file) that stand at positions 0..n-1 of a
 * split, position p holding file row row_of(p): their indices into part, and their positions. */
typedef struct {
    const int64_t *outer; /* the test split's order (NULL: the file's order), then */
    int64_t outer_from; /* from this entry */
    const int64_t *inner; /* the validation split's order over the outer rows (NULL: none) */
    int64_t inner_from;
} split_map;

static int64_t row_of(const split_map *m, int64_t p)
{
    int64_t i = m->inner ? m->inner[m->inner_from + p] : p;
    return m->outer ? m->outer[m->outer_from + i] : i;
}

/* For each of part's rows, its position in the split (-1: not in it); NULL on allocation failure. */
static int64_t *split_positions(const tg_dataset *part, int64_t first, const split_map *m, int64_t n)
{
    int64_t *position = tg_alloc((size_t)(part->rows ? part->rows : 1) * sizeof *position);
    if (!position)
        return NULL;
    for (int64_t r = 0; r < part->rows; r++)
        position[r] = -1;
    for (int64_t p = 0; p < n; p++) {
        int64_t g = row_of(m, p) - first;
        if (g >= 0 && g < part->rows)
            position[g] = p;
    }
    return position;
}

/* A copy of part's rows in the split, in file order, and their positions. */
static tg_dataset *split_rows(const tg_dataset *part, int64_t first, const split_map *m, int64_t n, int64_t **positions)
{
    int64_t *position = split_positions(part, first, m, n);
    int64_t *index = position ? tg_alloc((size_t)(part->rows ? part->rows : 1) * sizeof *index) : NULL;
    tg_dataset *rows = NULL;
    if (index) {
        int64_t k = 0;
        for (int64_t r = 0; r < part->rows; r++)
            if (position[r] >= 0) {
                index[k] = r;
                position[k++] = position[r]; /* k <= r: an entry is read before it is overwritten */
            }
        rows = tg_dataset_subset(part, index, k);
    }
    tg_dealloc(index);
    if (!rows) {
        tg_dealloc(position);
        return NULL;
    }
    *positions = position;
    return rows;
}

/* Keeps the rows of part (rows [first, first + part->rows) of the file) that stand at positions 0..n-1 of
 * the training split, in place and in file order (the order of a rank's rows is its own: position[] says
 * where each stands), and gives back the rest of part's memory: the data are held once, as one process
 * holds them after its in-place split. */
static int keep_rows(tg_dataset *part, int64_t first, const split_map *m, int64_t n, int64_t **positions)
{
    int64_t *position = split_positions(part, first, m, n);
    if (!position)
        return -1;
    int64_t f = part->features, k = 0;
    for (int64_t r = 0; r < part->rows; r++) { /* row r moves down to k <= r: nothing unread is overwritten */
        if (position[r] < 0)
            continue;
        if (part->x) {
            memmove(part->x + k * f, part->x + r * f, (size_t)f * sizeof(float));
        } else {
            int64_t a = part->row_ptr[r], len = part->row_ptr[r + 1] - a, at = part->row_ptr[k];
            memmove(part->col + at, part->col + a, (size_t)len * sizeof(int32_t));
            memmove(part->val + at, part->val + a, (size_t)len * sizeof(float));
            part->row_ptr[k + 1] = at + len;
        }
        part->y[k] = part->y[r];
        position[k++] = position[r];
    }
    part->rows = k;
    /* shrinks: a refused one leaves the block as it was */
    if (part->x) {
        float *x = tg_realloc(part->x, (size_t)(k ? k : 1) * (size_t)(f ? f : 1) * sizeof(float));
        part->x = x ? x : part->x;
    } else {
        part->nnz = part->row_ptr[k];
        int32_t *col = tg_realloc(part->col, (size_t)(part->nnz ? part->nnz : 1) * sizeof(int32_t));
        part->col = col ? col : part->col;
        float *val = tg_realloc(part->val, (size_t)(part->nnz ? part->nnz : 1) * sizeof(float));
        part->val = val ? val : part->val;
    }
    int64_t *fewer = tg_realloc(position, (size_t)(k ? k : 1) * sizeof *position);
    tg_clear_error();
    *positions = fewer ? fewer : position;
    return 0;
}

/* A split's rows of every rank, on every rank (everyone) or on rank 0. */
static tg_dataset *gathered_split(const tg_dataset *part, int64_t first, const split_map *m, int64_t n, bool everyone)
{
    int64_t *position = NULL;
    tg_dataset *mine = split_rows(part, first, m, n, &position), *all = NULL;
    if (mine)
        all = gather_split(mine, position, n, everyone);
    tg_dataset_free(mine);
    tg_dealloc(position);
    return all;
}

int tg_load_and_split_ranks(const tg_config *cfg, tg_rng *shuffle, split_data *d)
{
    int part = tg_dist_rank(), parts = tg_dist_size();
    int64_t *order1 = NULL, *order2 = NULL, *counts = NULL;
    size_t *sizes = tg_alloc((size_t)parts * sizeof *sizes);
    tg_dataset *mine = sizes ? load_part(cfg, part, parts) : NULL;
    int status = -1;
    if (!mine)
        goto done;
    /* every rank's row count: where this rank's rows start in the file, and the total */
    void *all;
    if (tg_dist_gather_all(&mine->rows, sizeof mine->rows, &all, sizes))
        goto done;
    counts = all;
    int64_t first = 0, n = 0;
    for (int r = 0; r < parts; r++) {
        first += r < part ? counts[r] : 0;
        n += counts[r];
    }
    if (n == 0) {
        tg_error("%s: no data rows (the file is empty, or holds only a header or comments)", cfg->data.train);
        goto done;
    }
    if (cfg->data.test) { /* rank 0 alone evaluates the test set */
        if (!(d->test = part == 0 ? tg_load_config_file(cfg, cfg->data.test, cfg->data.test_labels, mine)
                                  : tg_dataset_subset(mine, NULL, 0)))
            goto done;
        if (d->test->features != mine->features) {
            tg_error("%s has %lld feature columns but %s has %lld", cfg->data.test, (long long)d->test->features,
                     cfg->data.train, (long long)mine->features);
            goto done;
        }
    }
    /* The permutations tg_load_and_split draws, in its order: the test split's over the file's rows (none
     * with a test file), the validation split's over what it leaves. */
    int64_t n1 = n;
    if (!cfg->data.test) {
        if (!(order1 = tg_shuffled_order(n, shuffle)))
            goto done;
        n1 = n - (int64_t)round(cfg->data.test_split * (double)n);
        split_map test = { .outer = order1, .outer_from = n1 };
        if (!(d->test = gathered_split(mine, first, &test, n - n1, false)))
            goto done;
    }
    if (!(order2 = tg_shuffled_order(n1, shuffle)))
        goto done;
    int64_t n2 = n1 - (int64_t)round(cfg->data.validation_split * (double)n1);
    split_map validation = { .outer = order1, .inner = order2, .inner_from = n2 };
    split_map train = { .outer = order1, .inner = order2 };
    if (!(d->validation = gathered_split(mine, first, &validation, n1 - n2, true)) ||
        keep_rows(mine, first, &train, n2, &d->position))
        goto done;
    d->train = mine;
    mine = NULL;
    d->rows = n2;
    if (n2 == 0) {
        tg_error("%s: no training rows left after the test and validation splits", cfg->data.train);
        goto done;
    }
    status = 0;
done:
    tg_dataset_free(mine);
    tg_dealloc(order1);
    tg_dealloc(order2);
    tg_dealloc(counts);
    tg_dealloc(sizes);
    return status;
}
