/* What the safetensors reader and writer share (src/io/safetensors_read.c,
 * safetensors_write.c, safetensors_common.c): the format's constants and a few
 * byte and naming helpers. */
#ifndef TAPEGRAD_SAFETENSORS_H
#define TAPEGRAD_SAFETENSORS_H

#include "io/io_internal.h"

/* The reference implementation's cap; it keeps a hostile length from costing memory. */
#define MAX_HEADER_BYTES 100000000u
#define MAX_JSON_INTEGER TG_JSON_MAX_INTEGER

const char *tg_st_errno_text(int err, char *buf, size_t size);
void tg_st_name_the_file(const char *path);
bool tg_st_host_is_little_endian(void);
void tg_st_swap_bytes(unsigned char *p, size_t n, size_t size);
const char *tg_st_safetensors_dtype(tg_dtype dtype);
bool tg_st_is_training_name(const char *name);

#endif
