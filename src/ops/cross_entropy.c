/* Fused softmax + cross-entropy over logits, PyTorch's nn.CrossEntropyLoss.
 *
 * Logits [N, C, d1, ..., dk] (or [K, C], or [C]) hold one row of C logits per
 * position (n, d1, ..., dk), class c at stride inner = d1 * ... * dk. Per
 * position, with log-softmax l_c = x_c - lse(x) and an effective target q
 * (class weights and label smoothing folded in), the loss is -sum_c q_c l_c.
 *   class index t:  q_c = (1 - eps) w_t [c = t] + (eps / C) w_c
 *   probabilities:  q_c = w_c ((1 - eps) y_c + eps / C)
 * The mean divides by sum of w_t over positions not ignored (index targets) or
 * by the number of positions (probability targets), as PyTorch does.
 * Contiguous rows ([K, C], inner 1) take one pass each, their exps vectorised
 * along the row. Strided rows are walked a tile of up to TILE_MAX neighbouring
 * positions at a time, class by class, so that every inner loop runs along
 * contiguous memory and the logits are never transposed. Each position's
 * softmax (or its exps and 1 / sum) is kept for the backward, which never takes
 * a log. The row numerics (row_softmax, tile_exps, rows_backward, tile_backward)
 * are apart from the semantics (position_loss, probability_target, row_scale). */
#include "loss.h"

#include <string.h>
#include <tgmath.h>

typedef struct {
    tg_ce_opts opts;
    tg_loss_shape shape;
    tg_tensor *target;
    void *softmax; /* the logits' shape and dtype: contiguous rows keep each row's softmax; strided rows keep
                      exp(x - max), the softmax being that times inv_sum */
    double *inv_sum; /* strided rows: [positions], 1 / sum of the exps; NULL for contiguous rows */
    double *row_max, *log_sum; /* [positions] each: lse(x_p) = row_max + log_sum, kept apart so that
                                  (lse - x_c) = (row_max - x_c) + log_sum loses nothing when the max is huge */
    double weight_total; /* sum of the class weights (C without weights) */
    double denominator; /* of the mean */
} ce_saved;

/* The strided path works on tiles of at most TILE_MAX neighbouring positions; every loop over a tile runs along
 * its positions, which are contiguous in memory for each class. */
#define TILE_MAX 1024

typedef struct {
    int64_t o, j0, n; /* the positions o * inner + j0 to o * inner + j0 + n - 1 */
    int64_t base; /* where the logits (and the softmax) of its first position's class 0 are */
} ce_tile;

static double class_weight(const ce_saved *s, int64_t c) { return s->opts.weight ? tg_get(s->opts.weight, c) : 1.0; }

static inline double element(tg_dtype dtype, const void *x, int64_t k)
{
    return dtype == TG_F32 ? (double)((const float *)x)[k] : ((const double *)x)[k];
}

/* The probability target's effective q at the position whose class 0 is at base, into q[C]; returns sum_c q_c. */
static double probability_target(const ce_saved *s, int64_t base, double *q)
{
    int64_t classes = s->shape.classes, stride = s->shape.inner;
    double eps = s->opts.label_smoothing, total = 0;
    for (int64_t c = 0; c < classes; c++) {
        q[c] = class_weight(s, c) * ((1 - eps) * tg_get(s->target, base + c * stride) + eps / (double)classes);
        total += q[c];
    }
    return total;
}

/* The semantics: position p's loss -sum_c q_c l_c (its class 0 at base, its softmax statistics already in
 * row_max / log_sum), and its target weight (w_t, 0 when ignored or for probabilities) in *weight. */
static inline double position_loss(const ce_saved *s, const tg_tensor *logits, int64_t p, int64_t base, double *weight,
                                   double *q)
{
    int64_t classes = s->shape.classes, stride = s->shape.inner;
    double max = s->row_max[p], log_sum = s->log_sum[p], eps = s->opts.label_smoothing, value = 0;
    const void *x = logits->data;
    *weight = 0;
    if (s->shape.class_targets) {
        int64_t t = ((const int64_t *)s->target->data)[p];
        if (t == s->opts.ignore_index)
            return 0;
        *weight = class_weight(s, t);
        value = (1 - eps) * *weight * ((max - element(logits->dtype, x, base + t * stride)) + log_sum);
        for (int64_t c = 0; eps != 0 && c < classes; c++)
            value += eps / (double)classes * class_weight(s, c) *
                     ((max - element(logits->dtype, x, base + c * stride)) + log_sum);
        return value;
    }
    double q_total = probability_target(s, base, q);
    for (int64_t c = 0; c < classes && q_total != 0; c++)
        if (q[c] != 0)
            value += q[c] * ((max - element(logits->dtype, x, base + c * stride)) + log_sum);
    return value;
}

/* ------------------------------------------------------------ contiguous rows */

/* Rows narrower than a vector would each pay a whole exp's latency for a few lanes: shift every row by its
 * max first, then take the exps of the whole block in one vectorised pass; in float32 the rows' logs too
 * (libm's logf per row was a tenth of a 32x10 call), into *narrow_sums ([2K]: sums, then logs). */
static int narrow_rows_exps(tg_tape *tape, ce_saved *s, const tg_tensor *logits, float **narrow_sums)
{
    int64_t rows = s->shape.positions, classes = s->shape.classes;
    TG_FLOAT_DISPATCH(logits->dtype, T, {
        const T *xs = logits->data;
        T *e = s->softmax;
        for (int64_t i = 0; i < rows; i++) {
            T max = -INFINITY;
            for (int64_t c = 0; c < classes; c++)
                max = xs[i * classes + c] > max ? xs[i * classes + c] : max;
            s->row_max[i] = max;
            for (int64_t c = 0; c < classes; c++)
                e[i * classes + c] = xs[i * classes + c] - max;
        }
    });
    if (logits->dtype == TG_F64) {
        tg_exp_row_f64(s->softmax, 0.0, s->softmax, rows * classes);
        return 0;
    }
    tg_exp_row_f32(s->softmax, 0.0f, s->softmax, rows * classes);
    if (!(*narrow_sums = tg_tape_alloc(tape, (size_t)(2 * rows) * sizeof(float))))
        return -1;
    const float *e = s->softmax;
    for (int64_t i = 0; i < rows; i++) {
        float sum = 0;
        for (int64_t c = 0; c < classes; c++)
            sum += e[i * classes + c];
        (*narrow_sums)[i] = sum;
    }
    tg_log_row_f32(*narrow_sums, *narrow_sums + rows, rows);
    return 0;
}

/* Row i's softmax (its exps already there when narrow), max and log-sum-exp. */
static inline void row_softmax(ce_saved *s, const tg_tensor *logits, int64_t i, bool narrow, const float *narrow_sums)
{
    int64_t rows = s->shape.positions, classes = s->shape.classes;
    TG_FLOAT_DISPATCH(logits->dtype, T, {
        const T *x = (const T *)logits->data + i * classes;
        T *e = (T *)s->softmax + i * classes;
        double max = s->row_max[i], sum = 0, log_sum;
        if (narrow_sums) {
            sum = narrow_sums[i];
            log_sum = narrow_sums[rows + i];
        } else {
            if (narrow)
                for (int64_t c = 0; c < classes; c++)
                    sum += e[c];
            else
                sum = tg_row_exps(logits->dtype, x, e, classes, &max);
            log_sum = sizeof(T) == sizeof(float) ? (double)log((float)sum) : log(sum); /* logf for float32 */
        }
        s->row_max[i] = max;
        s->log_sum[i] = log_sum;
        const T inv = (T)(1 / sum);
        for (int64_t c = 0; c < classes; c++)
            e[c] *= inv;
    });
}

static int rows_forward(tg_tape *tape, ce_saved *s, const tg_tensor *logits, double *row_loss, double *row_weight,
                        double *q)
{
    int64_t rows = s->shape.positions, classes = s->shape.classes;
    bool narrow = classes < 32;
    float *narrow_sums = NULL;
    if (narrow && narrow_rows_exps(tape, s, logits, &narrow_sums))
        return -1;
    int threads = s->shape.class_targets ? tg_threads_for(rows * classes) : 1; /* probability rows share q */
    TG_FOR_ROWS(threads, i, rows, {
        row_softmax(s, logits, i, narrow, narrow_sums);
        row_loss[i] = position_loss(s, logits, i, i * classes, &row_weight[i], q);
    });
    return 0;
}

/* ------------------------------------------------------------ strided rows */

/* Positions per tile: TILE_MAX or the row's length; 1 for contiguous rows. */
static int64_t tile_width(const tg_loss_shape *shape) { return shape->inner < TILE_MAX ? shape->inner : TILE_MAX; }

/* Tile k of those `width` wide: the n positions from o * inner + j0 on. */
static ce_tile tile_at(const tg_loss_shape *shape, int64_t width, int64_t k)
{
    int64_t per_row = (shape->inner + width - 1) / width;
    ce_tile t = { .o = k / per_row, .j0 = k % per_row * width };
    t.n = shape->inner - t.j0 < width ? shape->inner - t.j0 : width;
    t.base = t.o * shape->classes * shape->inner + t.j0;
    return t;
}

static int64_t tile_count(const tg_loss_shape *shape, int64_t width)
{
    return shape->outer * ((shape->inner + width - 1) / width);
}

/* A tile's max per position into row_max, and e = x - max into the softmax buffer, walking the class axis with
 * its stride: every inner loop runs along the tile's n positions, contiguous in memory (vectorised; a wide
 * tile reads whole pages in order, which the hardware prefetches). */
static void tile_shift(ce_saved *s, const tg_tensor *logits, ce_tile t)
{
    int64_t classes = s->shape.classes, stride = s->shape.inner, n = t.n, p0 = t.o * stride + t.j0;
    TG_FLOAT_DISPATCH(logits->dtype, T, {
        const T *x = (const T *)logits->data + t.base;
        T *e = (T *)s->softmax + t.base;
        T max[TILE_MAX];
        for (int64_t j = 0; j < n; j++)
            max[j] = -INFINITY;
        for (int64_t c = 0; c < classes; c++)
            for (int64_t j = 0; j < n; j++)
                max[j] = x[c * stride + j] > max[j] ? x[c * stride + j] : max[j];
        for (int64_t c = 0; c < classes; c++)
            for (int64_t j = 0; j < n; j++)
                e[c * stride + j] = x[c * stride + j] - max[j];
        for (int64_t j = 0; j < n; j++)
            s->row_max[p0 + j] = max[j];
    });
}

/* e = exp(e) over n elements at offset, vectorised. */
static void exps_in_place(tg_dtype dtype, void *e, int64_t offset, int64_t n)
{
    if (dtype == TG_F32)
        tg_exp_row_f32((float *)e + offset, 0.0f, (float *)e + offset, n);
    else
        tg_exp_row_f64((double *)e + offset, 0.0, (double *)e + offset, n);
}

/* A tile's sums of exps (exps_of_rows: take the exps of its class rows first), their logs and inverses. The
 * exps are not normalised: the backward folds 1 / sum into its scale, which saves a pass over the logits. */
static void tile_sums(ce_saved *s, tg_dtype dtype, ce_tile t, bool exps_of_rows)
{
    int64_t classes = s->shape.classes, stride = s->shape.inner, n = t.n, p0 = t.o * stride + t.j0;
    TG_FLOAT_DISPATCH(dtype, T, {
        const T *e = (const T *)s->softmax + t.base;
        T sum[TILE_MAX], log_sum[TILE_MAX];
        memset(sum, 0, (size_t)n * sizeof *sum); /* not the whole array: a tile may hold a few positions */
        for (int64_t c = 0; c < classes; c++) {
            if (exps_of_rows)
                exps_in_place(dtype, s->softmax, t.base + c * stride, n);
            for (int64_t j = 0; j < n; j++)
                sum[j] += e[c * stride + j];
        }
        for (int64_t j = 0; sizeof(T) == sizeof(double) && j < n; j++)
            log_sum[j] = log(sum[j]);
        if (sizeof(T) == sizeof(float)) /* every sum is at least 1: its max's exp(0) */
            tg_log_row_f32((const void *)sum, (void *)log_sum, n);
        for (int64_t j = 0; j < n; j++) {
            s->log_sum[p0 + j] = log_sum[j];
            s->inv_sum[p0 + j] = 1 / (double)sum[j];
        }
    });
}

/* Tiles go in groups: one tile when it is part of a row, else as many whole rows as make about TILE_MAX
 * positions, whose exps are then one contiguous block (one vectorised call, not one per short class row). */
static void strided_forward(ce_saved *s, const tg_tensor *logits, double *row_loss, double *row_weight, double *q)
{
    int64_t width = tile_width(&s->shape), tiles = tile_count(&s->shape, width);
    int64_t group = width < s->shape.inner ? 1 : (TILE_MAX + width - 1) / width;
    int64_t block = s->shape.classes * s->shape.inner; /* one row's elements */
    int threads = s->shape.class_targets ? tg_threads_for(s->shape.positions * s->shape.classes) : 1; /* shared q */
    TG_FOR_ROWS(threads, k, (tiles + group - 1) / group, {
        int64_t first = k * group, last = first + group < tiles ? first + group : tiles;
        for (int64_t i = first; i < last; i++)
            tile_shift(s, logits, tile_at(&s->shape, width, i));
        if (group > 1)
            exps_in_place(logits->dtype, s->softmax, first * block, (last - first) * block);
        for (int64_t i = first; i < last; i++) {
            ce_tile t = tile_at(&s->shape, width, i);
            tile_sums(s, logits->dtype, t, group == 1);
            for (int64_t j = 0; j < t.n; j++) {
                int64_t p = t.o * s->shape.inner + t.j0 + j;
                row_loss[p] = position_loss(s, logits, p, t.base + j, &row_weight[p], q);
            }
        }
    });
}

/* ------------------------------------------------------------ the op */

/* The positions' losses into loss as the reduction asks, summed in position order afterwards so that any
 * thread count gives the same bits; sets the mean's denominator. */
static void reduce_losses(ce_saved *s, tg_tensor *loss, const double *row_loss, const double *row_weight)
{
    double total = 0, denominator = 0;
    TG_FLOAT_DISPATCH(loss->dtype, T, {
        T *losses = loss->data;
        for (int64_t p = 0; p < s->shape.positions; p++) {
            if (s->opts.reduction == TG_NONE)
                losses[p] = (T)row_loss[p];
            total += row_loss[p];
            denominator += row_weight[p];
        }
    });
    if (!s->shape.class_targets)
        denominator = (double)s->shape.positions;
    tg_loss_reduce(loss, s->opts.reduction, total, denominator); /* no target weight at all: NaN */
    s->denominator = denominator;
}

static int cross_entropy_backward(tg_tape *tape, tg_node *node);

tg_tensor *tg_cross_entropy(tg_tape *tape, tg_tensor *logits, tg_tensor *target, const tg_ce_opts *opts)
{
    if (!tape)
        return tg_error("cross_entropy: tape is NULL");
    ce_saved *s = tg_tape_alloc(tape, sizeof *s);
    if (!s)
        return NULL;
    s->opts = opts ? *opts : TG_CE_OPTS_DEFAULT;
    if (tg_loss_check("cross_entropy", logits, target, &s->opts, true, &s->shape))
        return NULL;
    s->target = target;
    int64_t positions = s->shape.positions, classes = s->shape.classes;
    tg_tensor *inputs[2] = { logits, target }; /* a probability target can take a gradient too */
    bool record = tg_tape_should_record(tape, inputs, 2);
    tg_tensor *loss = tg_tape_op_output(tape, logits->dtype, s->opts.reduction == TG_NONE ? s->shape.out_ndim : 0,
                                        s->shape.out_shape, false);
    double *q = s->shape.class_targets ? NULL : tg_tape_alloc(tape, (size_t)classes * sizeof *q);
    /* Every position's softmax is kept for the backward (and is each thread's scratch without one). */
    s->softmax = tg_tape_alloc(tape, (size_t)(positions * classes) * tg_dtype_size(logits->dtype));
    s->row_max = tg_tape_alloc(tape, (size_t)positions * sizeof *s->row_max);
    s->log_sum = tg_tape_alloc(tape, (size_t)positions * sizeof *s->log_sum);
    s->inv_sum = s->shape.inner > 1 ? tg_tape_alloc(tape, (size_t)positions * sizeof *s->inv_sum) : NULL;
    double *row_loss = tg_tape_alloc(tape, (size_t)positions * sizeof *row_loss);
    double *row_weight = tg_tape_alloc(tape, (size_t)positions * sizeof *row_weight);
    if (!loss || (!s->shape.class_targets && !q) || !s->softmax || !s->row_max || !s->log_sum ||
        (s->shape.inner > 1 && !s->inv_sum) || !row_loss || !row_weight)
        return NULL;
    s->weight_total = 0;
    for (int64_t c = 0; c < classes; c++)
        s->weight_total += class_weight(s, c);
    if (s->shape.inner > 1)
        strided_forward(s, logits, row_loss, row_weight, q);
    else if (rows_forward(tape, s, logits, row_loss, row_weight, q))
        return NULL;
    reduce_losses(s, loss, row_loss, row_weight);
    if (record) {
        tg_node *node = tg_tape_record(tape, "cross_entropy", cross_entropy_backward, loss, inputs, 2);
        if (!node)
            return NULL;
        node->saved = s;
    }
    return loss;
}

/* ------------------------------------------------------------ backward */

/* The upstream gradient of position p over the reduction's denominator. */
static double row_scale(const ce_saved *s, const tg_tensor *g, int64_t p)
{
    return tg_loss_grad_scale(g, s->opts.reduction, p, s->denominator);
}

/* Class indices, contiguous rows: row i's dx += r (sum(q) softmax - q), the softmax scaled in one vector loop. */
static void rows_backward(const ce_saved *s, const tg_tensor *g, tg_tensor *gx)
{
    int64_t rows = s->shape.positions, classes = s->shape.classes;
    double eps = s->opts.label_smoothing;
    const int64_t *labels = s->target->data;
    TG_FLOAT_DISPATCH(gx->dtype, T, {
        const T *probs = s->softmax;
        TG_FOR_ROWS(tg_threads_for(rows * classes), i, rows, {
            double r = row_scale(s, g, i);
            const T *p = probs + i * classes;
            T *d = (T *)gx->data + i * classes;
            int64_t t = labels[i];
            if (t == s->opts.ignore_index)
                continue;
            double wt = class_weight(s, t), q_total = (1 - eps) * wt + eps / (double)classes * s->weight_total;
            const T scale = (T)(r * q_total);
            for (int64_t c = 0; c < classes; c++)
                d[c] += scale * p[c];
            if (eps != 0)
                for (int64_t c = 0; c < classes; c++)
                    d[c] -= (T)(r * eps / (double)classes * class_weight(s, c));
            d[t] -= (T)(r * (1 - eps) * wt);
        });
    });
}

/* Class indices, strided rows: the same per position, for a tile's positions at once along the class axis. */
static void tile_backward(const ce_saved *s, const tg_tensor *g, tg_tensor *gx, ce_tile t)
{
    int64_t classes = s->shape.classes, stride = s->shape.inner, n = t.n, p0 = t.o * stride + t.j0;
    double eps = s->opts.label_smoothing, smooth[TILE_MAX];
    const int64_t *labels = (const int64_t *)s->target->data + p0;
    TG_FLOAT_DISPATCH(gx->dtype, T, {
        const T *p = (const T *)s->softmax + t.base;
        T *d = (T *)gx->data + t.base;
        T scale[TILE_MAX];
        for (int64_t j = 0; j < n; j++) {
            bool kept = labels[j] != s->opts.ignore_index;
            double r = kept ? row_scale(s, g, p0 + j) : 0, wt = kept ? class_weight(s, labels[j]) : 0;
            scale[j] = (T)(r * ((1 - eps) * wt + eps / (double)classes * s->weight_total) * s->inv_sum[p0 + j]);
            smooth[j] = r * eps / (double)classes;
        }
        for (int64_t c = 0; c < classes; c++)
            for (int64_t j = 0; j < n; j++)
                d[c * stride + j] += scale[j] * p[c * stride + j];
        for (int64_t c = 0; eps != 0 && c < classes; c++) {
            double wc = class_weight(s, c);
            for (int64_t j = 0; j < n; j++)
                d[c * stride + j] -= (T)(smooth[j] * wc);
        }
        for (int64_t j = 0; j < n; j++)
            if (labels[j] != s->opts.ignore_index)
                d[labels[j] * stride + j] -= (T)(row_scale(s, g, p0 + j) * (1 - eps) * class_weight(s, labels[j]));
    });
}

/* Probability targets, any layout (one thread: q is shared): dx += r (sum(q) softmax - q) and
 * dy_c += -r w_c (1 - eps) log softmax(x)_c, position by position. */
static void probability_backward(const ce_saved *s, const tg_tensor *x, const tg_tensor *g, tg_tensor *gx,
                                 tg_tensor *gy, double *q)
{
    int64_t classes = s->shape.classes, stride = s->shape.inner;
    int64_t width = tile_width(&s->shape), tiles = tile_count(&s->shape, width);
    double eps = s->opts.label_smoothing;
    TG_FLOAT_DISPATCH(x->dtype, T, {
        const T *xs = x->data;
        for (int64_t k = 0; k < tiles; k++) {
            ce_tile t = tile_at(&s->shape, width, k);
            for (int64_t j = 0, i = t.o * stride + t.j0; j < t.n; j++, i++) {
                int64_t base = t.base + j;
                const T *probs = (const T *)s->softmax + base;
                double r = row_scale(s, g, i), inv_sum = s->inv_sum ? s->inv_sum[i] : 1; /* x 1 is exact */
                for (int64_t c = 0; gy && c < classes; c++)
                    ((T *)gy->data)[base + c * stride] -=
                        (T)(r * class_weight(s, c) * (1 - eps) *
                            ((double)xs[base + c * stride] - s->row_max[i] - s->log_sum[i]));
                double q_total = probability_target(s, base, q);
                T *dx = gx ? (T *)gx->data + base : NULL;
                for (int64_t c = 0; dx && c < classes; c++)
                    dx[c * stride] += (T)(r * ((double)probs[c * stride] * inv_sum * q_total - q[c]));
            }
        }
    });
}

/* dx = r (softmax(x) sum(q) - q) per position, r the upstream gradient over the reduction's denominator;
 * for probability targets also dy_c = -r w_c (1 - eps) log softmax(x)_c */
static int cross_entropy_backward(tg_tape *tape, tg_node *node)
{
    const ce_saved *s = node->saved;
    tg_tensor *x = node->inputs[0], *g = node->out->grad;
    bool failed = false;
    tg_tensor *gx = tg_grad_buffer(tape, x, &failed);
    tg_tensor *gy = s->shape.class_targets ? NULL : tg_grad_buffer(tape, node->inputs[1], &failed);
    if (failed)
        return -1;
    double *q = NULL;
    if (!s->shape.class_targets && !(q = tg_tape_alloc(tape, (size_t)s->shape.classes * sizeof *q)))
        return -1;
    if (s->opts.reduction == TG_MEAN && s->denominator == 0)
        return 0; /* no target weight: nothing depends on x */
    if (!s->shape.class_targets) {
        probability_backward(s, x, g, gx, gy, q);
        return 0;
    }
    if (!gx)
        return 0;
    if (s->shape.inner == 1) {
        rows_backward(s, g, gx);
        return 0;
    }
    int64_t width = tile_width(&s->shape);
    TG_FOR_ROWS(tg_threads_for(s->shape.positions * s->shape.classes), k, tile_count(&s->shape, width),
                { tile_backward(s, g, gx, tile_at(&s->shape, width, k)); });
    return 0;
}
