/* What the file formats and loaders (src/io/) share, and what the trainer
 * takes from them: whole-file reads, the save path's hooks, JSON helpers, the
 * in-place split, and the data a config names. */
#ifndef TAPEGRAD_IO_INTERNAL_H
#define TAPEGRAD_IO_INTERNAL_H

#include "nn/nn_internal.h"

/* The number of cells on the first non-blank line of a CSV file (src/io/csv.c). */
int tg_csv_count_columns(const char *path, char delimiter, int64_t *columns);

/* 2^53: larger integers do not survive a JSON number (cJSON reads doubles). */
#define TG_JSON_MAX_INTEGER 9007199254740992.0

/* Before each cJSON call: routes cJSON through the allocator hooks (once per
 * process) and clears this thread's out-of-memory flag (src/io/json_alloc.c). */
void tg_json_begin(void);
/* Whether a cJSON allocation failed since tg_json_begin on this thread. */
bool tg_json_out_of_memory(void);

/* The save path's file-system calls, through tg_set_io_hooks (src/io/io_hooks.c). */
size_t tg_io_write(const void *data, size_t size, size_t n, FILE *f);
int tg_io_flush(FILE *f);
int tg_io_sync(int fd);
int tg_io_rename(const char *from, const char *to);

/* The whole file, NUL-terminated, in *len bytes (src/io/read_file.c). Refuses a
 * directory and, when max_bytes is not 0, a larger file; `what` names the
 * expected content in messages ("a CSV file"). */
char *tg_read_file(const char *path, const char *what, size_t max_bytes, size_t *len);
/* "a character device", "a FIFO", ... for messages that refuse what is not a regular file. */
const char *tg_file_kind(unsigned mode);

/* tg_dataset_split without the copy of the first part: ds keeps those rows, in the same order
 * tg_dataset_split would give them (its block shrinks to fit), and *second gets the rest. */
int tg_dataset_split_off(tg_dataset *ds, double fraction, tg_rng *rng, tg_dataset **second);

/* A safetensors header read as strictly as the reference reader (src/io/json_strict.c): one JSON
 * object with only white space after it; checkpoint rules add: no duplicate key in any object, no
 * \u0000 in a string, shape and data_offsets as bare unsigned integers. */
typedef enum { JSON_OK, JSON_SYNTAX, JSON_DUPLICATE_KEY, JSON_NOT_UNSIGNED, JSON_NUL_IN_STRING, JSON_NO_MEMORY } json_fault;
json_fault tg_json_strict_object(const char *text, size_t n, bool checkpoint, size_t *fault_at);

/* The training, validation and test sets a config names, split as training splits them. */
typedef struct {
    tg_dataset *train, *validation, *test;
} split_data;
int load_and_split(const tg_config *cfg, tg_rng *shuffle, split_data *d);
void split_data_free(split_data *d);

#endif
