/* The tapegrad command: its usage and the dispatch to one file per command
 * (train.c, eval.c, predict.c, cv.c, gradcheck.c). Every command is argument
 * parsing and printing around the library's public API; no training logic
 * lives in tools/. */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char *usage_main = "usage: tapegrad <command> [options]\n"
                                "\n"
                                "Train, evaluate and check small classifiers described by JSON configs.\n"
                                "\n"
                                "commands:\n"
                                "  train CONFIG.json       train a model, print test results, save it\n"
                                "  eval MODEL DATA         accuracy, loss and confusion matrix of a saved model\n"
                                "                          (DATA: a CSV, or a config for its test set)\n"
                                "  predict MODEL DATA.csv  one predicted label and its probability per row (CSV);\n"
                                "                          --proba: every class's probability\n"
                                "  cv CONFIG.json --folds K  stratified K-fold cross-validation over a --grid of\n"
                                "                          config values; --out refits the best and saves it\n"
                                "  gradcheck [CONFIG.json] check analytic gradients against finite differences\n"
                                "\n"
                                "Run 'tapegrad <command> --help' for a command's options. Every command takes\n"
                                "--threads N (default: TAPEGRAD_NUM_THREADS, else the number of cores).\n"
                                "Exit status: 0 on success, 1 on an error, 2 on a usage error.\n";

static int run(int argc, char **argv)
{
    if (argc < 2)
        return fputs(usage_main, stderr), 2;
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0)
        return (tg_dist_rank() == 0 ? fputs(usage_main, stdout) : 0), 0; /* once, under mpirun */
    if (strcmp(cmd, "--version") == 0)
        return printf("tapegrad %d.%d.%d%s\n", TG_VERSION_MAJOR, TG_VERSION_MINOR, TG_VERSION_PATCH,
                      tg_dist_built_with_mpi() ? " (built with MPI)" : ""),
               0;
    static char name[64];
    snprintf(name, sizeof name, "tapegrad %s", cmd);
    if (tg_dist_size() > 1) /* every message names the rank that says it */
        snprintf(name, sizeof name, "tapegrad %s (rank %d of %d)", cmd, tg_dist_rank(), tg_dist_size());
    command = name;
    if (strcmp(cmd, "train") == 0)
        return cmd_train(argc - 2, argv + 2);
    if (tg_dist_size() > 1)
        return fail("runs in one process: under mpirun, only tapegrad train runs across ranks"), 2;
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "predict") == 0)
        return cmd_predict(argc - 2, argv + 2);
    if (strcmp(cmd, "cv") == 0)
        return cmd_cv(argc - 2, argv + 2);
    if (strcmp(cmd, "gradcheck") == 0)
        return cmd_gradcheck(argc - 2, argv + 2);
    command = "tapegrad";
    fail("unknown command '%s'", cmd);
    return fputs(usage_main, stderr), 2;
}

/* Under mpirun (an MPI build), one rank per process: a rank that fails has said why and ends them all, so
 * none waits for it forever (docs/distributed.md). */
int main(int argc, char **argv)
{
    fit_threads_to_limits(); /* before any thread: a memory or thread limit must not hang the command */
    if (tg_dist_init())
        return fprintf(stderr, "tapegrad: %s\n", tg_last_error()), 1;
    int rc = run(argc, argv);
    if (rc != 0 && rc != 128 + SIGINT && rc != 128 + SIGTERM) /* an interrupted run stopped every rank alike */
        tg_dist_abort(rc);
    tg_dist_finalize();
    return rc;
}
