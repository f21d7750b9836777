/* Reading JSON strictly for configs: each object's keys checked against the
 * keys it may hold (case-exact, none repeated), each value against its type
 * and range, every error naming the JSON path and what was expected
 * ("optimizer.lr: must be > 0, got -0.1"). */
#define _POSIX_C_SOURCE 200809L /* fstat, fileno: to tell a folder from a file */

#include "io/config_reader.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

int tg_cfg_fail(const parser *p, const char *path, const char *fmt, ...)
{
    char message[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (p->file && path)
        tg_error("%s: %s: %s", p->file, path, message);
    else if (p->file || path)
        tg_error("%s: %s", p->file ? p->file : path, message);
    else
        tg_error("config: %s", message);
    return -1;
}

/* What a value is, for "expected X, got Y". */
const char *tg_cfg_describe(const cJSON *item, char *buf, size_t size)
{
    if (cJSON_IsString(item))
        snprintf(buf, size, "a string (\"%.40s%s\")", item->valuestring, strlen(item->valuestring) > 40 ? "..." : "");
    else if (cJSON_IsNumber(item))
        snprintf(buf, size, "a number (%.15g)", item->valuedouble);
    else if (cJSON_IsBool(item))
        snprintf(buf, size, "%s", cJSON_IsTrue(item) ? "true" : "false");
    else if (cJSON_IsNull(item))
        snprintf(buf, size, "null");
    else
        snprintf(buf, size, "%s", cJSON_IsArray(item) ? "an array" : "an object");
    return buf;
}

/* names (NULL-terminated) joined by ", ", each between quote marks. */
const char *tg_cfg_list_names(const char *const *names, const char *quote, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s%s%s", i ? ", " : "", quote, names[i], quote);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

int tg_cfg_number_value(const parser *p, const cJSON *item, const char *path, range r, double *out)
{
    char seen[64];
    if (!cJSON_IsNumber(item))
        return tg_cfg_fail(p, path, "expected a number, got %s", tg_cfg_describe(item, seen, sizeof seen));
    double v = item->valuedouble;
    if (!isfinite(v))
        return tg_cfg_fail(p, path, "must be a finite number; this one is too large for a double");
    if ((r.lo_open ? v <= r.lo : v < r.lo) || (r.hi_open ? v >= r.hi : v > r.hi)) {
        if (isinf(r.hi))
            return tg_cfg_fail(p, path, "must be %s %g, got %.15g", r.lo_open ? ">" : ">=", r.lo, v);
        return tg_cfg_fail(p, path, "must be in %c%g, %g%c, got %.15g", r.lo_open ? '(' : '[', r.lo, r.hi,
                           r.hi_open ? ')' : ']', v);
    }
    *out = v;
    return 0;
}

/* An integer in [lo, hi], read from valuedouble: cJSON's valueint saturates. */
int tg_cfg_integer_value(const parser *p, const cJSON *item, const char *path, double lo, double hi, int64_t *out)
{
    char seen[64];
    if (!cJSON_IsNumber(item))
        return tg_cfg_fail(p, path, "expected an integer, got %s", tg_cfg_describe(item, seen, sizeof seen));
    double v = item->valuedouble;
    if (!isfinite(v))
        return tg_cfg_fail(p, path, "expected an integer, got a number too large for a double");
    if (v != floor(v))
        return tg_cfg_fail(p, path, "expected an integer, got %.17g", v);
    if (v < lo)
        return tg_cfg_fail(p, path, "must be >= %.0f, got %.15g", lo, v);
    if (v > hi)
        return tg_cfg_fail(p, path, "must be at most %.0f%s, got %.15g", hi,
                           hi == MAX_EXACT ? " (larger integers are not exact in a JSON number)" : "", v);
    *out = (int64_t)v;
    return 0;
}

int tg_cfg_bool_value(const parser *p, const cJSON *item, const char *path, int *out)
{
    char seen[64];
    if (!cJSON_IsBool(item))
        return tg_cfg_fail(p, path, "expected true or false, got %s", tg_cfg_describe(item, seen, sizeof seen));
    *out = cJSON_IsTrue(item) ? 1 : 0;
    return 0;
}

int tg_cfg_string_value(const parser *p, const cJSON *item, const char *path, const char **out)
{
    char seen[64];
    if (!cJSON_IsString(item))
        return tg_cfg_fail(p, path, "expected a string, got %s", tg_cfg_describe(item, seen, sizeof seen));
    if (!item->valuestring[0])
        return tg_cfg_fail(p, path, "must not be empty");
    *out = item->valuestring;
    return 0;
}

/* The index in choices (NULL-terminated) of the string at path. */
int tg_cfg_choice_value(const parser *p, const cJSON *item, const char *path, const char *const *choices, int *index)
{
    const char *s = NULL;
    if (tg_cfg_string_value(p, item, path, &s))
        return -1;
    for (int i = 0; choices[i]; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *index = i;
            return 0;
        }
    }
    char expected[160];
    return tg_cfg_fail(p, path, "expected one of %s, got \"%.40s\"",
                       tg_cfg_list_names(choices, "\"", expected, sizeof expected), s);
}

/* ------------------------------------------------------------------------ */
/* Objects                                                                   */
/* ------------------------------------------------------------------------ */

/* The member named key. Names compare case-exactly (cJSON_GetObjectItem does not). */
const cJSON *tg_cfg_member(section s, const char *key)
{
    for (const cJSON *c = s.obj->child; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0)
            return c;
    return NULL;
}

const char *tg_cfg_key_path(char *buf, const char *parent, const char *key)
{
    int n = parent[0] ? snprintf(buf, PATH_LEN, "%s.%s", parent, key) : snprintf(buf, PATH_LEN, "%s", key);
    if (n >= PATH_LEN) /* a very long key: show that it was cut */
        memcpy(buf + PATH_LEN - 4, "...", 4);
    return buf;
}

int tg_cfg_as_section(const parser *p, const cJSON *item, const char *path, section *out)
{
    char seen[64];
    if (!cJSON_IsObject(item))
        return tg_cfg_fail(p, path, "expected an object, got %s", tg_cfg_describe(item, seen, sizeof seen));
    *out = (section){ item, path };
    return 0;
}

/* Refuses a member whose name is not in allowed (NULL-terminated) or repeats
 * an earlier one. for_what qualifies the message ("for type \"adam\""), or NULL.
 * Each member is compared with those before it, so a repeat is found within
 * the first few members and the cost stays linear. */
int tg_cfg_check_keys(const parser *p, section s, const char *const *allowed, const char *for_what)
{
    char path[PATH_LEN], expected[256];
    for (const cJSON *c = s.obj->child; c; c = c->next) {
        const char *name = c->string ? c->string : "";
        bool known = false;
        for (int i = 0; allowed[i] && !known; i++)
            known = strcmp(name, allowed[i]) == 0;
        tg_cfg_key_path(path, s.path, name);
        if (!known)
            return tg_cfg_fail(p, path, "unknown key%s%s; expected one of %s", for_what ? " " : "",
                               for_what ? for_what : "", tg_cfg_list_names(allowed, "", expected, sizeof expected));
        for (const cJSON *before = s.obj->child; before != c; before = before->next)
            if (before->string && strcmp(before->string, name) == 0)
                return tg_cfg_fail(p, path, "duplicate key");
    }
    return 0;
}

int tg_cfg_required(const parser *p, section s, const char *key)
{
    char path[PATH_LEN];
    return tg_cfg_member(s, key) ? 0 : tg_cfg_fail(p, tg_cfg_key_path(path, s.path, key), "required");
}

/* The getters leave *out as it was (the default) when the key is absent. */

int tg_cfg_get_number(const parser *p, section s, const char *key, range r, double *out)
{
    char path[PATH_LEN];
    const cJSON *item = tg_cfg_member(s, key);
    return item ? tg_cfg_number_value(p, item, tg_cfg_key_path(path, s.path, key), r, out) : 0;
}

int tg_cfg_get_integer(const parser *p, section s, const char *key, double lo, double hi, int64_t *out)
{
    char path[PATH_LEN];
    const cJSON *item = tg_cfg_member(s, key);
    return item ? tg_cfg_integer_value(p, item, tg_cfg_key_path(path, s.path, key), lo, hi, out) : 0;
}

int tg_cfg_get_int(const parser *p, section s, const char *key, int lo, int *out)
{
    int64_t v = *out;
    if (tg_cfg_get_integer(p, s, key, lo, INT_MAX, &v))
        return -1;
    *out = (int)v;
    return 0;
}

int tg_cfg_get_seed(const parser *p, section s, const char *key, uint64_t *out)
{
    int64_t v = (int64_t)*out;
    if (tg_cfg_get_integer(p, s, key, 0, MAX_EXACT, &v))
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int tg_cfg_get_bool(const parser *p, section s, const char *key, int *out)
{
    char path[PATH_LEN];
    const cJSON *item = tg_cfg_member(s, key);
    return item ? tg_cfg_bool_value(p, item, tg_cfg_key_path(path, s.path, key), out) : 0;
}

int tg_cfg_get_string(const parser *p, section s, const char *key, const char **out)
{
    char path[PATH_LEN];
    const cJSON *item = tg_cfg_member(s, key);
    return item ? tg_cfg_string_value(p, item, tg_cfg_key_path(path, s.path, key), out) : 0;
}

int tg_cfg_get_choice(const parser *p, section s, const char *key, const char *const *choices, int *index)
{
    char path[PATH_LEN];
    const cJSON *item = tg_cfg_member(s, key);
    return item ? tg_cfg_choice_value(p, item, tg_cfg_key_path(path, s.path, key), choices, index) : 0;
}

/* ------------------------------------------------------------------------ */
/* Paths                                                                     */
/* ------------------------------------------------------------------------ */

/* written resolved against base: an absolute path, or a NULL or empty base, keeps it as written. */
char *tg_cfg_resolve(const char *base, const char *written)
{
    if (written[0] == '/' || !base || !base[0])
        return tg_strdup(written);
    size_t nb = strlen(base), nw = strlen(written);
    bool has_slash = base[nb - 1] == '/';
    char *out = tg_alloc(nb + !has_slash + nw + 1);
    if (!out)
        return NULL;
    memcpy(out, base, nb);
    if (!has_slash)
        out[nb++] = '/';
    memcpy(out + nb, written, nw + 1);
    return out;
}

/* The folder part of path: "" for a bare file name, "/" for a file at the root. */
char *tg_cfg_folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
    char *out = tg_alloc(n + 1);
    if (out) {
        memcpy(out, path, n);
        out[n] = '\0';
    }
    return out;
}

int tg_cfg_get_path(const parser *p, section s, const char *key, char **out)
{
    const char *written = NULL;
    if (tg_cfg_get_string(p, s, key, &written))
        return -1;
    if (written && !(*out = tg_cfg_resolve(p->base_dir, written)))
        return -1;
    return 0;
}
