#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double bench_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t allocator_calls;

static void *counting_malloc(size_t n)
{
    allocator_calls++;
    return malloc(n);
}

static void *counting_realloc(void *p, size_t n)
{
    allocator_calls++;
    return realloc(p, n);
}

static void counting_free(void *p)
{
    allocator_calls++;
    free(p);
}

void bench_count_allocations(void) { tg_set_allocator(counting_malloc, counting_realloc, counting_free); }

uint64_t bench_allocator_calls(void) { return allocator_calls; }

long bench_peak_rss_kib(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

_Noreturn void bench_fail(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, tg_last_error());
    exit(1);
}
