/* The direct conv's register tile (layer_conv_direct.c), which its AVX2 kernels there and
 * its AVX-512 kernels (conv_direct_avx512.c) run. */
#ifndef CNN_CONV_DIRECT_INTERNAL_H
#define CNN_CONV_DIRECT_INTERNAL_H

#include <stddef.h>

enum {
    CNN_DIRECT_DR = 6,      /* output channels per register tile (8-lane vectors) */
    CNN_DIRECT_DR_WIDE = 8, /* the same, 16-lane vectors (AVX-512) */
    /* Weights are packed in blocks of this many channels, (blocks, K, 24), so that either
     * tile reads its channels at an offset into a block (24 = 4 x 6 = 3 x 8). */
    CNN_DIRECT_BLOCK = 24
};

/* One register tile: vector v reads s[v] + c * cs + ky * rs + kx (stride 2: + (kx % 2) * ps
 * + kx / 2; n[v] lanes, 0..8, or 0..16 when wide) and writes o[v] (+ channel r at r * ocs)
 * -- or, pooled, both vectors are the two rows of a 2x2 pool and o[0] gets n_out pooled
 * values per channel. */
struct tile {
    const float *s[2];
    int n[2];
    float *o[2];
    int n_out;
    const float *wp; /* the tile's first channel in the packed weights (CNN_DIRECT_BLOCK a k) */
    const float *b;  /* this block's bias, or NULL */
    int mr;          /* real channels in the tile, 1..CNN_DIRECT_DR(_WIDE) */
    int relu;
    int wide; /* 16-lane vectors (AVX-512) */
    int C, KH, KW;
    ptrdiff_t cs, rs, ps, ocs;
};

typedef void (*tile_fn)(const struct tile *t);

/* The AVX-512 kernel for a wide tile t (pooled: 2x2 max pooled, 8 values per channel). */
tile_fn cnn_direct_pick_avx512(const struct tile *t, int pooled);

#endif
