/* Checked size arithmetic for tensor dimensions.
 * Activations inside a batched forward pass are held channel-major, (C, N, H, W):
 * each channel of the whole batch is one contiguous block, so a convolution over the
 * batch is a single GEMM whose output is already in that layout, channel concat is
 * plain block placement and a 1x1 stride-1 convolution needs no im2col.  For N = 1 this
 * is the same memory as NCHW.  The public API (images in, probabilities out) is NCHW. */
#ifndef CNN_TENSOR_H
#define CNN_TENSOR_H

#include <stddef.h>
#include <stdint.h>

/* *out = a * b; returns 0, or -1 when the product overflows size_t. */
static inline int cnn_mul_size(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

/* *out = a + b; returns 0, or -1 on overflow. */
static inline int cnn_add_size(size_t a, size_t b, size_t *out)
{
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

/* Product of n non-negative dims into *out; -1 on overflow or a negative dim. */
int cnn_dims_count(const int *dims, int n, size_t *out);

#endif
