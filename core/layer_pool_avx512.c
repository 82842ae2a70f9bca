/* The max pool's AVX-512 rows (layer_pool_avx512.h): the stack row's elementwise max and the
 * 3-wide stride-2 windows across it (ResNet's and GoogLeNet's stem pools), 16 values per
 * instruction where layer_pool.c's SSE loops take 4.  _mm512_max_ps(a, b) is a > b ? a : b,
 * the scalar loops' comparison, so NaN goes the same way and the results are the same
 * floats. */
#include "layer_pool_avx512.h"

#include "avx512.h"

#if defined(__x86_64__)

CNN_AVX512_KERNEL void cnn_max_into_avx512(float *m, const float *row, int n)
{
    for (int x = 0; x < n; x += 16) {
        const __mmask16 k = cnn_lanes16(n - x);
        const __m512 a = _mm512_maskz_loadu_ps(k, row + x), b = _mm512_maskz_loadu_ps(k, m + x);
        _mm512_mask_storeu_ps(m + x, k, _mm512_max_ps(a, b));
    }
}

CNN_AVX512_KERNEL int cnn_max_cols3s2_avx512(float *o, const float *r, int count, int avail)
{
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    int i = 0;
    for (; i + 16 <= count && 2 * i + 34 <= avail; i += 16) {
        const float *w = r + 2 * i; /* windows i..i+15 read w[0..32] */
        const __m512 a = _mm512_loadu_ps(w), b = _mm512_loadu_ps(w + 16);
        const __m512 a2 = _mm512_loadu_ps(w + 2), b2 = _mm512_loadu_ps(w + 18);
        const __m512 x0 = _mm512_permutex2var_ps(a, even, b);   /* w0 w2 .. w30 */
        const __m512 x1 = _mm512_permutex2var_ps(a, odd, b);    /* w1 w3 .. w31 */
        const __m512 x2 = _mm512_permutex2var_ps(a2, even, b2); /* w2 w4 .. w32 */
        _mm512_storeu_ps(o + i, _mm512_max_ps(x2, _mm512_max_ps(x1, x0)));
    }
    return i;
}

#else /* never called: cnn_cpu_avx512() is 0 */

void cnn_max_into_avx512(float *m, const float *row, int n)
{
    (void)m, (void)row, (void)n;
}

int cnn_max_cols3s2_avx512(float *o, const float *r, int count, int avail)
{
    (void)o, (void)r, (void)count, (void)avail;
    return 0;
}

#endif
