/* The learning curves `tapegrad train --plot` writes: a valid SVG (xmllint), that
 * librsvg renders (rsvg-convert, Debian's librsvg2-bin) at its stated size,
 * small; validation accuracy 1.0 drawn below the frame's top; the right axis's
 * ticks on the grid's lines; the loss curves still spread out after epoch 10;
 * no markers for a long run. Each fact is read back from the SVG's text. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h" /* read_bytes; TAPEGRAD_SOURCE_DIR and TAPEGRAD_CLI come from CMake */

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/tapegrad_plot_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    cr_assert_eq(system(command), 0);
}

TestSuite(plot, .init = make_dir, .fini = remove_dir);

static int sh(const char *fmt, const char *a, const char *b)
{
    char command[2048];
    int n = snprintf(command, sizeof command, fmt, a, b);
    cr_assert(n > 0 && (size_t)n < sizeof command);
    int status = system(command);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *read_text(const char *path, size_t *size)
{
    size_t n;
    char *text = (char *)read_bytes(path, &n);
    if (size)
        *size = n;
    return text;
}

/* Trains examples/NAME.json with --plot into the test folder; returns the SVG's text. */
static char *train_and_plot(const char *name, size_t *size)
{
    char config[512], svg[256];
    snprintf(config, sizeof config, "%s/examples/%s.json", TAPEGRAD_SOURCE_DIR, name);
    snprintf(svg, sizeof svg, "%s/curves.svg", dir);
    char command[1024];
    snprintf(command, sizeof command, "cd '%s' && '%s' train '%%s' --quiet --plot '%%s' >/dev/null", dir, TAPEGRAD_CLI);
    cr_assert_eq(sh(command, config, svg), 0, "training %s failed", name);
    return read_text(svg, size);
}

/* The numbers of attribute `name` of every element that starts with `tag`. */
static int attributes(const char *svg, const char *tag, const char *name, double *out, int max)
{
    int n = 0;
    char key[32];
    snprintf(key, sizeof key, " %s=\"", name);
    for (const char *p = svg; (p = strstr(p, tag)) && n < max; p++) {
        const char *end = strchr(p, '>'), *a = strstr(p, key);
        if (a && a < end)
            out[n++] = strtod(a + strlen(key), NULL);
    }
    return n;
}

/* The y of each point of the polyline drawn in colour. */
static int polyline_ys(const char *svg, const char *colour, double *ys, int max)
{
    char key[64];
    snprintf(key, sizeof key, "<polyline fill=\"none\" stroke=\"%s\"", colour);
    const char *p = strstr(svg, key);
    cr_assert_not_null(p, "no polyline in %s", colour);
    p = strstr(p, "points=\"") + strlen("points=\"");
    int n = 0;
    double x, y;
    int used;
    while (n < max && sscanf(p, "%lf,%lf %n", &x, &y, &used) == 2) {
        ys[n++] = y;
        p += used;
    }
    return n;
}

#define TRAIN "#1f77b4"
#define VALIDATION "#ff7f0e"
#define ACCURACY "#2ca02c"

Test(plot, iris_renders_is_valid_and_small)
{
    size_t size;
    free(train_and_plot("iris", &size));
    cr_expect_lt(size, 16 * 1024, "the SVG has %zu bytes", size);
    cr_assert_eq(sh("xmllint --noout '%s/curves.svg'%s", dir, ""), 0, "xmllint rejects the SVG");
    cr_assert_eq(sh("rsvg-convert '%s/curves.svg' -o '%s/curves.png'", dir, dir), 0, "rsvg-convert failed");
    char png[128];
    snprintf(png, sizeof png, "%s/curves.png", dir);
    size_t png_size;
    unsigned char *bytes = (unsigned char *)read_text(png, &png_size);
    cr_assert_gt(png_size, 24);
    cr_assert(memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0, "not a PNG");
    /* IHDR: width and height, big-endian, at bytes 16 and 20: the SVG's 760 x 460. */
    unsigned width = (unsigned)bytes[16] << 24 | (unsigned)bytes[17] << 16 | (unsigned)bytes[18] << 8 | bytes[19];
    unsigned height = (unsigned)bytes[20] << 24 | (unsigned)bytes[21] << 16 | (unsigned)bytes[22] << 8 | bytes[23];
    cr_expect_eq(width, 760);
    cr_expect_eq(height, 460);
    free(bytes);
}

Test(plot, iris_accuracy_one_is_inside_the_frame_and_ticks_sit_on_the_grid)
{
    char *svg = train_and_plot("iris", NULL);
    /* The frame: the rect with fill none after the background. */
    const char *frame = strstr(svg, "<rect x=");
    cr_assert_not_null(frame);
    double top, height;
    cr_assert_eq(sscanf(strstr(frame, " y=\"") + 4, "%lf", &top), 1);
    cr_assert_eq(sscanf(strstr(frame, " height=\"") + 9, "%lf", &height), 1);
    double ys[256];
    int n = polyline_ys(svg, ACCURACY, ys, 256);
    cr_assert_eq(n, 100, "one accuracy point per epoch");
    int at_one = 0;
    for (int e = 0; e < n; e++) {
        cr_expect_geq(ys[e], top + 0.1 * height, "epoch %d's accuracy is drawn within 10%% of the top frame", e + 1);
        at_one += ys[e] == ys[n - 1];
    }
    cr_expect_gt(at_one, 50, "iris reaches accuracy 1.0 and stays there");
    /* Grid lines (#ddd) and right-axis ticks: the ticks start at the frame's right edge. */
    double grid[32], x1[64], y1[64];
    int lines = 0;
    for (const char *p = svg; (p = strstr(p, "stroke=\"#ddd\"")); p++) {
        const char *start = p;
        while (start > svg && strncmp(start, "<line", 5) != 0)
            start--;
        cr_assert_eq(sscanf(strstr(start, " y1=\"") + 5, "%lf", &grid[lines]), 1);
        lines++;
    }
    cr_assert_geq(lines, 2, "at least two inner grid lines");
    int ticks = attributes(svg, "<line x1=", "x1", x1, 64);
    cr_assert_eq(attributes(svg, "<line x1=", "y1", y1, 64), ticks);
    double right = 760 - 70;
    int right_ticks = 0;
    for (int k = 0; k < ticks; k++) {
        if (x1[k] != right || y1[k] == top || y1[k] == top + height)
            continue;
        right_ticks++;
        bool on_grid = false;
        for (int g = 0; g < lines; g++)
            on_grid |= fabs(grid[g] - y1[k]) < 0.05;
        cr_expect(on_grid, "a right-axis tick at y %.1f is on no grid line", y1[k]);
    }
    cr_expect_eq(right_ticks, lines, "one right-axis tick per inner grid line");
    free(svg);
}

Test(plot, loss_curves_stay_spread_after_epoch_ten_and_long_runs_have_no_markers)
{
    char *svg = train_and_plot("iris", NULL);
    double ys[256];
    /* Validation loss falls from about 0.03 at epoch 10 to about 0.004 at epoch 100 (an 8-fold fall):
     * on the old linear axis that was 8 pixels; a log axis gives it a visible height. */
    int n = polyline_ys(svg, VALIDATION, ys, 256);
    cr_assert_eq(n, 100);
    cr_expect_gt(ys[99] - ys[9], 40, "validation loss after epoch 10 spans %.1f pixels", ys[99] - ys[9]);
    n = polyline_ys(svg, TRAIN, ys, 256);
    cr_expect_gt(ys[99] - ys[9], 20, "train loss after epoch 10 spans %.1f pixels", ys[99] - ys[9]);
    cr_expect_null(strstr(svg, "<circle"), "100 epochs are drawn without markers");
    cr_expect(strstr(svg, "log scale"), "the loss axis says it is logarithmic");
    free(svg);
    svg = train_and_plot("digits", NULL); /* 30 epochs: markers on every point of three curves */
    int circles = 0;
    for (const char *p = svg; (p = strstr(p, "<circle")); p++)
        circles++;
    cr_expect_eq(circles, 90);
    free(svg);
}
