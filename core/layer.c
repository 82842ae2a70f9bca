/* Layer shape inference: checks conv and pooling parameters against their input and
 * derives the output size (PyTorch semantics) and scratch sizes.  The rest of each kind
 * (names, the model's checks, forward, backward, file fields) is its row: layer_kind.h. */
#include "layer.h"

#include <limits.h>
#include <stdint.h>

int cnn_conv2d_shape(struct cnn_conv2d *p, struct cnn_err *err)
{
    if (p->c <= 0 || p->h <= 0 || p->w <= 0)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: input shape (%d,%d,%d) must be positive", p->c,
                           p->h, p->w);
    if (p->oc <= 0)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: out channels %d must be positive", p->oc);
    if (p->kh <= 0 || p->kw <= 0)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: kernel %dx%d must be positive", p->kh, p->kw);
    if (p->sh <= 0 || p->sw <= 0)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: stride %dx%d must be positive", p->sh, p->sw);
    if (p->dh <= 0 || p->dw <= 0)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: dilation %dx%d must be positive", p->dh,
                           p->dw);
    if (p->pad_t < 0 || p->pad_l < 0 || p->pad_b < 0 || p->pad_r < 0)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: padding (t%d,l%d,b%d,r%d) is negative",
                           p->pad_t, p->pad_l, p->pad_b, p->pad_r);
    if (p->groups <= 0)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: groups %d must be positive", p->groups);
    if (p->c % p->groups != 0)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: groups %d do not divide in channels %d",
                           p->groups, p->c);
    if (p->oc % p->groups != 0)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: groups %d do not divide out channels %d",
                           p->groups, p->oc);
    int rc = cnn_act_check(&p->act, "conv2d", err);
    if (rc)
        return rc;

    long long eh = (long long)(p->kh - 1) * p->dh + 1, ew = (long long)(p->kw - 1) * p->dw + 1;
    long long ph = (long long)p->h + p->pad_t + p->pad_b;
    long long pw = (long long)p->w + p->pad_l + p->pad_r;
    if (eh > ph)
        return cnn_err_set(err, CNN_EINVAL,
                           "conv2d: kernel height %d (dilated %lld) > padded input height %lld",
                           p->kh, eh, ph);
    if (ew > pw)
        return cnn_err_set(err, CNN_EINVAL,
                           "conv2d: kernel width %d (dilated %lld) > padded input width %lld",
                           p->kw, ew, pw);
    long long oh = (ph - eh) / p->sh + 1, ow = (pw - ew) / p->sw + 1;
    if (oh > INT_MAX || ow > INT_MAX)
        return cnn_err_set(err, CNN_EINVAL, "conv2d: output %lldx%lld too large", oh, ow);
    p->oh = (int)oh;
    p->ow = (int)ow;
    return 0;
}

/* Output length of one pooled axis; PyTorch rule: in ceil mode the last window must
 * start inside the input or the leading padding, not in the trailing padding. */
static long long pool_out(int in, int pad_lo, int pad_hi, int k, int s, int ceil_mode)
{
    long long span = (long long)in + pad_lo + pad_hi - k;
    long long out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= (long long)in + pad_lo)
        out--;
    return out;
}

int cnn_pool2d_shape(struct cnn_pool2d *p, struct cnn_err *err)
{
    if (p->c <= 0 || p->h <= 0 || p->w <= 0)
        return cnn_err_set(err, CNN_EINVAL, "pool2d: input shape (%d,%d,%d) must be positive", p->c,
                           p->h, p->w);
    if (p->kh <= 0 || p->kw <= 0)
        return cnn_err_set(err, CNN_EINVAL, "pool2d: kernel %dx%d must be positive", p->kh, p->kw);
    if (p->sh <= 0 || p->sw <= 0)
        return cnn_err_set(err, CNN_EINVAL, "pool2d: stride %dx%d must be positive", p->sh, p->sw);
    if (p->dh < 0 || p->dw < 0 || p->dh > 4096 || p->dw > 4096)
        return cnn_err_set(err, CNN_EINVAL, "pool2d: dilation %dx%d out of range 0..4096", p->dh,
                           p->dw);
    /* the span a window covers: the kernel, or (k - 1) * dilation + 1 */
    const long long kh = (long long)(p->kh - 1) * cnn_pool_dil(p->dh) + 1;
    const long long kw = (long long)(p->kw - 1) * cnn_pool_dil(p->dw) + 1;
    if (p->pad_t < 0 || p->pad_l < 0 || p->pad_b < 0 || p->pad_r < 0)
        return cnn_err_set(err, CNN_EINVAL, "pool2d: padding (t%d,l%d,b%d,r%d) is negative",
                           p->pad_t, p->pad_l, p->pad_b, p->pad_r);
    /* A pad as large as the kernel would allow windows made only of padding. */
    if (p->pad_t >= kh || p->pad_b >= kh)
        return cnn_err_set(err, CNN_EINVAL,
                           "pool2d: vertical padding (t%d,b%d) must be < kernel height %lld",
                           p->pad_t, p->pad_b, kh);
    if (p->pad_l >= kw || p->pad_r >= kw)
        return cnn_err_set(err, CNN_EINVAL,
                           "pool2d: horizontal padding (l%d,r%d) must be < kernel width %lld",
                           p->pad_l, p->pad_r, kw);
    if ((long long)p->h + p->pad_t + p->pad_b < kh)
        return cnn_err_set(err, CNN_EINVAL, "pool2d: kernel height %lld > padded input height %d",
                           kh, p->h + p->pad_t + p->pad_b);
    if ((long long)p->w + p->pad_l + p->pad_r < kw)
        return cnn_err_set(err, CNN_EINVAL, "pool2d: kernel width %lld > padded input width %d",
                           kw, p->w + p->pad_l + p->pad_r);
    long long oh = pool_out(p->h, p->pad_t, p->pad_b, (int)kh, p->sh, p->ceil_mode);
    long long ow = pool_out(p->w, p->pad_l, p->pad_r, (int)kw, p->sw, p->ceil_mode);
    if (oh <= 0 || ow <= 0 || oh > INT_MAX || ow > INT_MAX)
        return cnn_err_set(err, CNN_EINVAL, "pool2d: output %lldx%lld is empty or too large", oh,
                           ow);
    p->oh = (int)oh;
    p->ow = (int)ow;
    return 0;
}

int cnn_conv2d_is_pointwise(const struct cnn_conv2d *p)
{
    return p->kh == 1 && p->kw == 1 && p->sh == 1 && p->sw == 1 && p->pad_t == 0 && p->pad_l == 0 &&
           p->pad_b == 0 && p->pad_r == 0;
}

int cnn_conv2d_is_depthwise(const struct cnn_conv2d *p)
{
    return p->groups > 1 && p->c == p->groups && !cnn_conv2d_is_pointwise(p);
}

int cnn_conv2d_chunk_rows(const struct cnn_conv2d *p, int N)
{
    const size_t total = (size_t)N * p->oh;
    const size_t row = (size_t)(p->c / p->groups) * p->kh * p->kw * p->ow;
    size_t rows = row ? CNN_CONV_CHUNK_FLOATS / row : total;
    /* Each chunk's GEMM packs the weights again: keep chunks wide enough to amortise it. */
    size_t min_rows = (CNN_CONV_MIN_COLS + (size_t)p->ow - 1) / (size_t)p->ow;
    if (rows < min_rows)
        rows = min_rows;
    /* ...but not wider than CNN_CONV_MAX_COLS: past ~6000 columns OpenBLAS's SkylakeX sgemm
     * falls off a cliff for small M and K (LeNet conv1, M=6 K=25: 62 -> 25 GFLOP/s). */
    size_t max_rows = (size_t)CNN_CONV_MAX_COLS / (size_t)p->ow;
    if (rows > max_rows)
        rows = max_rows ? max_rows : 1;
    return (int)(rows < total ? rows : total);
}

static size_t im2col_scratch_floats(const struct cnn_conv2d *p, int N)
{
    if (cnn_conv2d_is_pointwise(p) || N <= 0 || p->groups <= 0)
        return 0;
    /* One chunk of one group's col matrix: (C/G * KH * KW) x (chunk rows * OW). */
    size_t dims[5] = {(size_t)(p->c / p->groups), (size_t)p->kh, (size_t)p->kw,
                      (size_t)cnn_conv2d_chunk_rows(p, N), (size_t)p->ow};
    size_t n = 1;
    for (int i = 0; i < 5; i++)
        if (__builtin_mul_overflow(n, dims[i], &n))
            return SIZE_MAX; /* callers treat this as "cannot plan" */
    return n;
}

size_t cnn_conv2d_scratch_floats(const struct cnn_conv2d *p, int N)
{
    size_t n = im2col_scratch_floats(p, N);
    if (cnn_conv2d_use_winograd(p)) {
        size_t wn = cnn_winograd_scratch_floats(p, N);
        if (wn > n)
            n = wn;
    }
    return n;
}

/* Channel floor measured with thread CPU time (bench/conv3x3.c): with few input channels
 * the 16 GEMMs have a tiny K and the transforms dominate -- an RGB stem (C = 3) runs 0.7x
 * of im2col, C = 8 -> OC = 32 only 1.04x -- while from 16 channels each way every shape
 * tried ran 1.3-2.2x faster at batch 8 (ResNet-18's 512x7x7: 1.3-1.4x at batch 8, 0.9-1.2x
 * at batch 1, within the noise of a shared machine). */
int cnn_conv2d_use_winograd(const struct cnn_conv2d *p)
{
    return p->kh == 3 && p->kw == 3 && p->sh == 1 && p->sw == 1 && p->dh == 1 && p->dw == 1 &&
           p->groups == 1 && p->c >= 16 && p->oc >= 16 && p->oh > 0 && p->ow > 0;
}

/* Chunk rows and scratch of Winograd F(m x m, 3x3), m = 2 or 4: k = (m+2)^2 planes. */
static int wino_chunk_rows(const struct cnn_conv2d *p, int N, int m)
{
    const size_t k = (size_t)(m + 2) * (m + 2), th = ((size_t)p->oh + m - 1) / m;
    const size_t tw = ((size_t)p->ow + m - 1) / m, total = (size_t)N * th;
    const size_t per_tile = k * ((size_t)p->c + (size_t)p->oc); /* V and M floats */
    size_t tiles = CNN_WINOGRAD_CHUNK_FLOATS / per_tile;
    size_t min_tiles = (size_t)p->c * (size_t)p->oc / 32;
    /* U of at most CNN_WINOGRAD_SMALL_U floats stays in cache from chunk to chunk; U of a
     * quarter of that (1 MB) in L2 */
    const size_t u = k * p->c * p->oc;
    const size_t max_min = u <= CNN_WINOGRAD_SMALL_U / 4 ? CNN_WINOGRAD_MIN_TILES
                           : u <= CNN_WINOGRAD_SMALL_U   ? 2 * CNN_WINOGRAD_MIN_TILES
                                                         : 16 * CNN_WINOGRAD_MIN_TILES;
    if (min_tiles < CNN_WINOGRAD_MIN_TILES)
        min_tiles = CNN_WINOGRAD_MIN_TILES;
    if (min_tiles > max_min)
        min_tiles = max_min;
    if (tiles < min_tiles)
        tiles = min_tiles;
    if (tiles > CNN_WINOGRAD_MAX_FLOATS / per_tile)
        tiles = CNN_WINOGRAD_MAX_FLOATS / per_tile;
    size_t rows = tw ? (tiles + tw - 1) / tw : total;
    if (rows > total)
        rows = total;
    return rows < 1 ? 1 : (int)rows;
}

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static size_t wino_scratch_floats(const struct cnn_conv2d *p, int N, int m)
{
    if (N <= 0)
        return 0;
    /* V (k, C, T) + M (k, OC, T) + m + 2 zero-padded staged rows of m * round4(TW) + 2m
     * floats + one zero input row (W), T = chunk rows * TW tiles; each rounded to 16 floats. */
    const size_t k = (size_t)(m + 2) * (m + 2);
    const size_t tw = ((size_t)p->ow + m - 1) / m, tw4 = (tw + 3) & ~(size_t)3;
    size_t t, v, mf;
    if (__builtin_mul_overflow((size_t)wino_chunk_rows(p, N, m), tw, &t) ||
        __builtin_mul_overflow(t, k * (size_t)p->c, &v) ||
        __builtin_mul_overflow(t, k * (size_t)p->oc, &mf) || v > SIZE_MAX / 4 ||
        mf > SIZE_MAX / 4 || tw > SIZE_MAX / 64)
        return SIZE_MAX;
    return round16(v) + round16(mf) + round16((size_t)(m + 2) * (m * tw4 + 2 * (size_t)m)) +
           round16((size_t)p->w);
}

int cnn_winograd_chunk_rows(const struct cnn_conv2d *p, int N)
{
    return wino_chunk_rows(p, N, 2);
}

size_t cnn_winograd_scratch_floats(const struct cnn_conv2d *p, int N)
{
    return wino_scratch_floats(p, N, 2);
}

int cnn_winograd4_chunk_rows(const struct cnn_conv2d *p, int N)
{
    return wino_chunk_rows(p, N, 4);
}

size_t cnn_winograd4_scratch_floats(const struct cnn_conv2d *p, int N)
{
    return wino_scratch_floats(p, N, 4);
}
