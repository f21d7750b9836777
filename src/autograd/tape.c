/* The tape: an arena of blocks that holds every node and every intermediate
 * tensor of a step. Reset rewinds the arena and keeps its blocks, so a loop
 * that repeats the same step replays the same allocations into the same
 * memory and never calls the allocator again. */
#include "autograd/tape.h"

#include <string.h>

#define ARENA_ALIGN 64
#define ARENA_MIN_BLOCK ((size_t)1 << 20)
/* Tensor headers live in an arena of their own that a reset does not rewind: each step's headers go
 * after the last step's, so a header kept from an earlier step of the same lap (the arena's blocks
 * filled once) is still there, with its old generation, and tg_check_live refuses it. When the next
 * step's headers would not fit, the arena starts a new lap at its start, moved by HEADER_STEP bytes
 * from the last lap's, cycling through HEADER_SHIFTS positions less than one header apart: a pointer
 * kept from an earlier lap lands inside a current header (its seal fails) unless it is a multiple of
 * HEADER_SHIFTS laps old. A stale pointer can pass only when it is HEADER_SHIFTS laps or more old,
 * i.e. HEADER_SHIFTS * (HEADER_MIN_BLOCK / the step's header bytes) resets at least (19 * 86 = 1634
 * for a step of 20 tape tensors, 19 * 862 for a step of 2); no check on the pointer alone can do better
 * with memory that is reused (docs/robustness.md). */
#define HEADER_STEP 8
#define HEADER_SHIFTS ((sizeof(tg_tensor) + HEADER_STEP - 1) / HEADER_STEP) /* 19 */
#define HEADER_SLACK (HEADER_STEP * (HEADER_SHIFTS - 1))
#define HEADER_MIN_BLOCK ((size_t)256 << 10)
#define HEADER_SIZE ((sizeof(tg_tensor) + HEADER_STEP - 1) & ~(size_t)(HEADER_STEP - 1))
_Static_assert(sizeof(tg_tensor) > HEADER_SLACK, "a move of the header arena must stay within one header");

typedef struct block {
    struct block *next;
    size_t size, used; /* usable bytes from base, and how many are taken */
    unsigned char *base; /* data + the arena's shift */
    _Alignas(ARENA_ALIGN) unsigned char data[];
} block;

typedef struct {
    block *first, *current;
    size_t align, min_block, slack, shift;
} arena;

struct tg_tape {
    arena data, headers;
    tg_node *last;
    int64_t n_nodes;
    bool recording;
    uint64_t generation; /* resets so far */
    int64_t step_headers; /* headers made since the last reset */
    unsigned laps; /* rewinds of the header arena */
};

tg_tape *tg_tape_new(void)
{
    tg_tape *tape = tg_alloc_zeroed(sizeof *tape);
    if (tape) {
        tape->recording = true;
        tape->data = (arena){ .align = ARENA_ALIGN, .min_block = ARENA_MIN_BLOCK };
        tape->headers = (arena){ .align = HEADER_STEP, .min_block = HEADER_MIN_BLOCK, .slack = HEADER_SLACK };
    }
    return tape;
}

static void arena_rewind(arena *a, size_t shift)
{
    a->shift = shift;
    for (block *b = a->first; b; b = b->next) {
        b->used = 0;
        b->base = b->data + shift;
    }
    a->current = a->first;
}

/* Whether n more headers fit after the header arena's cursor, in its current block and those after it. */
static bool headers_fit(const arena *a, int64_t n)
{
    for (const block *b = a->current; b && n > 0; b = b->next)
        n -= (int64_t)((b->size - b->used) / HEADER_SIZE);
    return n <= 0;
}

void tg_tape_reset(tg_tape *tape)
{
    if (!tape)
        return;
    tape->generation++;
    arena_rewind(&tape->data, 0);
    if (!headers_fit(&tape->headers, tape->step_headers)) /* a new lap: the next step would not fit */
        arena_rewind(&tape->headers, HEADER_STEP * (size_t)(++tape->laps % HEADER_SHIFTS));
    tape->step_headers = 0;
    tape->last = NULL;
    tape->n_nodes = 0;
}

static void arena_free(arena *a)
{
    block *b = a->first;
    while (b) {
        block *next = b->next;
        tg_dealloc(b);
        b = next;
    }
}

void tg_tape_free(tg_tape *tape)
{
    if (!tape)
        return;
    arena_free(&tape->data);
    arena_free(&tape->headers);
    tg_dealloc(tape);
}

int tg_tape_set_recording(tg_tape *tape, int on)
{
    if (!tape) {
        tg_error("tg_tape_set_recording: tape is NULL");
        return 0;
    }
    int was = tape->recording;
    tape->recording = on != 0;
    return was;
}

int tg_tape_recording(const tg_tape *tape) { return tape ? tape->recording : 0; }
int64_t tg_tape_size(const tg_tape *tape) { return tape ? tape->n_nodes : -1; }
tg_node *tg_tape_last(const tg_tape *tape) { return tape->last; }

size_t tg_tape_capacity(const tg_tape *tape)
{
    size_t total = 0;
    for (int k = 0; tape && k < 2; k++)
        for (block *b = (k ? tape->headers : tape->data).first; b; b = b->next)
            total += b->size;
    return total;
}

static void *arena_alloc(arena *a, size_t bytes)
{
    if (bytes > SIZE_MAX / 4)
        return tg_error("tape: allocation of %zu bytes is too large", bytes);
    bytes = (bytes ? bytes : 1) + a->align - 1;
    bytes &= ~(a->align - 1);
    /* Blocks after the current one are always unused: the arena only moves forward. */
    block *b = a->current;
    if (b && b->size - b->used < bytes && b->next && b->next->size >= bytes)
        b = a->current = b->next;
    if (!b || b->size - b->used < bytes) {
        size_t size = bytes > a->min_block ? bytes : a->min_block;
        if (b && b->size > size && b->size <= SIZE_MAX / 4)
            size = 2 * b->size; /* geometric growth: few blocks however large a step is */
        block *nb = tg_alloc(sizeof(block) + size + a->slack);
        if (!nb)
            return NULL;
        nb->size = size;
        nb->used = 0;
        nb->base = nb->data + a->shift;
        if (b) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = NULL;
            a->first = nb;
        }
        b = a->current = nb;
    }
    void *p = b->base + b->used;
    b->used += bytes;
    return p;
}

void *tg_tape_alloc(tg_tape *tape, size_t bytes) { return arena_alloc(&tape->data, bytes); }

/* The op whose inputs were checked last on this thread: the tape's messages (a shape too large, out
 * of memory) name it. Ops pass string literals, custom ops the name the tape keeps anyway. */
static _Thread_local const char *current_op;

bool tg_check_live(const char *op, const char *which, const tg_tensor *t)
{
    current_op = op;
    if (tg_tensor_sealed(t) && (t->owner != TG_OWNED_BY_TAPE || t->generation == t->tape->generation))
        return true;
    tg_error("%s: %s is a tape tensor from before the last tg_tape_reset (stale: tape tensors are valid until "
             "the next reset; keep what you need with tg_tensor_clone)",
             op, which);
    return false;
}

tg_tensor *tg_tape_new_header(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape, int64_t numel)
{
    tg_tensor *t = arena_alloc(&tape->headers, HEADER_SIZE);
    if (!t)
        return NULL;
    tape->step_headers++;
    tg_tensor_init(t, dtype, ndim, shape, numel, TG_OWNED_BY_TAPE);
    t->tape = tape;
    t->generation = tape->generation;
    tg_tensor_seal(t);
    return t;
}

tg_tensor *tg_tape_op_output(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape, bool zero)
{
    int64_t numel;
    const char *op = current_op ? current_op : "tape tensor";
    if (tg_shape_check(op, ndim, shape, &numel))
        return NULL;
    size_t bytes = (size_t)numel * tg_dtype_size(dtype);
    tg_tensor *t = tg_tape_new_header(tape, dtype, ndim, shape, numel);
    void *data = t ? tg_tape_alloc(tape, bytes) : NULL;
    if (!data) {
        char s[TG_SHAPE_BUF];
        tg_error("%s: out of memory: the tape could not hold a %s %s tensor (%zu bytes)", op, tg_dtype_name(dtype),
                 tg_shape_str(s, sizeof s, ndim, shape), bytes);
        return NULL;
    }
    t->data = data;
    if (zero)
        memset(data, 0, bytes);
    return t;
}

tg_tensor *tg_tape_tensor(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape)
{
    if (!tape)
        return tg_error("tg_tape_tensor: tape is NULL");
    if (dtype != TG_F32 && dtype != TG_F64 && dtype != TG_I64)
        return tg_error("tg_tape_tensor: unknown dtype %d", (int)dtype);
    current_op = "tg_tape_tensor";
    return tg_tape_op_output(tape, dtype, ndim, shape, true);
}

bool tg_tape_should_record(const tg_tape *tape, tg_tensor *const *inputs, int n_inputs)
{
    if (!tape->recording)
        return false;
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && inputs[i]->requires_grad)
            return true;
    return false;
}

tg_node *tg_tape_record(tg_tape *tape, const char *op, tg_backward_fn backward, tg_tensor *out,
                        tg_tensor *const *inputs, int n_inputs)
{
    tg_node *node = tg_tape_alloc(tape, sizeof *node);
    if (!node)
        return NULL;
    memset(node, 0, sizeof *node);
    node->op = op;
    node->backward = backward;
    node->out = out;
    node->n_inputs = n_inputs;
    for (int i = 0; i < n_inputs; i++)
        node->inputs[i] = inputs[i];
    node->id = tape->n_nodes++;
    node->prev = tape->last;
    tape->last = node;
    out->node = node;
    out->requires_grad = true;
    return node;
}

tg_tensor *tg_grad_buffer(tg_tape *tape, tg_tensor *t, bool *failed)
{
    if (!t || !t->requires_grad)
        return NULL;
    t->grad_dense = true; /* a dense op adds into it (tg_sparse_linear puts the flag back) */
    if (!t->grad) {
        t->grad = t->owner == TG_OWNED_BY_TAPE ? tg_tape_op_output(tape, t->dtype, t->ndim, t->shape, true)
                                               : tg_tensor_new(t->dtype, t->ndim, t->shape);
        if (!t->grad)
            *failed = true;
    }
    return t->grad;
}

/* DOT strings are double-quoted: a user's op name may hold quotes or backslashes. */
static void dot_escaped(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        fputc(*s, out);
    }
}

static void dot_leaf(FILE *out, const tg_tensor *t)
{
    char s[TG_SHAPE_BUF];
    fprintf(out, "  \"leaf_%p\" [shape=box, label=\"%s\\n%s %s\"];\n", (const void *)t,
            t->requires_grad ? "parameter" : "input", tg_dtype_name(t->dtype),
            tg_shape_str(s, sizeof s, t->ndim, t->shape));
}

int tg_tape_dot(const tg_tape *tape, FILE *out)
{
    if (!tape || !out) {
        tg_error("tg_tape_dot: %s is NULL", tape ? "out" : "tape");
        return -1;
    }
    char s[TG_SHAPE_BUF];
    fprintf(out, "digraph tape {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
    for (const tg_node *n = tape->last; n; n = n->prev) {
        fprintf(out, "  n%lld [label=\"", (long long)n->id);
        dot_escaped(out, n->op);
        fprintf(out, "\\n%s\"];\n", tg_shape_str(s, sizeof s, n->out->ndim, n->out->shape));
        for (int i = 0; i < n->n_inputs; i++) {
            const tg_tensor *in = n->inputs[i];
            if (!in)
                continue;
            if (in->node) {
                fprintf(out, "  n%lld -> n%lld;\n", (long long)in->node->id, (long long)n->id);
            } else {
                dot_leaf(out, in);
                fprintf(out, "  \"leaf_%p\" -> n%lld;\n", (const void *)in, (long long)n->id);
            }
        }
    }
    fprintf(out, "}\n");
    if (fflush(out) != 0 || ferror(out)) { /* a full disk shows only when the buffer is written */
        tg_error("tg_tape_dot: writing the graph failed");
        return -1;
    }
    return 0;
}
