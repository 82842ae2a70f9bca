/* The packed GEMM's AVX-512 kernels (gemm_packed_internal.h), which the drivers in
 * gemm_packed.c run on CPUs with AVX-512: twice the AVX2 kernels' lanes, and 32 registers.
 * Narrow: a panel of A (16 rows) is one vector, so a tile takes up to three panels (48 rows)
 * x 8 columns of B broadcast, 24 accumulators; its result is transposed in 8 x 8 blocks and
 * stored into rows of C.  On one core of an AVX-512 Xeon (model 167), against tiles of 2 x
 * 12 and 4 x 6 panels x columns: ResNet-18 batch 1 (sum of op minima) 19.31 ms at 2 x 12,
 * 18.52 here, 19.21 at 4 x 6; ResNet-50 51.42, 50.06, 50.92.  Wide: 8 rows of A (half a
 * panel) broadcast x 48 columns of B (three vectors), 24 accumulators, stored as rows of C.
 * Col16: one panel x 16 columns (one vector), for 9-16 columns.  Ragged columns go through
 * masked loads and stores. */
#include "avx512.h"
#include "gemm_packed_internal.h"

#if defined(__x86_64__)

enum {
    PR = CNN_PACKED_PR,
    NP = 3,  /* panels per narrow tile */
    PC = 8,  /* columns per narrow strip */
    WR = 8,  /* rows per wide tile */
    WC = 48, /* columns per wide strip */
    /* The narrow tile asks for the panel rows this many k steps ahead (see gemm_packed.c). */
    PREFETCH_K = 32,
    CW = 16 /* columns per col16 strip: one vector */
};

/* They read the panels and strips the driver hands them and write only the rows and
 * columns it names. */
#define KERNEL CNN_AVX512_KERNEL
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

/* acc[(q * PC + j) * PR...] (16 floats: column j, rows of panel q) = the product over kc of
 * np panels (a vector per k each) and a strip (kc x PC, broadcast).  np and cols are
 * constants after inlining, so the accumulators stay in registers. */
KERNEL INLINE void narrow_product(int np, int cols, int kc, const float *panel, ptrdiff_t stride,
                                  const float *strip, float *acc)
{
    __m512 s[NP][PC];
    UNROLL
    for (int q = 0; q < np; q++) {
        UNROLL
        for (int j = 0; j < cols; j++)
            s[q][j] = _mm512_setzero_ps();
    }
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        __m512 a[NP];
        UNROLL
        for (int q = 0; q < np; q++) {
            __builtin_prefetch(panel + q * stride + (k + PREFETCH_K) * PR);
            a[q] = _mm512_loadu_ps(panel + q * stride + k * PR);
        }
        UNROLL
        for (int j = 0; j < cols; j++) {
            const __m512 b = _mm512_set1_ps(strip[k * PC + j]);
            UNROLL
            for (int q = 0; q < np; q++)
                s[q][j] = _mm512_fmadd_ps(b, a[q], s[q][j]);
        }
    }
    UNROLL
    for (int q = 0; q < np; q++) {
        UNROLL
        for (int j = 0; j < cols; j++)
            _mm512_storeu_ps(acc + (q * PC + j) * PR, s[q][j]);
    }
}

/* Transposes a panel's 8 column vectors (16 rows each) in 24 shuffles: afterwards v[m] holds
 * row m in its low 8 lanes and row m + 4 in its high 8 (m < 4), v[4 + m] rows 8 + m and
 * 12 + m.  Unpacking pairs columns, the 4-wide shuffles give each 128-bit lane 4 columns of
 * one row, and a two-source permute joins a row's two halves. */
KERNEL INLINE void transpose16x8(__m512 v[8])
{
    __m512 t[8], u[8];
    UNROLL
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    /* lane L of u[m]: row 4 L + m, columns 0-3; of u[4 + m]: columns 4-7 */
    UNROLL
    for (int h = 0; h < 2; h++) {
        u[4 * h] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
        u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0xee);
        u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
        u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xee);
    }
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi =
        _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    UNROLL
    for (int m = 0; m < 4; m++) {
        v[m] = _mm512_permutex2var_ps(u[m], lo, u[4 + m]);
        v[4 + m] = _mm512_permutex2var_ps(u[m], hi, u[4 + m]);
    }
}

/* The 16 rows of a transposed panel (transpose16x8()) from row r0 on, as far as rows, into C
 * under the column mask m, with the terms the constant mode names (bit 0 beta * C, 1 bias,
 * 2 residual, 3 relu): no test per row but the row count's. */
KERNEL INLINE void narrow_store_rows(int mode, const __m512 v[8], int r0, int rows, __mmask8 m,
                                     float beta, float *c, ptrdiff_t ldc,
                                     const struct cnn_gemm_epilogue *ep)
{
    const __m256 vb = _mm256_set1_ps(beta), zero = _mm256_setzero_ps();
    UNROLL
    for (int o = 0; o < PC; o++) {
        UNROLL
        for (int h = 0; h < 2; h++) {
            const int row = r0 + (o < 4 ? o : o + 4) + 4 * h;
            if (row >= rows)
                continue;
            float *ci = c + row * ldc;
            __m256 x = h ? _mm512_extractf32x8_ps(v[o], 1) : _mm512_castps512_ps256(v[o]);
            if (mode & 1) /* beta == 0 never reads C */
                x = _mm256_fmadd_ps(_mm256_maskz_loadu_ps(m, ci), vb, x);
            if (mode & 2)
                x = _mm256_add_ps(x, _mm256_set1_ps(ep->bias[row]));
            if (mode & 4)
                x = _mm256_add_ps(x, _mm256_maskz_loadu_ps(m, ep->res + row * ldc));
            if (mode & 8) /* max(NaN, 0) and max(-0, 0) are the second operand: +0 */
                x = _mm256_max_ps(x, zero);
            _mm256_mask_storeu_ps(ci, m, x);
        }
    }
}

#define NARROW_STORE_CASE(mode)                                                                    \
    case mode:                                                                                     \
        narrow_store_rows(mode, v, r0, rows, m, beta, c, ldc, ep);                                 \
        break;

/* C rows [0, rows) x columns [0, cols) = alpha * acc^T + beta * C, then ep: each panel's 16 x
 * 8 block is transposed in registers into rows of C, stored under a mask of the columns.
 * (Through 8 x 8 blocks of 8-lane vectors, the store took 13% of a 1024 x 196 x 256 GEMM.) */
KERNEL static void narrow_store(const float *acc, int rows, int cols, float alpha, float beta,
                                float *c, ptrdiff_t ldc, const struct cnn_gemm_epilogue *ep)
{
    const __mmask8 m = (__mmask8)((1u << cols) - 1u);
    const int mode =
        (beta != 0.0f) | (ep && ep->bias) << 1 | (ep && ep->res) << 2 | (ep && ep->relu) << 3;
    for (int r0 = 0; r0 < rows; r0 += PR) {
        __m512 v[PC];
        UNROLL
        for (int j = 0; j < PC; j++) {
            v[j] = j < cols ? _mm512_load_ps(acc + ((r0 / PR) * PC + j) * PR) : _mm512_setzero_ps();
            if (alpha != 1.0f)
                v[j] = _mm512_mul_ps(v[j], _mm512_set1_ps(alpha));
        }
        transpose16x8(v);
        switch (mode) {
            /* clang-format off */
            NARROW_STORE_CASE(0) NARROW_STORE_CASE(1) NARROW_STORE_CASE(2) NARROW_STORE_CASE(3)
            NARROW_STORE_CASE(4) NARROW_STORE_CASE(5) NARROW_STORE_CASE(6) NARROW_STORE_CASE(7)
            NARROW_STORE_CASE(8) NARROW_STORE_CASE(9) NARROW_STORE_CASE(10) NARROW_STORE_CASE(11)
            NARROW_STORE_CASE(12) NARROW_STORE_CASE(13) NARROW_STORE_CASE(14) NARROW_STORE_CASE(15)
            /* clang-format on */
        }
    }
}

#define NARROW_NP(n, q)                                                                            \
    case q:                                                                                        \
        narrow_product(q, n, kc, panel, panel_stride, strip, acc);                                 \
        break;
#define NARROW_CASE(n)                                                                             \
    case n:                                                                                        \
        switch ((rows + PR - 1) / PR) {                                                            \
            NARROW_NP(n, 1) NARROW_NP(n, 2) NARROW_NP(n, 3)                                        \
        }                                                                                          \
        break;

KERNEL static void narrow_tile(int cols, int rows, int kc, const float *panel,
                               ptrdiff_t panel_stride, const float *strip, float alpha, float beta,
                               float *c, ptrdiff_t ldc, const struct cnn_gemm_epilogue *ep)
{
    float acc[NP * PC * PR] __attribute__((aligned(64)));
    switch (cols) {
        /* clang-format off */
        NARROW_CASE(1) NARROW_CASE(2) NARROW_CASE(3) NARROW_CASE(4)
        NARROW_CASE(5) NARROW_CASE(6) NARROW_CASE(7) NARROW_CASE(8)
        /* clang-format on */
    }
    narrow_store(acc, rows, cols, alpha, beta, c, ldc, ep);
}

const struct cnn_packed_narrow cnn_packed_narrow_avx512 = {NP, PC, narrow_tile};

/* Columns m of one row of C at cr = alpha * acc + beta * C (beta 0 never reads C), then
 * ep's bias of row `row` and residual at offset `at` from its start, then ReLU: a vector of
 * a col16 or wide tile's row. */
KERNEL INLINE void store_vector(__m512 acc, __mmask16 m, float *cr, float alpha, float beta,
                                const struct cnn_gemm_epilogue *ep, int row, ptrdiff_t at)
{
    __m512 v = _mm512_mul_ps(acc, _mm512_set1_ps(alpha));
    if (beta != 0.0f)
        v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, cr), _mm512_set1_ps(beta), v);
    if (ep) {
        if (ep->bias)
            v = _mm512_add_ps(v, _mm512_set1_ps(ep->bias[row]));
        if (ep->res)
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, ep->res + at));
        if (ep->relu) /* max(NaN, 0) and max(-0, 0) are the second operand: +0 */
            v = _mm512_max_ps(v, _mm512_setzero_ps());
    }
    _mm512_mask_storeu_ps(cr, m, v);
}

/* Col16: one panel (16 rows of A, broadcast) x a strip of up to 16 columns (one vector,
 * the columns in the lanes), 16 accumulators, stored as rows of C (no transpose) as alpha *
 * product + beta * C, then ep.  For 9-16 columns, where narrow tiles (8 columns) take the
 * panel twice; this reads each line of A once, in order, asking PREFETCH_K steps ahead (of
 * 16, 32, 64 and 128, the one that beat narrow tiles in 6 of 7 comparisons of the ops
 * below; 128 won one ResNet-18 2-thread run and lost the others).
 * The 7x7 Winograd convs at batch 1 (16 tiles), sum of op minima, alternated runs: ResNet-18
 * on 2 threads 1.91 -> 1.73 ms (5 runs; per run -5% to +6%), 1 thread 4.25 -> 3.63;
 * ResNet-50 `.onnx` 2 threads 1.55 -> 1.33, 1 thread 2.94 -> 2.65. */
KERNEL static void col16_tile(int cols, int rows, int kc, const float *panel,
                              ptrdiff_t panel_stride, const float *strip, float alpha, float beta,
                              float *c, ptrdiff_t ldc, const struct cnn_gemm_epilogue *ep)
{
    (void)panel_stride; /* one panel */
    __m512 s[PR];
    UNROLL
    for (int r = 0; r < PR; r++)
        s[r] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        __builtin_prefetch(panel + (k + PREFETCH_K) * PR);
        const __m512 b = _mm512_loadu_ps(strip + k * CW);
        UNROLL
        for (int r = 0; r < PR; r++)
            s[r] = _mm512_fmadd_ps(_mm512_set1_ps(panel[k * PR + r]), b, s[r]);
    }
    const __mmask16 m = cnn_lanes16(cols);
    UNROLL
    for (int r = 0; r < PR; r++) {
        if (r >= rows)
            break;
        store_vector(s[r], m, c + r * ldc, alpha, beta, ep, r, r * ldc);
    }
}

const struct cnn_packed_narrow cnn_packed_col16_avx512 = {1, CW, col16_tile};

/* The product over kc of 8 rows of A (broadcast from a at stride PR) and kc rows of 48
 * columns of B in 24 accumulators, stored into rows [0, rows) and columns [0, cols) of c as
 * alpha * product + beta * C, then ep.  The B rows come from a packed strip (b, stride WC),
 * or, when pack (a constant after inlining), from the matrix itself (b, stride ldb: columns
 * past cols read as zeros), each also written to the strip as the packer would.  The store
 * indexes the accumulators only by constants, so they stay in registers (see gemm_packed.c's
 * store_wide). */
KERNEL INLINE void wide_body(int pack, int rows, int cols, int kc, const float *a, const float *b,
                             ptrdiff_t ldb, float *strip, float alpha, float beta, float *c,
                             ptrdiff_t ldc, const struct cnn_gemm_epilogue *ep)
{
    const __mmask16 m0 = cnn_lanes16(cols), m1 = cnn_lanes16(cols - 16);
    const __mmask16 m2 = cnn_lanes16(cols - 32);
    __m512 s[WR][3];
    UNROLL
    for (int r = 0; r < WR; r++)
        s[r][0] = s[r][1] = s[r][2] = _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        __m512 b0, b1, b2;
        if (pack) {
            const float *bk = b + k * ldb;
            b0 = _mm512_maskz_loadu_ps(m0, bk);
            b1 = _mm512_maskz_loadu_ps(m1, bk + 16);
            b2 = _mm512_maskz_loadu_ps(m2, bk + 32);
            _mm512_storeu_ps(strip + k * WC, b0);
            _mm512_storeu_ps(strip + k * WC + 16, b1);
            _mm512_storeu_ps(strip + k * WC + 32, b2);
        } else {
            const float *bk = b + k * WC;
            b0 = _mm512_loadu_ps(bk);
            b1 = _mm512_loadu_ps(bk + 16);
            b2 = _mm512_loadu_ps(bk + 32);
        }
        UNROLL
        for (int r = 0; r < WR; r++) {
            const __m512 x = _mm512_set1_ps(a[k * PR + r]);
            s[r][0] = _mm512_fmadd_ps(x, b0, s[r][0]);
            s[r][1] = _mm512_fmadd_ps(x, b1, s[r][1]);
            s[r][2] = _mm512_fmadd_ps(x, b2, s[r][2]);
        }
    }
    UNROLL
    for (int r = 0; r < WR; r++) {
        if (r >= rows)
            break;
        UNROLL
        for (int j = 0; j < 3; j++) {
            if (16 * j >= cols)
                break;
            const __mmask16 m = j == 0 ? m0 : j == 1 ? m1 : m2; /* columns [16 j, cols) */
            store_vector(s[r][j], m, c + r * ldc + 16 * j, alpha, beta, ep, r, r * ldc + 16 * j);
        }
    }
}

KERNEL static void wide_tile(int rows, int cols, int kc, const float *a, const float *strip,
                             float alpha, float beta, float *c, ptrdiff_t ldc,
                             const struct cnn_gemm_epilogue *ep)
{
    wide_body(0, rows, cols, kc, a, strip, 0, NULL, alpha, beta, c, ldc, ep);
}

KERNEL static void wide_tile_pack(int rows, int cols, int kc, const float *a, const float *b,
                                  ptrdiff_t ldb, float *strip, float alpha, float beta, float *c,
                                  ptrdiff_t ldc, const struct cnn_gemm_epilogue *ep)
{
    wide_body(1, rows, cols, kc, a, b, ldb, strip, alpha, beta, c, ldc, ep);
}

const struct cnn_packed_wide cnn_packed_wide_avx512 = {WR, WC, wide_tile, wide_tile_pack};

#endif
