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

/* Writes b[0..n) to path (created or truncated); asserts it worked. */
void write_all(const char *path, const void *b, size_t n);

/* CRC-32 (ISO-HDLC, as PNG and zlib) of p[0..n) continued from crc (0 to start), bit by
 * bit from the polynomial: the reference the PNG and model-file fixtures are sealed with. */
uint32_t test_crc32(uint32_t crc, const unsigned char *p, size_t n);

/* The version-2 checksum of a model file b[0..n) (docs/model-format.md: CRC-32 of bytes
 * [0, 120) and [124, n)), from test_crc32; model_file_reseal stores it at 120 when b is a
 * version-2 file, so a test's byte patch meets the structural checks, not the checksum. */
uint32_t model_file_crc(const unsigned char *b, size_t n);
void model_file_reseal(unsigned char *b, size_t n);

/* Stores v big-endian in p[0..3]. */
void put_be32(unsigned char *p, uint32_t v);

#endif
