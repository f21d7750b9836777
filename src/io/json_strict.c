/* JSON as RFC 8259 and serde_json (the reference safetensors reader) read it, for
 * the checkpoint header: cJSON is more lenient (duplicate keys, raw control
 * characters in strings, leading zeros, "2e0" for an integer, strings cut at
 * \u0000), and a header it accepts but the reference refuses is not a
 * safetensors file. Adapted from the fuzz harness's reference reader
 * (tests/fuzz/fuzz_inputs.c), which found each of those. */
#include "io/io_internal.h"

#include <string.h>

/* Where a value sits: a safetensors header's tensor entries hold shape and
 * data_offsets, arrays the reference reads as unsigned integers (usize). */
typedef enum { AT_ROOT, AT_ENTRY, AT_UNSIGNED_ARRAY, AT_UNSIGNED, AT_OTHER } json_place;

typedef struct {
    const char *p, *end, *start;
    bool checkpoint; /* apply the safetensors header's rules */
    json_fault fault;
    size_t fault_at; /* byte offset of the fault */
} json_reader;

static bool json_fail(json_reader *r, json_fault fault)
{
    if (r->fault == JSON_OK) {
        r->fault = fault;
        r->fault_at = (size_t)(r->p - r->start);
    }
    return false;
}

static void json_space(json_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static bool json_literal(json_reader *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return json_fail(r, JSON_SYNTAX);
    r->p += n;
    return true;
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static bool json_hex4(json_reader *r, unsigned *value)
{
    *value = 0;
    for (int i = 0; i < 4; i++, r->p++) {
        int d = r->p < r->end ? hex_digit(*r->p) : -1;
        if (d < 0)
            return json_fail(r, JSON_SYNTAX);
        *value = *value << 4 | (unsigned)d;
    }
    return true;
}

/* A string, decoded into *out (from the allocator, NUL-terminated, may hold NUL bytes:
 * *out_len says how many) when out is not NULL. Unpaired surrogates and raw
 * control characters are errors, as in serde_json. */
static bool json_string(json_reader *r, char **out, size_t *out_len)
{
    r->p++; /* the opening quote */
    char *text = out ? tg_alloc((size_t)(r->end - r->p) + 1) : NULL;
    size_t n = 0;
    if (out && !text)
        return json_fail(r, JSON_NO_MEMORY);
    for (;;) {
        if (r->p >= r->end || (unsigned char)*r->p < 0x20)
            goto fail;
        char c = *r->p++;
        if (c == '"')
            break;
        if (c != '\\') {
            if (text)
                text[n++] = c;
            continue;
        }
        if (r->p >= r->end)
            goto fail;
        char e = *r->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            if (text)
                text[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        unsigned cp, low;
        if (e != 'u' || !json_hex4(r, &cp))
            goto fail;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            goto fail;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
                goto fail;
            r->p += 2;
            if (!json_hex4(r, &low) || low < 0xDC00 || low > 0xDFFF)
                goto fail;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        if (!text)
            continue;
        if (cp < 0x80) {
            text[n++] = (char)cp;
        } else if (cp < 0x800) {
            text[n++] = (char)(0xC0 | cp >> 6);
            text[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            text[n++] = (char)(0xE0 | cp >> 12);
            text[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
            text[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            text[n++] = (char)(0xF0 | cp >> 18);
            text[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
            text[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
            text[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (out) {
        text[n] = '\0';
        *out = text;
        *out_len = n;
    }
    return true;
fail:
    tg_dealloc(text);
    return json_fail(r, JSON_SYNTAX);
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; an unsigned place takes digits only. */
static bool json_number(json_reader *r, json_place place)
{
    const char *start = r->p;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p >= r->end || !is_digit(*r->p))
        return json_fail(r, JSON_SYNTAX);
    if (*r->p++ != '0')
        while (r->p < r->end && is_digit(*r->p))
            r->p++;
    else if (r->p < r->end && is_digit(*r->p))
        return json_fail(r, JSON_SYNTAX); /* a leading zero */
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (r->p >= r->end || !is_digit(*r->p))
            return json_fail(r, JSON_SYNTAX);
        while (r->p < r->end && is_digit(*r->p))
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (r->p >= r->end || !is_digit(*r->p))
            return json_fail(r, JSON_SYNTAX);
        while (r->p < r->end && is_digit(*r->p))
            r->p++;
    }
    if (place == AT_UNSIGNED)
        for (const char *c = start; c < r->p; c++)
            if (!is_digit(*c)) {
                r->p = start;
                return json_fail(r, JSON_NOT_UNSIGNED);
            }
    return true;
}

static bool json_value(json_reader *r, json_place place, int depth);

/* The keys an object has read so far, to refuse a repeated one. */
typedef struct {
    char **keys;
    size_t *lens, n;
} key_set;

/* Adds the key just read (taking ownership of it), or fails the reader: too many keys, no memory,
 * a NUL in a checkpoint's key, or a key seen before in this object (at key_at). */
static bool key_set_add(json_reader *r, key_set *k, char *key, size_t len, const char *key_at)
{
    if (k->n >= 65536) { /* duplicates are checked pairwise: bound the work a hostile header can ask for */
        tg_dealloc(key);
        return json_fail(r, JSON_SYNTAX);
    }
    char **more_keys = tg_realloc(k->keys, (k->n + 1) * sizeof *k->keys);
    if (more_keys)
        k->keys = more_keys;
    size_t *more_lens = more_keys ? tg_realloc(k->lens, (k->n + 1) * sizeof *k->lens) : NULL;
    if (!more_keys || !more_lens) {
        tg_dealloc(key);
        return json_fail(r, JSON_NO_MEMORY);
    }
    k->lens = more_lens;
    k->keys[k->n] = key;
    k->lens[k->n++] = len;
    if (r->checkpoint && memchr(key, '\0', len)) {
        r->p = key_at;
        return json_fail(r, JSON_NUL_IN_STRING);
    }
    for (size_t i = 0; i + 1 < k->n; i++)
        if (k->lens[i] == len && memcmp(k->keys[i], key, len) == 0) {
            r->p = key_at;
            return json_fail(r, JSON_DUPLICATE_KEY);
        }
    return true;
}

static void key_set_free(key_set *k)
{
    for (size_t i = 0; i < k->n; i++)
        tg_dealloc(k->keys[i]);
    tg_dealloc(k->keys);
    tg_dealloc(k->lens);
}

/* Where a member's value sits: a checkpoint's root holds tensor entries, whose shape and
 * data_offsets hold unsigned integers. */
static json_place child_place(const json_reader *r, json_place place, const char *key)
{
    if (place == AT_ROOT && r->checkpoint && strcmp(key, "__metadata__") != 0)
        return AT_ENTRY;
    if (place == AT_ENTRY && (strcmp(key, "shape") == 0 || strcmp(key, "data_offsets") == 0))
        return AT_UNSIGNED_ARRAY;
    return AT_OTHER;
}

static bool json_object(json_reader *r, json_place place, int depth)
{
    key_set k = { 0 };
    bool ok = false;
    r->p++;
    json_space(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return true;
    }
    for (;;) {
        json_space(r);
        if (r->p >= r->end || *r->p != '"') {
            json_fail(r, JSON_SYNTAX);
            break;
        }
        const char *key_at = r->p;
        char *key;
        size_t key_len;
        if (!json_string(r, &key, &key_len) || !key_set_add(r, &k, key, key_len, key_at))
            break;
        json_space(r);
        if (r->p >= r->end || *r->p != ':') {
            json_fail(r, JSON_SYNTAX);
            break;
        }
        r->p++;
        if (!json_value(r, child_place(r, place, key), depth + 1))
            break;
        json_space(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            ok = true;
        } else {
            json_fail(r, JSON_SYNTAX);
        }
        break;
    }
    key_set_free(&k);
    return ok;
}

static bool json_array(json_reader *r, json_place place, int depth)
{
    r->p++;
    json_space(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return true;
    }
    for (;;) {
        if (!json_value(r, place == AT_UNSIGNED_ARRAY ? AT_UNSIGNED : AT_OTHER, depth + 1))
            return false;
        json_space(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return true;
        }
        return json_fail(r, JSON_SYNTAX);
    }
}

static bool json_value(json_reader *r, json_place place, int depth)
{
    json_space(r);
    if (depth > 1000 || r->p >= r->end)
        return json_fail(r, JSON_SYNTAX);
    switch (*r->p) {
    case '{': return json_object(r, place, depth);
    case '[': return json_array(r, place, depth);
    case '"': {
        /* A NUL from \u0000 cuts a C string short: a name or a label would
         * silently read as another. The reference keeps it. */
        char *text;
        size_t n;
        if (!json_string(r, &text, &n))
            return false;
        bool nul = memchr(text, '\0', n) != NULL;
        tg_dealloc(text);
        return r->checkpoint && nul ? json_fail(r, JSON_NUL_IN_STRING) : true;
    }
    case 't': return json_literal(r, "true");
    case 'f': return json_literal(r, "false");
    case 'n': return json_literal(r, "null");
    default: return json_number(r, place);
    }
}

/* JSON_OK when text[0..n) is one JSON object and only white space after it. */
json_fault tg_json_strict_object(const char *text, size_t n, bool checkpoint, size_t *fault_at)
{
    json_reader r = { .p = text, .end = text + n, .start = text, .checkpoint = checkpoint };
    json_space(&r);
    if (r.p < r.end && *r.p != '{')
        json_fail(&r, JSON_SYNTAX);
    else if (json_value(&r, AT_ROOT, 0)) {
        json_space(&r);
        if (r.p != r.end)
            json_fail(&r, JSON_SYNTAX);
    }
    *fault_at = r.fault_at;
    return r.fault;
}
