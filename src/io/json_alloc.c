/* cJSON's allocations routed through the library's hooks, installed once for
 * the process (cJSON's hooks are global), with a per-thread flag that tells a
 * failed allocation from bad JSON: cJSON reports both as a NULL parse. */
#include "io/io_internal.h"

#include <cjson/cJSON.h>
#include <pthread.h>

static _Thread_local bool allocation_failed;

static void *json_malloc(size_t bytes)
{
    void *p = tg_alloc(bytes);
    if (!p)
        allocation_failed = true;
    return p;
}

static void json_free(void *p) { tg_dealloc(p); }

static void install_hooks(void)
{
    cJSON_Hooks hooks = { json_malloc, json_free };
    cJSON_InitHooks(&hooks);
}

void tg_json_begin(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_hooks);
    allocation_failed = false;
}

bool tg_json_out_of_memory(void) { return allocation_failed; }
