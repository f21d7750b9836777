/* What the trainer needs from the processes it runs across (src/dist/dist.c):
 * who this process is, a sum over every process in a fixed order, a
 * broadcast. Serial (one process, nothing to do) when the library is built
 * without TAPEGRAD_MPI or the command was not started by mpirun. Includes only
 * core: any layer above may use it. */
#ifndef TAPEGRAD_DIST_H
#define TAPEGRAD_DIST_H

#include "core/core.h"

/* More than one process: the training loops split their rows and sum. */
bool tg_dist_parallel(void);
/* This process's share of n items, [*first, *end): the rank-th of tg_dist_size() near-equal slices, in
 * rank order (so rank 0 has the first rows). The whole range when serial. */
void tg_dist_share(int64_t n, int64_t *first, int64_t *end);
/* buf[k] = the sum over every rank of its buf[k], for k < n (dtype TG_F32 or TG_F64). The same bits on
 * every rank and in every run with this many ranks: each element's terms are added in rank order (float64
 * accumulation for float32 values). 0, or -1 with the error set. A no-op when serial. */
int tg_dist_sum(void *buf, int64_t n, tg_dtype dtype);
/* root's bytes into every rank's buf. 0, or -1 with the error set. */
int tg_dist_broadcast(void *buf, size_t bytes, int root);
/* Every rank's bytes (a different count on each) to every rank: *all (caller frees with tg_dealloc) holds
 * rank 0's, then rank 1's, ...; sizes[r] (tg_dist_size() entries, caller's) says how many are rank r's.
 * One process: a copy of mine. 0, or -1 with the error set. */
int tg_dist_gather_all(const void *mine, size_t bytes, void **all, size_t *sizes);
/* tg_dist_gather_all's result on rank root alone (the others get *all NULL and sizes untouched): every
 * rank's bytes, in rank order. 0, or -1 with the error set. */
int tg_dist_gather(const void *mine, size_t bytes, void **all, size_t *sizes, int root);
/* *v = the largest of every rank's *v. 0, or -1 with the error set. */
int tg_dist_max(int64_t *v);

#endif
