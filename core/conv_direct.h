/* Direct convolution for small maps and few input channels (stride 1 or 2, no dilation, one
 * group; LeNet's 5x5 convs, RGB stems): no im2col, register tiles read the input rows in
 * place, bias and activation in the tile's epilogue, and a following max pool fused into
 * it (2x2/2 in the tiles, others over bands of rows).  Inference only (the trainer keeps im2col /
 * Winograd); rule in docs/engine.md. */
#ifndef CNN_CONV_DIRECT_H
#define CNN_CONV_DIRECT_H

#include "layer.h"

#include <stddef.h>

struct cnn_compile;
struct cnn_op;
struct cnn_op_run;

/* Largest C * KH * KW the direct path takes: past it the tile's input rows and weights no
 * longer stay in L1 and im2col + a blocked GEMM is faster. */
#define CNN_CONV_DIRECT_MAX_K 512

/* 1 when the conv (already folded and fused) runs direct: groups 1, stride 1 (or 2 when
 * the kernel is larger than 1x1), dilation 1, not 1x1, C * KH * KW <= CNN_CONV_DIRECT_MAX_K,
 * and the CPU has AVX2 + FMA. */
int cnn_conv_direct_applies(const struct cnn_conv2d *p);
/* 1 when the max pool q reading the conv's output fuses into it: any undilated max pool
 * with rows of at most CNN_MAXPOOL_ROW_MAX (a stem's 3x3 stride-2 pool: bands of conv rows
 * are pooled while in cache), or one the tiles pool themselves
 * (cnn_conv_direct_pools_in_tiles). */
int cnn_conv_direct_fuses_pool(const struct cnn_conv2d *p, const struct cnn_pool2d *q);
/* 1 when the tiles' epilogue pools q: a stride-1 conv, a plain 2x2 stride-2 pool and an
 * activation that commutes with max (none, relu, leaky relu alpha >= 0, clip, sigmoid,
 * tanh). */
int cnn_conv_direct_pools_in_tiles(const struct cnn_conv2d *p, const struct cnn_pool2d *q);
/* Floats of the packed weights: (ceil(OC / 24), C * KH * KW, 24), zero-padded channels. */
size_t cnn_conv_direct_weights_floats(const struct cnn_conv2d *p);
/* wp = w (OC, C, KH, KW) packed for the tiles. */
void cnn_conv_direct_pack(float *wp, const float *w, const struct cnn_conv2d *p);
/* Scratch floats per thread: one zero-padded image (C, H + pads, W + pads), or none when
 * unpadded with stride 1 (the tiles then read the input in place); with a fused pool
 * (NULL: none) that the tiles do not pool, then a band of conv rows (about 512 KiB). */
size_t cnn_conv_direct_scratch_floats(const struct cnn_conv2d *p, const struct cnn_pool2d *pool);

/* out = act(conv(inp) + b), then max-pooled by pool when pool (NULL: not pooled), for the
 * output rows r = n * OH' + y in [r_lo, r_hi) (OH' = OH, or the pool's OH).  inp (C, N, H, W),
 * out (OC, N, OH', OW'), wp from cnn_conv_direct_pack, b (OC) or NULL, scratch as
 * cnn_conv_direct_scratch_floats.  Never allocates; any thread (own scratch). */
void cnn_conv_direct_rows(float *out, const float *inp, const float *wp, const float *b,
                          float *scratch, const struct cnn_conv2d *p, const struct cnn_pool2d *pool,
                          int N, int r_lo, int r_hi);
/* The same on vectors of `lanes` outputs: 8 (AVX2) or, up to cnn_conv_direct_max_lanes(),
 * 16 (AVX-512: tiles of two rows x 16 columns, pooled to 8 values when pooled; used when
 * OW is a multiple of 16 or at least 32, else the 8-lane tiles run).
 * cnn_conv_direct_rows() runs the most the CPU has; tests run each. */
int cnn_conv_direct_max_lanes(void);
void cnn_conv_direct_rows_lanes(float *out, const float *inp, const float *wp, const float *b,
                                float *scratch, const struct cnn_conv2d *p,
                                const struct cnn_pool2d *pool, int N, int r_lo, int r_hi,
                                int lanes);

/* The conv row's hooks (layer_conv2d.c): plan packs the weights into op->wd and fuses a
 * following max pool into op->pool; forward runs part `part` of `parts` (rows split). */
size_t cnn_conv_direct_folded_floats(const struct cnn_conv2d *p);
void cnn_conv_direct_plan(struct cnn_compile *cs, struct cnn_op *op);
void cnn_conv_direct_run_part(const struct cnn_op *op, const struct cnn_op_run *r, int part,
                              int parts);

#endif
