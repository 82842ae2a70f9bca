/* cblas_sgemm as the test binaries see it: the executable's definition wins over OpenBLAS's
 * at link time, so every GEMM libcnn hands to BLAS passes here; it is classified with the
 * rules OpenBLAS 0.3.21 applies (read from its source, cited below) and forwarded to the
 * library's cblas_sgemm, looked up with dlsym(RTLD_NEXT) before main. */
#define _GNU_SOURCE
#include "blas_spy.h"

#include <cblas.h>
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* OpenBLAS 0.3.21 kernel/x86_64/sgemm_small_kernel_permit_skylakex.c, the SGEMM permit of
 * the SkylakeX kernel set (KERNEL.COOPERLAKE and KERNEL.SAPPHIRERAPIDS include it; every
 * other x86-64 core uses kernel/generic/gemm_small_matrix_permit.c, which refuses all):
 * at most 100^3 multiply-adds; transposed A with plain B also needs m * n <= 1200 and
 * k >= 32; both transposed need k >= 4; alpha and beta play no part. */
int blas_spy_small_permit(int transa, int transb, long m, long n, long k)
{
    if ((double)m * (double)n * (double)k > 100.0 * 100.0 * 100.0)
        return 0;
    if (transa && !transb)
        return m * n <= 1200 && k >= 32;
    if (transa && transb)
        return k >= 4;
    return 1;
}

/* kernel/x86_64/sgemm_small_kernel_nn_skylakex.c (both the beta == 0 and the general
 * build): rows of C are done in blocks of 64, 32 and 16; when 1 to 8 rows remain and
 * k >= 32 it mallocs a copy of those rows of A (and frees it) on every call.  The NT, TN
 * and TT kernels do not allocate. */
int blas_spy_small_allocates(int transa, int transb, long m, long n, long k)
{
    long rest = m % 16;
    return blas_spy_small_permit(transa, transb, m, n, k) && !transa && !transb && rest >= 1 &&
           rest <= 8 && k >= 32;
}

/* interface/gemm.c: a CblasRowMajor call is run as the column-major C^T = op(B)^T op(A)^T,
 * i.e. m = N, n = M, transa = TransB, transb = TransA. */
int blas_spy_rowmajor_permit(int trans_a, int trans_b, long M, long N, long K)
{
    return blas_spy_small_permit(trans_b, trans_a, N, M, K);
}

int blas_spy_rowmajor_allocates(int trans_a, int trans_b, long M, long N, long K)
{
    return blas_spy_small_allocates(trans_b, trans_a, N, M, K);
}

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
                         const enum CBLAS_TRANSPOSE, const blasint, const blasint, const blasint,
                         const float, const float *, const blasint, const float *, const blasint,
                         const float, float *, const blasint);
static sgemm_fn real_sgemm;
static atomic_long calls, small_calls, allocating_calls;
static _Atomic long last_small; /* ta | tb << 1 | M << 2 | N << 22 | K << 42, 20 bits each */

/* Before main, so that no test's counted region sees dlsym's own allocations. */
__attribute__((constructor)) static void spy_init(void)
{
    real_sgemm = (sgemm_fn)(uintptr_t)dlsym(RTLD_NEXT, "cblas_sgemm");
    if (!real_sgemm) {
        fprintf(stderr, "blas_spy: OpenBLAS's cblas_sgemm not found: %s\n", dlerror());
        abort();
    }
}

void cblas_sgemm(OPENBLAS_CONST enum CBLAS_ORDER Order, OPENBLAS_CONST enum CBLAS_TRANSPOSE TransA,
                 OPENBLAS_CONST enum CBLAS_TRANSPOSE TransB, OPENBLAS_CONST blasint M,
                 OPENBLAS_CONST blasint N, OPENBLAS_CONST blasint K, OPENBLAS_CONST float alpha,
                 OPENBLAS_CONST float *A, OPENBLAS_CONST blasint lda, OPENBLAS_CONST float *B,
                 OPENBLAS_CONST blasint ldb, OPENBLAS_CONST float beta, float *C,
                 OPENBLAS_CONST blasint ldc)
{
    const int ta = TransA != CblasNoTrans, tb = TransB != CblasNoTrans;
    /* a column-major call is taken as is; libcnn makes only row-major ones */
    const int small = Order == CblasRowMajor ? blas_spy_rowmajor_permit(ta, tb, M, N, K)
                                             : blas_spy_small_permit(ta, tb, M, N, K);
    const int allocates = Order == CblasRowMajor ? blas_spy_rowmajor_allocates(ta, tb, M, N, K)
                                                 : blas_spy_small_allocates(ta, tb, M, N, K);
    atomic_fetch_add(&calls, 1);
    if (small) {
        atomic_fetch_add(&small_calls, 1);
        atomic_store(&last_small, (long)ta | (long)tb << 1 | ((long)M & 0xfffff) << 2 |
                                      ((long)N & 0xfffff) << 22 | ((long)K & 0xfffff) << 42);
    }
    if (allocates)
        atomic_fetch_add(&allocating_calls, 1);
    real_sgemm(Order, TransA, TransB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

long blas_spy_calls(void)
{
    return atomic_load(&calls);
}

long blas_spy_small_calls(void)
{
    return atomic_load(&small_calls);
}

long blas_spy_allocating_calls(void)
{
    return atomic_load(&allocating_calls);
}

void blas_spy_last_small(char *buf, int size)
{
    long v = atomic_load(&last_small);
    if (atomic_load(&small_calls) == 0)
        snprintf(buf, (size_t)size, "none");
    else
        snprintf(buf, (size_t)size, "ta=%ld tb=%ld M=%ld N=%ld K=%ld", v & 1, v >> 1 & 1,
                 v >> 2 & 0xfffff, v >> 22 & 0xfffff, v >> 42 & 0xfffff);
}
