/* Learning curves as a standalone SVG: train and validation loss on the left
 * axis (log scale, so the curves stay readable once they flatten), validation
 * accuracy on the right, epochs along the bottom. */
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
                    y_at(c->accuracy ? accuracy_fraction(g, c->values[e]) : loss_fraction(g, c->values[e])),
                    c->colour);
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
            fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", LEFT, y,
                    LEFT + plot_w, y);
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

static void write_svg(FILE *f, const tg_training *t)
{
    int n = t->epochs_run, plot_w = WIDTH - LEFT - RIGHT, plot_h = plot_height();
    grid g = make_grid(t);
    bool validation = any_finite(t->val_loss, n) || any_finite(t->val_accuracy, n);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n",
            WIDTH, HEIGHT, WIDTH, HEIGHT);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">Learning curves</text>\n", WIDTH / 2);
    draw_grid(f, &g, validation);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", LEFT, TOP,
            plot_w, plot_h);
    /* Bottom axis: epochs, at most ~10 labelled ticks. */
    int every = n > 10 ? (n + 9) / 10 : 1;
    for (int e = 1; e <= n; e++) {
        if ((e - 1) % every && e != n)
            continue;
        double x = x_of(e, n);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#444\"/>\n", x, TOP + plot_h, x,
                TOP + plot_h + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x, TOP + plot_h + 18, e);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n", LEFT + plot_w / 2, HEIGHT - 18);
    fprintf(f, "<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">loss (log scale)</text>\n",
            TOP + plot_h / 2);
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

int write_curves_svg(const char *path, const tg_training *t, const char **why)
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
    write_svg(f, t);
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
