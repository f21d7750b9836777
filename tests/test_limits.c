/* The command under resource limits (issue 10): under `ulimit -v` from 20 MB up, and where
 * threads cannot start, every command exits within seconds, with its output or a message of
 * ours, never a hang (OpenBLAS's pool used to loop at exit) nor an exit from inside OpenBLAS. */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

#define DEADLINE_SECONDS 10

typedef struct {
    int status; /* waitpid's, or -1 when the deadline passed (the child was killed) */
    double seconds;
    char *out, *err;
} run_result;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *slurp(const char *path)
{
    size_t size;
    unsigned char *bytes = read_bytes(path, &size);
    char *text = realloc(bytes, size + 1);
    cr_assert_not_null(text);
    text[size] = '\0';
    return text;
}

/* Runs the command with the address space capped at as_mb (0: no cap) and the stack limit at
 * stack_mb (0: unchanged), killing it after DEADLINE_SECONDS. */
static run_result run_limited(const char *dir, long as_mb, long stack_mb, char *const argv[])
{
    char *out_path = join_path(dir, "stdout"), *err_path = join_path(dir, "stderr");
    double start = now();
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644),
            err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(99);
        if (stack_mb) {
            struct rlimit st = { (rlim_t)stack_mb << 20, (rlim_t)stack_mb << 20 };
            if (setrlimit(RLIMIT_STACK, &st) != 0)
                _exit(98);
        }
        if (as_mb) {
            struct rlimit as = { (rlim_t)as_mb << 20, (rlim_t)as_mb << 20 };
            if (setrlimit(RLIMIT_AS, &as) != 0)
                _exit(97);
        }
        unsetenv("TAPEGRAD_NUM_THREADS");
        unsetenv("OPENBLAS_NUM_THREADS");
        execv(TAPEGRAD_CLI, argv);
        _exit(96);
    }
    run_result r = { -1, 0, NULL, NULL };
    while (now() - start < DEADLINE_SECONDS) {
        int status;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            r.status = status;
            break;
        }
        struct timespec pause = { 0, 10 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    }
    if (r.status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    r.seconds = now() - start;
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    free(out_path);
    free(err_path);
    return r;
}

/* Exited by itself (no signal, no deadline) with 0 and its output, or 1 / 2 and our message. */
static void assert_ours(const run_result *r, long as_mb, const char *what, const char *expected_out)
{
    cr_assert_neq(r->status, -1, "%s under %ld MB: still running after %d s (a hang)", what, as_mb, DEADLINE_SECONDS);
    cr_assert(WIFEXITED(r->status), "%s under %ld MB: killed by signal %d; stderr: %s", what, as_mb,
              WTERMSIG(r->status), r->err);
    int code = WEXITSTATUS(r->status);
    if (code == 0) {
        cr_assert(strstr(r->out, expected_out), "%s under %ld MB: exit 0 without \"%s\" in stdout: %s", what, as_mb,
                  expected_out, r->out);
    } else {
        cr_assert(code == 1 || code == 2, "%s under %ld MB: exit %d (not ours); stderr: %s", what, as_mb, code, r->err);
        cr_assert(strncmp(r->err, "tapegrad", 8) == 0, "%s under %ld MB: exit %d without a message of ours: %s", what,
                  as_mb, code, r->err);
    }
}

static void free_result(run_result *r)
{
    free(r->out);
    free(r->err);
}

Test(limits, every_command_exits_with_our_message_under_ulimit_v, .timeout = 600)
{
#ifdef SANITIZED
    cr_skip_test("AddressSanitizer reserves terabytes of address space: ulimit -v cannot apply");
#endif
    char *dir = make_temp_dir("tapegrad-limits"), *model = join_path(dir, "model.safetensors");
    char config[] = TAPEGRAD_SOURCE_DIR "/examples/iris_mlp.json", data[] = TAPEGRAD_SOURCE_DIR "/data/iris.csv";
    /* A model to evaluate and predict with, trained without a limit. */
    run_result r = run_limited(dir, 0, 0, (char *[]){ "tapegrad", "train", config, "--quiet", "--out", model, NULL });
    assert_ours(&r, 0, "train", "test accuracy");
    free_result(&r);
    struct {
        const char *what, *expected;
        char *argv[8];
    } commands[] = {
        { "--version", "tapegrad ", { "tapegrad", "--version", NULL } },
        { "train", "test accuracy", { "tapegrad", "train", config, "--quiet", "--out", model, NULL } },
        { "eval", "accuracy", { "tapegrad", "eval", model, data, NULL } },
        { "predict", "setosa", { "tapegrad", "predict", model, data, NULL } },
    };
    long limits[] = { 20, 30, 50, 80, 120, 180, 256 };
    for (size_t l = 0; l < sizeof limits / sizeof *limits; l++)
        for (size_t c = 0; c < sizeof commands / sizeof *commands; c++) {
            r = run_limited(dir, limits[l], 0, commands[c].argv);
            cr_log_info("limits: %-9s under %3ld MB: %s in %.2f s%s%.120s", commands[c].what, limits[l],
                        WIFEXITED(r.status) ? (WEXITSTATUS(r.status) ? "failed" : "ok") : "killed", r.seconds,
                        *r.err ? ", stderr: " : "", r.err);
            assert_ours(&r, limits[l], commands[c].what, commands[c].expected);
            free_result(&r);
        }
    remove(model);
    char *files[] = { join_path(dir, "stdout"), join_path(dir, "stderr") };
    for (int i = 0; i < 2; i++) {
        remove(files[i]);
        free(files[i]);
    }
    remove(dir);
    free(model);
    free(dir);
}

Test(limits, commands_run_where_threads_cannot_start, .timeout = 120)
{
#ifdef SANITIZED
    cr_skip_test("AddressSanitizer reserves terabytes of address space: ulimit -v cannot apply");
#endif
    /* A 1 GB stack limit makes every new thread ask for a 1 GB stack, which a 600 MB address space
     * cannot map: pthread_create fails while the process itself has room. */
    char *dir = make_temp_dir("tapegrad-threads"), *model = join_path(dir, "model.safetensors");
    char config[] = TAPEGRAD_SOURCE_DIR "/examples/digits.json";
    run_result r =
        run_limited(dir, 600, 1024, (char *[]){ "tapegrad", "train", config, "--quiet", "--out", model, NULL });
    assert_ours(&r, 600, "train digits without threads", "test accuracy");
    free_result(&r);
    remove(model);
    char *files[] = { join_path(dir, "stdout"), join_path(dir, "stderr") };
    for (int i = 0; i < 2; i++) {
        remove(files[i]);
        free(files[i]);
    }
    remove(dir);
    free(model);
    free(dir);
}
