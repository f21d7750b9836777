/* Trains RUNS models one after the other, then the same RUNS at once on their
 * own threads, and compares the weights bit for bit. Shared by the Criterion
 * test (tests/test_threads.c) and the ThreadSanitizer driver
 * (tests/tsan_threads.c), since Criterion itself cannot start under TSan. */
#ifndef TAPEGRAD_THREADS_SCENARIO_H
#define TAPEGRAD_THREADS_SCENARIO_H

#include <stddef.h>

/* 0 when every concurrent run equals its sequential twin; else non-zero with why. */
int threads_scenario(const char *config_path, char *why, size_t why_size);

#endif
