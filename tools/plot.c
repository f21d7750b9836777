/* Plots as standalone SVG files: the learning curves of a training run (train
 * and validation loss on the left axis, log scale, so the curves stay readable
 * once they flatten; validation accuracy on the right; epochs along the
 * bottom), and an evaluation's ROC curves and reliability diagram. One panel
 * type draws every frame, axis name and bottom tick; one writer makes every
 * file. */
#define _XOPEN_SOURCE 700 /* realpath, lstat */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The plot area's top leaves a row above the frame for the legend, so no curve
 * ever runs under it. */
enum { WIDTH = 760, HEIGHT = 460, LEFT = 70, RIGHT = 70, TOP = 62, BOTTOM = 60 };
enum { MAX_MARKERS = 30 }; /* beyond this many epochs, lines only: markers would merge into a band */

/* A plotting area on the page and the data ranges it shows. */
typedef struct {
    double left, top, width, height;
    double x_lo, x_hi, y_lo, y_hi;
} panel;

static double px(const panel *p, double x) { return p->left + (x - p->x_lo) / (p->x_hi - p->x_lo) * p->width; }
static double py(const panel *p, double y) { return p->top + (1 - (y - p->y_lo) / (p->y_hi - p->y_lo)) * p->height; }

static void svg_open(FILE *f, int width, int height)
{
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n",
            width, height, width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
}

/* The frame, the title above it and the axis names beside it. */
static void panel_frame(FILE *f, const panel *p, const char *title, const char *x_name, const char *y_name)
{
    if (title)
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n",
                p->left + p->width / 2, p->top - 16, title);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", p->left,
            p->top, p->width, p->height);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n", p->left + p->width / 2,
            p->top + p->height + 42, x_name);
    fprintf(f, "<text transform=\"translate(%.0f %.0f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", p->left - 52,
            p->top + p->height / 2, y_name);
}

/* Left-axis ticks from y_lo to y_hi every step, with grid lines across. */
static void panel_y_ticks(FILE *f, const panel *p, double step, const char *format)
{
    for (double v = p->y_lo; v <= p->y_hi + step / 2; v += step) {
        double y = py(p, v);
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", p->left, y,
                p->left + p->width, y);
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#444\"/>\n", p->left - 5, y, p->left,
                y);
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">", p->left - 8, y + 4);
        fprintf(f, format, v);
        fprintf(f, "</text>\n");
    }
}

/* One bottom-axis tick at data x, labelled. */
static void panel_x_tick(FILE *f, const panel *p, double x, const char *label)
{
    double at = px(p, x), bottom = p->top + p->height;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#444\"/>\n", at, bottom, at, bottom + 5);
    fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n", at, bottom + 18, label);
}

/* A line through the finite points (x[i], y[i]), with a dot at each when dots is set. */
static void panel_line(FILE *f, const panel *p, const double *x, const double *y, int n, const char *colour,
                       const char *dash, int dots)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", colour, dash);
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i]))
            fprintf(f, "%.1f,%.1f ", px(p, x[i]), py(p, y[i]));
    fprintf(f, "\"/>\n");
    for (int i = 0; i < n && dots; i++)
        if (isfinite(x[i]) && isfinite(y[i]))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", px(p, x[i]), py(p, y[i]), colour);
}

/* A boxed legend whose top-left corner is (x, y) on the page; dashed[k] draws entry k dashed. */
static void legend(FILE *f, double x, double y, double width, int n, const char *const *names,
                   const char *const *colours, const int *dashed)
{
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%d\" fill=\"white\" fill-opacity=\"0.9\" "
            "stroke=\"#bbb\"/>\n",
            x, y, width, 6 + 18 * n);
    for (int k = 0; k < n; k++) {
        double row = y + 14 + 18 * k;
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                x + 10, row, x + 35, row, colours[k], dashed && dashed[k] ? " stroke-dasharray=\"6 4\"" : "");
        fprintf(f, "<text x=\"%.0f\" y=\"%.0f\">", x + 42, row + 4);
        for (const char *c = names[k]; *c; c++) /* labels come from data: escape what XML reserves */
            fputs(*c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '&' ? "&amp;" : (char[]){ *c, 0 }, f);
        fprintf(f, "</text>\n");
    }
}

/* ---- learning curves ---- */

/* The horizontal grid: `rows` equal intervals (3, 5 or 6), and both vertical
 * axes put their ticks on its lines. Loss is on a log scale, one interval being
 * a factor `ratio` (10; 2 when the losses lie within about a decade), from lo at
 * the bottom line to lo * ratio^rows at the top. Validation accuracy is linear
 * from 0 with 1.0 on the line below the top (step 1 / (rows - 1): 0.5, 0.25 or
 * 0.2), so a perfect accuracy is never drawn on the frame. */
typedef struct {
    int rows;
    double ratio, lo; /* loss at the bottom line */
    double acc_step;
} grid;

static grid make_grid(const tg_training *t)
{
    double min = INFINITY, max = 0;
    for (int e = 0; e < t->epochs_run; e++) {
        const double v[2] = { t->train_loss[e], t->val_loss[e] };
        for (int k = 0; k < 2; k++)
            if (isfinite(v[k]) && v[k] > 0) {
                min = v[k] < min ? v[k] : min;
                max = v[k] > max ? v[k] : max;
            }
    }
    if (!(max > 0)) /* no positive loss at all: any range will do */
        min = 0.1, max = 1;
    grid g = { .ratio = 10 };
    double bottom = floor(log10(min)), top = ceil(log10(max));
    if (top - bottom <= 1) { /* within a decade or two neighbouring ones: factors of 2 */
        g.ratio = 2;
        bottom = floor(log2(min));
        top = ceil(log2(max));
    }
    if (top - bottom > 6) /* a loss far below the rest (a near-perfect fit) is clipped to the bottom */
        bottom = top - 6;
    g.rows = top - bottom <= 3 ? 3 : top - bottom <= 5 ? 5 : 6; /* extended downwards */
    g.lo = pow(g.ratio, top - g.rows);
    g.acc_step = 1.0 / (g.rows - 1);
    return g;
}

static int plot_height(void) { return HEIGHT - TOP - BOTTOM; }

/* The y of grid fraction f (0 at the bottom line, 1 at the top). */
static double y_at(double f) { return TOP + (1 - f) * plot_height(); }

static double loss_fraction(const grid *g, double v)
{
    double f = v > 0 ? log(v / g->lo) / log(g->ratio) / g->rows : 0;
    return f < 0 ? 0 : f > 1 ? 1 : f;
}

static double accuracy_fraction(const grid *g, double v) { return v / (g->acc_step * g->rows); }

static double x_of(int epoch, int epochs)
{
    return LEFT + (epochs > 1 ? (double)(epoch - 1) / (epochs - 1) : 0.5) * (WIDTH - LEFT - RIGHT);
}

typedef struct {
    const double *values;
    const char *name, *colour, *dash;
    bool accuracy; /* right axis */
} curve;

static void draw_curve(FILE *f, const grid *g, const curve *c, int n)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", c->colour, c->dash);
    for (int e = 0; e < n; e++)
        if (isfinite(c->values[e]))
            fprintf(f, "%.1f,%.1f ", x_of(e + 1, n),
                    y_at(c->accuracy ? accuracy_fraction(g, c->values[e]) : loss_fraction(g, c->values[e])));
    fprintf(f, "\"/>\n");
    if (n > MAX_MARKERS)
        return;
    for (int e = 0; e < n; e++)
        if (isfinite(c->values[e]))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", x_of(e + 1, n),
                    y_at(c->accuracy ? accuracy_fraction(g, c->values[e]) : loss_fraction(g, c->values[e])), c->colour);
}

static bool any_finite(const double *values, int n)
{
    for (int e = 0; e < n; e++)
        if (isfinite(values[e]))
            return true;
    return false;
}

/* Grid lines and both axes' ticks, from the same fractions k / rows. */
static void draw_grid(FILE *f, const grid *g, bool accuracy)
{
    int plot_w = WIDTH - LEFT - RIGHT;
    for (int k = 0; k <= g->rows; k++) {
        double y = y_at((double)k / g->rows);
        if (k > 0 && k < g->rows)
            fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", LEFT, y, LEFT + plot_w,
                    y);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#444\"/>\n", LEFT - 5, y, LEFT, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", LEFT - 8, y + 4,
                g->lo * pow(g->ratio, k));
        if (!accuracy)
            continue;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#444\"/>\n", LEFT + plot_w, y,
                LEFT + plot_w + 5, y);
        if (k < g->rows) /* no label above 1: an accuracy cannot be there */
            fprintf(f, "<text x=\"%d\" y=\"%.1f\">%g</text>\n", LEFT + plot_w + 8, y + 4, k * g->acc_step);
    }
}

static void write_curves(FILE *f, const void *ctx)
{
    const tg_training *t = ctx;
    int n = t->epochs_run, plot_w = WIDTH - LEFT - RIGHT, plot_h = plot_height();
    grid g = make_grid(t);
    bool validation = any_finite(t->val_loss, n) || any_finite(t->val_accuracy, n);
    /* The epochs' panel: one epoch sits in the middle, more spread from edge to edge (x_of's rule). */
    panel epochs = { LEFT, TOP, plot_w, plot_h, n > 1 ? 1 : 0, n > 1 ? n : 2, 0, 1 };
    svg_open(f, WIDTH, HEIGHT);
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">Learning curves</text>\n", WIDTH / 2);
    draw_grid(f, &g, validation);
    panel_frame(f, &epochs, NULL, "epoch", "loss (log scale)");
    /* Bottom axis: epochs, at most ~10 labelled ticks. */
    int every = n > 10 ? (n + 9) / 10 : 1;
    char label[16];
    for (int e = 1; e <= n; e++) {
        if ((e - 1) % every && e != n)
            continue;
        snprintf(label, sizeof label, "%d", e);
        panel_x_tick(f, &epochs, e, label);
    }
    if (validation)
        fprintf(f,
                "<text transform=\"translate(%d %d) rotate(90)\" text-anchor=\"middle\">validation accuracy</text>\n",
                WIDTH - 14, TOP + plot_h / 2);
    const curve curves[3] = {
        { t->train_loss, "train loss", "#1f77b4", "", false },
        { t->val_loss, "validation loss", "#ff7f0e", "", false },
        { t->val_accuracy, "validation accuracy (right axis)", "#2ca02c", " stroke-dasharray=\"6 4\"", true },
    };
    /* The legend, in one row between the title and the frame. */
    int x = LEFT;
    for (int k = 0; k < (validation ? 3 : 1); k++) {
        draw_curve(f, &g, &curves[k], n);
        fprintf(f, "<line x1=\"%d\" y1=\"44\" x2=\"%d\" y2=\"44\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", x, x + 25,
                curves[k].colour, curves[k].dash);
        fprintf(f, "<text x=\"%d\" y=\"48\">%s</text>\n", x + 31, curves[k].name);
        x += 31 + 7 * (int)strlen(curves[k].name) + 24;
    }
    fprintf(f, "</svg>\n");
}

/* ---- ROC curves and reliability diagram ---- */

static const char *const palette[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };
enum { PALETTE = sizeof palette / sizeof palette[0], CALIBRATION_BINS = 10 };

static void unit_axes(FILE *f, const panel *p)
{
    panel_y_ticks(f, p, 0.2, "%.1f");
    char label[8];
    for (int k = 0; k <= 5; k++) {
        snprintf(label, sizeof label, "%.1f", k / 5.0);
        panel_x_tick(f, p, k / 5.0, label);
    }
    /* The diagonal: chance (ROC) or perfect calibration (reliability). */
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" stroke-dasharray=\"4 4\"/>\n",
            px(p, 0), py(p, 0), px(p, 1), py(p, 1));
}

static void write_eval_plot(FILE *f, const void *ctx)
{
    const eval_plot *e = ctx;
    enum { PANEL = 340, GAP = 110, PAGE_W = LEFT + 2 * PANEL + GAP + 30, PAGE_H = HEIGHT };
    panel roc = { LEFT, TOP, PANEL, HEIGHT - TOP - BOTTOM, 0, 1, 0, 1 };
    panel reliability = roc;
    reliability.left = LEFT + PANEL + GAP;
    svg_open(f, PAGE_W, PAGE_H);
    panel_frame(f, &roc, "ROC curve", "false positive rate", "true positive rate");
    panel_frame(f, &reliability, "Reliability diagram", "mean predicted probability", "fraction of positives");
    unit_axes(f, &roc);
    unit_axes(f, &reliability);
    double *x = malloc((size_t)(e->rows + 1) * 2 * sizeof *x), *score = malloc((size_t)(e->rows + 1) * sizeof *score);
    const char *names[PALETTE];
    const char *colours[PALETTE];
    int n_curves = 0;
    for (int64_t k = 0; x && score && k < e->classes && n_curves < PALETTE; k++) {
        if (e->classes == 2 && k != e->positive)
            continue;
        for (int64_t r = 0; r < e->rows; r++)
            score[r] = e->probs[r * e->classes + k];
        double *y = x + e->rows + 1;
        int64_t points = tg_roc_curve(e->rows, e->y, score, k, x, y, NULL);
        if (points < 0)
            continue; /* a class absent from the data (or the only one) has no curve */
        colours[n_curves] = palette[n_curves];
        names[n_curves] = e->names[k];
        panel_line(f, &roc, x, y, (int)points, colours[n_curves], "", 0);
        int bins = tg_calibration_curve(e->rows, e->y, score, k, CALIBRATION_BINS, x, y, NULL);
        if (bins > 0)
            panel_line(f, &reliability, x, y, bins, colours[n_curves], "", 1);
        n_curves++;
    }
    free(x);
    free(score);
    if (n_curves > 0)
        legend(f, roc.left + roc.width - 170, roc.top + roc.height - 12 - 18 * n_curves, 162, n_curves, names, colours,
               NULL);
    fprintf(f, "</svg>\n");
}

/* ---- writing a file safely ---- */

static int write_svg_at(const char *path, void (*draw)(FILE *, const void *), const void *ctx, const char **why);

static int write_svg_file(const char *path, void (*draw)(FILE *, const void *), const void *ctx, const char **why)
{
    /* A symbolic link is followed, as tg_model_save does: its target is replaced and the link kept. */
    struct stat link;
    char *target = lstat(path, &link) == 0 && S_ISLNK(link.st_mode) ? realpath(path, NULL) : NULL;
    int rc = write_svg_at(target ? target : path, draw, ctx, why);
    free(target);
    return rc;
}

static int write_svg_at(const char *path, void (*draw)(FILE *, const void *), const void *ctx, const char **why)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp) {
        *why = "out of memory";
        return -1;
    }
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    /* mkstemp makes the file 0600: give it the replaced file's mode, or what the umask allows a new file. */
    struct stat old;
    mode_t mask = umask(0);
    umask(mask);
    if (fd >= 0)
        fchmod(fd, stat(path, &old) == 0 ? (old.st_mode & 0777) : (0666 & ~mask));
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        *why = strerror(errno);
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return -1;
    }
    draw(f, ctx);
    int failed = fflush(f) != 0 || ferror(f);
    failed |= fclose(f) != 0;
    if (failed || rename(tmp, path) != 0) {
        *why = strerror(errno);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    return 0;
}

int write_curves_svg(const char *path, const tg_training *t, const char **why)
{
    return write_svg_file(path, write_curves, t, why);
}

int write_eval_svg(const char *path, const eval_plot *e, const char **why)
{
    return write_svg_file(path, write_eval_plot, e, why);
}
