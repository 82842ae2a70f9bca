/* What the packed GEMM's drivers (gemm_packed.c) share with its register kernels: the AVX2
 * ones beside them and the AVX-512 ones (gemm_packed_avx512.c).  A kernel set names its
 * tile shape and a function for one tile; the drivers block K and the columns of B, repack
 * each block into strips of the tile's width, and run the tiles over it. */
#ifndef CNN_GEMM_PACKED_INTERNAL_H
#define CNN_GEMM_PACKED_INTERNAL_H

#include "gemm_packed.h"

#include <stddef.h>
#include <string.h>

enum {
    CNN_PACKED_PR = CNN_GEMM_PACKED_ROWS,
    /* K block and column block of the narrow drivers: a block of B (1024 x 96 floats, 384
     * KiB) stays in L2 while every panel of A runs over it (so a 7x7 map's 49 columns read
     * the weights once); one panel's KB rows (64 KiB) while the strips do.  Measured on
     * ResNet-50's 1x1 shapes on Zen 3 against 256 x 240, 1024 x 48 and 1024 x 192: this was
     * fastest in sum. */
    CNN_PACKED_KB = 1024,
    CNN_PACKED_NB = 96,
    /* The wide drivers' blocks (256 x 240 floats, 240 KiB): in L2 while every part-panel of
     * A runs over its strips, one strip in L1 at a time.  The best of 128-512 x 128-512 on
     * ResNet-50's 56x56 and 28x28 1x1 shapes (Zen 3), all within 3%.  The AVX-512 driver's
     * strips are twice as wide, so its K blocks are half as deep (gemm_packed.c). */
    CNN_PACKED_WKB = 256,
    CNN_PACKED_WNB = 240
};

/* One narrow tile: C rows [0, rows) x columns [0, cols) = alpha * (panels of A) x strip +
 * beta * C, then ep (NULL: none; bias and residual start at the tile's row 0 and column 0).
 * panel: kc rows of the tile's first 16-row panel; the next starts panel_stride floats on.
 * strip: kc x width floats of B. */
typedef void (*cnn_packed_tile_fn)(int cols, int rows, int kc, const float *panel,
                                   ptrdiff_t panel_stride, const float *strip, float alpha,
                                   float beta, float *c, ptrdiff_t ldc,
                                   const struct cnn_gemm_epilogue *ep);

/* Narrow kernels: tiles of `panels` whole panels (16 rows each, in the vector lanes) x
 * `width` columns (broadcast).  The column block (CNN_PACKED_NB) is a multiple of width. */
struct cnn_packed_narrow {
    int panels, width;
    cnn_packed_tile_fn tile;
};

/* One wide tile: as above for `rows` rows of A read at a (stride CNN_PACKED_PR per k: part of
 * one panel) and a strip of width columns (in the vector lanes). */
typedef void (*cnn_packed_wide_fn)(int rows, int cols, int kc, const float *a, const float *strip,
                                   float alpha, float beta, float *c, ptrdiff_t ldc,
                                   const struct cnn_gemm_epilogue *ep);

/* One wide tile that packs its strip as it goes: as cnn_packed_wide_fn, but B's kc rows come
 * from the matrix (b, row stride ldb; columns past cols read as zeros) and are also written
 * to strip as the packer would write them. */
typedef void (*cnn_packed_wide_pack_fn)(int rows, int cols, int kc, const float *a, const float *b,
                                        ptrdiff_t ldb, float *strip, float alpha, float beta,
                                        float *c, ptrdiff_t ldc,
                                        const struct cnn_gemm_epilogue *ep);

/* Wide kernels: tiles of `rows` rows (dividing a panel's 16) x `width` columns.  The column
 * block (CNN_PACKED_WNB) is a multiple of width.  tile_pack (NULL: none) runs a block's
 * first row of tiles when B is a matrix, so that no separate pass packs it. */
struct cnn_packed_wide {
    int rows, width;
    cnn_packed_wide_fn tile;
    cnn_packed_wide_pack_fn tile_pack;
};

/* The AVX-512 kernels (gemm_packed_avx512.c), for CPUs with AVX-512 F, VL, DQ and BW. */
extern const struct cnn_packed_narrow cnn_packed_narrow_avx512;
extern const struct cnn_packed_narrow cnn_packed_col16_avx512; /* narrow driver, 16 wide */
extern const struct cnn_packed_wide cnn_packed_wide_avx512;

/* v with ep's bias (row i), residual (at offset at of C) and ReLU applied. */
static inline float cnn_packed_epilogue(float v, const struct cnn_gemm_epilogue *ep, int i,
                                        size_t at)
{
    if (ep->bias)
        v += ep->bias[i];
    if (ep->res)
        v += ep->res[at];
    return ep->relu && !(v > 0.0f) ? 0.0f : v;
}

#endif
