/* What the file formats and loaders (src/io/) share, and what the trainer
 * takes from them: whole-file reads, the save path's hooks, JSON helpers, the
 * in-place split, and the data a config names. */
#ifndef TAPEGRAD_IO_INTERNAL_H
#define TAPEGRAD_IO_INTERNAL_H

#include "nn/nn_internal.h"

/* The number of cells on the first non-blank line of a CSV file (src/io/csv.c). */
int tg_csv_count_columns(const char *path, char delimiter, int64_t *columns);

/* A data file read line by line through one buffer (src/io/csv.c): the unread bytes are buf[start, end).
 * Open skips a UTF-8 byte order mark and refuses what is not a regular file (`what`: "a libsvm file"); next
 * gives 1 with the next line NUL-terminated in place (without "\n" or "\r\n", valid until the next call), 0
 * at the end, -1 on error (a NUL byte is one, named by its line); seek goes to a line start an earlier pass
 * found (its byte offset, the lines before it). */
typedef struct {
    FILE *f;
    const char *path;
    char *buf;
    size_t cap, start, end;
    bool eof;
    int64_t line; /* lines returned so far */
    int64_t base; /* the file offset of buf[0]: where a line starts is base + (line - buf) */
} tg_line_reader;
int tg_line_reader_open(tg_line_reader *r, const char *path, const char *what);
/* Where each block of rows of a text file starts (its byte offset, the lines before it, so an error in any
 * block names the file's own line) and the file's size and modification time when the first pass read it:
 * what the CSV and libsvm block sources share (src/io/csv.c). */
typedef struct {
    int64_t *offset, *lines_before; /* [blocks] */
    int64_t blocks, cap;
    int64_t size, mtime;
} tg_block_index;
int tg_block_index_mark(tg_block_index *ix, int64_t offset, int64_t lines_before); /* the next block; 0 or -1 */
void tg_block_index_free(tg_block_index *ix);
int tg_block_index_stamp(tg_block_index *ix, const tg_line_reader *r); /* records the file's size and time */
int tg_block_index_unchanged(const tg_block_index *ix, const tg_line_reader *r); /* 0, or -1 with the error */
int tg_line_reader_next(tg_line_reader *r, char **line, size_t *len);
int tg_line_reader_seek(tg_line_reader *r, int64_t offset, int64_t lines_before);
void tg_line_reader_close(tg_line_reader *r);

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
/* Part `part` of `parts` of a regular file: the lines that start in its bytes [size p / parts,
 * size (p + 1) / parts), NUL-terminated, and in *lines_before the lines before them. */
char *tg_read_file_part(const char *path, const char *what, int part, int parts, size_t *len, int64_t *lines_before);
/* The newlines in bytes [0, cut - 1) of f (0 when cut <= 1), for part `part` of `parts`, whose bytes are
 * [cut, end): across ranks (parts the ranks, part this rank's; every rank must call it) each rank counts
 * its own bytes and the counts are added, so no rank reads before its part; in one process, counted from
 * the start. */
int tg_lines_before_byte(FILE *f, const char *path, int64_t cut, int64_t end, int part, int parts, int64_t *lines);
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

/* The training, validation and test sets a config names, split as training splits them. Across ranks
 * (src/io/shard.c) train holds this rank's rows only, and position[i] says where its row i stands in the
 * training set one process would hold, of `rows` rows (position NULL in one process). */
typedef struct {
    tg_dataset *train, *validation, *test;
    int64_t rows;
    int64_t *position;
} split_data;
int tg_load_and_split(const tg_config *cfg, tg_rng *shuffle, split_data *d);
/* The same across ranks (mpirun): every rank reads its part of the training file (a byte range of CSV and
 * libsvm, a row range of IDX), the labels, feature count and row count agreed between them; splits draw the
 * permutation one process draws; the validation rows are gathered to every rank, the test rows to rank 0
 * (the others get an empty test set). */
int tg_load_and_split_ranks(const tg_config *cfg, tg_rng *shuffle, split_data *d);
/* The training file's part `part` of `parts` (tg_read_file_part's rule for text), its labels merged across
 * ranks (when the run has them) so that every rank maps them as one process reading the whole file. */
tg_dataset *tg_csv_load_part(const char *path, const tg_csv_opts *opts, int part, int parts);
tg_dataset *tg_libsvm_load_part(const char *path, const tg_libsvm_opts *opts, int part, int parts);
tg_dataset *tg_idx_load_part(const char *images_path, const char *labels_path, double scale, int part, int parts);
/* The split's permutation of rows 0..n-1, drawn from rng (src/io/dataset.c). */
int64_t *tg_shuffled_order(int64_t rows, tg_rng *rng);
/* tg_dataset_moments of the rows of every rank: ds is this rank's share of `rows` rows. */
int tg_dataset_moments_ranks(const tg_dataset *ds, int64_t rows, float *mean, float *std);
void tg_split_data_free(split_data *d);
/* One file a config names, loaded as training loads it (labels mapped as mapping_from's, when given),
 * and the CSV options its data section gives (src/io/load_data.c). */
tg_dataset *tg_load_config_file(const tg_config *cfg, const char *path, const char *labels_path,
                                const tg_dataset *mapping_from);
void tg_config_csv_opts(const tg_config *cfg, const tg_dataset *mapping_from, tg_csv_opts *o);

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
/* Across ranks: the union of every rank's table, in rank order then each table's order (so the first
 * appearance in the file, read in parts by rank), becomes every rank's table; y's ids follow. A no-op in
 * one process. 0, or -1 with the error set. */
int tg_label_table_merge_ranks(tg_label_table *t, int64_t *y, int64_t rows);
/* Moves the table's names into ds as classes, and rewrites y[rows] (ids into the table) as class ids:
 * integer labels (none given) are class ids 0..max, named "0".."max"; other labels keep their order of
 * first appearance. 0 on success, -1 on allocation failure, 1 when an integer label is above
 * TG_MAX_CLASS_ID (*too_large: its id in the table, for the caller's message). */
int tg_labels_to_classes(tg_label_table *t, bool given_names, int64_t *y, int64_t rows, tg_dataset *ds,
                         int64_t *too_large);
/* After tg_labels_to_classes moved text labels' names into h, copies them back into the table (the blocks read
 * later look their labels up there) and fixes the table: a label the first pass did not meet is unknown. */
int tg_label_table_keep(tg_label_table *t, bool *given_names, const tg_dataset *h);
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
/* tg_dataset_moments' two passes over dense rows, a block at a time (src/io/dataset.c): add the
 * block's values into sum, then (sum divided by the rows: the mean) the squared deviations; finish
 * gives the float mean and std (0 becomes 1). */
void tg_moments_add_sums(double *sum, const float *x, int64_t rows, int64_t features);
void tg_moments_add_squares(double *squares, const double *mean, const float *x, int64_t rows, int64_t features);
void tg_moments_finish(const double *mean, const double *squares, int64_t rows, int64_t features, float *mean_out,
                       float *std_out);
/* The same for sparse data's stored values (scaling only: mean 0, std over every row, implicit zeros
 * counted): sums and stored counts per column, then the squared deviations from sum / rows. */
void tg_sparse_moments_add_sums(double *sum, int64_t *stored, const int32_t *col, const float *val, int64_t nnz);
void tg_sparse_moments_add_squares(double *squares, const double *sum, int64_t rows, const int32_t *col,
                                   const float *val, int64_t nnz);
void tg_sparse_moments_finish(const double *sum, const double *squares, const int64_t *stored, int64_t rows,
                              int64_t features, float *mean, float *std);

/* ---- data larger than memory: a training file in blocks of rows (src/io/stream.c) ---- */

/* What a file format gives the stream: the file cut into blocks of block_rows rows (the last may hold
 * fewer), each readable on its own, in any order. Opening ran the first pass over the whole file: every
 * row parsed (a bad row is an error, with file:line:column, before training starts), the labels mapped
 * to classes, where each block starts. A format plugs in by filling this struct (tg_csv_block_source;
 * tg_libsvm_block_source fills CSR blocks instead of x). */
typedef struct {
    void *impl;
    const tg_dataset *header; /* rows, features, classes, label_names, feature_names; x and y NULL */
    int64_t block_rows, blocks;
    /* What the first pass adds up on the way, in file order: each column's sum (tg_moments_add_sums, row
     * by row), the largest |x|, and an FNV-1a hash of every row's values and label id. */
    const double *sum; /* [features] */
    double max_abs;
    uint64_t hash;
    /* Block k's rows: x [rows, features] float32, y class ids. 0, or -1 with the error set. */
    int (*read)(void *impl, int64_t block, float *x, int64_t *y);
    /* A sparse source (libsvm: header has x and row_ptr NULL) leaves read NULL and gives CSR blocks:
     * read_sparse fills block k's rows row_ptr[1..n] (row_ptr[0], set by the caller, is where its values
     * start in col and val), col and val from row_ptr[0] on, and y. block_nnz [blocks]: each block's stored
     * values; rows_of_length [longest_row + 1]: how many rows store L values; stored [features]: each
     * column's stored values (sum above is theirs), for the scaling's implicit zeros. */
    const int64_t *block_nnz, *rows_of_length, *stored;
    int64_t longest_row;
    int (*read_sparse)(void *impl, int64_t block, int64_t *row_ptr, int32_t *col, float *val, int64_t *y);
    /* 0 while the file is as the first pass found it (size and modification time), else -1 with the error. */
    int (*unchanged)(void *impl);
    void (*close)(void *impl);
} tg_block_source;
/* A CSV file (opts as tg_csv_load's; label_names maps the labels of a file to those given). */
int tg_csv_block_source(const char *path, const tg_csv_opts *opts, int64_t block_rows, tg_block_source *out);
/* A libsvm file, checked line by line with tg_libsvm_load's rules and messages (opts as its: the feature
 * count from the data or fixed, unseen indices refused or dropped, label_names) (src/io/libsvm.c). */
int tg_libsvm_block_source(const char *path, const tg_libsvm_opts *opts, int64_t block_rows, tg_block_source *out);

/* A training file streamed in windows of blocks: each epoch visits the blocks in an order shuffled from
 * the data seed, reads shuffle_window of them at a time, and hands out the window's rows in an order
 * shuffled from the same stream of random numbers, as batches of reused tensors standardized with the
 * model's mean and std. Memory is the window, the batch and a few numbers per block, never the file. */
typedef struct tg_stream tg_stream;
/* Opens the stream over src (which it then owns, even on failure); when standardize, a second pass
 * over the blocks for the squared deviations from the first pass's mean: tg_dataset_moments' two
 * passes, the same sums in the same order, so the same bits. */
tg_stream *tg_stream_open(tg_block_source src, int64_t window_blocks, bool standardize);
void tg_stream_free(tg_stream *s);
const tg_dataset *tg_stream_header(const tg_stream *s);
bool tg_stream_sparse(const tg_stream *s); /* CSR batches (tg_stream_next_sparse): a libsvm file */
const float *tg_stream_mean(const tg_stream *s); /* NULL without standardize */
const float *tg_stream_std(const tg_stream *s);
double tg_stream_max_abs(const tg_stream *s); /* the largest |x| of the file */
uint64_t tg_stream_hash(const tg_stream *s); /* the first pass's: FNV-1a over every row's values and label */
/* Binary cross-entropy made the other class the positive one: class c is read as 1 - c from now on. */
void tg_stream_swap_binary(tg_stream *s);
/* The batches: batch_size rows (the last of an epoch fewer), in dtype, standardized with mean and std
 * (both NULL: raw; a sparse stream uses std only). Call once before the first reset. */
int tg_stream_start(tg_stream *s, int64_t batch_size, tg_dtype dtype, const float *mean, const float *std);
int64_t tg_stream_batches(const tg_stream *s); /* per epoch */
/* A new epoch: reshuffles the block order, draws from shuffle (kept: the windows draw from it as they
 * are read). Refuses a file that changed since it was opened. */
int tg_stream_reset(tg_stream *s, tg_rng *shuffle);
/* The epoch's next batch: 1 with *x and *y (valid until the next call), 0 after the last, -1 on error. */
int tg_stream_next(tg_stream *s, tg_tensor **x, tg_tensor **y);
/* The same for a sparse (libsvm) stream: *x one reused CSR batch of the dtype tg_stream_start was given,
 * its values divided by std (mean is not used: sparse rows are scaled, never centred); reserved at the
 * start for the largest batch, so no call allocates. */
int tg_stream_next_sparse(tg_stream *s, tg_sparse_csr **x, tg_tensor **y);
/* The file rows (0-based, header and blank lines not counted) of the last batch; *n of them. */
const int64_t *tg_stream_rows(const tg_stream *s, int64_t *n);
/* The position within the epoch, for training checkpoints (src/train/train_state.c): the block order
 * [blocks], the window's row order [window capacity] and 4 counters. tg_stream_restore takes the same
 * (checked) and re-reads the current window; shuffle is the generator the epoch draws from. */
typedef struct {
    int64_t *blocks, n_blocks;
    int64_t *order, n_order;
    int64_t position[4]; /* window, next row in it, rows the order was last shuffled for, rows handed out */
} tg_stream_state;
void tg_stream_get_state(tg_stream *s, tg_stream_state *out);
int tg_stream_restore(tg_stream *s, const int64_t *blocks, const int64_t *order, const int64_t *position,
                      tg_rng *shuffle, const char *path);

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
