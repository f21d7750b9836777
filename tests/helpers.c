#include "helpers.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tg_tensor *random_tensor(tg_dtype dtype, int ndim, const int64_t *shape, uint64_t seed, double lo, double hi)
{
    tg_tensor *t = tg_tensor_new(dtype, ndim, shape);
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    if (t)
        tg_rng_fill_uniform(&rng, t, lo, hi);
    return t;
}

tg_tensor *random_labels(int64_t n, int64_t classes, uint64_t seed)
{
    tg_tensor *t = tg_tensor_new(TG_I64, 1, (int64_t[]){ n });
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int64_t i = 0; t && i < n; i++)
        ((int64_t *)tg_data(t))[i] = (int64_t)tg_rng_below(&rng, (uint64_t)classes);
    return t;
}

int close_enough(double a, double b, double tol)
{
    if (isnan(a) && isnan(b))
        return 1;
    return fabs(a - b) <= tol;
}

char *make_temp_dir(const char *prefix)
{
    size_t n = strlen(prefix) + 16;
    char *dir = malloc(n);
    cr_assert_not_null(dir);
    snprintf(dir, n, "/tmp/%s-XXXXXX", prefix);
    cr_assert_not_null(mkdtemp(dir), "cannot make %s", dir);
    return dir;
}

char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    cr_assert_not_null(path);
    snprintf(path, n, "%s/%s", dir, name);
    return path;
}

void write_bytes(const char *path, const void *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(bytes, 1, size, f), size);
    cr_assert_eq(fclose(f), 0);
}

unsigned char *read_bytes(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    rewind(f);
    unsigned char *bytes = malloc((size_t)n + 1);
    cr_assert_not_null(bytes);
    cr_assert_eq(fread(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    bytes[n] = 0; /* text files read as C strings */
    *size = (size_t)n;
    return bytes;
}

tg_config *config_from_text(const char *single_quoted, const char *data_path)
{
    char text[4096];
    int n = snprintf(text, sizeof text, single_quoted, data_path);
    cr_assert(n > 0 && (size_t)n < sizeof text);
    for (char *c = text; *c; c++)
        if (*c == '\'')
            *c = '"';
    tg_config *cfg = tg_config_parse(text, NULL);
    cr_assert_not_null(cfg, "%s\n%s", tg_last_error(), text);
    return cfg;
}

void assert_error(const char *what, const tg_tensor *result, const char *const *needles)
{
    cr_assert_null(result, "%s: expected NULL", what);
    const char *msg = tg_last_error();
    for (int i = 0; needles[i]; i++)
        cr_assert_not_null(strstr(msg, needles[i]), "%s: error \"%s\" lacks \"%s\"", what, msg, needles[i]);
    tg_clear_error();
}

void write_temp(char *path, size_t size, const char *prefix, const char *text, size_t len)
{
    snprintf(path, size, "/tmp/%s_XXXXXX", prefix);
    int fd = mkstemp(path);
    cr_assert(fd >= 0, "mkstemp failed");
    FILE *f = fdopen(fd, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}
