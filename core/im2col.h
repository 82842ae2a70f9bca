/* im2col / col2im for a (C, N, H, W) batch.
 * col is (C*KH*KW) rows x (N*OH*OW) columns, row-major: row (c, ky, kx), column (n, oy, ox).
 * Padding positions read as 0.  Geometry comes from struct cnn_conv2d (c = channels of the
 * group being unrolled, h, w, kernel, stride, dilation, padding, oh, ow). */
#ifndef CNN_IM2COL_H
#define CNN_IM2COL_H

#include "layer.h"

/* inp: C channels of (N, H, W) each, channel stride N*H*W floats. */
void cnn_im2col(float *col, const float *inp, int C, const struct cnn_conv2d *p, int N);
/* Only output grid rows [r0, r1), row r = n * OH + oy: col is (C*KH*KW) x ((r1-r0)*OW).
 * Lets a convolution unroll the batch in cache-sized chunks. */
void cnn_im2col_rows(float *col, const float *inp, int C, const struct cnn_conv2d *p, int N,
                     int r0, int r1);
/* The im2col matrix of output grid rows from r0 on (cnn_im2col_rows()'s columns, all p->c
 * channels of inp, batch n), never stored: cnn_im2col_pack() is a cnn_gemm_b_packer's pack
 * (gemm_packed.h) with ctx a struct cnn_im2col_source, and writes the blocks the packed GEMM
 * asks for straight from inp (im2col_pack.c). */
struct cnn_im2col_source {
    const float *inp;
    int n;
    const struct cnn_conv2d *p;
    int r0;
};
void cnn_im2col_pack(const void *ctx, float *dst, int k0, int kc, int n0, int nc, int width);
/* 1 when cnn_im2col_pack() runs its vector path for p (AVX-512, stride 1 or 2 across, rows of
 * 7+ outputs): the convs that pack their weights then take it instead of im2col chunks. */
int cnn_im2col_packs_fast(const struct cnn_conv2d *p);

/* Inverse scatter-add: dinp += col2im(col). For the backward pass. */
void cnn_col2im(float *dinp, const float *col, int C, const struct cnn_conv2d *p, int N);

#endif
