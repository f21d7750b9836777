/* The allocator hooks: every byte the library (and cJSON, once the toolkit
 * loads it) takes from the system passes through here, so a caller can count,
 * cap or fail allocations. */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *(*hook_malloc)(size_t) = malloc;
static void *(*hook_realloc)(void *, size_t) = realloc;
static void (*hook_free)(void *) = free;

void tg_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t), void (*free_fn)(void *))
{
    hook_malloc = malloc_fn ? malloc_fn : malloc;
    hook_realloc = realloc_fn ? realloc_fn : realloc;
    hook_free = free_fn ? free_fn : free;
}

void *tg_alloc(size_t bytes)
{
    void *p = hook_malloc(bytes ? bytes : 1);
    if (!p)
        tg_error("out of memory: allocating %zu bytes failed", bytes);
    return p;
}

void *tg_alloc_zeroed(size_t bytes)
{
    void *p = tg_alloc(bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void *tg_realloc(void *p, size_t bytes)
{
    void *q = hook_realloc(p, bytes ? bytes : 1);
    if (!q)
        tg_error("out of memory: growing a block to %zu bytes failed", bytes);
    return q;
}

void tg_dealloc(void *p)
{
    if (p)
        hook_free(p);
}

uint64_t tg_physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}
