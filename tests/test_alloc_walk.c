/* SQLite-style fault injection over a whole run: load a config, train (two
 * steps on iris), save over an existing checkpoint, load it back. The clean
 * run's N allocations are each failed in turn, alone (mode A) and with every
 * later one (mode B); then each of the save's I/O calls is failed in turn.
 * Every run must end in an error with a message (or succeed, when the failed
 * allocation was a best-effort one), give back every block, and leave the old
 * checkpoint byte-identical unless the save succeeded. zlib's and stdio's own
 * buffers do not go through the hooks; everything of the library does.
 * Criterion runs each test in its own process, so the hook state is global. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tapegrad.h>

#include "helpers.h"

/* ---- allocator hooks that fail on demand and track every live block ---- */

enum { LIVE_SLOTS = 1 << 16 }; /* open addressing; the scenario's peak is a few hundred blocks */

static struct {
    long attempts; /* malloc and realloc calls, failed ones included */
    long fail_at; /* the attempt (1-based) that fails; 0: none */
    bool fail_after; /* mode B: fail_at and every later attempt fail */
    long failed; /* attempts that were failed */
    long live;
    long foreign_frees; /* frees (or reallocs) of a pointer the hooks never returned */
    void *slots[LIVE_SLOTS];
} hooks;

static size_t slot_of(const void *p)
{
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= (uintptr_t)0x9E3779B97F4A7C15u;
    return (size_t)(h >> 7) & (LIVE_SLOTS - 1);
}

static void track(void *p)
{
    size_t i = slot_of(p);
    while (hooks.slots[i])
        i = (i + 1) & (LIVE_SLOTS - 1);
    hooks.slots[i] = p;
    hooks.live++;
}

/* Linear probing's deletion: shift later members of the cluster back. */
static bool untrack(void *p)
{
    size_t i = slot_of(p);
    while (hooks.slots[i] != p) {
        if (!hooks.slots[i])
            return false;
        i = (i + 1) & (LIVE_SLOTS - 1);
    }
    hooks.slots[i] = NULL;
    for (size_t j = (i + 1) & (LIVE_SLOTS - 1); hooks.slots[j]; j = (j + 1) & (LIVE_SLOTS - 1)) {
        size_t home = slot_of(hooks.slots[j]);
        /* move slots[j] into the hole at i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            hooks.slots[i] = hooks.slots[j];
            hooks.slots[j] = NULL;
            i = j;
        }
    }
    hooks.live--;
    return true;
}

static bool attempt_fails(void)
{
    long n = ++hooks.attempts;
    bool fail = hooks.fail_at > 0 && (n == hooks.fail_at || (hooks.fail_after && n > hooks.fail_at));
    hooks.failed += fail;
    return fail;
}

static void *walk_malloc(size_t bytes)
{
    if (attempt_fails())
        return NULL;
    void *p = malloc(bytes);
    if (p)
        track(p);
    return p;
}

static void *walk_realloc(void *old, size_t bytes)
{
    if (attempt_fails())
        return NULL;
    if (old && !untrack(old)) {
        hooks.foreign_frees++;
        return NULL;
    }
    void *p = realloc(old, bytes);
    if (p)
        track(p);
    else if (old)
        track(old);
    return p;
}

static void walk_free(void *p)
{
    if (!p)
        return;
    if (!untrack(p)) {
        hooks.foreign_frees++;
        return; /* not ours: freeing it could corrupt the heap */
    }
    free(p);
}

static void arm(long fail_at, bool fail_after)
{
    hooks.attempts = 0;
    hooks.failed = 0;
    hooks.fail_at = fail_at;
    hooks.fail_after = fail_after;
}

/* ---- files ---- */

static bool file_is(const char *path, const unsigned char *bytes, size_t size)
{
    size_t now_size;
    unsigned char *now = read_bytes(path, &now_size);
    bool same = now_size == size && memcmp(now, bytes, size) == 0;
    free(now);
    return same;
}

/* Entries of dir other than . and ..; the first one not named `except` into stray. */
static int count_entries(const char *dir, const char *except1, const char *except2, char *stray, size_t size)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    stray[0] = '\0';
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        if (!stray[0] && strcmp(e->d_name, except1) != 0 && strcmp(e->d_name, except2) != 0)
            snprintf(stray, size, "%s", e->d_name);
    }
    closedir(d);
    return n;
}

static void remove_dir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *path = join_path(dir, e->d_name);
            unlink(path);
            free(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

/* ---- the scenario ---- */

/* 150 iris rows: 30 held out for test, 12 for validation, 108 to train in
 * batches of 64: two steps of Adam with class weights, label smoothing and
 * gradient clipping, then a validation pass that snapshots the best weights. */
static const char config_text[] =
    "{\n"
    "  \"data\": { \"train\": \"" TAPEGRAD_SOURCE_DIR "/data/iris.csv\", \"label\": \"species\",\n"
    "            \"test_split\": 0.2, \"validation_split\": 0.1 },\n"
    "  \"model\": { \"layers\": [ { \"type\": \"linear\", \"out\": 8 }, { \"type\": \"relu\" },\n"
    "                           { \"type\": \"linear\", \"out\": 3 } ] },\n"
    "  \"loss\": { \"weight\": [1, 2, 1], \"label_smoothing\": 0.1 },\n"
    "  \"optimizer\": { \"type\": \"adam\", \"lr\": 0.01 },\n"
    "  \"train\": { \"epochs\": 1, \"batch_size\": 64, \"clip_grad_norm\": 5,\n"
    "             \"lr_schedule\": { \"type\": \"cosine\" }, \"early_stopping\": { \"patience\": 2 } },\n"
    "  \"seed\": 3\n"
    "}\n";

enum { STAGE_CONFIG, STAGE_TRAIN, STAGE_SAVE, STAGE_LOAD, STAGES };
static const char *const stage_names[STAGES] = { "config load", "training", "save", "load" };

typedef struct {
    int rc; /* 0: the whole scenario succeeded */
    int stage; /* where it stopped (STAGES when it did not) */
    bool saved; /* tg_model_save returned 0 */
    long attempts_after[STAGES]; /* hooks.attempts at the end of each stage reached */
    double *params; /* the loaded model's parameters (plain malloc), on success */
    int64_t n_values;
} outcome;

static double *copy_params(const tg_model *m, int64_t *n)
{
    int64_t total = 0;
    for (int i = 0; i < tg_model_n_params(m); i++)
        total += tg_numel(tg_model_param_const(m, i));
    double *v = malloc((size_t)total * sizeof *v + 1), *p = v;
    cr_assert_not_null(v);
    for (int i = 0; i < tg_model_n_params(m); i++)
        for (int64_t k = 0; k < tg_numel(tg_model_param_const(m, i)); k++)
            *p++ = tg_get(tg_model_param_const(m, i), k);
    *n = total;
    return v;
}

static outcome run_scenario(const char *config_path, const char *model_path)
{
    outcome o = { .rc = -1, .stage = STAGE_CONFIG };
    tg_training *run = NULL;
    tg_model *back = NULL;
    tg_clear_error();
    tg_config *cfg = tg_config_load(config_path);
    o.attempts_after[STAGE_CONFIG] = hooks.attempts;
    if (!cfg)
        goto done;
    o.stage = STAGE_TRAIN;
    run = tg_train_config(cfg, NULL, NULL);
    o.attempts_after[STAGE_TRAIN] = hooks.attempts;
    if (!run)
        goto done;
    o.stage = STAGE_SAVE;
    o.saved = tg_model_save(run->model, model_path) == 0;
    o.attempts_after[STAGE_SAVE] = hooks.attempts;
    if (!o.saved)
        goto done;
    o.stage = STAGE_LOAD;
    back = tg_model_load(model_path);
    o.attempts_after[STAGE_LOAD] = hooks.attempts;
    if (!back)
        goto done;
    o.stage = STAGES;
    o.rc = 0;
    o.params = copy_params(back, &o.n_values);
done:
    tg_model_free(back);
    tg_training_free(run);
    tg_config_free(cfg);
    return o;
}

static int stage_of(const outcome *clean, long k)
{
    for (int s = 0; s < STAGES; s++)
        if (k <= clean->attempts_after[s])
            return s;
    return STAGES;
}

/* A checkpoint that differs from the scenario's: the file a failed save must leave alone. */
static unsigned char *old_checkpoint(const char *dir, size_t *size)
{
    char *path = join_path(dir, "old.safetensors");
    tg_rng rng;
    tg_rng_seed(&rng, 99);
    tg_layer_spec layers[] = { { TG_LAYER_LINEAR, 3, 1 } };
    tg_model *m = tg_model_new(TG_F32, 4, 1, layers, &rng);
    cr_assert_not_null(m, "%s", tg_last_error());
    cr_assert_eq(tg_model_save(m, path), 0, "%s", tg_last_error());
    tg_model_free(m);
    unsigned char *bytes = read_bytes(path, size);
    unlink(path);
    free(path);
    return bytes;
}

typedef struct {
    long runs, errors, recovered;
    char recovered_at[512]; /* "k (stage), ..." */
    char first_unclear[700]; /* the first error without "out of memory" */
} walk_tally;

static void walk(bool fail_after, const outcome *clean, const char *dir, const char *config_path,
                 const char *model_path, const unsigned char *old, size_t old_size, const unsigned char *saved,
                 size_t saved_size, walk_tally *tally)
{
    const char *mode = fail_after ? "mode B (k-th and later)" : "mode A (k-th only)";
    long n = clean->attempts_after[STAGE_LOAD];
    for (long k = 1; k <= n; k++) {
        write_bytes(model_path, old, old_size);
        arm(k, fail_after);
        outcome o = run_scenario(config_path, model_path);
        long failed = hooks.failed;
        arm(0, false);
        tally->runs++;
        int stage = stage_of(clean, k);
        cr_assert_geq(failed, 1, "%s, allocation %ld (%s): no allocation was failed", mode, k, stage_names[stage]);
        if (o.rc == 0) {
            /* Recoverable: the scenario finished; it must have finished with the clean run's result. */
            tally->recovered++;
            size_t used = strlen(tally->recovered_at);
            snprintf(tally->recovered_at + used, sizeof tally->recovered_at - used, "%s%ld (%s)", used ? ", " : "", k,
                     stage_names[stage]);
            cr_assert_eq(o.n_values, clean->n_values);
            cr_assert_eq(memcmp(o.params, clean->params, (size_t)o.n_values * sizeof *o.params), 0,
                         "%s, allocation %ld (%s) failed, the run succeeded, but with other weights", mode, k,
                         stage_names[stage]);
            free(o.params);
        } else {
            tally->errors++;
            cr_assert_neq(tg_last_error()[0], '\0', "%s, allocation %ld (%s): %s failed without a message", mode, k,
                          stage_names[stage], stage_names[o.stage]);
            if (!strstr(tg_last_error(), "out of memory") && !tally->first_unclear[0])
                snprintf(tally->first_unclear, sizeof tally->first_unclear, "%s, allocation %ld (%s): \"%s\"", mode, k,
                         stage_names[stage], tg_last_error());
        }
        cr_assert_eq(hooks.live, 0, "%s, allocation %ld (%s) failed: %ld blocks leaked (stopped in %s: %s)", mode, k,
                     stage_names[stage], hooks.live, stage_names[o.stage], tg_last_error());
        cr_assert_eq(hooks.foreign_frees, 0, "%s, allocation %ld: a pointer the hooks never gave out was freed", mode,
                     k);
        if (o.saved)
            cr_assert(file_is(model_path, saved, saved_size),
                      "%s, allocation %ld: the save succeeded but wrote other bytes than the clean run", mode, k);
        else
            cr_assert(file_is(model_path, old, old_size), "%s, allocation %ld (%s): the old checkpoint was changed",
                      mode, k, stage_names[stage]);
        char stray[256];
        cr_assert_eq(count_entries(dir, "walk.json", "model.safetensors", stray, sizeof stray), 2,
                     "%s, allocation %ld (%s): '%s' was left in the folder", mode, k, stage_names[stage], stray);
    }
}

Test(alloc_walk, every_allocation_of_config_train_save_load)
{
    char *dir = make_temp_dir("tapegrad-walk"), *config_path = join_path(dir, "walk.json");
    char *model_path = join_path(dir, "model.safetensors");
    write_bytes(config_path, config_text, strlen(config_text));
    size_t old_size, saved_size;
    unsigned char *old = old_checkpoint(dir, &old_size);
    tg_set_allocator(walk_malloc, walk_realloc, walk_free);

    /* The clean run, twice: the count must not depend on anything but the inputs. */
    write_bytes(model_path, old, old_size);
    arm(0, false);
    outcome clean = run_scenario(config_path, model_path);
    cr_assert_eq(clean.rc, 0, "the clean run failed in %s: %s", stage_names[clean.stage], tg_last_error());
    cr_assert_eq(hooks.live, 0, "the clean run leaked %ld blocks", hooks.live);
    long n = clean.attempts_after[STAGE_LOAD];
    unsigned char *saved = read_bytes(model_path, &saved_size);
    cr_assert(saved_size != old_size || memcmp(saved, old, old_size) != 0, "the old checkpoint must differ");
    write_bytes(model_path, old, old_size);
    arm(0, false);
    outcome again = run_scenario(config_path, model_path);
    cr_assert_eq(again.rc, 0, "%s", tg_last_error());
    cr_assert_eq(again.attempts_after[STAGE_LOAD], n, "allocation counts differ between clean runs: %ld, %ld", n,
                 again.attempts_after[STAGE_LOAD]);
    cr_assert(file_is(model_path, saved, saved_size), "two clean runs saved different bytes");
    free(again.params);
    /* Enough allocations to be a real walk: cJSON's nodes alone are dozens. */
    cr_assert_gt(clean.attempts_after[STAGE_CONFIG], 40, "config load: %ld", clean.attempts_after[STAGE_CONFIG]);

    walk_tally a = { 0 }, b = { 0 };
    walk(false, &clean, dir, config_path, model_path, old, old_size, saved, saved_size, &a);
    walk(true, &clean, dir, config_path, model_path, old, old_size, saved, saved_size, &b);
    tg_set_allocator(NULL, NULL, NULL);

    cr_log_info("alloc_walk: %ld allocation points (config load %ld, training %ld, save %ld, load %ld); "
                "mode A: %ld runs, %ld errors, %ld recovered [%s]; mode B: %ld runs, %ld errors, %ld recovered [%s]",
                n, clean.attempts_after[STAGE_CONFIG],
                clean.attempts_after[STAGE_TRAIN] - clean.attempts_after[STAGE_CONFIG],
                clean.attempts_after[STAGE_SAVE] - clean.attempts_after[STAGE_TRAIN],
                clean.attempts_after[STAGE_LOAD] - clean.attempts_after[STAGE_SAVE], a.runs, a.errors, a.recovered,
                a.recovered_at, b.runs, b.errors, b.recovered, b.recovered_at);
    cr_assert_eq(a.runs + b.runs, 2 * n);
    cr_assert_eq(b.recovered, 0, "mode B fails the load's allocations too, yet runs succeeded: %s", b.recovered_at);
    cr_assert_eq(a.first_unclear[0], '\0', "an allocation failure reported as something else: %s", a.first_unclear);
    cr_assert_eq(b.first_unclear[0], '\0', "an allocation failure reported as something else: %s", b.first_unclear);
    free(clean.params);
    free(saved);
    free(old);
    free(config_path);
    free(model_path);
    remove_dir(dir);
}

/* ---- the save's I/O calls ---- */

enum { IO_WRITE, IO_FLUSH, IO_SYNC, IO_RENAME, IO_KINDS };
static const char *const io_names[IO_KINDS] = { "write", "flush", "fsync", "rename" };

static struct {
    long calls[IO_KINDS];
    int fail_kind; /* -1: none */
    long fail_at; /* the call of that kind (1-based) that fails */
} io;

static bool io_fails(int kind)
{
    long n = ++io.calls[kind];
    return io.fail_kind == kind && n == io.fail_at;
}

/* A full disk: half the items get written, then ENOSPC. */
static size_t failing_write(const void *data, size_t size, size_t n, FILE *f)
{
    if (!io_fails(IO_WRITE))
        return fwrite(data, size, n, f);
    size_t part = fwrite(data, size, n / 2, f);
    errno = ENOSPC;
    return part;
}

static int failing_flush(FILE *f)
{
    if (!io_fails(IO_FLUSH))
        return fflush(f);
    errno = EIO;
    return EOF;
}

static int failing_sync(int fd)
{
    if (!io_fails(IO_SYNC))
        return fsync(fd);
    errno = EIO;
    return -1;
}

static int failing_rename(const char *from, const char *to)
{
    if (!io_fails(IO_RENAME))
        return rename(from, to);
    errno = EXDEV;
    return -1;
}

static void io_arm(int kind, long at)
{
    memset(io.calls, 0, sizeof io.calls);
    io.fail_kind = kind;
    io.fail_at = at;
}

Test(alloc_walk, every_io_call_of_a_save)
{
    char *dir = make_temp_dir("tapegrad-walk"), *config_path = join_path(dir, "walk.json");
    char *model_path = join_path(dir, "model.safetensors");
    write_bytes(config_path, config_text, strlen(config_text));
    size_t old_size;
    unsigned char *old = old_checkpoint(dir, &old_size);
    tg_set_allocator(walk_malloc, walk_realloc, walk_free);
    arm(0, false);
    tg_config *cfg = tg_config_load(config_path);
    cr_assert_not_null(cfg, "%s", tg_last_error());
    tg_training *run = tg_train_config(cfg, NULL, NULL);
    cr_assert_not_null(run, "%s", tg_last_error());
    long live_before = hooks.live;

    static const tg_io_hooks failing = { failing_write, failing_flush, failing_sync, failing_rename };
    tg_set_io_hooks(&failing);
    write_bytes(model_path, old, old_size);
    io_arm(-1, 0);
    cr_assert_eq(tg_model_save(run->model, model_path), 0, "%s", tg_last_error());
    long clean_calls[IO_KINDS];
    memcpy(clean_calls, io.calls, sizeof clean_calls);
    cr_assert_geq(clean_calls[IO_WRITE], 3, "the length, the header and at least one tensor");
    for (int kind = IO_FLUSH; kind < IO_KINDS; kind++)
        cr_assert_eq(clean_calls[kind], 1, "%s: %ld calls", io_names[kind], clean_calls[kind]);

    static const char *const expected[IO_KINDS] = { "No space left on device", "Input/output error",
                                                    "Input/output error", "Invalid cross-device link" };
    static const char *const verb[IO_KINDS] = { "writing", "writing", "fsync", "cannot rename" };
    long points = 0;
    for (int kind = 0; kind < IO_KINDS; kind++)
        for (long at = 1; at <= clean_calls[kind]; at++) {
            write_bytes(model_path, old, old_size);
            io_arm(kind, at);
            tg_clear_error();
            int rc = tg_model_save(run->model, model_path);
            io_arm(-1, 0);
            points++;
            const char *error = tg_last_error();
            cr_assert_neq(rc, 0, "%s %ld failed but the save succeeded", io_names[kind], at);
            cr_assert(strstr(error, model_path), "%s %ld: the error does not name the file: %s", io_names[kind], at,
                      error);
            cr_assert(strstr(error, verb[kind]) && strstr(error, expected[kind]),
                      "%s %ld: expected '%s' and '%s' in: %s", io_names[kind], at, verb[kind], expected[kind], error);
            cr_assert(file_is(model_path, old, old_size), "%s %ld failed: the old checkpoint was changed",
                      io_names[kind], at);
            char stray[256];
            cr_assert_eq(count_entries(dir, "walk.json", "model.safetensors", stray, sizeof stray), 2,
                         "%s %ld failed: '%s' was left in the folder", io_names[kind], at, stray);
            cr_assert_eq(hooks.live, live_before, "%s %ld failed: %ld blocks leaked", io_names[kind], at,
                         hooks.live - live_before);
            if (kind == IO_WRITE && at == 1)
                cr_log_info("alloc_walk: a failed write: %s", error);
        }
    tg_set_io_hooks(NULL);
    /* and the model still saves and loads afterwards */
    cr_assert_eq(tg_model_save(run->model, model_path), 0, "%s", tg_last_error());
    tg_model *back = tg_model_load(model_path);
    cr_assert_not_null(back, "%s", tg_last_error());
    tg_model_free(back);
    cr_log_info("alloc_walk: %ld I/O points of a save walked (%ld writes, 1 flush, 1 fsync, 1 rename)", points,
                clean_calls[IO_WRITE]);
    tg_training_free(run);
    tg_config_free(cfg);
    cr_assert_eq(hooks.live, 0, "%ld blocks leaked", hooks.live);
    tg_set_allocator(NULL, NULL, NULL);
    free(old);
    free(config_path);
    free(model_path);
    remove_dir(dir);
}

/* ---- a training checkpoint: its save and its resume ---- */

/* Mid-epoch 2, or after lbfgs's iteration 2. */
static int stop_in_epoch_2(const tg_progress *p, void *ctx)
{
    (void)ctx;
    return p->epoch == 2 && (p->full_batch || p->step == 2);
}

/* Each allocation of tg_training_save, then of a resume, failed in turn (mode A): every run ends in an
 * error with a message (or succeeds), gives back every block, and a failed save leaves the last
 * checkpoint byte-identical with no temporary file beside it. */
static void walk_save_and_resume(const char *config)
{
    tg_set_allocator(walk_malloc, walk_realloc, walk_free);
    char *dir = make_temp_dir("tapegrad-walk"), *path = join_path(dir, "run.safetensors");
    tg_config *cfg = config_from_text(config, TAPEGRAD_SOURCE_DIR "/data/iris.csv");
    tg_training *part = tg_train_config_opts(cfg, &(tg_train_opts){ .progress = stop_in_epoch_2 });
    cr_assert_not_null(part, "%s", tg_last_error());
    long baseline = hooks.live; /* part and cfg */
    arm(0, false);
    cr_assert_eq(tg_training_save(part, path), 0, "%s", tg_last_error());
    long save_attempts = hooks.attempts;
    size_t saved_size;
    unsigned char *saved = read_bytes(path, &saved_size);
    cr_assert_eq(hooks.live, baseline, "the clean save leaked");
    for (long k = 1; k <= save_attempts; k++) {
        arm(k, false);
        tg_clear_error();
        int rc = tg_training_save(part, path);
        arm(0, false);
        cr_assert(rc == 0 || tg_last_error()[0], "save, allocation %ld: failed without a message", k);
        cr_assert_eq(hooks.live, baseline, "save, allocation %ld: %ld blocks leaked", k, hooks.live - baseline);
        cr_assert(file_is(path, saved, saved_size), "save, allocation %ld: the checkpoint changed", k);
        char stray[256];
        cr_assert_eq(count_entries(dir, "run.safetensors", "", stray, sizeof stray), 1, "save, allocation %ld: %s left",
                     k, stray);
    }
    arm(0, false);
    tg_training *whole = tg_train_config_opts(cfg, &(tg_train_opts){ .resume = path });
    cr_assert_not_null(whole, "%s", tg_last_error());
    long resume_attempts = hooks.attempts, with_whole = hooks.live;
    long recovered = 0;
    for (long k = 1; k <= resume_attempts; k++) {
        arm(k, false);
        tg_clear_error();
        tg_training *t = tg_train_config_opts(cfg, &(tg_train_opts){ .resume = path });
        arm(0, false);
        recovered += t != NULL;
        cr_assert(t || tg_last_error()[0], "resume, allocation %ld: failed without a message", k);
        for (int i = 0; t && i < tg_model_n_params(t->model); i++) /* a recovered run ends as the clean one */
            cr_assert_eq(memcmp(tg_data(tg_model_param(t->model, i)), tg_data(tg_model_param(whole->model, i)),
                                (size_t)tg_numel(tg_model_param(t->model, i)) * sizeof(float)),
                         0, "resume, allocation %ld: recovered with other weights", k);
        tg_training_free(t);
        cr_assert_eq(hooks.live, with_whole, "resume, allocation %ld: %ld blocks leaked", k, hooks.live - with_whole);
    }
    cr_log_info("alloc_walk: training save %ld allocations, resume %ld (%ld recovered)", save_attempts, resume_attempts,
                recovered);
    tg_training_free(whole);
    free(saved);
    tg_training_free(part);
    tg_config_free(cfg);
    cr_assert_eq(hooks.live, 0, "%ld blocks left", hooks.live);
    tg_set_allocator(NULL, NULL, NULL);
    free(path);
    remove_dir(dir);
}

Test(alloc_walk, every_allocation_of_a_training_save_and_resume)
{
    walk_save_and_resume("{'data': {'train': '%s', 'test_split': 0.2, 'validation_split': 0.2},"
                         " 'model': {'layers': [{'type': 'linear', 'out': 4}, {'type': 'tanh'},"
                         "                      {'type': 'linear', 'out': 3}]},"
                         " 'optimizer': {'type': 'adam', 'lr': 0.01},"
                         " 'train': {'epochs': 3, 'batch_size': 32, 'early_stopping': {'patience': 2}},"
                         " 'seed': 3}");
}

Test(alloc_walk, every_allocation_of_an_lbfgs_training_save_and_resume)
{
    walk_save_and_resume("{'data': {'train': '%s', 'test_split': 0.2, 'validation_split': 0.2},"
                         " 'model': {'layers': [{'type': 'linear', 'out': 3}]}, 'loss': {'penalty': 'l1'},"
                         " 'optimizer': {'type': 'lbfgs', 'max_iter': 5, 'history_size': 3}, 'seed': 3}");
}
