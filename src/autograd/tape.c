/* The tape: an arena of blocks that holds every node and every intermediate
 * tensor of a step. Reset rewinds the arena and keeps its blocks, so a loop
 * that repeats the same step replays the same allocations into the same
 * memory and never calls the allocator again. */
#include "autograd/tape.h"

#include <string.h>

#define ARENA_ALIGN 64
#define ARENA_MIN_BLOCK ((size_t)1 << 20)

typedef struct block {
    struct block *next;
    size_t size, used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
} block;

struct tg_tape {
    block *first, *current;
    tg_node *last;
    int64_t n_nodes;
    bool recording;
};

tg_tape *tg_tape_new(void)
{
    tg_tape *tape = tg_alloc_zeroed(sizeof *tape);
    if (tape)
        tape->recording = true;
    return tape;
}

void tg_tape_reset(tg_tape *tape)
{
    if (!tape)
        return;
    for (block *b = tape->first; b; b = b->next)
        b->used = 0;
    tape->current = tape->first;
    tape->last = NULL;
    tape->n_nodes = 0;
}

void tg_tape_free(tg_tape *tape)
{
    if (!tape)
        return;
    block *b = tape->first;
    while (b) {
        block *next = b->next;
        tg_dealloc(b);
        b = next;
    }
    tg_dealloc(tape);
}

int tg_tape_set_recording(tg_tape *tape, int on)
{
    int was = tape->recording;
    tape->recording = on != 0;
    return was;
}

int tg_tape_recording(const tg_tape *tape) { return tape->recording; }
int64_t tg_tape_size(const tg_tape *tape) { return tape->n_nodes; }
tg_node *tg_tape_last(const tg_tape *tape) { return tape->last; }

size_t tg_tape_capacity(const tg_tape *tape)
{
    size_t total = 0;
    for (block *b = tape->first; b; b = b->next)
        total += b->size;
    return total;
}

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

void *tg_tape_alloc(tg_tape *tape, size_t bytes)
{
    if (bytes > SIZE_MAX / 4)
        return tg_error("tape: allocation of %zu bytes is too large", bytes);
    bytes = align_up(bytes ? bytes : 1);
    /* Blocks after the current one are always unused: the arena only moves forward. */
    block *b = tape->current;
    if (b && b->size - b->used < bytes && b->next && b->next->size >= bytes)
        b = tape->current = b->next;
    if (!b || b->size - b->used < bytes) {
        size_t size = bytes > ARENA_MIN_BLOCK ? bytes : ARENA_MIN_BLOCK;
        if (b && b->size > size && b->size <= SIZE_MAX / 4)
            size = 2 * b->size; /* geometric growth: few blocks however large a step is */
        block *nb = tg_alloc(sizeof(block) + size);
        if (!nb)
            return NULL;
        nb->size = size;
        nb->used = 0;
        if (b) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = NULL;
            tape->first = nb;
        }
        b = tape->current = nb;
    }
    void *p = b->data + b->used;
    b->used += bytes;
    return p;
}

tg_tensor *tg_tape_new_tensor(tg_tape *tape, tg_dtype dtype, int ndim, const int64_t *shape, bool zero)
{
    int64_t numel;
    if (tg_shape_check("tape tensor", ndim, shape, &numel))
        return NULL;
    size_t bytes = (size_t)numel * tg_dtype_size(dtype);
    tg_tensor *t = tg_tape_alloc(tape, sizeof *t);
    if (!t)
        return NULL;
    void *data = tg_tape_alloc(tape, bytes);
    if (!data)
        return NULL;
    tg_tensor_init(t, dtype, ndim, shape, numel, TG_OWNED_BY_TAPE);
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
    return tg_tape_new_tensor(tape, dtype, ndim, shape, true);
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
    if (!t->grad) {
        t->grad = t->owner == TG_OWNED_BY_TAPE ? tg_tape_new_tensor(tape, t->dtype, t->ndim, t->shape, true)
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
