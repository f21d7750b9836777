/* The fuzz corpus and every input that once broke a loader, replayed through
 * the calls the fuzz targets make (tests/fuzz/fuzz_inputs.c), without
 * libFuzzer: tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/.
 * No input may crash (the sanitizer build also checks every access) or leak
 * (counted through the allocator hooks, so every build checks it), a refusal
 * must say why in tg_last_error(), and a seed named ok-* must load. */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <tapegrad.h>

#include "fuzz/fuzz_inputs.h"

typedef fuzz_outcome (*fuzz_run)(const uint8_t *data, size_t size);

/* Blocks the library holds: its allocations minus its frees (a realloc of a
 * block moves it, never frees it: tg_realloc never asks for 0 bytes). */
static long live_blocks;

static void *counting_malloc(size_t bytes)
{
    void *p = malloc(bytes);
    live_blocks += p != NULL;
    return p;
}

static void *counting_realloc(void *p, size_t bytes)
{
    void *q = realloc(p, bytes);
    live_blocks += q && !p;
    return q;
}

static void counting_free(void *p)
{
    live_blocks -= p != NULL;
    free(p);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static uint8_t *read_input(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    uint8_t *data = malloc(cap);
    cr_assert_not_null(data);
    for (size_t got; (got = fread(data + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            data = realloc(data, cap *= 2);
            cr_assert_not_null(data);
        }
    }
    cr_assert_eq(ferror(f), 0, "cannot read %s", path);
    fclose(f);
    *size = n;
    return data;
}

/* Runs every file of tests/fuzz/<kind>/<target>/ (in name order, so a report
 * is the same each time); returns how many there were. */
static int replay_folder(const char *kind, const char *target, fuzz_run run, int required)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/%s/%s", TAPEGRAD_SOURCE_DIR, kind, target);
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT && !required)
        return 0; /* git keeps no empty folder: no regression yet */
    cr_assert_not_null(d, "cannot open %s", dir);
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof *names);
        cr_assert_not_null(names);
        names[n] = strdup(e->d_name);
        cr_assert_not_null(names[n++]);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);

    int files = 0;
    for (size_t i = 0; i < n; i++) {
        char path[2048];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t size;
            uint8_t *data = read_input(path, &size);
            live_blocks = 0;
            fuzz_name_input(path);
            fuzz_outcome o = run(data, size);
            fuzz_name_input(NULL);
            free(data);
            files++;
            cr_expect_eq(live_blocks, 0, "%s: the loaders leaked %ld blocks", path, live_blocks);
            cr_expect_gt(o.calls, 0, "%s: no loader call made", path);
            cr_expect_eq(o.silent, 0, "%s: %d of %d loader calls refused it with tg_last_error() empty", path, o.silent,
                         o.calls);
            if (strncmp(names[i], "ok-", 3) == 0)
                cr_expect_gt(o.accepted, 0, "%s: a valid seed, refused by every call: %s", path, tg_last_error());
        }
        free(names[i]);
    }
    free(names);
    return files;
}

static void replay(const char *target, fuzz_run run)
{
    tg_set_allocator(counting_malloc, counting_realloc, counting_free);
    fuzz_scratch_open();
    int seeds = replay_folder("corpus", target, run, 1);
    replay_folder("regressions", target, run, 0);
    fuzz_scratch_close();
    cr_expect_gt(seeds, 0, "tests/fuzz/corpus/%s holds no seed", target);
}

Test(fuzz_regressions, config) { replay("config", fuzz_config); }

Test(fuzz_regressions, csv) { replay("csv", fuzz_csv); }

Test(fuzz_regressions, idx) { replay("idx", fuzz_idx); }

Test(fuzz_regressions, safetensors) { replay("safetensors", fuzz_safetensors); }

Test(fuzz_regressions, libsvm) { replay("libsvm", fuzz_libsvm); }
