/* What every command of the tapegrad tool shares: its name in messages and one way to fail. */
#define _XOPEN_SOURCE 700 /* realpath, lstat */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *command = "tapegrad";

int fail(const char *fmt, ...)
{
    /* one write of the whole line: under mpirun the ranks share a stderr, and pieces would interleave */
    char line[4096];
    int n = snprintf(line, sizeof line, "%s: error: ", command);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (len == sizeof line - 1)
        line[len - 1] = '\n'; /* cut: still one line */
    else
        line[len++] = '\n', line[len] = '\0';
    fflush(stderr);
    fputs(line, stderr);
    fflush(stderr);
    return 1;
}

const char *command_name(void)
{
    /* "tapegrad train (rank 0 of 2)" -> "tapegrad train": what a user types */
    static char plain[64];
    snprintf(plain, sizeof plain, "%s", command);
    char *rank = strstr(plain, " (rank ");
    if (rank)
        *rank = '\0';
    return plain;
}

int parse_options(int argc, char **argv, int max_positional, int allowed, options *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **value = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            o->help = true;
        else if ((allowed & OPT_JSON) && strcmp(a, "--json") == 0)
            o->json = true;
        else if ((allowed & OPT_PROBA) && strcmp(a, "--proba") == 0)
            o->proba = true;
        else if ((allowed & OPT_QUIET) && (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0))
            o->quiet = true;
        else if ((allowed & OPT_OUT) && strncmp(a, "--out", 5) == 0 && (a[5] == 0 || a[5] == '='))
            value = &o->out;
        else if ((allowed & OPT_PLOT) && strncmp(a, "--plot", 6) == 0 && (a[6] == 0 || a[6] == '='))
            value = &o->plot;
        else if (strncmp(a, "--threads", 9) == 0 && (a[9] == 0 || a[9] == '='))
            value = &o->threads;
        else if ((allowed & OPT_CV) && strncmp(a, "--folds", 7) == 0 && (a[7] == 0 || a[7] == '='))
            value = &o->folds;
        else if ((allowed & OPT_CV) && strncmp(a, "--metric", 8) == 0 && (a[8] == 0 || a[8] == '='))
            value = &o->metric;
        else if ((allowed & OPT_RESUME) && strncmp(a, "--resume", 8) == 0 && (a[8] == 0 || a[8] == '='))
            value = &o->resume;
        else if ((allowed & OPT_RESUME) && strncmp(a, "--checkpoint-every", 18) == 0 && (a[18] == 0 || a[18] == '='))
            value = &o->checkpoint_every;
        else if ((allowed & OPT_CV) && strncmp(a, "--grid", 6) == 0 && (a[6] == 0 || a[6] == '=')) {
            if (o->n_grid == CLI_MAX_GRID)
                return fail("at most %d --grid options", CLI_MAX_GRID), 2;
            value = &o->grid[o->n_grid++];
        } else if (a[0] == '-' && a[1] != 0)
            return fail("unknown option '%s' (see '%s --help')", a, command_name()), 2;
        else if (o->n_positional < max_positional)
            o->positional[o->n_positional++] = a;
        else
            return fail("unexpected argument '%s' (see '%s --help')", a, command_name()), 2;
        if (value) {
            const char *eq = strchr(a, '=');
            if (eq)
                *value = eq + 1;
            else if (i + 1 < argc)
                *value = argv[++i];
            else
                return fail("%s needs a value", a), 2;
            if (!**value)
                return fail("%s needs a non-empty value", a), 2;
            if ((value == &o->out && o->plot && strcmp(o->out, o->plot) == 0) ||
                (value == &o->plot && o->out && strcmp(o->out, o->plot) == 0))
                return fail("--out and --plot name the same file"), 2;
        }
    }
    if (o->threads) {
        char *end;
        long n = strtol(o->threads, &end, 10);
        if (*end || n < 1 || n > 1024)
            return fail("--threads %s: expected a whole number from 1 to 1024", o->threads), 2;
        tg_set_num_threads((int)n);
    }
    return 0;
}

const char *label_of(const tg_model *m, int64_t k, char *buf, size_t size)
{
    const char *name = tg_model_label(m, k);
    if (name)
        return name;
    snprintf(buf, size, "%lld", (long long)k);
    return buf;
}

/* With two classes, the positive one is the label that sorts second, as scikit-learn's classes_: numbers by
 * value, other labels by their bytes. */
int64_t positive_class(const tg_model *m, int64_t classes)
{
    if (classes != 2)
        return -1;
    if (tg_model_layer(m, tg_model_n_layers(m) - 1)->out == 1)
        return 1; /* a one-output model's logit is class 1's (training put the positive class there) */
    char a_buf[32], b_buf[32], *a_end, *b_end;
    const char *a = label_of(m, 0, a_buf, sizeof a_buf), *b = label_of(m, 1, b_buf, sizeof b_buf);
    double x = strtod(a, &a_end), y = strtod(b, &b_end);
    if (*a && *b && !*a_end && !*b_end)
        return x > y ? 0 : 1;
    return strcmp(a, b) > 0 ? 0 : 1;
}

void print_json(cJSON *o)
{
    char *text = cJSON_Print(o);
    if (text) {
        puts(text);
        cJSON_free(text);
    }
    cJSON_Delete(o);
}

double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One line per solver iteration (optimizer lbfgs): in place on a terminal, every 10th otherwise. */
static int print_solver_iteration(progress_state *s, const tg_progress *p)
{
    if (s->live)
        fprintf(s->out, "\r\033[Kiteration %4d/%d  objective/(C n) %.10g  %.2fs", p->epoch, p->epochs, p->train_loss,
                p->seconds);
    else if (p->epoch % 10 == 0)
        fprintf(s->out, "iteration %4d/%d  objective/(C n) %.10g  %.2fs\n", p->epoch, p->epochs, p->train_loss,
                p->seconds);
    fflush(s->out);
    return 0;
}

int on_progress(const tg_progress *p, void *ctx)
{
    progress_state *s = ctx;
    if (s->quiet)
        return 0;
    if (!p->finished) {
        double now = wall_seconds();
        if (!s->live || now - s->last_draw < 0.1)
            return 0;
        s->last_draw = now;
        int filled = (int)(30.0 * (double)p->step / (double)p->steps_per_epoch);
        fprintf(s->out, "\r\033[Kepoch %3d/%d [%.*s%*s] %3d%%  train loss %.4f", p->epoch, p->epochs, filled,
                "##############################", 30 - filled, "",
                (int)(100.0 * (double)p->step / (double)p->steps_per_epoch), p->train_loss);
        fflush(s->out);
        return 0;
    }
    if (p->full_batch)
        return print_solver_iteration(s, p);
    if (s->live)
        fprintf(s->out, "\r\033[K");
    fprintf(s->out, "epoch %3d/%d  train loss %.4f", p->epoch, p->epochs, p->train_loss);
    if (!isnan(p->val_loss))
        fprintf(s->out, "  val loss %.4f  val acc %.4f", p->val_loss, p->val_accuracy);
    fprintf(s->out, "  lr %.3g  %.2fs\n", p->lr, p->seconds);
    fflush(s->out);
    return 0;
}

/* Whether two paths name one existing file (hard links and symlinks included). */
bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Whether a new file can be made in path's folder (and path is not a folder): made and removed at once. */
bool folder_takes_new_file(const char *path, const char **why)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        *why = "it is a folder";
        return false;
    }
    size_t n = strlen(path);
    char *probe = malloc(n + 24);
    if (!probe) {
        *why = "out of memory";
        return false;
    }
    snprintf(probe, n + 24, "%s.probe.XXXXXX", path);
    int fd = mkstemp(probe);
    if (fd < 0) {
        *why = strerror(errno);
        free(probe);
        return false;
    }
    close(fd);
    unlink(probe);
    free(probe);
    return true;
}

int check_output(const char *option, const char *path, const char *const *inputs, size_t n_inputs)
{
    if (!path)
        return 0;
    for (size_t i = 0; i < n_inputs; i++)
        if (inputs[i] && (strcmp(path, inputs[i]) == 0 || same_file(path, inputs[i])))
            return fail("%s %s names %s, an input of this run; it would be overwritten", option, path, inputs[i]), 2;
    /* A device, FIFO, socket or folder is refused (the rename would replace the node); a symbolic link is
     * followed, so its target's folder is the one that must take a new file. */
    if (tg_check_save_path(path)) {
        const char *error = tg_last_error();
        size_t n = strlen(path); /* the library's message starts with the path */
        return fail("%s %s: cannot write there: it %s", option, path,
                    strncmp(error, path, n) == 0 && error[n] == ':' ? error + n + 2 : error),
               2;
    }
    struct stat st;
    char *target = lstat(path, &st) == 0 && S_ISLNK(st.st_mode) ? realpath(path, NULL) : NULL;
    const char *why = NULL;
    bool ok = folder_takes_new_file(target ? target : path, &why);
    free(target);
    if (!ok)
        return fail("%s %s: cannot write there: %s", option, path, why), 2;
    return 0;
}
