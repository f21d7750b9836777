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
typedef enum {
    JSON_OK,
    JSON_SYNTAX,
    JSON_DUPLICATE_KEY,
    JSON_NOT_UNSIGNED,
    JSON_NUL_IN_STRING,
    JSON_NO_MEMORY
} json_fault;
json_fault tg_json_strict_object(const char *text, size_t n, bool checkpoint, size_t *fault_at);

/* The training, validation and test sets a config names, split as training splits them. */
typedef struct {
    tg_dataset *train, *validation, *test;
} split_data;
int tg_load_and_split(const tg_config *cfg, tg_rng *shuffle, split_data *d);
void tg_split_data_free(split_data *d);

/* Text labels to class ids, shared by the CSV and libsvm loaders (src/io/csv.c):
 * distinct texts in order of first appearance, with the line each first appeared on. */
typedef struct {
    char **names;
    int64_t *first_line; /* where each name first appeared (0 for given names) */
    int64_t n, cap;
    int64_t *slots; /* open addressing: id + 1, 0 when empty */
    size_t n_slots; /* a power of two, at least 2n */
} tg_label_table;
int64_t tg_label_find(const tg_label_table *t, const char *s); /* -1 when absent */
int64_t tg_label_add(tg_label_table *t, const char *s, int64_t line); /* its id, -1 on allocation failure */
void tg_label_table_free(tg_label_table *t);
/* Moves the table's names into ds as classes, and rewrites y[rows] (ids into the table) as class ids:
 * integer labels (none given) are class ids 0..max, named "0".."max"; other labels keep their order of
 * first appearance. 0 on success, -1 on allocation failure, 1 when an integer label is above
 * TG_MAX_CLASS_ID (*too_large: its id in the table, for the caller's message). */
int tg_labels_to_classes(tg_label_table *t, bool given_names, int64_t *y, int64_t rows, tg_dataset *ds,
                         int64_t *too_large);
/* Integer labels are class ids, and every id below the largest gets a name: ids stop here. */
#define TG_MAX_CLASS_ID 65535

/* A decimal number in the C locale's grammar, whatever the process's locale
 * (src/io/csv.c): what CSV cells and libsvm values are. */
typedef enum {
    TG_NUMBER_OK,
    TG_NUMBER_NOT,
    TG_NUMBER_NAN,
    TG_NUMBER_INF,
    TG_NUMBER_OUT_OF_RANGE,
    TG_NUMBER_NO_MEMORY
} tg_number_kind;
tg_number_kind tg_parse_number(const char *s, double *value);
/* ---- training checkpoints (src/io/safetensors_*.c), written and read by src/train/train_state.c ---- */

/* A training checkpoint's extra tensors are named with this prefix; the reader accepts them (and I64
 * among them) only when __metadata__ has a "training" entry. */
#define TG_TRAINING_PREFIX "training."
typedef struct {
    const char *name;
    const tg_tensor *tensor;
} tg_named_tensor;
/* tg_model_save with weights[i] written in place of the model's parameter i (NULL: the model's own),
 * then the extra tensors, and training_meta (or NULL) as __metadata__ "training". */
int tg_checkpoint_save(const tg_model *model, const tg_tensor *const *weights, const tg_named_tensor *extras,
                       int n_extras, const char *training_meta, const char *path);
typedef struct {
    int n;
    char **names; /* [n], each starting with TG_TRAINING_PREFIX */
    tg_tensor **tensors; /* [n], caller-owned */
    char *meta; /* __metadata__ "training" */
} tg_checkpoint_extras;
/* tg_model_load that also reads a training checkpoint's extra tensors and metadata into *extras (refusing
 * a file without them). On failure *extras is left empty. */
tg_model *tg_checkpoint_load(const char *path, tg_checkpoint_extras *extras);
void tg_checkpoint_extras_free(tg_checkpoint_extras *extras);

#endif
