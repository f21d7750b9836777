/* One input through one loader: the calls the fuzz targets make (libFuzzer)
 * and the regression test replays (Criterion), kept in one place so both run
 * exactly the same code. docs/fuzzing.md says what each target covers. */
#ifndef TAPEGRAD_FUZZ_INPUTS_H
#define TAPEGRAD_FUZZ_INPUTS_H

#include <stddef.h>
#include <stdint.h>

/* What the loader calls made of one input. A refusal must set tg_last_error();
 * the fuzz targets do not look at the message, the regression test does. */
typedef struct {
    int calls; /* loader calls made */
    int accepted; /* of which returned a result (checked, then freed) */
    int silent; /* of which returned nothing and left tg_last_error() empty */
} fuzz_outcome;

/* The folder the inputs are written to: a new one under $TMPDIR (or /tmp),
 * made on the first call and removed by fuzz_scratch_close. A result the
 * loader accepted but that breaks its documented guarantees (a label out of
 * range, a NaN feature, a model that will not run) aborts with a message, so
 * libFuzzer reports it like a crash. So does a failure of the harness itself. */
void fuzz_scratch_open(void);
void fuzz_scratch_close(void);
/* Names the input in those messages (the regression test's file); NULL: none. */
void fuzz_name_input(const char *name);

/* tg_config_parse on a NUL-terminated copy, then tg_config_load of the bytes
 * written to a file. */
fuzz_outcome fuzz_config(const uint8_t *data, size_t size);
/* The bytes as a CSV file, loaded with six option sets: the defaults (header
 * detected, label last); no header, label column 0; the label by header name
 * "label"; the label names given ("a", "b", "c"); tab-separated with a header,
 * label column 1 and feature columns 0 and -1; ';'-separated, unlabeled. */
fuzz_outcome fuzz_csv(const uint8_t *data, size_t size);
/* The bytes as a libsvm file, loaded with four option sets: the defaults; 8
 * features fixed; 8 features with larger indices skipped; the label names
 * given ("+1", "-1", "0", "1", "2"). An accepted file must be a well-formed
 * CSR, and subset, moments, standardization and a batch gather run on it. */
fuzz_outcome fuzz_libsvm(const uint8_t *data, size_t size);
/* Byte 0 is the length L of the labels file (cut to what there is), the next
 * L bytes are the labels file and the rest the images file. Loaded raw, then
 * both written through gzip (gzopen "wb") and loaded again. */
fuzz_outcome fuzz_idx(const uint8_t *data, size_t size);
/* The bytes as a safetensors checkpoint, tg_model_load; a model it accepts
 * runs one forward pass, and is saved (tg_model_save) and loaded again
 * unchanged. */
fuzz_outcome fuzz_safetensors(const uint8_t *data, size_t size);

#endif
