/* Direct convolution (conv_direct.h): a register tile of 6 output channels x 2 vectors of 8
 * outputs (one output row x 16 columns, two rows x 8 columns for narrow maps, or the two
 * rows a 2x2 max pool reads) accumulates over (c, ky, kx) straight from the input rows --
 * a zero-padded copy of the image when the conv pads, with even and odd columns apart when
 * it strides by 2 -- with weights packed in blocks of 24 channels per k (the AVX-512 tiles
 * take 8 channels of a block).  The epilogue adds bias,
 * applies relu and stores, or pools 2x2 first. */
#include "avx512.h"
#include "conv_direct.h"
#include "conv_direct_internal.h"

#include "gemm_small.h"
#include "layer_kind.h"
#include "workers.h"

#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { DR = CNN_DIRECT_DR, DR_WIDE = CNN_DIRECT_DR_WIDE, BLOCK = CNN_DIRECT_BLOCK };

static int kdim(const struct cnn_conv2d *p)
{
    return p->c * p->kh * p->kw;
}

int cnn_conv_direct_applies(const struct cnn_conv2d *p)
{
    /* stride 2: the stems (7x7 or 3x3 on RGB); a strided 1x1 keeps its GEMM and fused add */
    const int stride = p->sh == p->sw && (p->sh == 1 || (p->sh == 2 && p->kh * p->kw > 1));
    return p->groups == 1 && stride && p->dh == 1 && p->dw == 1 && !cnn_conv2d_is_pointwise(p) &&
           p->oh > 0 && p->ow > 0 && (long long)p->c * p->kh * p->kw <= CNN_CONV_DIRECT_MAX_K &&
           cnn_gemm_small_vectorised();
}

/* max(f(a), f(b)) == f(max(a, b)) for a non-decreasing f. */
static int act_commutes_with_max(const struct cnn_act_params *a)
{
    switch (a->kind) {
    case CNN_ACT_NONE:
    case CNN_ACT_RELU:
    case CNN_ACT_CLIP:
    case CNN_ACT_SIGMOID:
    case CNN_ACT_TANH:
        return 1;
    case CNN_ACT_LEAKY_RELU:
    case CNN_ACT_HARD_SIGMOID:
        return a->alpha >= 0.0f;
    case CNN_ACT_HARD_SWISH:
    case CNN_ACT_COUNT:
        return 0;
    }
    return 0;
}

/* The pool reads exactly the conv's output. */
static int pool_reads_conv(const struct cnn_conv2d *p, const struct cnn_pool2d *q)
{
    return q->c == p->oc && q->h == p->oh && q->w == p->ow && q->oh > 0 && q->ow > 0;
}

int cnn_conv_direct_pools_in_tiles(const struct cnn_conv2d *p, const struct cnn_pool2d *q)
{
    return p->sh == 1 && cnn_pool2d_is_plain_2x2(q) && pool_reads_conv(p, q) &&
           act_commutes_with_max(&p->act);
}

int cnn_conv_direct_fuses_pool(const struct cnn_conv2d *p, const struct cnn_pool2d *q)
{
    if (cnn_conv_direct_pools_in_tiles(p, q))
        return 1;
    return pool_reads_conv(p, q) && cnn_pool_dil(q->dh) == 1 && cnn_pool_dil(q->dw) == 1 &&
           q->w <= CNN_MAXPOOL_ROW_MAX;
}

/* A band (pooled through the max pool's row kernel, not in the tiles): at most this many
 * floats of conv output, all channels, so that the rows just computed are pooled from L2
 * (ResNet's stem: 17 rows of 64 x 112, 8 pooled rows). */
#define BAND_FLOATS 131072

/* Pooled rows per band, and the most conv rows they read. */
static int band_pooled_rows(const struct cnn_conv2d *p, const struct cnn_pool2d *q)
{
    const long rows = BAND_FLOATS / ((long)p->oc * p->ow);
    const long bp = rows > q->kh ? (rows - q->kh) / q->sh + 1 : 1;
    return bp < q->oh ? (int)bp : q->oh;
}

static size_t band_conv_rows(const struct cnn_conv2d *p, const struct cnn_pool2d *q)
{
    return (size_t)(band_pooled_rows(p, q) - 1) * q->sh + q->kh;
}

size_t cnn_conv_direct_weights_floats(const struct cnn_conv2d *p)
{
    return (size_t)((p->oc + BLOCK - 1) / BLOCK) * BLOCK * (size_t)kdim(p);
}

void cnn_conv_direct_pack(float *wp, const float *w, const struct cnn_conv2d *p)
{
    const int K = kdim(p), blocks = (p->oc + BLOCK - 1) / BLOCK;
    for (int ob = 0; ob < blocks; ob++)
        for (int k = 0; k < K; k++)
            for (int r = 0; r < BLOCK; r++) {
                const int oc = ob * BLOCK + r;
                wp[((size_t)ob * K + k) * BLOCK + r] = oc < p->oc ? w[(size_t)oc * K + k] : 0.0f;
            }
}

static int padded(const struct cnn_conv2d *p)
{
    return p->pad_t || p->pad_l || p->pad_b || p->pad_r;
}

/* Floats of the zero-padded image copy. */
static size_t image_floats(const struct cnn_conv2d *p)
{
    if (!padded(p) && p->sw == 1)
        return 0;
    return (size_t)p->c * (size_t)(p->h + p->pad_t + p->pad_b) *
           (size_t)(p->w + p->pad_l + p->pad_r);
}

size_t cnn_conv_direct_scratch_floats(const struct cnn_conv2d *p, const struct cnn_pool2d *pool)
{
    const int banded = pool && !cnn_conv_direct_pools_in_tiles(p, pool);
    return image_floats(p) + (banded ? (size_t)p->oc * band_conv_rows(p, pool) * p->ow : 0);
}

/* One image's input as the tiles read it: (c, y, x) at p[c * cs + y * rs + x], padding
 * included (y, x from 0 at the top-left of the padded image).  Stride 2: each row holds the
 * even columns, then the odd ones from ps on, so that column 2 x + kx is at
 * (kx % 2) * ps + x + kx / 2 and 8 outputs in a row read 8 adjacent floats. */
struct src {
    const float *p;
    ptrdiff_t cs, rs, ps;
};

#if defined(__x86_64__)
/* first[j] = s[2 j], second[j] = s[2 j + 1] for j < n / 16 * 8 (16 floats a step: two
 * shuffles put the even and the odd ones in each 128-bit lane, a permute orders the lanes);
 * returns how many pairs it did.  AVX2: called only on the direct conv's path. */
__attribute__((target("avx2,fma"), no_sanitize("address", "undefined", "thread"))) static int
deinterleave(float *first, float *second, const float *s, int n)
{
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_loadu_ps(s + i), b = _mm256_loadu_ps(s + i + 8);
        const __m256 even = _mm256_shuffle_ps(a, b, 0x88), odd = _mm256_shuffle_ps(a, b, 0xdd);
        _mm256_storeu_ps(first + i / 2,
                         _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xd8)));
        _mm256_storeu_ps(second + i / 2,
                         _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(odd), 0xd8)));
    }
    return i / 2;
}
#else
static int deinterleave(float *first, float *second, const float *s, int n)
{
    (void)first, (void)second, (void)s, (void)n;
    return 0;
}
#endif

/* Row s (W floats) as padded row d: pl zeros, s, pr zeros; with stride 2 the even columns
 * of that row first, then the odd ones from (pl + W + pr + 1) / 2 on.  s NULL: all zeros. */
static void pad_row(float *d, const float *s, int W, int pl, int pr, int stride)
{
    const int Wp = pl + W + pr;
    if (!s) {
        memset(d, 0, sizeof(float) * (size_t)Wp);
    } else if (stride == 1) {
        memset(d, 0, sizeof(float) * (size_t)pl);
        memcpy(d + pl, s, sizeof(float) * (size_t)W);
        memset(d + pl + W, 0, sizeof(float) * (size_t)pr);
    } else {
        float *ph[2] = {d, d + (Wp + 1) / 2}; /* column x goes to ph[x % 2][x / 2] */
        memset(d, 0, sizeof(float) * (size_t)Wp);
        const int lead = pl & 1; /* s[0] is in the odd phase when pl is odd */
        float *first = ph[lead] + pl / 2, *second = ph[!lead] + (pl + 1) / 2;
        for (int i = 2 * deinterleave(first, second, s, W); i + 1 < W; i += 2) {
            first[i / 2] = s[i];
            second[i / 2] = s[i + 1];
        }
        if (W & 1)
            first[W / 2] = s[W - 1];
    }
}

/* Image n of inp (C, N, H, W) as the tiles read its padded rows [y_lo, y_hi): in place, or
 * those rows copied into scratch with their zero padding (a part copies only its own). */
static struct src image_src(const float *inp, float *scratch, const struct cnn_conv2d *p, int N,
                            int n, int y_lo, int y_hi)
{
    const size_t plane = (size_t)p->h * p->w;
    if (!padded(p) && p->sw == 1)
        return (struct src){inp + (size_t)n * plane, (ptrdiff_t)((size_t)N * plane), p->w, 0};
    const int Hp = p->h + p->pad_t + p->pad_b, Wp = p->w + p->pad_l + p->pad_r;
    y_hi = y_hi < Hp ? y_hi : Hp;
    for (int c = 0; c < p->c; c++) {
        float *d = scratch + (size_t)c * Hp * Wp;
        const float *s = inp + ((size_t)c * N + n) * plane;
        for (int y = y_lo; y < y_hi; y++) {
            const int sy = y - p->pad_t;
            pad_row(d + (size_t)y * Wp, sy >= 0 && sy < p->h ? s + (size_t)sy * p->w : NULL, p->w,
                    p->pad_l, p->pad_r, p->sw);
        }
    }
    return (struct src){scratch, (ptrdiff_t)Hp * Wp, Wp, p->sw == 2 ? (Wp + 1) / 2 : 0};
}

#if defined(__x86_64__)

/* AVX2 and not instrumented by the sanitizers (as gemm_small.c's register kernels): every
 * load and store is masked to the lanes the drivers below say exist. */
#define KERNEL __attribute__((target("avx2,fma"), no_sanitize("address", "undefined", "thread")))
#define INLINE inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

KERNEL static INLINE __m256i lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* acc[r][v] = sum over (c, ky, kx) of weight (r, k) * the 8 inputs vector v reads there.
 * full (a constant): both vectors have 8 lanes, plain loads -- the masks would take two of
 * the 16 registers and spill accumulators.  s2 (a constant): stride 2, phases (struct src). */
KERNEL static INLINE void accumulate(__m256 acc[DR][2], const struct tile *t, int kw, int full,
                                     int s2)
{
    const __m256i m0 = lanes(t->n[0]), m1 = lanes(t->n[1]);
    const float *wp = t->wp;
    UNROLL
    for (int r = 0; r < DR; r++)
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int c = 0; c < t->C; c++) {
        for (int ky = 0; ky < t->KH; ky++) {
            const ptrdiff_t off = c * t->cs + ky * t->rs;
            const float *a0 = t->s[0] + off, *a1 = t->s[1] + off;
            UNROLL
            for (int kx = 0; kx < kw; kx++) {
                const ptrdiff_t x = s2 ? (kx & 1) * t->ps + (kx >> 1) : kx;
                const __m256 b0 = full ? _mm256_loadu_ps(a0 + x) : _mm256_maskload_ps(a0 + x, m0);
                const __m256 b1 = full ? _mm256_loadu_ps(a1 + x) : _mm256_maskload_ps(a1 + x, m1);
                UNROLL
                for (int r = 0; r < DR; r++) {
                    const __m256 w = _mm256_broadcast_ss(wp + r);
                    acc[r][0] = _mm256_fmadd_ps(w, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(w, b1, acc[r][1]);
                }
                wp += BLOCK;
            }
        }
    }
}

KERNEL static INLINE __m256 bias_relu(__m256 x, const struct tile *t, int r)
{
    if (t->b)
        x = _mm256_add_ps(x, _mm256_broadcast_ss(t->b + r));
    if (t->relu) /* max_ps returns its second operand for NaN: NaN -> 0, as add_bias does */
        x = _mm256_max_ps(x, _mm256_setzero_ps());
    return x;
}

/* full (a constant): plain stores -- a masked store costs several times a plain one on
 * AMD Zen, and the tiles of a wide map are nearly all full. */
KERNEL static INLINE void store(__m256 acc[DR][2], const struct tile *t, int full)
{
    const __m256i m0 = lanes(t->n[0]), m1 = lanes(t->n[1]);
    UNROLL
    for (int r = 0; r < DR; r++) {
        if (r >= t->mr)
            break;
        float *o0 = t->o[0] + r * t->ocs, *o1 = t->o[1] + r * t->ocs;
        if (full) {
            _mm256_storeu_ps(o0, bias_relu(acc[r][0], t, r));
            _mm256_storeu_ps(o1, bias_relu(acc[r][1], t, r));
        } else {
            _mm256_maskstore_ps(o0, m0, bias_relu(acc[r][0], t, r));
            _mm256_maskstore_ps(o1, m1, bias_relu(acc[r][1], t, r));
        }
    }
}

/* Max of the two rows, then of adjacent columns: 8 columns -> 4 pooled values. */
KERNEL static INLINE void pool(__m256 acc[DR][2], const struct tile *t, int full)
{
    const __m128i m = _mm256_castsi256_si128(lanes(t->n_out));
    UNROLL
    for (int r = 0; r < DR; r++) {
        if (r >= t->mr)
            break;
        const __m256 x = _mm256_max_ps(acc[r][0], acc[r][1]);
        const __m256 e = _mm256_shuffle_ps(x, x, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 o = _mm256_shuffle_ps(x, x, _MM_SHUFFLE(3, 1, 3, 1));
        /* per 128-bit lane: pooled (0, 1, 0, 1) and (2, 3, 2, 3): take 64-bit words 0, 2 */
        const __m256d q =
            _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_max_ps(e, o)), _MM_SHUFFLE(3, 1, 2, 0));
        const __m256 y = bias_relu(_mm256_castpd_ps(q), t, r);
        if (full) /* 8 conv columns: 4 pooled ones */
            _mm_storeu_ps(t->o[0] + r * t->ocs, _mm256_castps256_ps128(y));
        else
            _mm_maskstore_ps(t->o[0] + r * t->ocs, m, _mm256_castps256_ps128(y));
    }
}

/* The kernels, with KW a constant for the common 3 and 5 (stride 2: 3 and 7, the stems),
 * full tiles and masked ones. */
#define DIRECT_KERNEL(name, epilogue, kwexpr, full, s2)                                            \
    KERNEL static void name(const struct tile *t)                                                  \
    {                                                                                              \
        __m256 acc[DR][2];                                                                         \
        accumulate(acc, t, kwexpr, full, s2);                                                      \
        epilogue(acc, t, full);                                                                    \
    }
#define DIRECT_KERNELS(k, kwexpr)                                                                  \
    DIRECT_KERNEL(store_##k, store, kwexpr, 0, 0)                                                  \
    DIRECT_KERNEL(store_##k##_full, store, kwexpr, 1, 0)                                           \
    DIRECT_KERNEL(pool_##k, pool, kwexpr, 0, 0)                                                    \
    DIRECT_KERNEL(pool_##k##_full, pool, kwexpr, 1, 0)
#define STRIDE2_KERNELS(k, kwexpr)                                                                 \
    DIRECT_KERNEL(s2_##k, store, kwexpr, 0, 1)                                                     \
    DIRECT_KERNEL(s2_##k##_full, store, kwexpr, 1, 1)
DIRECT_KERNELS(k3, 3)
DIRECT_KERNELS(k5, 5)
DIRECT_KERNELS(kany, t->KW)
STRIDE2_KERNELS(k3, 3)
STRIDE2_KERNELS(k7, 7)
STRIDE2_KERNELS(kany, t->KW)

/* [pooled][kw 3, 5, other][full]; stride 2 (never pooled): [kw 3, 7, other][full] */
static const tile_fn KERNELS[2][3][2] = {
    {{store_k3, store_k3_full}, {store_k5, store_k5_full}, {store_kany, store_kany_full}},
    {{pool_k3, pool_k3_full}, {pool_k5, pool_k5_full}, {pool_kany, pool_kany_full}},
};
static const tile_fn STRIDE2[3][2] = {
    {s2_k3, s2_k3_full}, {s2_k7, s2_k7_full}, {s2_kany, s2_kany_full}};

static tile_fn pick(const struct tile *t, int pooled)
{
    if (t->wide)
        return cnn_direct_pick_avx512(t, pooled);
    const int full = t->n[0] == 8 && t->n[1] == 8;
    if (t->ps)
        return STRIDE2[t->KW == 3 ? 0 : t->KW == 7 ? 1 : 2][full];
    const int kw = t->KW == 3 ? 0 : t->KW == 5 ? 1 : 2;
    return KERNELS[pooled][kw][full];
}

#else /* cnn_conv_direct_applies() is 0: never called */

static void no_tile(const struct tile *t)
{
    (void)t;
}

static tile_fn pick(const struct tile *t, int pooled)
{
    (void)t, (void)pooled;
    return no_tile;
}

#endif

/* Runs the tile t (s, n, o set; o at channel 0) over every channel block. */
static void run_blocks(int pooled, struct tile *t, const float *wp, const float *b, int OC)
{
    const tile_fn fn = pick(t, pooled);
    float *o0 = t->o[0], *o1 = t->o[1];
    const size_t K = (size_t)t->C * t->KH * t->KW;
    const int dr = t->wide ? DR_WIDE : DR;
    for (int oc = 0; oc < OC; oc += dr) {
        t->wp = wp + (size_t)(oc / BLOCK) * K * BLOCK + oc % BLOCK;
        t->b = b ? b + oc : NULL;
        t->mr = OC - oc < dr ? OC - oc : dr;
        t->o[0] = o0 + (size_t)oc * t->ocs;
        t->o[1] = o1 + (size_t)oc * t->ocs;
        fn(t);
    }
}

/* Output rows [r_lo, r_hi) unpooled, row r at out + (r - row0) * OW (channels t->ocs
 * apart): 16 columns of one row, or two rows of 8 when OW <= 8; wide (AVX-512): two rows of
 * 16 columns. */
static void rows_plain(float *out, int row0, const float *inp, const float *wp, const float *b,
                       float *scratch, const struct cnn_conv2d *p, int N, int r_lo, int r_hi,
                       struct tile *t)
{
    const int OH = p->oh, OW = p->ow;
    int img = -1;
    struct src s = {0};
    for (int r = r_lo; r < r_hi;) {
        const int n = r / OH, oy = r % OH;
        if (n != img) { /* this image's rows oy.. up to r_hi read these padded rows */
            const int end = r_hi - n * OH < OH ? r_hi - n * OH : OH;
            s = image_src(inp, scratch, p, N, img = n, oy * p->sh, (end - 1) * p->sh + p->kh);
        }
        t->cs = s.cs, t->rs = s.rs, t->ps = s.ps;
        float *orow = out + (size_t)(r - row0) * OW;
        const ptrdiff_t step = p->sh * s.rs; /* from one output row's inputs to the next's */
        const float *srow = s.p + (size_t)oy * step;
        if (t->wide) { /* two rows of 16 columns */
            const int two = oy + 1 < OH && r + 1 < r_hi;
            for (int x0 = 0; x0 < OW; x0 += 16) {
                const int w = OW - x0 < 16 ? OW - x0 : 16;
                t->s[0] = srow + x0, t->s[1] = two ? srow + step + x0 : srow + x0;
                t->n[0] = w, t->n[1] = two ? w : 0;
                t->o[0] = orow + x0, t->o[1] = two ? orow + OW + x0 : orow + x0;
                run_blocks(0, t, wp, b, p->oc);
            }
            r += 1 + two;
            continue;
        }
        if (OW <= 8) {
            const int two = oy + 1 < OH && r + 1 < r_hi;
            t->s[0] = srow, t->s[1] = two ? srow + step : srow;
            t->n[0] = OW, t->n[1] = two ? OW : 0;
            t->o[0] = orow, t->o[1] = two ? orow + OW : orow;
            run_blocks(0, t, wp, b, p->oc);
            r += 1 + two;
            continue;
        }
        for (int x0 = 0; x0 < OW; x0 += 16) {
            const int w = OW - x0 < 16 ? OW - x0 : 16;
            t->s[0] = srow + x0, t->s[1] = srow + x0 + 8;
            t->n[0] = w < 8 ? w : 8, t->n[1] = w - 8 > 0 ? w - 8 : 0;
            t->o[0] = orow + x0, t->o[1] = orow + x0 + 8;
            run_blocks(0, t, wp, b, p->oc);
        }
        r++;
    }
}

/* Pooled output rows [r_lo, r_hi) (r = n * PH + py): conv rows 2py, 2py + 1, 8 columns
 * (wide: 16). */
static void rows_pooled(float *out, const float *inp, const float *wp, const float *b,
                        float *scratch, const struct cnn_conv2d *p, const struct cnn_pool2d *q,
                        int N, int r_lo, int r_hi, struct tile *t)
{
    int img = -1;
    struct src s = {0};
    for (int r = r_lo; r < r_hi; r++) {
        const int n = r / q->oh, py = r % q->oh;
        if (n != img) { /* pooled rows py.. read conv rows 2 py.., which read these */
            const int end = r_hi - n * q->oh < q->oh ? r_hi - n * q->oh : q->oh;
            s = image_src(inp, scratch, p, N, img = n, 2 * py, 2 * end - 1 + p->kh);
        }
        t->cs = s.cs, t->rs = s.rs;
        const float *srow = s.p + (size_t)(2 * py) * s.rs;
        const int step = t->wide ? 8 : 4; /* pooled values per tile */
        for (int px = 0; px < q->ow; px += step) {
            const int np = q->ow - px < step ? q->ow - px : step;
            t->s[0] = srow + 2 * px, t->s[1] = srow + s.rs + 2 * px;
            t->n[0] = t->n[1] = 2 * np;
            t->n_out = np;
            t->o[0] = t->o[1] = out + (size_t)r * q->ow + px;
            run_blocks(1, t, wp, b, p->oc);
        }
    }
}

/* Pooled rows [r_lo, r_hi) (r = n * PH + py) through bands: each band's conv rows (all
 * channels, activated) into the scratch after the image copy, then the max pool's row kernel
 * over them.  A band keeps the rows the previous one computed that it reads too (a 3x3
 * stride-2 window's first row is the last one's third), so only a part's first band
 * recomputes a row another part has. */
static void rows_banded(float *out, const float *inp, const float *wp, const float *b,
                        float *scratch, const struct cnn_conv2d *p, const struct cnn_pool2d *q,
                        int N, int r_lo, int r_hi, struct tile *t)
{
    const int bp = band_pooled_rows(p, q), OW = p->ow;
    float *band = scratch + image_floats(p);
    const size_t bstride = band_conv_rows(p, q) * (size_t)OW, plane = (size_t)q->oh * q->ow;
    const int act_after = p->act.kind != CNN_ACT_RELU && p->act.kind != CNN_ACT_NONE;
    t->ocs = (ptrdiff_t)bstride; /* the tiles write the band's channels */
    for (int r = r_lo; r < r_hi;) {
        const int n = r / q->oh, py0 = r % q->oh;
        const int py1 = r_hi - n * q->oh < q->oh ? r_hi - n * q->oh : q->oh;
        int held_lo = 0, held_hi = 0; /* conv rows in the band */
        for (int a = py0; a < py1; a += bp) {
            const int z = a + bp < py1 ? a + bp : py1;
            int y0, y1, unused;
            cnn_pool_window(a, q->sh, q->pad_t, q->pad_b, q->kh, q->h, &y0, &unused);
            cnn_pool_window(z - 1, q->sh, q->pad_t, q->pad_b, q->kh, q->h, &unused, &y1);
            int from = y0;
            if (held_hi > y0) { /* rows [y0, held_hi) are held: to the band's top */
                for (int c = 0; c < p->oc; c++)
                    memmove(band + c * bstride, band + c * bstride + (size_t)(y0 - held_lo) * OW,
                            sizeof(float) * (size_t)(held_hi - y0) * OW);
                from = held_hi;
            }
            rows_plain(band, n * p->oh + y0, inp, wp, b, scratch, p, N, n * p->oh + from,
                       n * p->oh + y1, t);
            for (int c = 0; act_after && c < p->oc; c++)
                cnn_act_apply(band + c * bstride + (size_t)(from - y0) * OW,
                              (size_t)(y1 - from) * OW, &p->act);
            held_lo = y0, held_hi = y1;
            for (int c = 0; c < p->oc; c++)
                cnn_maxpool_plane_rows(out + ((size_t)c * N + n) * plane, band + c * bstride, y0, q,
                                       a, z);
        }
        r += py1 - py0;
    }
}

void cnn_conv_direct_rows(float *out, const float *inp, const float *wp, const float *b,
                          float *scratch, const struct cnn_conv2d *p, const struct cnn_pool2d *pool,
                          int N, int r_lo, int r_hi)
{
    cnn_conv_direct_rows_lanes(out, inp, wp, b, scratch, p, pool, N, r_lo, r_hi,
                               cnn_conv_direct_max_lanes());
}

int cnn_conv_direct_max_lanes(void)
{
    return cnn_cpu_avx512() ? 16 : 8;
}

void cnn_conv_direct_rows_lanes(float *out, const float *inp, const float *wp, const float *b,
                                float *scratch, const struct cnn_conv2d *p,
                                const struct cnn_pool2d *pool, int N, int r_lo, int r_hi, int lanes)
{
    if (r_hi <= r_lo)
        return;
    const int oh = pool ? pool->oh : p->oh, ow = pool ? pool->ow : p->ow;
    const int relu = p->act.kind == CNN_ACT_RELU;
    struct tile t = {.C = p->c, .KH = p->kh, .KW = p->kw, .relu = relu};
    /* 16 lanes only where the rows fill most of them: LeNet-5's 24- and 8-column rows left
     * a third or half idle, and its convs ran 12% slower than on 8 lanes */
    t.wide = lanes == 16 && (p->ow % 16 == 0 || p->ow >= 32);
    if (pool && !cnn_conv_direct_pools_in_tiles(p, pool)) {
        rows_banded(out, inp, wp, b, scratch, p, pool, N, r_lo, r_hi, &t); /* activated */
        return;
    }
    t.ocs = (ptrdiff_t)((size_t)N * oh * ow);
    if (pool)
        rows_pooled(out, inp, wp, b, scratch, p, pool, N, r_lo, r_hi, &t);
    else
        rows_plain(out, 0, inp, wp, b, scratch, p, N, r_lo, r_hi, &t);
    if (relu || p->act.kind == CNN_ACT_NONE)
        return;
    for (int oc = 0; oc < p->oc; oc++) /* other activations: over this part's rows */
        cnn_act_apply(out + (size_t)oc * t.ocs + (size_t)r_lo * ow, (size_t)(r_hi - r_lo) * ow,
                      &p->act);
}

/* ---- the conv row's hooks -------------------------------------------------------------- */

size_t cnn_conv_direct_folded_floats(const struct cnn_conv2d *p)
{
    return cnn_conv_direct_applies(p) ? cnn_conv_direct_weights_floats(p) + 16 : 0;
}

void cnn_conv_direct_plan(struct cnn_compile *cs, struct cnn_op *op)
{
    float *wp = cnn_compile_take(cs, cnn_conv_direct_weights_floats(&op->conv));
    cnn_conv_direct_pack(wp, op->w, &op->conv);
    op->wd = wp;
    const int j = cnn_compile_sole_consumer(cs, op->out);
    if (j < 0 || cs->m->layers[j].kind != CNN_LAYER_MAXPOOL ||
        !cnn_conv_direct_fuses_pool(&op->conv, &cs->m->layers[j].p.pool))
        return;
    op->pool = cs->m->layers[j].p.pool;
    cs->absorbed[j] = 1;
    op->out = j;
}

/* Rows (pooled rows when a pool is fused) split evenly over the parts. */
void cnn_conv_direct_run_part(const struct cnn_op *op, const struct cnn_op_run *r, int part,
                              int parts)
{
    const struct cnn_pool2d *pool = op->pool.kh ? &op->pool : NULL;
    const int rows = r->n * (pool ? pool->oh : op->conv.oh);
    size_t lo, hi;
    cnn_part_range((size_t)rows, part, parts, &lo, &hi);
    cnn_conv_direct_rows(r->out, r->in[0], op->wd, op->b, r->col, &op->conv, pool, r->n, (int)lo,
                         (int)hi);
}
