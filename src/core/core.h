/* What every layer of the library uses and users must not see: allocation
 * through the hooks, the per-thread error, strings, the thread budget, the
 * dtype dispatch and the vector width. Includes nothing of the library but
 * the public header. The layers above, in include order: tensor, autograd
 * (the tape), ops, nn, io, train. */
#ifndef TAPEGRAD_CORE_H
#define TAPEGRAD_CORE_H

#include "tapegrad.h"
#include <stdbool.h>

/* ---- allocation and errors (src/core/alloc.c, src/core/error.c) ---- */

void *tg_alloc(size_t bytes); /* sets the error on failure */
void *tg_alloc_zeroed(size_t bytes);
void *tg_realloc(void *p, size_t bytes);
void tg_dealloc(void *p);
/* Sets this thread's error (printf format); returns NULL so ops can `return tg_error(...)`. */
void *tg_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* Formats a shape as "[2, 3]" into buf. */
const char *tg_shape_str(char *buf, size_t size, int ndim, const int64_t *shape);
#define TG_SHAPE_BUF 160

/* ---- strings (src/core/strings.c) ---- */

/* A copy of s from the library's allocator; NULL (error set) on failure. */
char *tg_strdup(const char *s);
/* Frees an array of n strings and the array. */
void tg_free_strings(char **strings, int64_t n);
/* The first byte of s that does not start a valid UTF-8 sequence, or NULL when s is UTF-8. */
const char *tg_utf8_first_invalid(const char *s);

/* "1.5 GiB" into buf. */
const char *tg_bytes_str(char *buf, size_t size, double bytes);
/* Bytes of physical memory (sysconf), or 0 when unknown: the bound sizes are checked against (src/core/alloc.c). */
uint64_t tg_physical_memory(void);

/* ---- dtypes ---- */

/* Runs the statements once with T typedef'd to the element type of a float dtype. */
#define TG_FLOAT_DISPATCH(dtype, T, ...)                                                                               \
    do {                                                                                                               \
        if ((dtype) == TG_F32) {                                                                                       \
            typedef float T;                                                                                           \
            __VA_ARGS__                                                                                                \
        } else {                                                                                                       \
            typedef double T;                                                                                          \
            __VA_ARGS__                                                                                                \
        }                                                                                                              \
    } while (0)

/* ---- threads (src/core/threads.c) ---- */

/* Threads to use for a loop over `work` elements: 1 below the size where a
 * parallel region pays, else the budget (src/core/threads.c). */
int tg_threads_for(int64_t work);
#define TG_PRAGMA(x) _Pragma(#x)
/* for (int64_t I = 0; I < N; I++) BODY, split over `threads` threads when there are several. One
 * thread runs a plain loop: entering an OpenMP region costs a team set-up (a malloc) even for one. */
#ifdef _OPENMP
#define TG_FOR_ROWS(threads, I, N, ...)                                                                                \
    do {                                                                                                               \
        if ((threads) > 1) {                                                                                           \
            TG_PRAGMA(omp parallel for num_threads(threads) schedule(static))                                          \
            for (int64_t I = 0; I < (N); I++)                                                                          \
                __VA_ARGS__                                                                                            \
        } else {                                                                                                       \
            for (int64_t I = 0; I < (N); I++)                                                                          \
                __VA_ARGS__                                                                                            \
        }                                                                                                              \
    } while (0)
#else
#define TG_FOR_ROWS(threads, I, N, ...)                                                                                \
    do {                                                                                                               \
        (void)(threads);                                                                                               \
        for (int64_t I = 0; I < (N); I++)                                                                              \
            __VA_ARGS__                                                                                                \
    } while (0)
#endif

/* ---- vector kernels ---- */

/* The widest vector the target has, for the kernels written with GCC vector types. */
#if defined(__AVX512F__)
#define TG_VEC_BYTES 64
#elif defined(__AVX__)
#define TG_VEC_BYTES 32
#else
#define TG_VEC_BYTES 16
#endif

#endif
