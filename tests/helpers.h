/* Shared by the test files: tensor builders and the float64 reference helpers. */
#ifndef TAPEGRAD_TEST_HELPERS_H
#define TAPEGRAD_TEST_HELPERS_H

#include <stddef.h>
#include <tapegrad.h>

/* A caller-owned float64 tensor filled with uniform values in [lo, hi) from seed. */
tg_tensor *random_tensor(tg_dtype dtype, int ndim, const int64_t *shape, uint64_t seed, double lo, double hi);
/* A caller-owned int64 tensor of n labels in [0, classes) from seed. */
tg_tensor *random_labels(int64_t n, int64_t classes, uint64_t seed);
/* Criterion-friendly: |a - b| <= tol (both NaN counts as equal). */
int close_enough(double a, double b, double tol);
/* result must be NULL and tg_last_error() must contain every one of the NULL-terminated needles
 * (then the error is cleared). ASSERT_ERROR takes the needles as arguments. */
void assert_error(const char *what, const tg_tensor *result, const char *const *needles);
#define ASSERT_ERROR(WHAT, RESULT, ...) assert_error(WHAT, RESULT, (const char *const[]){ __VA_ARGS__, NULL })

/* A config from text written with single quotes (turned into JSON's double quotes); a %s in it becomes
 * data_path. Asserts (Criterion) that it parses. */
tg_config *config_from_text(const char *single_quoted, const char *data_path);

/* Files for the tests that need them; each asserts (Criterion) on failure. */
char *make_temp_dir(const char *prefix); /* a new empty folder /tmp/PREFIX-XXXXXX; caller frees the path */
char *join_path(const char *dir, const char *name); /* "dir/name", caller frees */
void write_bytes(const char *path, const void *bytes, size_t size);
/* Writes len bytes to a new file /tmp/PREFIX_XXXXXX (mkstemp); path receives its name. */
void write_temp(char *path, size_t size, const char *prefix, const char *text, size_t len);
unsigned char *read_bytes(const char *path, size_t *size); /* the whole file and a 0 byte after it, caller frees */

#endif
