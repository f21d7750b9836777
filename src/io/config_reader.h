/* The strict JSON reading that configs are made of (src/io/config_reader.c):
 * messages that name the file and the JSON path, typed values with ranges,
 * objects whose keys are checked, and data paths resolved against the
 * config's folder. src/io/config.c builds the sections from these. */
#ifndef TAPEGRAD_CONFIG_READER_H
#define TAPEGRAD_CONFIG_READER_H

#include "io/io_internal.h"

#include <cjson/cJSON.h>
#include <math.h>

#define PATH_LEN 160 /* a JSON path in a message; a longer one is cut */
#define MAX_EXACT TG_JSON_MAX_INTEGER

typedef struct {
    const char *file; /* named first in every message; NULL for text */
    const char *base_dir; /* relative data paths resolve against it; NULL or "": kept as written */
} parser;

/* Allowed numbers: lo and hi, each included or not; hi may be INFINITY. */
typedef struct {
    double lo, hi;
    bool lo_open, hi_open;
} range;

/* A JSON object and its path ("" for the top level). */
typedef struct {
    const cJSON *obj;
    const char *path;
} section;

static const range AT_LEAST_0 = { 0, INFINITY, false, true };
static const range ABOVE_0 = { 0, INFINITY, true, true };
static const range FRACTION = { 0, 1, false, true }; /* [0, 1) */
static const range UNIT = { 0, 1, false, false }; /* [0, 1] */

/* Sets the error "file: path: message" (either part left out when NULL); returns -1. */
int tg_cfg_fail(const parser *p, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* What a value is, for "expected X, got Y". */
const char *tg_cfg_describe(const cJSON *item, char *buf, size_t size);
/* names (NULL-terminated) joined by ", ", each between quote marks. */
const char *tg_cfg_list_names(const char *const *names, const char *quote, char *buf, size_t size);
int tg_cfg_number_value(const parser *p, const cJSON *item, const char *path, range r, double *out);
/* An integer in [lo, hi], read from valuedouble: cJSON's valueint saturates. */
int tg_cfg_integer_value(const parser *p, const cJSON *item, const char *path, double lo, double hi, int64_t *out);
int tg_cfg_bool_value(const parser *p, const cJSON *item, const char *path, int *out);
int tg_cfg_string_value(const parser *p, const cJSON *item, const char *path, const char **out);
/* The index in choices (NULL-terminated) of the string at path. */
int tg_cfg_choice_value(const parser *p, const cJSON *item, const char *path, const char *const *choices, int *index);
const char *tg_cfg_key_path(char *buf, const char *parent, const char *key);
/* The member named key. Names compare case-exactly (cJSON_GetObjectItem does not). */
const cJSON *tg_cfg_member(section s, const char *key);
int tg_cfg_as_section(const parser *p, const cJSON *item, const char *path, section *out);
/* Refuses a member whose name is not in allowed (NULL-terminated) or repeats
 * an earlier one. for_what qualifies the message ("for type \"adam\""), or NULL.
 * Each member is compared with those before it, so a repeat is found within
 * the first few members and the cost stays linear. */
int tg_cfg_check_keys(const parser *p, section s, const char *const *allowed, const char *for_what);
int tg_cfg_required(const parser *p, section s, const char *key);
int tg_cfg_get_number(const parser *p, section s, const char *key, range r, double *out);
int tg_cfg_get_integer(const parser *p, section s, const char *key, double lo, double hi, int64_t *out);
int tg_cfg_get_int(const parser *p, section s, const char *key, int lo, int *out);
int tg_cfg_get_seed(const parser *p, section s, const char *key, uint64_t *out);
int tg_cfg_get_bool(const parser *p, section s, const char *key, int *out);
int tg_cfg_get_string(const parser *p, section s, const char *key, const char **out);
int tg_cfg_get_choice(const parser *p, section s, const char *key, const char *const *choices, int *index);
/* written resolved against base: an absolute path, or a NULL or empty base, keeps it as written. */
char *tg_cfg_resolve(const char *base, const char *written);
/* The folder part of path: "" for a bare file name, "/" for a file at the root. */
char *tg_cfg_folder_of(const char *path);
int tg_cfg_get_path(const parser *p, section s, const char *key, char **out);

#endif
