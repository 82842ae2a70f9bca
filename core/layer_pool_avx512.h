/* The max pool's AVX-512 rows (layer_pool_avx512.c), which layer_pool.c runs where
 * cnn_cpu_avx512() (avx512.h) is 1. */
#ifndef CNN_LAYER_POOL_AVX512_H
#define CNN_LAYER_POOL_AVX512_H

/* m[x] = row[x] > m[x] ? row[x] : m[x] for x < n. */
void cnn_max_into_avx512(float *m, const float *row, int n);

/* o[i] = the max of r[2i], r[2i + 1], r[2i + 2] (3-wide windows, stride 2), 16 at a time, for
 * the first i of [0, count) whose 16-block reads stay inside r[0, avail); returns how many
 * it wrote (a multiple of 16; the caller does the rest). */
int cnn_max_cols3s2_avx512(float *o, const float *r, int count, int avail);

#endif
