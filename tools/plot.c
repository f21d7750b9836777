/* Plots as standalone SVG files: the learning curves of a training run (train
 * and validation loss on the left axis, validation accuracy on the right) and
 * an evaluation's ROC curves and reliability diagram. One panel type draws
 * every frame, grid and axis. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { WIDTH = 760, HEIGHT = 440, LEFT = 70, RIGHT = 70, TOP = 40, BOTTOM = 60 };

/* A plotting area on the page and the data ranges it shows. */
typedef struct {
    double left, top, width, height;
    double x_lo, x_hi, y_lo, y_hi;
} panel;

static double nice_step(double range)
{
    double raw = range / 5, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    return mag * (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10);
}

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

static void write_curves(FILE *f, const void *ctx)
{
    const tg_training *t = ctx;
    int n = t->epochs_run;
    double hi = 0;
    for (int e = 0; e < n; e++) {
        if (isfinite(t->train_loss[e]) && t->train_loss[e] > hi)
            hi = t->train_loss[e];
        if (isfinite(t->val_loss[e]) && t->val_loss[e] > hi)
            hi = t->val_loss[e];
    }
    double step = nice_step(hi > 0 ? hi : 1);
    hi = ceil((hi > 0 ? hi : 1) / step) * step;
    /* One epoch sits in the middle; more spread from edge to edge. */
    panel loss = { LEFT, TOP, WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM, n > 1 ? 1 : 0, n > 1 ? n : 2, 0, hi };
    panel accuracy = loss;
    accuracy.y_hi = 1;
    svg_open(f, WIDTH, HEIGHT);
    panel_frame(f, &loss, "Learning curves", "epoch", "loss");
    panel_y_ticks(f, &loss, step, "%g");
    /* Right axis: accuracy in [0, 1]. */
    double right = loss.left + loss.width;
    for (int k = 0; k <= 5; k++) {
        double v = k / 5.0, y = py(&accuracy, v);
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#444\"/>\n", right, y, right + 5, y);
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">%.1f</text>\n", right + 8, y + 4, v);
    }
    fprintf(f, "<text transform=\"translate(%d %.0f) rotate(90)\" text-anchor=\"middle\">validation accuracy</text>\n",
            WIDTH - 14, loss.top + loss.height / 2);
    /* Bottom axis: epochs, at most ~10 labelled ticks. */
    int every = n > 10 ? (n + 9) / 10 : 1;
    char label[16];
    for (int e = 1; e <= n; e++) {
        if ((e - 1) % every && e != n)
            continue;
        snprintf(label, sizeof label, "%d", e);
        panel_x_tick(f, &loss, e, label);
    }
    double *epochs = malloc((size_t)(n > 0 ? n : 1) * sizeof *epochs);
    if (epochs) {
        for (int e = 0; e < n; e++)
            epochs[e] = e + 1;
        panel_line(f, &loss, epochs, t->train_loss, n, "#1f77b4", "", 1);
        panel_line(f, &loss, epochs, t->val_loss, n, "#ff7f0e", "", 1);
        panel_line(f, &accuracy, epochs, t->val_accuracy, n, "#2ca02c", " stroke-dasharray=\"6 4\"", 1);
        free(epochs);
    }
    /* Legend in the middle band, where accuracy (near 1) and loss (near 0) rarely are. */
    const char *names[3] = { "train loss", "validation loss", "validation accuracy (right axis)" };
    const char *colours[3] = { "#1f77b4", "#ff7f0e", "#2ca02c" };
    legend(f, right - 240, loss.top + loss.height * 2 / 5 - 6, 232, 3, names, colours, (int[]){ 0, 0, 1 });
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

static int write_svg_file(const char *path, void (*draw)(FILE *, const void *), const void *ctx, const char **why)
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
