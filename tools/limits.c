/* Thread counts the process can afford, decided before any thread starts (see blas_lazy.c).
 * Under an address-space limit (ulimit -v) each thread costs its stack and, for OpenBLAS, a
 * 32 MB buffer; where thread creation fails (ulimit -u, a container's pids limit) there is
 * only the main thread. Too many threads there means a hang or an exit without a message. */
#include "cli.h"

#include <pthread.h>
#include <sys/resource.h>

#define MIB ((rlim_t)1 << 20)
/* What one more thread may take: an 8 MB stack, OpenBLAS's 32 MB buffer, and margin. */
#define PER_THREAD (64 * MIB)
/* What the process holds before its threads: OpenBLAS's 36 MB of code, its main buffer, the data. */
#define BASE (160 * MIB)

static void *nothing(void *arg) { return arg; }

static bool can_start_a_thread(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) != 0)
        return false;
    pthread_join(t, NULL);
    return true;
}

void fit_threads_to_limits(void)
{
    int threads = tg_num_threads();
    struct rlimit as;
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
        rlim_t room = as.rlim_cur > BASE ? (as.rlim_cur - BASE) / PER_THREAD : 0;
        if (room < (rlim_t)threads)
            threads = room > 1 ? (int)room : 1;
    }
    if (threads > 1 && !can_start_a_thread())
        threads = 1;
    tg_set_num_threads(threads);
#ifdef TAPEGRAD_LAZY_BLAS
    blas_lazy_configure(threads);
#endif
}
