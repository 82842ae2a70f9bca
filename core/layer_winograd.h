/* Four-lane helpers shared by the Winograd kernels (internal: layer_winograd.c for F(2x2,3x3),
 * layer_winograd4.c for F(4x4,3x3)).  The transforms process four tiles per vector with the
 * GCC/clang vector extension; memcpy does the unaligned loads and stores. */
#ifndef CNN_LAYER_WINOGRAD_H
#define CNN_LAYER_WINOGRAD_H

#include <string.h>

struct cnn_conv2d;

typedef float v4f __attribute__((vector_size(16)));

/* Before the transforms' loops over a tile's rows or columns (a constant count of 4-6
 * vectors): unrolled, their vector arrays stay in registers; GCC -O2 leaves them rolled,
 * the arrays on the stack.  F(4x4) on one Zen 3 core, ResNet-18: 56x56 convs -19% at batch
 * 1 and 4, 28x28 -13% / -8% (F(2x2)'s loops, unrolled too, gained nothing). */
#define WINO_UNROLL _Pragma("GCC unroll 8")
typedef int v4i __attribute__((vector_size(16)));

/* dst[0..n) = lanes of v (n <= 4); lane by lane for n < 4 (a copy loop here would become
 * a memcpy call, which cost more than the transform itself on 14x14 layers). */
static inline void wino_store_n(float *dst, v4f v, int n)
{
    if (n == 4) {
        memcpy(dst, &v, sizeof v);
        return;
    }
    if (n > 0)
        dst[0] = v[0];
    if (n > 1)
        dst[1] = v[1];
    if (n > 2)
        dst[2] = v[2];
}

/* Lanes from src[0..n), zero beyond (n <= 4). */
static inline v4f wino_load_n(const float *src, int n)
{
    v4f v = {0, 0, 0, 0};
    if (n == 4) {
        memcpy(&v, src, sizeof v);
        return v;
    }
    if (n > 0)
        v[0] = src[0];
    if (n > 1)
        v[1] = src[1];
    if (n > 2)
        v[2] = src[2];
    return v;
}

static inline v4f wino_relu4(v4f x)
{
    const v4f zero = {0, 0, 0, 0};
    return (v4f)((v4i)x & (x > zero)); /* lanes <= 0 (and NaN) become +0, as add_bias() */
}

/* The chunk's products of output channels [oc_lo, oc_hi) of conv p, M_k = U_k V_k for k <
 * planes: U_k = rows oc_lo.. of the k-th OC x C plane of u (packed per plane by
 * cnn_gemm_pack_in_place() when u_packed), V_k = v + k * C * nt (C x nt), M_k = m + k * (oc_hi
 * - oc_lo) * nt.  pack_scratch: cnn_gemm_packed_scratch_floats(C) floats when u_packed. */
void cnn_winograd_products(int planes, const float *u, int u_packed, const struct cnn_conv2d *p,
                           int oc_lo, int oc_hi, size_t nt, const float *v, float *m,
                           float *pack_scratch);

/* The AVX-512 rows of the F(2x2) transforms (layer_winograd_avx512.c), only where
 * cnn_cpu_avx512().  Input: V_k (k = 0..15) of the tiles [0, tw) of one tile row into
 * dst + k * kstride + tile, from its four input rows x (w floats each; a zero row in the
 * padding) whose column 0 is tile column pad_l.  Output: the tile row of one channel from M
 * (src + k * kstride + tile): output rows o[0] and o[1] (NULL past the bottom edge), ow
 * columns, + bias, + the residual rows res[] (or NULL), then ReLU when relu. */
void cnn_wino2_input_row_avx512(float *dst, size_t kstride, const float *const x[4], int w,
                                int pad_l, int tw);
void cnn_wino2_output_row_avx512(float *const o[2], const float *const res[2], const float *src,
                                 size_t kstride, float bias, int relu, int tw, int ow);

/* The same for F(4x4) (six input rows, V_k and M_k for k = 0..35): the output tile row of
 * one channel is `rows` (1..4) output rows from out on, ow floats apart, res laid out as
 * out (or NULL). */
void cnn_wino4_input_row_avx512(float *dst, size_t kstride, const float *const x[6], int w,
                                int pad_l, int tw);
void cnn_wino4_output_row_avx512(float *out, const float *res, size_t ow, int rows,
                                 const float *src, size_t kstride, float bias, int relu, int tw);

/* cnn_wino2_input_row_avx512() for g (1..4) consecutive tile rows at once, g tw <= 16 and
 * tw <= 7: x[j] are tile row j's input rows; its tiles follow tile row j - 1's in dst. */
void cnn_wino2_input_rows_avx512(float *dst, size_t kstride, const float *const x[][4], int g,
                                 int w, int pad_l, int tw);

/* cnn_wino4_input_row_avx512() for g (1..4) consecutive tile rows at once, tw <= 4. */
void cnn_wino4_input_rows_avx512(float *dst, size_t kstride, const float *const x[][6], int g,
                                 int w, int pad_l, int tw);

/* The output rows of g tile rows at once (g tw <= 16; F(4x4): tw <= 8), consecutive in M
 * from src: per tile row j, F(2x2): output rows o[j][0..1] (o[j][1] NULL past the bottom
 * edge) and residual rows res[j][0..1] (or NULL); F(4x4): rows[j] output rows from out[j]
 * on, ow floats apart, res[j] laid out as out[j] (or NULL).  Small maps (16x16 and under,
 * 28x28 for F(4x4)) use whole vectors so. */
void cnn_wino2_output_rows_avx512(float *o[][2], const float *res[][2], int g,
                                  const float *src, size_t kstride, float bias, int relu, int tw,
                                  int ow);
void cnn_wino4_output_rows_avx512(float *const out[], const float *const res[], const int rows[],
                                  int g, size_t ow, const float *src, size_t kstride, float bias,
                                  int relu, int tw);

static inline size_t wino_round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

#endif
