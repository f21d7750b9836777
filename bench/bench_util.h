/* What the benchmark drivers share: a monotonic clock, an allocator that
 * counts its calls (installed through tg_set_allocator, the public hook),
 * peak RSS, and the one-line JSON records bench/run.py reads. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <tapegrad.h>

#include <stddef.h>
#include <stdint.h>

double bench_now(void);
/* CPU time of the whole process (every thread): on a shared machine, a 1-thread
 * run's CPU time does not count the time the scheduler gave to others. */
double bench_cpu_now(void);

/* Installs the counting allocator; call before the library makes anything. */
void bench_count_allocations(void);
/* malloc + realloc + free calls made by the library since the start. */
uint64_t bench_allocator_calls(void);

/* Peak resident set size of this process so far, in KiB. */
long bench_peak_rss_kib(void);

/* Prints tg_last_error() with what failed and exits: a driver has no one to return to. */
_Noreturn void bench_fail(const char *what);

#endif
