/* Helpers shared by the unit suites: the seeded LCG every kernel test draws its data from,
 * float buffers, max-error comparisons, a scalar activation reference, temp folders and
 * small file helpers.  Failures are check assertions (these run inside a test). */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct cnn_act_params;

/* State of the LCG; a test seeds it by assigning it before drawing. */
extern unsigned lcg_state;

/* Next value of the LCG, uniform in [-1, 1). */
float lcg_uniform(void);

/* n floats (at least one allocated): scale * lcg_uniform() each / zeros / a copy of s.
 * Owned by the caller (free()). */
float *rand_buf(size_t n, float scale);
float *zero_buf(size_t n);
float *copy_buf(const float *s, size_t n);

/* max |a[i] - b[i]| over n values; a NaN difference is returned as the maximum, so a
 * comparison against a tolerance fails. */
double max_abs_diff(const float *a, const float *b, size_t n);
/* The same against a double reference. */
double max_abs_diff_ref(const float *a, const double *b, size_t n);

/* Asserts max_abs_diff_ref(got, want, n) <= 1e-4 and prints it under the name what. */
void check_close(const char *what, const float *got, const double *want, size_t n);

/* Scalar activation written from the definitions, in double. */
double act_ref(double x, const struct cnn_act_params *a);

/* Creates a fresh folder /tmp/cnn_unit_XXXXXX; its path goes to dir (n bytes). */
void make_tmpdir(char *dir, size_t n);

/* Removes path and everything below it (making folders writable first); missing is fine. */
void rm_tree(const char *path);

/* Whole file at path (must exist); *n gets its size.  Owned by the caller (free()). */
unsigned char *read_all(const char *path, size_t *n);

/* Stores v big-endian in p[0..3]. */
void put_be32(unsigned char *p, uint32_t v);

#endif
