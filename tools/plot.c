/* Learning curves as a standalone SVG: train and validation loss on the left
 * axis, validation accuracy on the right, epochs along the bottom. */
#define _XOPEN_SOURCE 700 /* realpath, lstat */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { WIDTH = 760, HEIGHT = 440, LEFT = 70, RIGHT = 70, TOP = 40, BOTTOM = 60 };

static double nice_step(double range)
{
    double raw = range / 5, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    return mag * (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10);
}

static double x_of(int epoch, int epochs)
{
    return LEFT + (epochs > 1 ? (double)(epoch - 1) / (epochs - 1) : 0.5) * (WIDTH - LEFT - RIGHT);
}

static double y_of(double v, double lo, double hi) { return TOP + (1 - (v - lo) / (hi - lo)) * (HEIGHT - TOP - BOTTOM); }

static void polyline(FILE *f, const double *values, int n, double lo, double hi, const char *colour, const char *dash)
{
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", colour, dash);
    for (int e = 0; e < n; e++)
        if (isfinite(values[e]))
            fprintf(f, "%.1f,%.1f ", x_of(e + 1, n), y_of(values[e], lo, hi));
    fprintf(f, "\"/>\n");
    for (int e = 0; e < n; e++)
        if (isfinite(values[e]))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", x_of(e + 1, n),
                    y_of(values[e], lo, hi), colour);
}

static void write_svg(FILE *f, const tg_training *t)
{
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
    int plot_w = WIDTH - LEFT - RIGHT, plot_h = HEIGHT - TOP - BOTTOM;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n",
            WIDTH, HEIGHT, WIDTH, HEIGHT);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">Learning curves</text>\n", WIDTH / 2);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n", LEFT, TOP,
            plot_w, plot_h);
    /* Left axis: loss. */
    for (double v = 0; v <= hi + step / 2; v += step) {
        double y = y_of(v, 0, hi);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", LEFT, y, LEFT + plot_w, y);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#444\"/>\n", LEFT - 5, y, LEFT, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", LEFT - 8, y + 4, v);
    }
    /* Right axis: accuracy in [0, 1]. */
    for (int k = 0; k <= 5; k++) {
        double v = k / 5.0, y = y_of(v, 0, 1);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#444\"/>\n", LEFT + plot_w, y,
                LEFT + plot_w + 5, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\">%.1f</text>\n", LEFT + plot_w + 8, y + 4, v);
    }
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
    fprintf(f, "<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">loss</text>\n",
            TOP + plot_h / 2);
    fprintf(f, "<text transform=\"translate(%d %d) rotate(90)\" text-anchor=\"middle\">validation accuracy</text>\n",
            WIDTH - 14, TOP + plot_h / 2);
    polyline(f, t->train_loss, n, 0, hi, "#1f77b4", "");
    polyline(f, t->val_loss, n, 0, hi, "#ff7f0e", "");
    polyline(f, t->val_accuracy, n, 0, 1, "#2ca02c", " stroke-dasharray=\"6 4\"");
    /* Legend, boxed, in the middle band where accuracy (near 1) and loss (near 0) rarely are. */
    const char *names[3] = { "train loss", "validation loss", "validation accuracy (right axis)" };
    const char *colours[3] = { "#1f77b4", "#ff7f0e", "#2ca02c" };
    int legend_top = TOP + plot_h * 2 / 5 - 6;
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"232\" height=\"60\" fill=\"white\" fill-opacity=\"0.9\" "
               "stroke=\"#bbb\"/>\n",
            LEFT + plot_w - 240, legend_top);
    for (int k = 0; k < 3; k++) {
        int y = legend_top + 14 + 18 * k;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                LEFT + plot_w - 230, y, LEFT + plot_w - 205, y, colours[k], k == 2 ? " stroke-dasharray=\"6 4\"" : "");
        fprintf(f, "<text x=\"%d\" y=\"%d\">%s</text>\n", LEFT + plot_w - 198, y + 4, names[k]);
    }
    fprintf(f, "</svg>\n");
}

static int write_svg_file(const char *path, const tg_training *t, const char **why);

int write_curves_svg(const char *path, const tg_training *t, const char **why)
{
    /* A symbolic link is followed, as tg_model_save does: its target is replaced and the link kept. */
    struct stat link;
    char *target = lstat(path, &link) == 0 && S_ISLNK(link.st_mode) ? realpath(path, NULL) : NULL;
    if (target)
        path = target;
    int rc = write_svg_file(path, t, why);
    free(target);
    return rc;
}

static int write_svg_file(const char *path, const tg_training *t, const char **why)
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
