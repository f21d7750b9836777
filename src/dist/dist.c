/* The processes a training run spans (docs/distributed.md). Built with
 * TAPEGRAD_MPI, a command started by mpirun runs one rank per process and the
 * training loops sum their gradients here; anything else (a build without
 * MPI, a command started on its own, a program that never calls
 * tg_dist_init) is one process and every call below is a no-op. The MPI
 * calls of the library are all in this file.
 *
 * The sum is a reduce-scatter then an all-gather, written out so that its
 * order is fixed: element k's owner (the rank whose slice of the buffer holds
 * k) receives every rank's value of k and adds them in rank order, then every
 * rank receives the owners' results. Each rank sends and receives
 * 2 (N - 1) / N of the buffer, as a ring all-reduce does, and every rank gets
 * the same bits, run after run. A process is one communicator, so this state
 * is the process's (as MPI's own is). */
#include "dist/dist.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef TAPEGRAD_MPI
#include <mpi.h>
#endif

static int dist_rank, dist_size = 1;

bool tg_dist_parallel(void) { return dist_size > 1; }

int tg_dist_built_with_mpi(void)
{
#ifdef TAPEGRAD_MPI
    return 1;
#else
    return 0;
#endif
}

int tg_dist_rank(void) { return dist_rank; }

int tg_dist_size(void) { return dist_size; }

void tg_dist_share(int64_t n, int64_t *first, int64_t *end)
{
    *first = n * dist_rank / dist_size;
    *end = n * (dist_rank + 1) / dist_size;
}

#ifdef TAPEGRAD_MPI

static bool dist_started; /* MPI_Init was called here (and MPI_Finalize is owed) */
static void *scratch; /* the sum's send and receive slices, kept from call to call */
static size_t scratch_bytes;

/* Started by mpirun (Open MPI, MPICH's hydra, PMIx launchers), not run on its own. */
static bool launched_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

static int mpi_failed(const char *call, int code)
{
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
        snprintf(text, sizeof text, "error %d", code);
    tg_error("%s failed on rank %d of %d: %s", call, dist_rank, dist_size, text);
    return -1;
}

/* Waits for req: a busy test for the first 100 µs (a step of a small model waits a few µs), then a test
 * every 50 µs with the core given up in between, so a rank that waits long for a slower one does not
 * burn its core: on a shared machine the scheduler then gives the computing ranks more. */
static int wait_for(MPI_Request *req, const char *call)
{
    double started = MPI_Wtime();
    for (;;) {
        int done = 0, code = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (code != MPI_SUCCESS)
            return mpi_failed(call, code);
        if (done)
            return 0;
        if (MPI_Wtime() - started > 1e-4)
            nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
    }
}

int tg_dist_init(void)
{
    if (dist_started || !launched_by_mpirun())
        return 0;
    int provided, code = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (code != MPI_SUCCESS)
        return mpi_failed("MPI_Init_thread", code);
    dist_started = true;
    /* errors come back as codes with a message, not as MPI's default abort */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dist_size);
    return 0;
}

void tg_dist_finalize(void)
{
    tg_dealloc(scratch);
    scratch = NULL;
    scratch_bytes = 0;
    if (dist_started)
        MPI_Finalize();
    dist_started = false;
    dist_rank = 0;
    dist_size = 1;
}

void tg_dist_abort(int code)
{
    if (dist_started && dist_size > 1)
        MPI_Abort(MPI_COMM_WORLD, code);
}

int tg_dist_broadcast(void *buf, size_t bytes, int root)
{
    if (dist_size == 1)
        return 0;
    if (bytes > INT32_MAX)
        return tg_error("dist: a broadcast of %zu bytes, more than one MPI call sends", bytes), -1;
    MPI_Request req;
    int code = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &req);
    return code == MPI_SUCCESS ? wait_for(&req, "MPI_Ibcast") : mpi_failed("MPI_Ibcast", code);
}

/* Room for 2 N slices of `slice` elements (the padded send buffer, then what the owner receives). */
static int reserve(size_t bytes)
{
    if (bytes <= scratch_bytes)
        return 0;
    void *grown = tg_realloc(scratch, bytes);
    if (!grown)
        return -1;
    scratch = grown;
    scratch_bytes = bytes;
    return 0;
}

/* The owner's slice: its received column of N slices added in rank order, into out. */
#define ADD_IN_RANK_ORDER(T, ACC, received, out, slice, size)                                                          \
    do {                                                                                                               \
        const T *in = (const T *)(received);                                                                           \
        T *sum = (T *)(out);                                                                                           \
        for (int64_t k = 0; k < (slice); k++) {                                                                        \
            ACC s = in[k];                                                                                             \
            for (int r = 1; r < (size); r++)                                                                           \
                s += in[(int64_t)r * (slice) + k];                                                                     \
            sum[k] = (T)s;                                                                                             \
        }                                                                                                              \
    } while (0)

int tg_dist_sum(void *buf, int64_t n, tg_dtype dtype)
{
    if (dist_size == 1 || n == 0)
        return 0;
    if (dtype != TG_F32 && dtype != TG_F64)
        return tg_error("dist: a sum of dtype %s, expected float32 or float64", tg_dtype_name(dtype)), -1;
    size_t size = tg_dtype_size(dtype);
    int64_t slice = (n + dist_size - 1) / dist_size;
    if ((uint64_t)slice * size > INT32_MAX)
        return tg_error("dist: a sum of %lld values, more than one MPI call sends per rank", (long long)n), -1;
    size_t padded = (size_t)slice * (size_t)dist_size * size;
    if (reserve(2 * padded))
        return -1;
    char *send = scratch, *received = send + padded;
    memcpy(send, buf, (size_t)n * size);
    memset(send + (size_t)n * size, 0, padded - (size_t)n * size);
    int bytes = (int)((size_t)slice * size);
    /* slice r of every rank to rank r: rank r's received holds N copies of its slice, in rank order */
    MPI_Request req;
    int code = MPI_Ialltoall(send, bytes, MPI_BYTE, received, bytes, MPI_BYTE, MPI_COMM_WORLD, &req);
    if (code != MPI_SUCCESS)
        return mpi_failed("MPI_Ialltoall", code);
    if (wait_for(&req, "MPI_Ialltoall"))
        return -1;
    char *mine = send + (size_t)dist_rank * (size_t)bytes;
    if (dtype == TG_F32)
        ADD_IN_RANK_ORDER(float, double, received, mine, slice, dist_size);
    else
        ADD_IN_RANK_ORDER(double, double, received, mine, slice, dist_size);
    code = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, send, bytes, MPI_BYTE, MPI_COMM_WORLD, &req);
    if (code != MPI_SUCCESS)
        return mpi_failed("MPI_Iallgather", code);
    if (wait_for(&req, "MPI_Iallgather"))
        return -1;
    memcpy(buf, send, (size_t)n * size);
    return 0;
}

/* Waits for a point-to-point transfer of at most 1 GiB (one MPI count). */
static int transfer(void *buf, size_t bytes, int peer, bool receive)
{
    MPI_Request req;
    const char *call = receive ? "MPI_Irecv" : "MPI_Isend";
    int code = receive ? MPI_Irecv(buf, (int)bytes, MPI_BYTE, peer, 0, MPI_COMM_WORLD, &req)
                       : MPI_Isend(buf, (int)bytes, MPI_BYTE, peer, 0, MPI_COMM_WORLD, &req);
    return code == MPI_SUCCESS ? wait_for(&req, call) : mpi_failed(call, code);
}

/* The sizes by broadcasts (every rank learns them), then root says whether it has room (so that no rank
 * sends into a failed receive), then each rank's bytes to root in pieces of at most 1 GiB, rank by rank:
 * no count is capped at 2^31 bytes. */
int tg_dist_gather(const void *mine, size_t bytes, void **all, size_t *sizes, int root)
{
    *all = NULL;
    if (dist_size == 1) {
        if (!(*all = tg_alloc(bytes ? bytes : 1)))
            return -1;
        memcpy(*all, mine, bytes);
        sizes[0] = bytes;
        return 0;
    }
    size_t total = 0;
    for (int r = 0; r < dist_size; r++) {
        uint64_t size = r == dist_rank ? (uint64_t)bytes : 0;
        if (tg_dist_broadcast(&size, sizeof size, r))
            return -1;
        sizes[r] = (size_t)size;
        total = size > SIZE_MAX - total ? SIZE_MAX : total + (size_t)size;
    }
    bool lead = dist_rank == root;
    char *out = lead && total < SIZE_MAX ? tg_alloc(total ? total : 1) : NULL;
    char lead_error[256] = "";
    if (lead && !out)
        snprintf(lead_error, sizeof lead_error, "%s", total < SIZE_MAX ? tg_last_error() : "more bytes than fit");
    unsigned char go = !lead || out ? 1 : 0;
    if (tg_dist_broadcast(&go, 1, root) || tg_dist_broadcast(lead_error, sizeof lead_error, root)) {
        tg_dealloc(out);
        return -1;
    }
    if (!go) {
        if (!lead)
            tg_error("dist: rank %d could not take the gathered rows: %s", root, lead_error);
        return -1;
    }
    size_t at = 0;
    for (int r = 0; r < dist_size; r++) {
        if (lead && r == root && bytes)
            memcpy(out + at, mine, bytes);
        for (size_t done = 0; r != root && (lead || r == dist_rank) && done < sizes[r];) {
            size_t piece = sizes[r] - done < ((size_t)1 << 30) ? sizes[r] - done : (size_t)1 << 30;
            if (transfer(lead ? out + at + done : (char *)mine + done, piece, lead ? r : root, lead)) {
                tg_dealloc(out);
                return -1;
            }
            done += piece;
        }
        at += sizes[r];
    }
    *all = out;
    return 0;
}

#else /* one process */

int tg_dist_gather(const void *mine, size_t bytes, void **all, size_t *sizes, int root)
{
    (void)root;
    if (!(*all = tg_alloc(bytes ? bytes : 1)))
        return -1;
    memcpy(*all, mine, bytes);
    sizes[0] = bytes;
    return 0;
}

#endif

/* Rank by rank, each broadcasts its size and then its bytes, in pieces one MPI call can send: N broadcasts
 * where MPI_Allgatherv would take one call, but no count is capped at 2^31 bytes, and N is small. */
int tg_dist_gather_all(const void *mine, size_t bytes, void **all, size_t *sizes)
{
    *all = NULL;
    size_t total = 0;
    for (int r = 0; r < dist_size; r++) {
        uint64_t size = r == dist_rank ? (uint64_t)bytes : 0;
        if (tg_dist_broadcast(&size, sizeof size, r))
            return -1;
        if (size > SIZE_MAX - total)
            return tg_error("dist: gathering more bytes than fit in memory (rank %d sends %llu)", r,
                            (unsigned long long)size),
                   -1;
        sizes[r] = (size_t)size;
        total += (size_t)size;
    }
    char *out = tg_alloc(total ? total : 1);
    if (!out)
        return -1;
    size_t at = 0;
    for (int r = 0; r < dist_size; r++) {
        if (r == dist_rank && bytes)
            memcpy(out + at, mine, bytes);
        for (size_t done = 0; done < sizes[r];) {
            size_t piece = sizes[r] - done < ((size_t)1 << 30) ? sizes[r] - done : (size_t)1 << 30;
            if (tg_dist_broadcast(out + at + done, piece, r)) {
                tg_dealloc(out);
                return -1;
            }
            done += piece;
        }
        at += sizes[r];
    }
    *all = out;
    return 0;
}

int tg_dist_any(int flag)
{
    if (dist_size == 1)
        return flag != 0;
    double any = flag != 0;
    return tg_dist_sum(&any, 1, TG_F64) ? -1 : any > 0;
}

int tg_dist_max(int64_t *v)
{
    if (dist_size == 1)
        return 0;
    void *all;
    size_t *sizes = tg_alloc((size_t)dist_size * sizeof *sizes);
    if (!sizes || tg_dist_gather_all(v, sizeof *v, &all, sizes)) {
        tg_dealloc(sizes);
        return -1;
    }
    tg_dealloc(sizes);
    for (int r = 0; r < dist_size; r++) {
        int64_t other;
        memcpy(&other, (char *)all + (size_t)r * sizeof other, sizeof other);
        *v = other > *v ? other : *v;
    }
    tg_dealloc(all);
    return 0;
}

#ifndef TAPEGRAD_MPI /* one process */

/* A build without MPI started by mpirun -np N > 1 would train N times over, alone, each saving the same
 * file: refused, saying what to build instead. */
int tg_dist_init(void)
{
    static const char *const sizes[] = { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE" };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        const char *n = getenv(sizes[i]);
        if (n && atoi(n) > 1)
            return tg_error("this tapegrad was built without MPI, so under mpirun -np %s each process would train "
                            "alone on all the data: build it with -DTAPEGRAD_MPI=ON (docs/distributed.md), or run it "
                            "without mpirun",
                            n),
                   -1;
    }
    return 0;
}

void tg_dist_finalize(void) {}

void tg_dist_abort(int code) { (void)code; }

int tg_dist_broadcast(void *buf, size_t bytes, int root)
{
    (void)buf, (void)bytes, (void)root;
    return 0;
}

int tg_dist_sum(void *buf, int64_t n, tg_dtype dtype)
{
    (void)buf, (void)n, (void)dtype;
    return 0;
}

#endif
