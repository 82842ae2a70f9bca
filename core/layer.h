/* Layer kinds, their parameters, shape inference and the compute kernels.
 *
 * Layout: every kernel works on activations held channel-major over the batch,
 * (C, N, H, W) -- see tensor.h.  "plane" below means one H x W image of one channel
 * of one batch item; in (C, N, H, W) plane index = c * N + n.
 *
 * Kernels never allocate; scratch comes from the caller (the session).  Shape
 * functions (layer.c) check parameters against the input shape, fill the derived
 * output fields of the params struct and return 0 or a CNN_E* code with a message. */
#ifndef CNN_LAYER_H
#define CNN_LAYER_H

#include "err.h"

#include <stddef.h>

enum cnn_layer_kind {
    CNN_LAYER_INPUT = 0,     /* the model input; exactly one, layer 0 */
    CNN_LAYER_CONV2D,        /* weights: w (OC, C/G, KH, KW), [b (OC)] */
    CNN_LAYER_DENSE,         /* weights: w (OUT, IN), [b (OUT)]; input must be (IN,1,1) */
    CNN_LAYER_MAXPOOL,
    CNN_LAYER_AVGPOOL,
    CNN_LAYER_GLOBAL_AVGPOOL,
    CNN_LAYER_ACT,           /* relu, leaky relu, clip (relu6), sigmoid, tanh, hard sigmoid/swish */
    CNN_LAYER_BATCHNORM,     /* weights: gamma, beta, mean, var, each (C) */
    CNN_LAYER_DROPOUT,       /* identity at inference */
    CNN_LAYER_LRN,           /* across channels, as in AlexNet / ONNX LRN */
    CNN_LAYER_ADD,           /* elementwise sum of 2+ inputs of equal shape */
    CNN_LAYER_CONCAT,        /* concat of 1+ inputs over C (equal H, W), H or W */
    CNN_LAYER_FLATTEN,       /* (C,H,W) -> (C*H*W,1,1) */
    CNN_LAYER_SOFTMAX,       /* over channels at each position (a (K,1,1) input: the classes) */
    /* appended for ONNX (issue 10); a kind's number is its number in model files */
    CNN_LAYER_GLOBAL_MAXPOOL, /* max of each channel plane -> (C,1,1) */
    CNN_LAYER_PRELU,         /* weights: slope (1) or (C), learned */
    CNN_LAYER_SCALE_SHIFT,   /* weights: scale, shift, each (1) or (C), constant; then act */
    CNN_LAYER_PAD,           /* constant padding (or cropping) of H and W */
    CNN_LAYER_LOG_SOFTMAX,   /* over channels at each position, as softmax */
    CNN_LAYER_RESHAPE,       /* each channel's H x W plane as h x w (same memory) */
    CNN_LAYER_TRANSPOSE,     /* each item's values viewed as up to 6 dims, axes permuted */
    CNN_LAYER_KIND_COUNT
};

enum cnn_act {
    CNN_ACT_NONE = 0,
    CNN_ACT_RELU,
    CNN_ACT_LEAKY_RELU, /* alpha = negative slope */
    CNN_ACT_CLIP,       /* clamp to [alpha, beta]; relu6 = clip(0, 6) */
    CNN_ACT_SIGMOID,
    CNN_ACT_TANH,
    CNN_ACT_HARD_SIGMOID, /* max(0, min(1, alpha * x + beta)); ONNX: alpha 0.2, beta 0.5 */
    CNN_ACT_HARD_SWISH,   /* x * max(0, min(1, x / 6 + 1/2)); alpha, beta unused (0) */
    CNN_ACT_COUNT
};

struct cnn_act_params {
    enum cnn_act kind;
    float alpha, beta;
};

struct cnn_conv2d {
    int c, h, w;                      /* input per batch item */
    int oc, kh, kw, sh, sw, dh, dw;   /* out channels, kernel, stride, dilation */
    int pad_t, pad_l, pad_b, pad_r;   /* zero padding, may be asymmetric */
    int groups;                       /* c and oc divisible by groups; depthwise: groups = c */
    int has_bias;
    struct cnn_act_params act;        /* fused activation, applied after bias */
    int oh, ow;                       /* derived by cnn_conv2d_shape() */
};

struct cnn_dense {
    int in, out;
    int has_bias;
    struct cnn_act_params act;        /* fused activation */
};

struct cnn_pool2d {
    int c, h, w;
    int kh, kw, sh, sw;
    int pad_t, pad_l, pad_b, pad_r;
    int ceil_mode;                    /* output size rounds up (last window may start in padding-free range only) */
    int count_include_pad;            /* average pool: divide by kh*kw instead of the valid count */
    int dh, dw;                       /* max pool dilation; 0 (files before it) or 1: none */
    int oh, ow;                       /* derived */
};

/* The dilation of one axis (0 means 1) and the span (k - 1) * d + 1 its window covers. */
static inline int cnn_pool_dil(int d)
{
    return d > 1 ? d : 1;
}
static inline int cnn_pool_extent(int k, int d)
{
    return (k - 1) * cnn_pool_dil(d) + 1;
}

struct cnn_batchnorm {
    float eps;
    struct cnn_act_params act;        /* fused activation (DenseNet: BN-ReLU) */
};

struct cnn_lrn {
    int size;                         /* channels in the window (odd) */
    float alpha, beta, k;             /* y = x / (k + alpha/size * sum x^2)^beta */
};

struct cnn_prelu {
    int channels;                     /* slopes: 1 (shared) or the input's C */
};

/* y = x * scale[c] + shift[c], then act: what ONNX Mul/Add/Sub/Div by a per-channel or
 * scalar constant become.  The weights are constants (not learned by the trainer). */
struct cnn_scale_shift {
    int channels;                     /* 1 (one scale and shift for all) or the input's C */
    struct cnn_act_params act;        /* fused activation */
};

/* Output (C, H + pad_t + pad_b, W + pad_l + pad_r); a negative pad crops (ONNX Pad). */
struct cnn_pad {
    int pad_t, pad_l, pad_b, pad_r;
    float value;                      /* of every padded position */
};

/* What softmax and log_softmax normalise over, in a (C, H, W) value (ONNX Softmax axes). */
enum cnn_softmax_span {
    CNN_SOFTMAX_CHANNELS = 0, /* the C values at each position (axis 1; (K,1,1): the classes) */
    CNN_SOFTMAX_PLANE,        /* the H*W values of each channel (axis 2 before opset 13) */
    CNN_SOFTMAX_ROW,          /* the W values of each row (the last axis) */
    CNN_SOFTMAX_SPAN_COUNT
};

struct cnn_softmax {
    int span;                         /* enum cnn_softmax_span; 0 in files before it existed */
};

/* Output (C, h, w) of a (C, H, W) input with h * w = H * W. */
struct cnn_reshape {
    int h, w;
};

/* What concat stacks its inputs along (the other two dims must be equal). */
enum cnn_concat_axis {
    CNN_CONCAT_CHANNELS = 0, /* the only axis in files before it existed (the word was 0) */
    CNN_CONCAT_H,
    CNN_CONCAT_W,
    CNN_CONCAT_AXIS_COUNT
};

struct cnn_concat {
    int axis; /* enum cnn_concat_axis */
};

/* Each item's C*H*W values, in (C, H, W) order, viewed as the row-major dims d[0..5]
 * (unused ones 1), with the axes permuted: output dim k is d[perm[k]]; the result, in that
 * row-major order, is read as the output (c, h, w).  The identity perm with another c is a
 * regrouping of the channels (ONNX Reshape/Unsqueeze that change C); the batch stays. */
#define CNN_TRANSPOSE_DIMS 6
struct cnn_transpose {
    int d[CNN_TRANSPOSE_DIMS];
    int perm[CNN_TRANSPOSE_DIMS];
    int c, h, w;
};

/* The parameters of a layer, the member of its kind (none for input, global_avgpool,
 * global_maxpool, add, flatten); cnn_layer_desc and the model's layers both hold
 * one.  A new kind with parameters adds its member here. */
union cnn_layer_params {
    struct cnn_conv2d conv;
    struct cnn_dense dense;
    struct cnn_pool2d pool;
    struct cnn_act_params act;
    struct cnn_batchnorm bn;
    struct cnn_lrn lrn;
    float dropout_rate;
    struct cnn_prelu prelu;
    struct cnn_scale_shift ss;
    struct cnn_pad pad;
    struct cnn_softmax sm;            /* softmax, log_softmax */
    struct cnn_reshape reshape;
    struct cnn_transpose tr;
    struct cnn_concat cat;
};

/* ---- shape inference (layer.c) ------------------------------------------ */

/* Checks p against its input fields (c, h, w) and fills oh, ow. */
int cnn_conv2d_shape(struct cnn_conv2d *p, struct cnn_err *err);
int cnn_pool2d_shape(struct cnn_pool2d *p, struct cnn_err *err);
/* A conv unrolls its batch in chunks of whole output rows (n, oy) so that the col matrix
 * (about CNN_CONV_CHUNK_FLOATS floats) stays in L2 while SGEMM packs it and the bias/act
 * pass runs on output still in cache.  Measured on ResNet-18 at batch 8: one GEMM over a
 * 58 MB col matrix spends more time streaming memory than multiplying. */
#ifndef CNN_CONV_CHUNK_FLOATS
#define CNN_CONV_CHUNK_FLOATS (256 * 1024)
#endif
#ifndef CNN_CONV_MIN_COLS
#define CNN_CONV_MIN_COLS 1024 /* GEMM columns per chunk at least */
#endif
#ifndef CNN_CONV_MAX_COLS
#define CNN_CONV_MAX_COLS 4096 /* ...and at most (unless one output row is wider) */
#endif
/* Output rows per chunk for batch N (at least 1, at most N * OH). */
int cnn_conv2d_chunk_rows(const struct cnn_conv2d *p, int N);
/* Floats of scratch a conv needs for N batch items: im2col's (0 when it skips im2col), or
 * when cnn_conv2d_use_winograd(p) the larger of that and the Winograd scratch, so both
 * cnn_conv2d_forward() and cnn_conv2d_forward_winograd() can run in it. */
size_t cnn_conv2d_scratch_floats(const struct cnn_conv2d *p, int N);
/* 1 when the conv reads its input directly as the GEMM operand (1x1, stride 1, no pad). */
int cnn_conv2d_is_pointwise(const struct cnn_conv2d *p);
/* 1 for one input channel per group (groups > 1), not pointwise: the direct kernel. */
int cnn_conv2d_is_depthwise(const struct cnn_conv2d *p);
/* Winograd F(2x2,3x3) (Lavin & Gray 2015) for 3x3, stride 1, undilated, ungrouped convs
 * with enough channels to pay for its transforms (measured; see layer.c).  The output is
 * tiled in 2x2 tiles over the whole batch and processed in chunks of whole tile rows.
 * A chunk's transformed input V (16, C, tiles) and GEMM output M (16, OC, tiles) take
 * about CNN_WINOGRAD_CHUNK_FLOATS floats (L2), but a chunk has at least C * OC / 32
 * tiles (from CNN_WINOGRAD_MIN_TILES up to 16x that) since each of its GEMMs packs or
 * streams its C x OC plane of U again: measured at batch 8 (2020s kernels), 64 channels ran
 * best with ~128 tiles and 128 or 256 channels with 500-1000, although V and M then spill out
 * of L2.  A U of at most CNN_WINOGRAD_SMALL_U floats (F(4x4) to 128 channels, F(2x2) to 256)
 * stays in cache from chunk to chunk and caps the minimum at 2x: ResNet-18 on one Zen 3
 * core, batch 4 / 16, F(4x4) 28x28 -6% / -5%, F(2x2) 14x14 -10% / -2%; the 32 -> 64
 * channel F(4x4) conv of cifar_cnn at batch 16 -33% (75 tiles, not 128).  A U of at most a
 * quarter of that (1 MB, in L2) caps it at 1x: on Zen 5 (1 MB L2 per core), ResNet-18's
 * 64-channel F(4x4) convs at batch 1 on a team of 2 (7 tile rows a part: 70-tile chunks,
 * not 98) sum of op medians 1.14 / 1.20 / 1.40 -> 1.02 / 1.08 / 1.22 ms, alternated; the
 * CIFAR net on one thread at batch 8 11.6k / 11.7k / 9.2k -> 14.9k / 14.6k / 13.9k
 * images/s, at batch 32 11.2k / 11.4k / 10.7k -> 15.0k / 15.1k / 10.7k.  V and M never
 * take more than CNN_WINOGRAD_MAX_FLOATS together. */
#ifndef CNN_WINOGRAD_CHUNK_FLOATS
#define CNN_WINOGRAD_CHUNK_FLOATS (256 * 1024)
#endif
#ifndef CNN_WINOGRAD_MIN_TILES
#define CNN_WINOGRAD_MIN_TILES 64
#endif
#ifndef CNN_WINOGRAD_SMALL_U
#define CNN_WINOGRAD_SMALL_U (1024 * 1024)
#endif
#ifndef CNN_WINOGRAD_MAX_FLOATS
#define CNN_WINOGRAD_MAX_FLOATS (4 * 1024 * 1024)
#endif
/* 1 when compile, scratch sizing and the session run this conv through Winograd.
 * Depends only on the shape fields, not on bias or act (BN folding changes those). */
int cnn_conv2d_use_winograd(const struct cnn_conv2d *p);
/* Tile rows (n, ty) per Winograd chunk for batch N (at least 1, at most N * ceil(OH/2)). */
int cnn_winograd_chunk_rows(const struct cnn_conv2d *p, int N);
/* Floats of scratch the Winograd forward needs for N batch items (SIZE_MAX on overflow). */
size_t cnn_winograd_scratch_floats(const struct cnn_conv2d *p, int N);
/* Names for messages and `cnn info` (layer_kinds.c). */
const char *cnn_layer_kind_name(enum cnn_layer_kind kind);
const char *cnn_act_name(enum cnn_act kind);
/* The one activation check: a known kind, finite alpha and beta, clip min <= max.  Messages
 * start with `who` (a layer name); returns 0 or CNN_EINVAL. */
int cnn_act_check(const struct cnn_act_params *act, const char *who, struct cnn_err *err);

/* ---- window geometry shared by forward and backward kernels (layer.c) -------- */

/* Inline: they run per output row or pixel in the kernels. */

/* Output positions [*lo, *hi) of an axis of `out` positions whose input coordinate
 * o * s - pad + off lies inside [0, in): the im2col / direct-conv valid range. */
static inline void cnn_conv_valid_range(int out, int in, int s, int pad, int off, int *lo,
                                        int *hi)
{
    int start = off - pad; /* input coordinate of output 0 */
    int l = start >= 0 ? 0 : (-start + s - 1) / s;
    int h = start > in - 1 ? 0 : (in - 1 - start) / s + 1;
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* Pool window o along one axis: clipped input range [*lo, *hi); returns its size counting
 * padding but not the overhang past the padded input that ceil mode can create. */
static inline int cnn_pool_window(int o, int s, int pad_lo, int pad_hi, int k, int in, int *lo,
                                  int *hi)
{
    int start = o * s - pad_lo;
    int end = start + k;
    if (end > in + pad_hi)
        end = in + pad_hi;
    *lo = start < 0 ? 0 : start;
    *hi = end > in ? in : end;
    return end - start;
}

/* 1 for 2x2 stride-2 pooling without padding whose windows all lie inside the input. */
static inline int cnn_pool2d_is_plain_2x2(const struct cnn_pool2d *p)
{
    return p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2 && p->pad_t == 0 &&
           p->pad_l == 0 && p->pad_b == 0 && p->pad_r == 0 && 2 * p->oh <= p->h &&
           2 * p->ow <= p->w && cnn_pool_dil(p->dh) == 1 && cnn_pool_dil(p->dw) == 1;
}

/* ---- kernels (layer_<kind>.c); all tensors (C, N, H, W) ------------------- */

/* Applies act to n floats in place. */
void cnn_act_apply(float *x, size_t n, const struct cnn_act_params *act);

/* out (OC, N, OH, OW)   inp (C, N, H, W)   w (OC, C/G, KH, KW)   b (OC) or NULL
 * col: cnn_conv2d_scratch_floats(p, N) floats (unused when pointwise).
 * Bias and p->act are applied in one pass over the GEMM output. */
void cnn_conv2d_forward(float *out, const float *inp, const float *w, const float *b,
                        float *col, const struct cnn_conv2d *p, int N);
/* The output grid rows [r_lo, r_hi) of cnn_conv2d_forward() (row r = n * OH + oy), for
 * splitting a batch over threads (each with its own col); not for depthwise convs. */
void cnn_conv2d_forward_rows(float *out, const float *inp, const float *w, const float *b,
                             float *col, const struct cnn_conv2d *p, int N, int r_lo, int r_hi);

/* Floats of Winograd weights U for p: 16 * OC * C. */
size_t cnn_winograd_weights_floats(const struct cnn_conv2d *p);
/* u (16, OC, C) = G g G^T of every 3x3 kernel g of w (OC, C, 3, 3); done once at compile. */
void cnn_winograd_transform_weights(float *u, const float *w, const struct cnn_conv2d *p);
/* Same result as cnn_conv2d_forward() (to float rounding) for a conv that
 * cnn_conv2d_use_winograd() accepts; u from cnn_winograd_transform_weights().
 * scratch: cnn_conv2d_scratch_floats(p, N) floats.  Bias and p->act are applied in the
 * output transform pass. */
void cnn_conv2d_forward_winograd(float *out, const float *inp, const float *u, const float *b,
                                 float *scratch, const struct cnn_conv2d *p, int N);
/* Tile rows [t_lo, t_hi) of cnn_conv2d_forward_winograd() (tile row t = n * ceil(OH/2) +
 * ty), for splitting a batch over threads, each with its own scratch (at least
 * cnn_winograd_scratch_floats(p, N)), with a residual: out = act(conv + b + res), res
 * (OC, N, OH, OW) or NULL.  res may equal out: the inference session's fused residual add,
 * and (with no act) the trainer's input gradient adding into dinp.  u_packed: u's 16 planes
 * stacked were packed by cnn_gemm_pack_in_place(u, 16 * OC, C) (OC a multiple of 16), and
 * the products run on cnn_gemm_packed(), whose cnn_gemm_packed_scratch_floats(C) floats
 * follow the Winograd scratch; 0: u as transformed, products on cnn_gemm(). */
void cnn_conv2d_winograd_rows(float *out, const float *res, const float *inp, const float *u,
                              int u_packed, const float *b, float *scratch,
                              const struct cnn_conv2d *p, int N, int t_lo, int t_hi);
/* Output channels [oc_lo, oc_hi) of the same, all tile rows: the split when there are few
 * tile rows (a 7x7 map at batch 1 has 4); each thread its own scratch.  With u_packed,
 * oc_lo is a multiple of 16 (a whole panel). */
/* cnn_conv2d_winograd_rows() with the transforms' vectors chosen, for tests: 16 tiles per
 * vector (AVX-512; where the CPU lacks it, as 4) or 4. */
void cnn_conv2d_winograd_rows_lanes(float *out, const float *res, const float *inp, const float *u,
                                    int u_packed, const float *b, float *scratch,
                                    const struct cnn_conv2d *p, int N, int t_lo, int t_hi,
                                    int lanes);
void cnn_conv2d_winograd_channels(float *out, const float *res, const float *inp, const float *u,
                                  int u_packed, const float *b, float *scratch,
                                  const struct cnn_conv2d *p, int N, int oc_lo, int oc_hi);
/* cnn_conv2d_winograd_channels() in two rounds of a team, for a conv whose tile rows all
 * fit one chunk (cnn_winograd_chunk_rows(p, N) >= N * ceil(OH/2)), so that the parts share
 * one input transform instead of each doing all of it.  Round 1, each part: input channels
 * [c_lo, c_hi) of V into `shared`, the scratch of part 0 (where its V lies).  Round 2, each
 * part: output channels [oc_lo, oc_hi) from that V, with its own scratch (part 0's own is
 * `shared`: its M and staging lie after V).  Arguments otherwise as there. */
void cnn_conv2d_winograd_input_part(float *shared, const float *inp, float *scratch,
                                    const struct cnn_conv2d *p, int N, int c_lo, int c_hi);
void cnn_conv2d_winograd_channels_from(float *out, const float *res, const float *shared,
                                       const float *u, int u_packed, const float *b, float *scratch,
                                       const struct cnn_conv2d *p, int N, int oc_lo, int oc_hi);
/* The weight gradient of a Winograd conv in the transformed domain: for tile rows
 * [t_lo, t_hi), du (16, C, OC) += V_k dM_k, where V (C, tiles) is the input transform (as
 * the forward's) and dM (tiles, OC) = A dY A^T that of the output gradient dout
 * (OC, N, OH, OW), laid out by tile so that both GEMM operands are untransposed.  scratch
 * as for cnn_conv2d_winograd_rows(); du starts at zero, one per thread. */
void cnn_winograd_weight_grad_rows(float *du, const float *inp, const float *dout, float *scratch,
                                   const struct cnn_conv2d *p, int N, int t_lo, int t_hi);
/* dw (OC, C, 3, 3) += G^T dU G for each (oc, c): du back to the kernels' domain. */
void cnn_winograd_weight_grad_finish(float *dw, const float *du, const struct cnn_conv2d *p);

/* Winograd F(4x4,3x3) (layer_winograd4.c; chunks and scratch in layer.c), inference only:
 * 36 GEMMs per chunk of 4x4 output tiles instead of 16 per 2x2 tiles (2.25 instead of 4
 * multiplies per output).  Weights U: 36 * OC * C floats, u (36, OC, C) = G g G^T of every
 * 3x3 kernel g of w, done once at compile (in double).  Chunks of tile rows as F(2x2), V
 * and M being (36, C, T) and (36, OC, T). */
size_t cnn_winograd4_weights_floats(const struct cnn_conv2d *p);
void cnn_winograd4_transform_weights(float *u, const float *w, const struct cnn_conv2d *p);
/* The inference Winograd variant for p by a cost model (layer_winograd4.c, docs/engine.md):
 * 4 (F(4x4)), 2 (F(2x2)) or 0 when cnn_conv2d_use_winograd(p) refuses it.  Shape only. */
int cnn_conv2d_winograd_tile(const struct cnn_conv2d *p);
/* Floats of the U of that variant (0 for none). */
size_t cnn_winograd_plan_floats(const struct cnn_conv2d *p);
/* Tile rows (n, ty) per chunk for batch N (at least 1, at most N * ceil(OH/4)). */
int cnn_winograd4_chunk_rows(const struct cnn_conv2d *p, int N);
/* Floats of scratch for N batch items (SIZE_MAX on overflow). */
size_t cnn_winograd4_scratch_floats(const struct cnn_conv2d *p, int N);
/* Tile rows [t_lo, t_hi) (tile row t = n * ceil(OH/4) + ty) of the F(4x4) forward of a
 * conv cnn_conv2d_use_winograd() accepts: out = act(conv + b + res), res (OC, N, OH, OW)
 * or NULL (may equal out).  Each thread its own scratch of
 * cnn_winograd4_scratch_floats(p, N) floats.  u_packed as for cnn_conv2d_winograd_rows()
 * (36 planes: cnn_gemm_pack_in_place(u, 36 * OC, C)). */
void cnn_conv2d_winograd4_rows(float *out, const float *res, const float *inp, const float *u,
                               int u_packed, const float *b, float *scratch,
                               const struct cnn_conv2d *p, int N, int t_lo, int t_hi);
/* Output channels [oc_lo, oc_hi) of the same, all tile rows (few tile rows: late stages). */
/* cnn_conv2d_winograd4_rows() with the transforms' vectors chosen, for tests (as
 * cnn_conv2d_winograd_rows_lanes()). */
void cnn_conv2d_winograd4_rows_lanes(float *out, const float *res, const float *inp, const float *u,
                                     int u_packed, const float *b, float *scratch,
                                     const struct cnn_conv2d *p, int N, int t_lo, int t_hi,
                                     int lanes);
void cnn_conv2d_winograd4_channels(float *out, const float *res, const float *inp, const float *u,
                                   int u_packed, const float *b, float *scratch,
                                   const struct cnn_conv2d *p, int N, int oc_lo, int oc_hi);
/* The same two rounds for F(4x4) (all tile rows in one cnn_winograd4_chunk_rows() chunk). */
void cnn_conv2d_winograd4_input_part(float *shared, const float *inp, float *scratch,
                                     const struct cnn_conv2d *p, int N, int c_lo, int c_hi);
void cnn_conv2d_winograd4_channels_from(float *out, const float *res, const float *shared,
                                        const float *u, int u_packed, const float *b,
                                        float *scratch, const struct cnn_conv2d *p, int N,
                                        int oc_lo, int oc_hi);

/* out (OUT, N)   inp (IN, N)   w (OUT, IN)   b (OUT) or NULL; one SGEMM for the batch. */
void cnn_dense_forward(float *out, const float *inp, const float *w, const float *b,
                       const struct cnn_dense *p, int N);

/* out (C, N, OH, OW)   inp (C, N, H, W); padding never wins a max (a dilated window whose
 * taps all fall in the padding gives -inf, ONNX's padding value). */
void cnn_maxpool_forward(float *out, const float *inp, const struct cnn_pool2d *p, int N);
/* Widest input row cnn_maxpool_plane_rows() takes. */
#define CNN_MAXPOOL_ROW_MAX 2048
/* Output rows [oy_lo, oy_hi) of one plane's max pool into o (row oy at o + oy * OW), from
 * input rows held from row in_y0 on at in (row y at in + (y - in_y0) * W): every row the
 * windows of those output rows touch.  p undilated, W <= CNN_MAXPOOL_ROW_MAX.  A direct conv
 * pools the rows it just computed this way (conv_direct.h). */
void cnn_maxpool_plane_rows(float *o, const float *in, int in_y0, const struct cnn_pool2d *p,
                            int oy_lo, int oy_hi);
/* Index into one (H, W) plane of the first maximum of dilated window (oy, ox) (taps
 * oy * sh - pad_t + i * dh, likewise in x, inside the plane), or -1 when no tap is. */
long cnn_maxpool_dilated_argmax(const float *plane, const struct cnn_pool2d *p, int oy, int ox);
void cnn_avgpool_forward(float *out, const float *inp, const struct cnn_pool2d *p, int N);

/* out (planes)   inp (planes, hw): mean of each plane. */
void cnn_global_avgpool_forward(float *out, const float *inp, size_t planes, size_t hw);

/* Per-channel y = x * scale[c] + shift[c], then act.  x, y (C, N, HW); may alias. */
void cnn_scale_shift_forward(float *out, const float *inp, const float *scale,
                             const float *shift, int C, size_t n_hw,
                             const struct cnn_act_params *act);

/* out, inp (C, N, H, W), n_hw = N*H*W; must not alias. */
void cnn_lrn_forward(float *out, const float *inp, const struct cnn_lrn *p, int C, size_t n_hw);

/* out = sum of inputs[0..n_inputs), count floats each, then act; out may alias inputs[0]. */
void cnn_add_forward(float *out, const float *const *inputs, int n_inputs, size_t count,
                     const struct cnn_act_params *act);

/* Softmax over K classes for each of N items.  inp, out (K, N); may alias. */
void cnn_softmax_forward(float *out, const float *inp, int K, int N);

/* (C, N, HW) -> (C*HW, N): the batch-major flatten a dense layer reads. Must not alias. */
void cnn_flatten_forward(float *out, const float *inp, int C, int N, int hw);

/* ---- the kinds ONNX import needs (layer_<kind>.c), with their backward kernels -------
 * Backward kernels follow grad.h: they ADD into dinp / dw, and skip a NULL gradient. */

/* out (planes)   inp (planes, hw): max of each plane (the first maximum wins; hw >= 1).
 * backward: dinp (planes, hw) += dout at the forward's argmax, recomputed from inp. */
void cnn_global_maxpool_forward(float *out, const float *inp, size_t planes, size_t hw);
void cnn_global_maxpool_backward(float *dinp, const float *dout, const float *inp, size_t planes,
                                 size_t hw);

/* y = x > 0 ? x : slope[c] * x over channels [0, C) of (C, n_hw); slope has C floats, or
 * one when shared.  out may alias inp.  backward: dinp += dout * (x > 0 ? 1 : slope[c]);
 * dslope[c] (or dslope[0] when shared) += sum over x <= 0 of dout * x. */
void cnn_prelu_forward(float *out, const float *inp, const float *slope, int shared, int C,
                       size_t n_hw);
void cnn_prelu_backward(float *dinp, float *dslope, const float *dout, const float *inp,
                        const float *slope, int shared, int C, size_t n_hw);

/* Backward of cnn_scale_shift_forward() without its act: dinp (C, n_hw) += dout * scale[c]
 * (scale[0] for every channel when shared). */
void cnn_scale_shift_backward(float *dinp, const float *dout, const float *scale, int shared,
                              int C, size_t n_hw);

/* out (planes, OH, OW)   inp (planes, H, W), OH = H + pad_t + pad_b, OW likewise; must not
 * alias.  backward: dinp += the part of dout that the forward copied from the input. */
void cnn_pad_forward(float *out, const float *inp, const struct cnn_pad *p, size_t planes, int H,
                     int W);
void cnn_pad_backward(float *dinp, const float *dout, const struct cnn_pad *p, size_t planes,
                      int H, int W);

/* log of cnn_softmax_forward(): y = x - max - log(sum exp(x - max)); inp, out (K, N), may
 * alias.  backward: dinp += dout - exp(y) * sum_k dout, from the forward's output y. */
void cnn_log_softmax_forward(float *out, const float *inp, int K, int N);
void cnn_log_softmax_backward(float *dinp, const float *dout, const float *out, int K, int N);

/* Softmax (log 0) or log-softmax (log 1) of a (C, N, H, W) value over p->span: the channels
 * at each position are the (K, N) kernels above with N*H*W columns; a plane (H*W) or a row
 * (W) is a run of contiguous floats, each one (K, 1) call.  out may alias inp.  backward:
 * dinp += the gradient from dout and the forward's output out. */
void cnn_softmax_span_forward(float *out, const float *inp, const struct cnn_softmax *p, int C,
                              int N, int H, int W, int log);
void cnn_softmax_span_backward(float *dinp, const float *dout, const float *out,
                               const struct cnn_softmax *p, int C, int N, int H, int W, int log);

/* out (p->c, N, p->h * p->w)   inp (C, N, HW) with C * HW = the product of p->d: each item
 * permuted (struct cnn_transpose); must not alias.  backward: dinp (C, N, HW) += dout
 * permuted back. */
void cnn_transpose_forward(float *out, const float *inp, const struct cnn_transpose *p, int HW,
                           int N);
void cnn_transpose_backward(float *dinp, const float *dout, const struct cnn_transpose *p, int HW,
                            int N);

#endif
