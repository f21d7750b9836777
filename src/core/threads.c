/* One thread budget for the whole library: the row-parallel loops (OpenMP)
 * and BLAS share it, so on two cores there are two threads, not two pools of
 * two fighting over them. */
#define _GNU_SOURCE /* sched_getaffinity: the cores this process may run on */
#include "core/core.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef TAPEGRAD_USE_BLAS
void openblas_set_num_threads(int num_threads);
#endif

static int budget;
static pthread_once_t budget_once = PTHREAD_ONCE_INIT;

static void apply(int n)
{
    budget = n;
#ifdef TAPEGRAD_USE_BLAS
    openblas_set_num_threads(n);
#endif
}

/* TAPEGRAD_NUM_THREADS, else the cores this process may run on (its affinity mask, so taskset and
 * cgroup pinning are respected). A malformed value falls back to that count; the library never prints. */
static void init_budget(void)
{
    const char *env = getenv("TAPEGRAD_NUM_THREADS");
    char *end = NULL;
    long n = env ? strtol(env, &end, 10) : 0;
    if (!env || end == env || *end || n < 1 || n > 1024) {
        cpu_set_t cores;
        n = sched_getaffinity(0, sizeof cores, &cores) == 0 ? CPU_COUNT(&cores) : sysconf(_SC_NPROCESSORS_ONLN);
    }
    apply(n >= 1 ? (int)n : 1);
}

void tg_set_num_threads(int n)
{
    pthread_once(&budget_once, init_budget);
    if (n >= 1)
        apply(n);
}

int tg_num_threads(void)
{
    pthread_once(&budget_once, init_budget);
    return budget;
}

int tg_threads_for(int64_t work)
{
#ifdef _OPENMP
    /* Below this much work a parallel region costs more than it saves (measured: a few microseconds to wake a team). */
    return work >= 32768 ? tg_num_threads() : 1;
#else
    (void)work;
    return 1;
#endif
}
