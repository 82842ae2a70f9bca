/* Small SGEMMs without BLAS (see gemm_small.h): a 6x16 AVX2+FMA register tile that streams
 * rows of op(B) (packed on the stack when op(B) is transposed or its last panel is ragged),
 * a dot-product kernel along K for products 1-4 columns wide (a dense layer at batch 1-4),
 * and plain C loops for CPUs without AVX2+FMA. */
#include "gemm_small.h"
#include "avx512.h"
#include "gemm_small_internal.h"

#include <stddef.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* A strided matrix: element (r, c) at p[r * rs + c * cs]. */
struct view {
    const float *p;
    ptrdiff_t rs, cs;
};

/* op(X) of a row-major X with leading dimension ld. */
static struct view op_view(int trans, const float *p, int ld)
{
    return trans ? (struct view){p, 1, ld} : (struct view){p, ld, 1};
}

/* ---- plain C ------------------------------------------------------------------------- */

/* Plain C, written so that the compiler vectorises it for any target at -O2: inner loops
 * have constant trip counts over zero-padded stack panels. */
enum { PK = 128, PW = 32 }; /* portable panel: PK rows of PW columns of op(B), 16 KiB */

/* C[i0.., j0..j0+w) for all M rows over the PK-row blocks of K, pw (constant) columns at a
 * time; each row of C accumulates in acc. */
#define INLINE static inline __attribute__((always_inline))

INLINE void portable_cols(int pw, int M, int K, int j0, int w, float alpha, struct view a,
                          struct view b, float beta, float *C, ptrdiff_t ldc, float *bp)
{
    for (int k0 = 0; k0 < K; k0 += PK) {
        const int kc = K - k0 < PK ? K - k0 : PK;
        const float be = k0 ? 1.0f : beta;
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < pw; j++)
                bp[k * pw + j] = j < w ? b.p[(k0 + k) * b.rs + (j0 + j) * b.cs] : 0.0f;
        for (int i = 0; i < M; i++) {
            float acc[PW] = {0};
            for (int k = 0; k < kc; k++) {
                const float av = a.p[i * a.rs + (k0 + k) * a.cs];
                for (int j = 0; j < pw; j++)
                    acc[j] += av * bp[k * pw + j];
            }
            /* beta == 0 overwrites C without reading it (NaN-safe, as BLAS) */
            float *c = C + i * ldc + j0;
            for (int j = 0; j < w; j++)
                c[j] = alpha * acc[j] + (be == 0.0f ? 0.0f : be * c[j]);
        }
    }
}

/* Products 1-4 columns wide with contiguous op(A) rows: dot products in 8 partial sums. */
static void portable_dots(int M, int N, int K, float alpha, struct view a, struct view b,
                          float beta, float *C, ptrdiff_t ldc, float *bt)
{
    for (int j = 0; j < N; j++) {
        for (int k0 = 0; k0 < K; k0 += PK * PW) {
            const int kc = K - k0 < PK * PW ? K - k0 : PK * PW, k8 = kc & ~7;
            const float be = k0 ? 1.0f : beta;
            for (int k = 0; k < kc; k++)
                bt[k] = b.p[(k0 + k) * b.rs + j * b.cs];
            for (int i = 0; i < M; i++) {
                const float *ai = a.p + i * a.rs + k0;
                float s[8] = {0}, sum = 0.0f;
                for (int k = 0; k < k8; k += 8)
                    for (int l = 0; l < 8; l++)
                        s[l] += ai[k + l] * bt[k + l];
                for (int k = k8; k < kc; k++)
                    sum += ai[k] * bt[k];
                for (int l = 0; l < 8; l++)
                    sum += s[l];
                float *c = C + i * ldc + j;
                *c = alpha * sum + (be == 0.0f ? 0.0f : be * *c);
            }
        }
    }
}

static void gemm_portable(int M, int N, int K, float alpha, struct view a, struct view b,
                          float beta, float *C, ptrdiff_t ldc)
{
    float bp[PK * PW];
    if (N <= 4 && a.cs == 1) {
        portable_dots(M, N, K, alpha, a, b, beta, C, ldc, bp);
        return;
    }
    for (int j0 = 0; j0 < N; j0 += PW) {
        const int w = N - j0 < PW ? N - j0 : PW;
        if (w <= 8)
            portable_cols(8, M, K, j0, w, alpha, a, b, beta, C, ldc, bp);
        else
            portable_cols(PW, M, K, j0, w, alpha, a, b, beta, C, ldc, bp);
    }
}

void cnn_gemm_small_portable(int trans_a, int trans_b, int M, int N, int K, float alpha,
                             const float *A, int lda, const float *B, int ldb, float beta, float *C,
                             int ldc)
{
    gemm_portable(M, N, K, alpha, op_view(trans_a, A, lda), op_view(trans_b, B, ldb), beta, C, ldc);
}

#if defined(__x86_64__)
/* ---- AVX2 + FMA ---------------------------------------------------------------------- */

#define AVX2 __attribute__((target("avx2,fma")))
/* The register kernels: AVX2 and not instrumented by sanitizers, which would make them
 * 12-18x slower (accumulators and addresses checked at every step) and the sanitizer test
 * runs time out.  Their reads stay inside the rows and panels the instrumented drivers
 * (gemm_tiles, gemm_dots, pack_panel) compute and pack, and every store is masked to the
 * columns that exist; the gemm_small suite checks results and padding around C. */
#define KERNEL __attribute__((target("avx2,fma"), no_sanitize("address", "undefined", "thread")))
/* Loops over tile rows and columns run a constant count once inlined: unroll them fully so
 * the accumulators stay in registers (-O2 alone keeps them in memory). */
#define UNROLL _Pragma("GCC unroll 8")

enum {
    MR = 6,   /* rows of the register tile */
    NR = 16,  /* columns of the register tile: two vectors of 8 */
    KC = 256, /* K block of the tile path: a packed panel is KC * NR floats = 16 KiB */
    KD = 1024 /* K block of the dot path: up to 4 packed columns of KD floats = 16 KiB */
};

/* All-ones in the first n lanes (n <= 0: none, n >= 8: all). */
KERNEL INLINE __m256i lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

KERNEL INLINE float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* C (mr x 8*nv, row stride ldc; lane masks m0, m1 say which columns exist) = alpha * the
 * product over kc of op(A) rows at a (row stride ars, k stride acs) and b (kc rows of at least
 * 8*nv floats, row stride brs) + beta * C.  mr and nv are constants after inlining, so acc
 * lives in registers: 12 accumulators + 2 B vectors + 1 broadcast at 6 x 16.  full: every
 * lane exists, so C is read and written with plain loads and stores (masked ones cost
 * several times more on AMD Zen). */
KERNEL INLINE void tile(int mr, int nv, int kc, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                        const float *b, ptrdiff_t brs, float alpha, float beta, float *c,
                        ptrdiff_t ldc, __m256i m0, __m256i m1, int full)
{
    __m256 acc[MR][2];
    const float *ar[MR];
    UNROLL
    for (int r = 0; r < mr; r++) {
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        ar[r] = a + r * ars;
    }
#pragma GCC unroll 4 /* the loop's own count and pointer steps, once per 4 k */
    for (int k = 0; k < kc; k++) {
        const float *bk = b + k * brs;
        const __m256 b0 = _mm256_loadu_ps(bk);
        const __m256 b1 = nv > 1 ? _mm256_loadu_ps(bk + 8) : b0;
        const ptrdiff_t ko = k * acs;
        UNROLL
        for (int r = 0; r < mr; r++) {
            const __m256 av = _mm256_broadcast_ss(ar[r] + ko);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            if (nv > 1)
                acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    UNROLL
    for (int r = 0; r < mr; r++) {
        UNROLL
        for (int v = 0; v < nv; v++) {
            float *cv = c + r * ldc + 8 * v;
            const __m256i m = v ? m1 : m0;
            __m256 x = _mm256_mul_ps(acc[r][v], va);
            if (beta != 0.0f) /* beta == 0 never reads C */
                x = _mm256_fmadd_ps(full ? _mm256_loadu_ps(cv) : _mm256_maskload_ps(cv, m), vb, x);
            if (full)
                _mm256_storeu_ps(cv, x);
            else
                _mm256_maskstore_ps(cv, m, x);
        }
    }
}

#define TILE_CASE(r, v, f)                                                                         \
    case (f)*12 + (r)*2 + (v)-1:                                                                   \
        tile(r, v, kc, a, ars, acs, b, brs, alpha, beta, c, ldc, m0, m1, f);                       \
        break;

/* tile() for w (1..NR) columns, mr (1..MR), the vector count and whether every lane exists
 * turned into constants. */
KERNEL static void tile_any(int mr, int w, int kc, const float *a, ptrdiff_t ars, ptrdiff_t acs,
                            const float *b, ptrdiff_t brs, float alpha, float beta, float *c,
                            ptrdiff_t ldc)
{
    const int nv = w > 8 ? 2 : 1, full = w == 8 * nv;
    const __m256i m0 = lanes(w), m1 = lanes(w - 8);
    switch (full * 12 + mr * 2 + nv - 1) {
        /* clang-format off */
        TILE_CASE(1, 1, 0) TILE_CASE(1, 2, 0) TILE_CASE(2, 1, 0) TILE_CASE(2, 2, 0)
        TILE_CASE(3, 1, 0) TILE_CASE(3, 2, 0) TILE_CASE(4, 1, 0) TILE_CASE(4, 2, 0)
        TILE_CASE(5, 1, 0) TILE_CASE(5, 2, 0) TILE_CASE(6, 1, 0) TILE_CASE(6, 2, 0)
        TILE_CASE(1, 1, 1) TILE_CASE(1, 2, 1) TILE_CASE(2, 1, 1) TILE_CASE(2, 2, 1)
        TILE_CASE(3, 1, 1) TILE_CASE(3, 2, 1) TILE_CASE(4, 1, 1) TILE_CASE(4, 2, 1)
        TILE_CASE(5, 1, 1) TILE_CASE(5, 2, 1) TILE_CASE(6, 1, 1) TILE_CASE(6, 2, 1)
        /* clang-format on */
    }
}

/* dst (kc x NR, row stride NR) = the w columns of op(B) at src, zero-padded to NR. */
static void pack_panel(float *dst, const float *src, ptrdiff_t rs, ptrdiff_t cs, int kc, int w)
{
    for (int k = 0; k < kc; k++)
        for (int j = w; j < NR; j++)
            dst[k * NR + j] = 0.0f;
    if (cs == 1) {
        for (int k = 0; k < kc; k++)
            for (int j = 0; j < w; j++)
                dst[k * NR + j] = src[k * rs + j];
    } else { /* op(B) transposed: each column is contiguous along k */
        for (int j = 0; j < w; j++)
            for (int k = 0; k < kc; k++)
                dst[k * NR + j] = src[k * rs + j * cs];
    }
}

/* The general path: MR x NR tiles of C, K in blocks of KC (the first applies beta, the
 * others add).  When op(B) rows are contiguous, full panels are read in place and only a
 * ragged last panel is packed, once per K block; the MR rows of op(A) a tile row reads
 * (MR * KC floats) then stay in L1 across every panel of the row, so A is read once per K
 * block however wide N is.  A transposed op(B) packs each panel, panel by panel. */
AVX2 static void gemm_tiles(int M, int N, int K, float alpha, struct view a, struct view b,
                            float beta, float *C, ptrdiff_t ldc)
{
    float bp[KC * NR] __attribute__((aligned(32)));
    for (int k0 = 0; k0 < K; k0 += KC) {
        const int kc = K - k0 < KC ? K - k0 : KC;
        const float be = k0 ? 1.0f : beta;
        if (b.cs == 1) {
            const int full = N - N % NR;
            if (full < N)
                pack_panel(bp, b.p + k0 * b.rs + full, b.rs, 1, kc, N - full);
            for (int i0 = 0; i0 < M; i0 += MR) {
                const int mr = M - i0 < MR ? M - i0 : MR;
                const float *ai = a.p + i0 * a.rs + k0 * a.cs;
                for (int j0 = 0; j0 < N; j0 += NR) {
                    const int in_place = j0 < full;
                    tile_any(mr, in_place ? NR : N - full, kc, ai, a.rs, a.cs,
                             in_place ? b.p + k0 * b.rs + j0 : bp, in_place ? b.rs : NR, alpha, be,
                             C + i0 * ldc + j0, ldc);
                }
            }
            continue;
        }
        for (int j0 = 0; j0 < N; j0 += NR) {
            const int w = N - j0 < NR ? N - j0 : NR;
            pack_panel(bp, b.p + k0 * b.rs + j0 * b.cs, b.rs, b.cs, kc, w);
            for (int i0 = 0; i0 < M; i0 += MR) {
                const int mr = M - i0 < MR ? M - i0 : MR;
                tile_any(mr, w, kc, a.p + i0 * a.rs + k0 * a.cs, a.rs, a.cs, bp, NR, alpha, be,
                         C + i0 * ldc + j0, ldc);
            }
        }
    }
}

/* C (nr rows x n columns) = alpha * dot products over kc of nr contiguous op(A) rows (row
 * stride lda) with n packed op(B) columns at bt (stride KD, zero beyond kc) + beta * C. */
KERNEL INLINE void dots(int nr, int n, int kc, const float *a, ptrdiff_t lda, const float *bt,
                        float alpha, float beta, float *c, ptrdiff_t ldc)
{
    __m256 acc[8][4], bv[4];
    UNROLL
    for (int r = 0; r < nr; r++) {
        UNROLL
        for (int j = 0; j < n; j++)
            acc[r][j] = _mm256_setzero_ps();
    }
    const int k8 = kc & ~7;
    for (int k = 0; k < k8; k += 8) {
        UNROLL
        for (int j = 0; j < n; j++)
            bv[j] = _mm256_load_ps(bt + j * KD + k);
        UNROLL
        for (int r = 0; r < nr; r++) {
            const __m256 av = _mm256_loadu_ps(a + r * lda + k);
            UNROLL
            for (int j = 0; j < n; j++)
                acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
        }
    }
    if (k8 < kc) { /* A is not padded: masked loads; bt is zero there */
        const __m256i m = lanes(kc - k8);
        UNROLL
        for (int j = 0; j < n; j++)
            bv[j] = _mm256_load_ps(bt + j * KD + k8);
        UNROLL
        for (int r = 0; r < nr; r++) {
            const __m256 av = _mm256_maskload_ps(a + r * lda + k8, m);
            UNROLL
            for (int j = 0; j < n; j++)
                acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
        }
    }
    UNROLL
    for (int r = 0; r < nr; r++) {
        UNROLL
        for (int j = 0; j < n; j++) {
            float *cj = c + r * ldc + j;
            *cj = alpha * hsum(acc[r][j]) + (beta == 0.0f ? 0.0f : beta * *cj);
        }
    }
}

#define DOTS_CASE(r, j)                                                                            \
    case ((r)-1) * 4 + (j)-1:                                                                      \
        dots(r, j, kc, a, lda, bt, alpha, beta, c, ldc);                                           \
        break;

/* dots() with nr (1..8) and n (1..4), nr * n <= 8, turned into constants. */
KERNEL static void dots_any(int nr, int n, int kc, const float *a, ptrdiff_t lda, const float *bt,
                            float alpha, float beta, float *c, ptrdiff_t ldc)
{
    switch ((nr - 1) * 4 + n - 1) {
        /* clang-format off */
        DOTS_CASE(1, 1) DOTS_CASE(2, 1) DOTS_CASE(3, 1) DOTS_CASE(4, 1) DOTS_CASE(5, 1)
        DOTS_CASE(6, 1) DOTS_CASE(7, 1) DOTS_CASE(8, 1) DOTS_CASE(1, 2) DOTS_CASE(2, 2)
        DOTS_CASE(3, 2) DOTS_CASE(4, 2) DOTS_CASE(1, 3) DOTS_CASE(2, 3) DOTS_CASE(1, 4)
        DOTS_CASE(2, 4)
        /* clang-format on */
    }
}

/* Products 1-4 columns wide with contiguous op(A) rows: dot products along K, op(B)'s
 * columns packed (K blocks of KD), 8 / N rows of C at a time. */
AVX2 static void gemm_dots(int M, int N, int K, float alpha, struct view a, struct view b,
                           float beta, float *C, ptrdiff_t ldc)
{
    float bt[4 * KD] __attribute__((aligned(32)));
    const int rows = N == 1 ? 8 : N == 2 ? 4 : 2;
    for (int k0 = 0; k0 < K; k0 += KD) {
        const int kc = K - k0 < KD ? K - k0 : KD, kp = (kc + 7) & ~7;
        const float be = k0 ? 1.0f : beta;
        for (int j = 0; j < N; j++)
            for (int k = 0; k < kp; k++)
                bt[j * KD + k] = k < kc ? b.p[(k0 + k) * b.rs + j * b.cs] : 0.0f;
        for (int i0 = 0; i0 < M; i0 += rows) {
            const int nr = M - i0 < rows ? M - i0 : rows;
            dots_any(nr, N, kc, a.p + i0 * a.rs + k0, a.rs, bt, alpha, be, C + i0 * ldc, ldc);
        }
    }
}

int cnn_gemm_small_vectorised(void)
{
    /* libgcc's feature bits include the OS check that YMM state is saved */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* The AVX2 kernels, or with avx512 the AVX-512 tiles where op(B)'s rows are contiguous. */
static void gemm_best(int avx512, int trans_a, int trans_b, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C,
                      int ldc)
{
    const struct view a = op_view(trans_a, A, lda), b = op_view(trans_b, B, ldb);
    if (!cnn_gemm_small_vectorised())
        gemm_portable(M, N, K, alpha, a, b, beta, C, ldc);
    else if (N <= 4 && !trans_a)
        gemm_dots(M, N, K, alpha, a, b, beta, C, ldc);
    else if (avx512 && !trans_b)
        cnn_gemm_small_tiles512(M, N, K, alpha, a.p, a.rs, a.cs, b.p, b.rs, beta, C, ldc);
    else
        gemm_tiles(M, N, K, alpha, a, b, beta, C, ldc);
}

void cnn_gemm_small(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_best(cnn_cpu_avx512(), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void cnn_gemm_small_avx2(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_best(0, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#else /* not x86-64: the plain C loops only */

int cnn_gemm_small_vectorised(void)
{
    return 0;
}

void cnn_gemm_small(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                    int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    cnn_gemm_small_portable(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void cnn_gemm_small_avx2(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    cnn_gemm_small_portable(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#endif
