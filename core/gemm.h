/* The only door to BLAS: row-major single-precision GEMM, and a naive reference for tests.
 * C (M x N) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C, leading dims as in cblas. */
#ifndef CNN_GEMM_H
#define CNN_GEMM_H

void cnn_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Same contract, plain loops; for tests only. */
void cnn_gemm_ref(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Threads BLAS may use for one GEMM (process-wide setting; call before serving). */
void cnn_gemm_set_threads(int threads);
int cnn_gemm_get_threads(void);

/* Name of the BLAS kernel set in use (OpenBLAS core name, e.g. "SkylakeX"). */
const char *cnn_gemm_backend(void);

/* Writes "<core> (OPENBLAS_CORETYPE=<value or unset>)" into buf (size bytes, truncated);
 * what test binaries print first, so a log says which kernels ran.  Returns buf. */
char *cnn_gemm_describe(char *buf, int size);

/* When OpenBLAS fell back to generic kernels although the CPU supports AVX2/AVX-512,
 * the OPENBLAS_CORETYPE value that fits this CPU ("SkylakeX", "Haswell"); else NULL.
 * OpenBLAS reads that variable only when it loads, so programs set it and re-exec
 * themselves (see core/tool/ and server/main.c). */
const char *cnn_gemm_better_coretype(void);

/* For main() only, before anything else: when cnn_gemm_better_coretype() names a core and
 * OPENBLAS_CORETYPE is unset, sets it and re-executes this program (same path, so the
 * process keeps its name for ps/pkill) with argv.  Returns when nothing needed doing or the
 * exec failed (the generic kernels then stay). */
void cnn_gemm_reexec_if_generic(char **argv);

#endif
