/* What the AVX-512 kernels share (gemm_packed_avx512.c, gemm_small_avx512.c,
 * conv_direct_avx512.c): the CPU check that selects them, the attributes they are compiled
 * with (the same features), and the lane mask of their ragged vectors. */
#ifndef CNN_AVX512_H
#define CNN_AVX512_H

#if defined(__x86_64__)
#include <immintrin.h>

/* 1 when the CPU (and OS) run AVX-512 F, VL, DQ and BW, else 0. */
static inline int cnn_cpu_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
}

/* A register kernel: those features, and not instrumented by sanitizers, which would make it
 * many times slower (see gemm_small.c); its loads and stores are masked to the lanes its
 * driver says exist. */
#define CNN_AVX512_KERNEL                                                                          \
    __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"),                          \
                   no_sanitize("address", "undefined", "thread")))

/* The first n of 16 lanes (n <= 0: none, n >= 16: all). */
static inline __mmask16 cnn_lanes16(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

#else

static inline int cnn_cpu_avx512(void)
{
    return 0;
}

#endif

#endif
