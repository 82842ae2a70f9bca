/* GEMMs with a pre-packed left operand (gemm_packed.h), two ways.  Narrow (few columns): B
 * is repacked block by block into strips of 6 columns (KB rows x 6, contiguous), and a 6 x 16
 * register tile (6 columns of B broadcast, 16 rows of A loaded from a panel) runs down K; its
 * result is transposed in registers and stored into 16 rows of C, 6 floats each.  Wide (many
 * columns): strips of 24 columns, and a 4 x 24 tile (4 rows of A broadcast from a quarter of
 * a panel, 24 columns of B loaded) whose vectors are rows of C, stored as they are. */
#include "avx512.h"
#include "gemm_packed_internal.h"
#include "gemm_small.h"

#include <stdlib.h>
#include <string.h>

enum {
    PR = CNN_GEMM_PACKED_ROWS, /* rows of A per panel and per tile: two vectors of 8 */
    PC = 6,                    /* columns of B per strip and per tile */
    KB = CNN_PACKED_KB,
    NB = CNN_PACKED_NB,
    /* A tile asks for the panel row this many k steps ahead (one 64-byte line each): at batch
     * 1 the products stream U or the weights from memory for a few strips each, and the
     * hardware prefetchers alone left a Zen 3 core waiting (ResNet-18 batch 1 on 2 threads,
     * its 7x7 Winograd products -9%, all ops -3%; ResNet-50 batch 1 -2.4%; batch 4 even). */
    PREFETCH_K = 32,
    /* The wide tile: 4 rows (a quarter panel) x 24 columns (three vectors), 12 accumulators. */
    WR = 4,
    WC = 24,
    WKB = CNN_PACKED_WKB,
    WNB = CNN_PACKED_WNB
};

size_t cnn_gemm_packed_floats(int M, int K)
{
    return (size_t)((M + PR - 1) / PR) * PR * (size_t)K;
}

void cnn_gemm_pack(float *ap, const float *a, int M, int K)
{
    for (int p = 0; p < (M + PR - 1) / PR; p++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < PR; j++) {
                const int r = p * PR + j;
                ap[((size_t)p * K + k) * PR + j] = r < M ? a[(size_t)r * K + k] : 0.0f;
            }
}

int cnn_gemm_pack_in_place(float *a, int M, int K)
{
    float *rows = malloc(sizeof(float) * PR * (size_t)K);
    if (!rows)
        return -1;
    for (int p = 0; p < M / PR; p++) {
        float *panel = a + (size_t)p * PR * K;
        memcpy(rows, panel, sizeof(float) * PR * (size_t)K);
        cnn_gemm_pack(panel, rows, PR, K);
    }
    free(rows);
    return 0;
}

size_t cnn_gemm_packed_scratch_floats(int K)
{
    const size_t narrow = (size_t)(K < KB ? K : KB) * NB, wide = (size_t)(K < WKB ? K : WKB) * WNB;
    return narrow > wide ? narrow : wide;
}

void cnn_gemm_packed_portable(int M, int N, int K, float alpha, const float *ap, const float *B,
                              int ldb, float beta, float *C, int ldc,
                              const struct cnn_gemm_epilogue *ep)
{
    for (int i = 0; i < M; i++) {
        const float *ai = ap + (size_t)(i / PR) * PR * K + i % PR;
        for (int j = 0; j < N; j++) {
            float sum = 0.0f;
            for (int k = 0; k < K; k++)
                sum += ai[(size_t)k * PR] * B[(size_t)k * ldb + j];
            const size_t at = (size_t)i * ldc + j;
            const float v = alpha * sum + (beta == 0.0f ? 0.0f : beta * C[at]);
            C[at] = ep ? cnn_packed_epilogue(v, ep, i, at) : v;
        }
    }
}

/* cnn_gemm_packed_portable() with B a matrix, or by: then in blocks that by writes as one
 * strip as wide as the block, which is the block as a matrix (KB x NB fits the scratch). */
static void packed_portable_with(int M, int N, int K, float alpha, const float *ap, const float *B,
                                 int ldb, float beta, float *C, int ldc,
                                 const struct cnn_gemm_epilogue *ep, float *scratch,
                                 const struct cnn_gemm_b_packer *by)
{
    if (!by) {
        cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += KB) {
        const int kc = K - k0 < KB ? K - k0 : KB, last = k0 + kc >= K;
        for (int n0 = 0; n0 < N; n0 += NB) {
            const int nc = N - n0 < NB ? N - n0 : NB;
            by->pack(by->ctx, scratch, k0, kc, n0, nc, nc);
            for (int i = 0; i < M; i += PR) { /* panel by panel, from its row k0 */
                const int rows = M - i < PR ? M - i : PR;
                struct cnn_gemm_epilogue sub = {0};
                if (last && ep)
                    sub = (struct cnn_gemm_epilogue){
                        ep->bias ? ep->bias + i : NULL,
                        ep->res ? ep->res + (size_t)i * ldc + n0 : NULL, ep->relu};
                cnn_gemm_packed_portable(rows, nc, kc, alpha, ap + (size_t)i * K + (size_t)k0 * PR,
                                         scratch, nc, k0 ? 1.0f : beta, C + (size_t)i * ldc + n0,
                                         ldc, last && ep ? &sub : NULL);
            }
        }
    }
}

void cnn_gemm_packed_by_portable(int M, int N, int K, float alpha, const float *ap,
                                 const struct cnn_gemm_b_packer *by, float beta, float *C, int ldc,
                                 const struct cnn_gemm_epilogue *ep, float *scratch)
{
    packed_portable_with(M, N, K, alpha, ap, NULL, 0, beta, C, ldc, ep, scratch, by);
}

/* dst = columns [n0, n0 + nc) of rows [k0, k0 + kc) of B as strips of `width` columns: strip
 * s holds kc rows of width floats (columns n0 + s * width...), the last strip zero-padded.
 * Strip by strip (written in order; 3-9% faster than row by row on the wide driver), and
 * inlined, so that width is a constant and each row's copy a few moves, not a memcpy call. */
static inline __attribute__((always_inline)) void
pack_strips(float *dst, const float *B, ptrdiff_t ldb, int k0, int kc, int n0, int nc, int width)
{
    const int full = nc / width, rest = nc - full * width;
    const ptrdiff_t strip = (ptrdiff_t)kc * width;
    for (int s = 0; s < full; s++)
        for (int k = 0; k < kc; k++)
            memcpy(dst + s * strip + k * width, B + (k0 + k) * ldb + n0 + s * width,
                   (size_t)width * sizeof(float));
    for (int k = 0; rest && k < kc; k++) {
        const float *src = B + (k0 + k) * ldb + n0 + full * width;
        for (int j = 0; j < width; j++)
            dst[full * strip + k * width + j] = j < rest ? src[j] : 0.0f;
    }
}

#if defined(__x86_64__)

/* Register kernels: AVX2 and not instrumented by sanitizers (see gemm_small.c); they read the
 * panel and strip the driver hands them and write only the rows and columns of C it names. */
#define KERNEL __attribute__((target("avx2,fma"), no_sanitize("address", "undefined", "thread")))
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

/* Two floats at p, to or from the low half of a vector (through the unaligned 64-bit type
 * the SSE2 header uses, where _mm_load_sd's double would be a misaligned access). */
KERNEL INLINE __m128 load2(const float *p)
{
    return _mm_castsi128_ps(_mm_loadl_epi64((const __m128i_u *)p));
}

KERNEL INLINE void store2(float *p, __m128 v)
{
    _mm_storel_epi64((__m128i_u *)p, _mm_castps_si128(v));
}

/* r[i] = column i of the 8 x 8 matrix whose rows were r[0..7]. */
KERNEL INLINE void transpose8(__m256 r[8])
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* C rows [0, rows) x columns [0, cols) = alpha * acc^T + beta * C, then ep (NULL: none;
 * its bias and residual start at the tile's row 0 and column 0); acc (cols x 16: column
 * j of C at acc[j * 16...]) is the tile's result.  A full tile stores 6 floats per row as
 * 4 + 2; a partial one goes through a stack row and the plain epilogue. */
KERNEL static void store_tile(const float *acc, int rows, int cols, float alpha, float beta,
                              float *c, ptrdiff_t ldc, const struct cnn_gemm_epilogue *ep)
{
    const float *res = ep ? ep->res : NULL;
    const __m256 va = _mm256_set1_ps(alpha);
    const __m128 vb = _mm_set1_ps(beta), zero = _mm_setzero_ps();
    for (int h = 0; h < 2 && 8 * h < rows; h++) {
        __m256 t[8];
        for (int j = 0; j < 8; j++)
            t[j] = j < cols ? _mm256_mul_ps(_mm256_loadu_ps(acc + j * PR + 8 * h), va)
                            : _mm256_setzero_ps();
        transpose8(t);
        const int n = rows - 8 * h < 8 ? rows - 8 * h : 8;
        for (int i = 0; i < n; i++) {
            const int row = 8 * h + i;
            float *ci = c + row * ldc;
            __m128 lo = _mm256_castps256_ps128(t[i]), hi = _mm256_extractf128_ps(t[i], 1);
            if (cols < PC) {
                float v[8];
                _mm256_storeu_ps(v, t[i]);
                for (int j = 0; j < cols; j++) {
                    const float x = v[j] + (beta == 0.0f ? 0.0f : beta * ci[j]);
                    ci[j] = ep ? cnn_packed_epilogue(x, ep, row, (size_t)(row * ldc + j)) : x;
                }
                continue;
            }
            if (beta != 0.0f) { /* beta == 0 never reads C */
                lo = _mm_fmadd_ps(_mm_loadu_ps(ci), vb, lo);
                hi = _mm_fmadd_ps(load2(ci + 4), vb, hi);
            }
            if (ep) {
                if (ep->bias) {
                    const __m128 b = _mm_set1_ps(ep->bias[row]);
                    lo = _mm_add_ps(lo, b);
                    hi = _mm_add_ps(hi, b);
                }
                if (res) {
                    const float *ri = res + row * ldc;
                    lo = _mm_add_ps(lo, _mm_loadu_ps(ri));
                    hi = _mm_add_ps(hi, load2(ri + 4));
                }
                if (ep->relu) { /* max(NaN, 0) and max(-0, 0) are the second operand: +0 */
                    lo = _mm_max_ps(lo, zero);
                    hi = _mm_max_ps(hi, zero);
                }
            }
            _mm_storeu_ps(ci, lo);
            store2(ci + 4, hi);
        }
    }
}

/* acc (cols x 16) = the product over kc of strip (kc x PC, broadcast) and panel rows (kc x
 * 16), asking for the panel rows PREFETCH_K ahead (a prefetch past the panel never faults).
 * cols is a constant after inlining; the loop keeps the result in 12 registers, and the
 * epilogue stays out of line (inlined, it made GCC spill an accumulator: half speed). */
KERNEL INLINE void tile(int cols, int kc, const float *panel, const float *strip, float *acc)
{
    __m256 s[PC][2];
    UNROLL
    for (int j = 0; j < cols; j++)
        s[j][0] = s[j][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        __builtin_prefetch(panel + (k + PREFETCH_K) * PR);
        const __m256 a0 = _mm256_loadu_ps(panel + k * PR), a1 = _mm256_loadu_ps(panel + k * PR + 8);
        UNROLL
        for (int j = 0; j < cols; j++) {
            const __m256 b = _mm256_broadcast_ss(strip + k * PC + j);
            s[j][0] = _mm256_fmadd_ps(b, a0, s[j][0]);
            s[j][1] = _mm256_fmadd_ps(b, a1, s[j][1]);
        }
    }
    UNROLL
    for (int j = 0; j < cols; j++) {
        _mm256_storeu_ps(acc + j * PR, s[j][0]);
        _mm256_storeu_ps(acc + j * PR + 8, s[j][1]);
    }
}

#define TILE_CASE(n)                                                                               \
    case n:                                                                                        \
        tile(n, kc, panel, strip, acc);                                                            \
        break;

KERNEL static void tile_any(int cols, int rows, int kc, const float *panel, ptrdiff_t panel_stride,
                            const float *strip, float alpha, float beta, float *c, ptrdiff_t ldc,
                            const struct cnn_gemm_epilogue *ep)
{
    (void)panel_stride; /* one panel per tile */
    float acc[PC * PR] __attribute__((aligned(32)));
    switch (cols) {
        TILE_CASE(1) TILE_CASE(2) TILE_CASE(3) TILE_CASE(4) TILE_CASE(5) TILE_CASE(6)
    }
    store_tile(acc, rows, cols, alpha, beta, c, ldc, ep);
}

static const struct cnn_packed_narrow narrow_avx2 = {1, PC, tile_any};

/* Asks for the `width` floats of each of the rows of m at p (row stride ld) that a tile is
 * about to read or write: an output or residual that is not in cache costs a trip to memory
 * per line, and the hardware prefetchers do not follow 16 short rows 1-12 KiB apart
 * (ResNet-50's 256 x 56 x 56 with a residual: 1.33 ms in OpenBLAS, 1.62 here without this). */
static void prefetch_rows(const float *p, ptrdiff_t ld, int rows, int width)
{
    for (int r = 0; r < rows; r++) {
        __builtin_prefetch(p + r * ld);
        __builtin_prefetch(p + r * ld + width - 1);
    }
}

/* pack_strips() for the kernels' strip widths, each inlined with its constant. */
static void pack_block(float *dst, const float *B, ptrdiff_t ldb, int k0, int kc, int n0, int nc,
                       int width)
{
    switch (width) {
    case 6:
        pack_strips(dst, B, ldb, k0, kc, n0, nc, 6);
        break;
    case 8:
        pack_strips(dst, B, ldb, k0, kc, n0, nc, 8);
        break;
    case 16:
        pack_strips(dst, B, ldb, k0, kc, n0, nc, 16);
        break;
    case 24:
        pack_strips(dst, B, ldb, k0, kc, n0, nc, 24);
        break;
    case 48:
        pack_strips(dst, B, ldb, k0, kc, n0, nc, 48);
        break;
    default:
        pack_strips(dst, B, ldb, k0, kc, n0, nc, width);
    }
}

/* A block of B in strips: from the matrix (pack_block), or from by when B is never stored. */
static void fill_block(const struct cnn_gemm_b_packer *by, float *dst, const float *B,
                       ptrdiff_t ldb, int k0, int kc, int n0, int nc, int width)
{
    if (by)
        by->pack(by->ctx, dst, k0, kc, n0, nc, width);
    else
        pack_block(dst, B, ldb, k0, kc, n0, nc, width);
}

/* K in blocks of KB (the first applies beta, the others add, the last applies ep), columns
 * in blocks of NB repacked into scratch (from B, or by by); every group of kn->panels panels
 * of A runs over each block's strips.  Each tile asks for the C and residual rows of the
 * next one. */
static void narrow_with(const struct cnn_packed_narrow *kn, int M, int N, int K, float alpha,
                        const float *ap, const float *B, int ldb, float beta, float *C, int ldc,
                        const struct cnn_gemm_epilogue *ep, float *scratch,
                        const struct cnn_gemm_b_packer *by)
{
    const int width = kn->width, tile_rows = kn->panels * PR;
    for (int k0 = 0; k0 < K; k0 += KB) {
        const int kc = K - k0 < KB ? K - k0 : KB, last = k0 + kc >= K;
        const float be = k0 ? 1.0f : beta;
        for (int n0 = 0; n0 < N; n0 += NB) {
            const int nc = N - n0 < NB ? N - n0 : NB;
            fill_block(by, scratch, B, ldb, k0, kc, n0, nc, width);
            for (int r0 = 0; r0 < M; r0 += tile_rows) {
                const float *panel = ap + ((ptrdiff_t)(r0 / PR) * K + k0) * PR;
                const int rows = M - r0 < tile_rows ? M - r0 : tile_rows;
                const ptrdiff_t at = (ptrdiff_t)r0 * ldc + n0;
                const struct cnn_gemm_epilogue *pe = last ? ep : NULL; /* this block's */
                const float *bias = pe && pe->bias ? pe->bias + r0 : NULL;
                const float *res = pe && pe->res ? pe->res + at : NULL;
                prefetch_rows(C + at, ldc, rows, width);
                if (res)
                    prefetch_rows(res, ldc, rows, width);
                for (int s = 0; s * width < nc; s++) {
                    const int cols = nc - s * width < width ? nc - s * width : width;
                    if ((s + 1) * width < nc) { /* the next tile's */
                        prefetch_rows(C + at + (s + 1) * width, ldc, rows, width);
                        if (res)
                            prefetch_rows(res + (s + 1) * width, ldc, rows, width);
                    }
                    /* the tile's rows and columns of the bias and residual */
                    const struct cnn_gemm_epilogue tep = {bias, res ? res + s * width : NULL,
                                                          pe ? pe->relu : 0};
                    kn->tile(cols, rows, kc, panel, (ptrdiff_t)K * PR,
                             scratch + (ptrdiff_t)s * kc * width, alpha, be, C + at + s * width,
                             ldc, pe ? &tep : NULL);
                }
            }
        }
    }
}

void cnn_gemm_packed_narrow(int M, int N, int K, float alpha, const float *ap, const float *B,
                            int ldb, float beta, float *C, int ldc,
                            const struct cnn_gemm_epilogue *ep, float *scratch)
{
    narrow_with(&narrow_avx2, M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep, scratch, NULL);
}

/* C rows [0, rows) x columns [0, cols) of a wide tile = alpha * acc + beta * C, then ep (NULL:
 * none; its bias and residual start at the tile's row 0 and column 0), in the narrow store's
 * order; acc[r][j] holds row r, columns 8j..8j+7 of the tile's result.  Whole vectors of a
 * row are stored as they are; the columns of a ragged strip past its last whole vector go
 * through the plain epilogue.  Inlined into tile_wide(), it indexes acc only by constants
 * (a variable index made GCC keep the accumulators on the stack in the K loop: 2.7x
 * slower). */
KERNEL INLINE void store_wide(const __m256 acc[WR][3], int rows, int cols, float alpha, float beta,
                              float *c, ptrdiff_t ldc, const struct cnn_gemm_epilogue *ep)
{
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const __m256 zero = _mm256_setzero_ps();
    const int whole = cols / 8;
    UNROLL
    for (int r = 0; r < WR; r++) { /* constant indices into acc: it stays in registers */
        if (r >= rows)
            break;
        float *cr = c + r * ldc;
        const float *res = ep && ep->res ? ep->res + r * ldc : NULL;
        const __m256 bias = ep && ep->bias ? _mm256_set1_ps(ep->bias[r]) : zero;
        UNROLL
        for (int j = 0; j < 3; j++) {
            if (j >= whole)
                break;
            __m256 v = _mm256_mul_ps(acc[r][j], va);
            if (beta != 0.0f) /* beta == 0 never reads C */
                v = _mm256_fmadd_ps(_mm256_loadu_ps(cr + 8 * j), vb, v);
            if (ep) {
                if (ep->bias)
                    v = _mm256_add_ps(v, bias);
                if (res)
                    v = _mm256_add_ps(v, _mm256_loadu_ps(res + 8 * j));
                if (ep->relu) /* max(NaN, 0) and max(-0, 0) are the second operand: +0 */
                    v = _mm256_max_ps(v, zero);
            }
            _mm256_storeu_ps(cr + 8 * j, v);
        }
        if (whole < 3 && 8 * whole < cols) { /* the ragged vector, through a stack row */
            float t[8];
            _mm256_storeu_ps(t, whole == 0 ? acc[r][0] : whole == 1 ? acc[r][1] : acc[r][2]);
            for (int j = 8 * whole; j < cols; j++) {
                const float x = alpha * t[j - 8 * whole] + (beta == 0.0f ? 0.0f : beta * cr[j]);
                cr[j] = ep ? cnn_packed_epilogue(x, ep, r, (size_t)(r * ldc + j)) : x;
            }
        }
    }
}

/* The product over kc of a quarter panel (4 rows of A, broadcast from a at stride PR) and a
 * strip (kc x 24 of B) in 12 accumulators, stored by store_wide() into rows [0, rows) and
 * columns [0, cols) of c. */
KERNEL static void tile_wide(int rows, int cols, int kc, const float *a, const float *strip,
                             float alpha, float beta, float *c, ptrdiff_t ldc,
                             const struct cnn_gemm_epilogue *ep)
{
    __m256 s[WR][3];
    UNROLL
    for (int r = 0; r < WR; r++)
        s[r][0] = s[r][1] = s[r][2] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const float *b = strip + k * WC;
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        const __m256 b2 = _mm256_loadu_ps(b + 16);
        UNROLL
        for (int r = 0; r < WR; r++) {
            const __m256 x = _mm256_broadcast_ss(a + k * PR + r);
            s[r][0] = _mm256_fmadd_ps(x, b0, s[r][0]);
            s[r][1] = _mm256_fmadd_ps(x, b1, s[r][1]);
            s[r][2] = _mm256_fmadd_ps(x, b2, s[r][2]);
        }
    }
    store_wide(s, rows, cols, alpha, beta, c, ldc, ep);
}

static const struct cnn_packed_wide wide_avx2 = {WR, WC, tile_wide, NULL};

/* Columns [n0, n0 + nc) of rows [k_lo, k_hi) of B into L2 (prefetcht1), a line at a time.
 * The wide driver spreads the next column block over the tiles of this one: packing a
 * block otherwise waits on its B (from L3 or memory when N is large: ResNet-50 at batch 8)
 * with nothing to compute in the meantime. */
static inline void prefetch_next_block(const float *B, ptrdiff_t ldb, int k_lo, int k_hi, int n0, int nc)
{
    for (int k = k_lo; k < k_hi; k++) {
        const char *row = (const char *)(B + k * ldb + n0);
        for (int off = 0; off < nc * (int)sizeof(float); off += 64)
            __builtin_prefetch(row + off, 0, 2);
    }
}

/* K in blocks (the first applies beta, the others add, the last applies ep), columns
 * in blocks of WNB repacked into scratch as strips of kw->width; every kw->rows rows of A
 * (part of a panel) run over each block's strips. */
static void wide_with(const struct cnn_packed_wide *kw, int M, int N, int K, float alpha,
                      const float *ap, const float *B, int ldb, float beta, float *C, int ldc,
                      const struct cnn_gemm_epilogue *ep, float *scratch,
                      const struct cnn_gemm_b_packer *by)
{
    const int width = kw->width, tile_rows = kw->rows;
    /* K blocks keep a strip at WKB x WC floats (24 KiB, in L1 while every row tile reads it):
     * WKB deep for AVX2's 24 columns, half that for AVX-512's 48.  ResNet-50 at batch 1 on
     * 2 threads, its 56x56 1x1 convs to 64 channels (K 256): -5-7% against 256 x 48 strips,
     * which spill L1 (48 KiB); the sum of op minima -1.2%; at batch 8 even. */
    const int kblock = WKB * WC / width;
    /* from a matrix, each block's first row of tiles packs it as it reads it */
    const int fused = !by && kw->tile_pack;
    for (int k0 = 0; k0 < K; k0 += kblock) {
        const int kc = K - k0 < kblock ? K - k0 : kblock, last = k0 + kc >= K;
        const float be = k0 ? 1.0f : beta;
        const struct cnn_gemm_epilogue *pe = last ? ep : NULL; /* this block's */
        for (int n0 = 0; n0 < N; n0 += WNB) {
            const int nc = N - n0 < WNB ? N - n0 : WNB;
            if (!fused)
                fill_block(by, scratch, B, ldb, k0, kc, n0, nc, width);
            /* the next block's rows of B, a share before each tile (see prefetch_next_block);
             * a packer reads its own memory */
            const int n1 = n0 + WNB, nc1 = by ? 0 : N - n1 < WNB ? N - n1 : WNB;
            const int tiles = (M + tile_rows - 1) / tile_rows * ((nc + width - 1) / width);
            int t = 0;
            for (int r0 = 0; r0 < M; r0 += tile_rows) {
                const float *a = ap + ((ptrdiff_t)(r0 / PR) * K + k0) * PR + r0 % PR;
                const int rows = M - r0 < tile_rows ? M - r0 : tile_rows;
                const ptrdiff_t at = (ptrdiff_t)r0 * ldc + n0;
                for (int s = 0; s * width < nc; s++) {
                    const int cols = nc - s * width < width ? nc - s * width : width;
                    /* the tile's rows and columns of the bias and residual */
                    const struct cnn_gemm_epilogue tep = {
                        pe && pe->bias ? pe->bias + r0 : NULL,
                        pe && pe->res ? pe->res + at + s * width : NULL, pe ? pe->relu : 0};
                    if (nc1 > 0)
                        prefetch_next_block(B, ldb, k0 + (int)((long)kc * t / tiles),
                                      k0 + (int)((long)kc * (t + 1) / tiles), n1, nc1);
                    t++;
                    float *strip = scratch + (ptrdiff_t)s * kc * width;
                    if (fused && r0 == 0)
                        kw->tile_pack(rows, cols, kc, a, B + (ptrdiff_t)k0 * ldb + n0 + s * width,
                                      ldb, strip, alpha, be, C + at + s * width, ldc,
                                      pe ? &tep : NULL);
                    else
                        kw->tile(rows, cols, kc, a, strip, alpha, be, C + at + s * width, ldc,
                                 pe ? &tep : NULL);
                }
            }
        }
    }
}

void cnn_gemm_packed_wide(int M, int N, int K, float alpha, const float *ap, const float *B,
                          int ldb, float beta, float *C, int ldc,
                          const struct cnn_gemm_epilogue *ep, float *scratch)
{
    wide_with(&wide_avx2, M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep, scratch, NULL);
}

int cnn_gemm_packed_avx512(void)
{
    return cnn_cpu_avx512() && cnn_gemm_packed_vectorised();
}

/* The narrow driver with AVX-512 kernel set kn where the CPU has them, else the plain loops
 * (the tests' entry points). */
static void narrow512_with(const struct cnn_packed_narrow *kn, int M, int N, int K, float alpha,
                           const float *ap, const float *B, int ldb, float beta, float *C,
                           int ldc, const struct cnn_gemm_epilogue *ep, float *scratch)
{
    if (cnn_gemm_packed_avx512())
        narrow_with(kn, M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep, scratch, NULL);
    else
        cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
}

void cnn_gemm_packed_narrow512(int M, int N, int K, float alpha, const float *ap, const float *B,
                               int ldb, float beta, float *C, int ldc,
                               const struct cnn_gemm_epilogue *ep, float *scratch)
{
    narrow512_with(&cnn_packed_narrow_avx512, M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep,
                   scratch);
}

void cnn_gemm_packed_col16_512(int M, int N, int K, float alpha, const float *ap, const float *B,
                               int ldb, float beta, float *C, int ldc,
                               const struct cnn_gemm_epilogue *ep, float *scratch)
{
    narrow512_with(&cnn_packed_col16_avx512, M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep,
                   scratch);
}

void cnn_gemm_packed_wide512(int M, int N, int K, float alpha, const float *ap, const float *B,
                             int ldb, float beta, float *C, int ldc,
                             const struct cnn_gemm_epilogue *ep, float *scratch)
{
    if (cnn_gemm_packed_avx512())
        wide_with(&cnn_packed_wide_avx512, M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep, scratch,
                  NULL);
    else
        cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
}

int cnn_gemm_packed_vectorised(void)
{
    return cnn_gemm_small_vectorised(); /* the same AVX2 + FMA check */
}

/* The driver for the shape, with B a matrix or by. */
static void packed_with(int M, int N, int K, float alpha, const float *ap, const float *B, int ldb,
                        float beta, float *C, int ldc, const struct cnn_gemm_epilogue *ep,
                        float *scratch, const struct cnn_gemm_b_packer *by)
{
    const int avx512 = cnn_cpu_avx512();
    const int wide = N >= CNN_GEMM_PACKED_WIDE_N &&
                     (K <= CNN_GEMM_PACKED_WIDE_MAX_K || (avx512 && N >= CNN_GEMM_PACKED_WIDE512_N));
    if (!cnn_gemm_packed_vectorised())
        packed_portable_with(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep, scratch, by);
    else if (avx512 && N > CNN_GEMM_PACKED_COL16_MIN_N && N <= 16)
        narrow_with(&cnn_packed_col16_avx512, M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep, scratch,
                    by);
    else if (wide)
        wide_with(avx512 ? &cnn_packed_wide_avx512 : &wide_avx2, M, N, K, alpha, ap, B, ldb, beta,
                  C, ldc, ep, scratch, by);
    else
        narrow_with(avx512 ? &cnn_packed_narrow_avx512 : &narrow_avx2, M, N, K, alpha, ap, B, ldb,
                    beta, C, ldc, ep, scratch, by);
}

void cnn_gemm_packed(int M, int N, int K, float alpha, const float *ap, const float *B, int ldb,
                     float beta, float *C, int ldc, const struct cnn_gemm_epilogue *ep,
                     float *scratch)
{
    packed_with(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep, scratch, NULL);
}

void cnn_gemm_packed_by(int M, int N, int K, float alpha, const float *ap,
                        const struct cnn_gemm_b_packer *by, float beta, float *C, int ldc,
                        const struct cnn_gemm_epilogue *ep, float *scratch)
{
    packed_with(M, N, K, alpha, ap, NULL, 0, beta, C, ldc, ep, scratch, by);
}

#else /* not x86-64: the plain C loops only */

int cnn_gemm_packed_vectorised(void)
{
    return 0;
}

int cnn_gemm_packed_avx512(void)
{
    return 0;
}

void cnn_gemm_packed_narrow512(int M, int N, int K, float alpha, const float *ap, const float *B,
                               int ldb, float beta, float *C, int ldc,
                               const struct cnn_gemm_epilogue *ep, float *scratch)
{
    (void)scratch;
    cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
}

void cnn_gemm_packed_col16_512(int M, int N, int K, float alpha, const float *ap, const float *B,
                               int ldb, float beta, float *C, int ldc,
                               const struct cnn_gemm_epilogue *ep, float *scratch)
{
    (void)scratch;
    cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
}

void cnn_gemm_packed_wide512(int M, int N, int K, float alpha, const float *ap, const float *B,
                             int ldb, float beta, float *C, int ldc,
                             const struct cnn_gemm_epilogue *ep, float *scratch)
{
    (void)scratch;
    cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
}

void cnn_gemm_packed_narrow(int M, int N, int K, float alpha, const float *ap, const float *B,
                            int ldb, float beta, float *C, int ldc,
                            const struct cnn_gemm_epilogue *ep, float *scratch)
{
    (void)scratch;
    cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
}

void cnn_gemm_packed_wide(int M, int N, int K, float alpha, const float *ap, const float *B,
                          int ldb, float beta, float *C, int ldc,
                          const struct cnn_gemm_epilogue *ep, float *scratch)
{
    (void)scratch;
    cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
}

void cnn_gemm_packed(int M, int N, int K, float alpha, const float *ap, const float *B, int ldb,
                     float beta, float *C, int ldc, const struct cnn_gemm_epilogue *ep,
                     float *scratch)
{
    (void)scratch, (void)pack_strips;
    cnn_gemm_packed_portable(M, N, K, alpha, ap, B, ldb, beta, C, ldc, ep);
}

void cnn_gemm_packed_by(int M, int N, int K, float alpha, const float *ap,
                        const struct cnn_gemm_b_packer *by, float beta, float *C, int ldc,
                        const struct cnn_gemm_epilogue *ep, float *scratch)
{
    packed_portable_with(M, N, K, alpha, ap, NULL, 0, beta, C, ldc, ep, scratch, by);
}

#endif
