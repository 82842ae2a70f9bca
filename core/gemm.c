/* The only door to BLAS: cnn_gemm() forwards to row-major cblas_sgemm, small products and
 * products 1-4 columns wide to gemm_small.c; cnn_gemm_ref() is the plain triple loop the tests
 * compare it with; the thread count and the kernel set (core type) are OpenBLAS's. */
#include "gemm.h"
#include "gemm_small.h"

#include <cblas.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

/* C = beta * C for the K == 0 case, where no product term exists. */
static void scale_c(int M, int N, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
}

void cnn_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc);
        return;
    }
    /* OpenBLAS 0.3.21 runs products of at most 100^3 multiply-adds through its small-matrix
     * kernels when the core's permit function agrees, and its SkylakeX permit
     * (kernel/x86_64/sgemm_small_kernel_permit_skylakex.c) agrees to most of them; the NN
     * kernel (sgemm_small_kernel_nn_skylakex.c) then mallocs a copy of A's last rows on every
     * call.  A forward pass must not allocate, and tests must run what production runs on
     * any CPU, so every such product stays out of OpenBLAS on every core type. */
    /* Narrow untransposed products of any size go there too (CNN_GEMM_SMALL_MAX_N): its
     * kernels stream A's rows once, where OpenBLAS 0.3.21's sgemm packs all of A first (a
     * transposed B is packed panel by panel there, no faster than OpenBLAS) -- 1-4 columns (a
     * dense layer at batch 1-4) as dot products along K (1000x2048 fc at batch 1: 0.66 ->
     * 0.16 ms), wider ones as register tiles. */
    if ((double)M * N * K <= CNN_GEMM_SMALL_MAX_MNK ||
        (N <= CNN_GEMM_SMALL_MAX_N && !trans_a && !trans_b)) {
        cnn_gemm_small(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void cnn_gemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double sum = 0.0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                sum += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            /* BLAS convention: beta == 0 overwrites C without reading it (NaN-safe). */
            *c = (float)(alpha * sum) + (beta == 0.0f ? 0.0f : beta * *c);
        }
    }
}

void cnn_gemm_set_threads(int threads)
{
    openblas_set_num_threads(threads > 0 ? threads : 1);
}

int cnn_gemm_get_threads(void)
{
    return openblas_get_num_threads();
}

const char *cnn_gemm_backend(void)
{
    return openblas_get_corename();
}

char *cnn_gemm_describe(char *buf, int size)
{
    const char *env = getenv("OPENBLAS_CORETYPE");
    if (size > 0)
        snprintf(buf, (size_t)size, "%s (OPENBLAS_CORETYPE=%s)", openblas_get_corename(),
                 env ? env : "unset");
    return buf;
}

/* OpenBLAS picks its kernels from the CPU model number; on CPUs newer than the library
 * (or behind a hypervisor that hides the model) it falls back to generic SSE3 "Prescott"
 * kernels, 3x slower here.  The feature flags still tell what the CPU can run. */
const char *cnn_gemm_better_coretype(void)
{
    static const char *const generic[] = {"prescott",  "core2",  "katmai", "coppermine",
                                          "northwood", "banias", "unknown"};
    const char *core = openblas_get_corename();
    int is_generic = 0;
    for (size_t i = 0; core && i < sizeof generic / sizeof generic[0]; i++)
        is_generic |= strcasecmp(core, generic[i]) == 0;
    if (!is_generic)
        return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

void cnn_gemm_reexec_if_generic(char **argv)
{
    const char *core = cnn_gemm_better_coretype();
    if (!core || getenv("OPENBLAS_CORETYPE"))
        return;
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t)n >= sizeof self - 1)
        return;
    self[n] = '\0';
    setenv("OPENBLAS_CORETYPE", core, 1);
    execv(self, argv);
    unsetenv("OPENBLAS_CORETYPE"); /* exec failed: carry on as we were */
}
