/* Helpers shared by the unit suites (see test_util.h). */
#include "test_util.h"

#include "layer.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

unsigned lcg_state;

float lcg_uniform(void) /* in [-1, 1) */
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (float)((lcg_state >> 8) & 0xffffff) / 8388608.0f - 1.0f;
}

float *rand_buf(size_t n, float scale)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * lcg_uniform();
    return x;
}

float *zero_buf(size_t n)
{
    float *x = calloc(n ? n : 1, sizeof *x);
    ck_assert_ptr_nonnull(x);
    return x;
}

float *copy_buf(const float *s, size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    memcpy(x, s, n * sizeof *x);
    return x;
}

double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) /* also catches NaN */
            m = d;
    }
    return m;
}

double max_abs_diff_ref(const float *a, const double *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) /* NaN counts as a failure */
            m = d;
    }
    return m;
}

#define TOL 1e-4

void check_close(const char *what, const float *got, const double *want, size_t n)
{
    double e = max_abs_diff_ref(got, want, n);
    printf("%-44s max abs err %.3e (%zu values)\n", what, e, n);
    ck_assert_msg(e <= TOL, "%s: max abs error %g > %g", what, e, TOL);
}

double act_ref(double x, const struct cnn_act_params *a)
{
    switch (a->kind) {
    case CNN_ACT_RELU:
        return x < 0 ? 0 : x;
    case CNN_ACT_LEAKY_RELU:
        return x < 0 ? a->alpha * x : x;
    case CNN_ACT_CLIP:
        return fmin(fmax(x, a->alpha), a->beta);
    case CNN_ACT_SIGMOID:
        return 1.0 / (1.0 + exp(-x));
    case CNN_ACT_TANH:
        return tanh(x);
    case CNN_ACT_HARD_SIGMOID:
        return fmin(1.0, fmax(0.0, a->alpha * x + a->beta));
    case CNN_ACT_HARD_SWISH:
        return x * fmin(1.0, fmax(0.0, x / 6.0 + 0.5));
    default:
        return x;
    }
}

void make_tmpdir(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/cnn_unit_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                    continue;
                char sub[512];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ck_assert_int_ge(len, 0);
    rewind(f);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

void write_all(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

uint32_t test_crc32(uint32_t crc, const unsigned char *p, size_t n)
{
    uint32_t c = crc ^ 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

uint32_t model_file_crc(const unsigned char *b, size_t n)
{
    return test_crc32(test_crc32(0, b, 120), b + 124, n - 124);
}

void model_file_reseal(unsigned char *b, size_t n)
{
    if (n < 128 || b[8] != 2 || b[9] || b[10] || b[11])
        return;
    uint32_t c = model_file_crc(b, n);
    for (int i = 0; i < 4; i++)
        b[120 + i] = (unsigned char)(c >> (8 * i));
}
