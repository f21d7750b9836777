/* Checkpoints in Hugging Face's safetensors format: an 8-byte little-endian
 * header length N, N bytes of JSON (padded with spaces to a multiple of 8),
 * then the tensors' raw little-endian bytes. Tensors are named as the
 * state_dict of the equivalent torch.nn.Sequential, so PyTorch loads them with
 * load_state_dict; what rebuilds the model (layers, labels, standardization,
 * config) rides along in __metadata__ as strings, as the format requires.
 * The reader trusts nothing: every length, offset and shape is checked against
 * the file before anything is allocated or copied. See docs/checkpoint.md. */
#define _XOPEN_SOURCE 700 /* mkstemp, fsync, fdopen, fseeko, realpath, XSI strerror_r */
#define _FILE_OFFSET_BITS 64

#include "io/safetensors.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *tg_st_errno_text(int err, char *buf, size_t size)
{
    if (strerror_r(err, buf, size) != 0)
        snprintf(buf, size, "error %d", err);
    return buf;
}

/* Prefixes the error with the file's name unless it has it (allocation
 * failures and messages from below do not). */
void tg_st_name_the_file(const char *path)
{
    size_t n = strlen(path);
    const char *error = tg_last_error();
    if (strncmp(error, path, n) == 0 && error[n] == ':')
        return;
    char what[512];
    snprintf(what, sizeof what, "%s", error);
    tg_error("%s: %s", path, what);
}

bool tg_st_host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* Reverses the bytes of each of n elements of `size` bytes (big-endian hosts only). */
void tg_st_swap_bytes(unsigned char *p, size_t n, size_t size)
{
    for (size_t i = 0; i < n; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char c = p[a];
            p[a] = p[b];
            p[b] = c;
        }
}

const char *tg_st_safetensors_dtype(tg_dtype dtype)
{
    return dtype == TG_F32 ? "F32" : dtype == TG_F64 ? "F64" : "I64";
}

bool tg_st_is_training_name(const char *name)
{
    return strncmp(name, TG_TRAINING_PREFIX, sizeof TG_TRAINING_PREFIX - 1) == 0;
}
