/* 3x3 stride-1 conv: im2col + SGEMM against Winograd F(2x2,3x3) and F(4x4,3x3), per layer
 * shape, in thread CPU time (min over repetitions: the machine is shared, wall time is
 * noisy).  Prints one line per shape with the three times, the Winograd speedups, the max
 * abs differences from im2col and the variant cnn_conv2d_winograd_tile() picks.
 * Build and run (one BLAS thread, the kernels the cnn tool would pick):
 *   make build/libcnn.a && cc -O2 -Icore bench/conv3x3.c build/libcnn.a \
 *     $(pkg-config --cflags --libs openblas) -lm -o build/bench_conv3x3
 *   OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 ./build/bench_conv3x3 [N] [reps] [shape]
 * (shape: the index of one row of shapes[] below, for profiling it alone). */
#define _POSIX_C_SOURCE 200809L
#include "gemm.h"
#include "layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double thread_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *fill(size_t n, unsigned seed)
{
    float *x = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!x)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffffff) / 8388608.0f - 1.0f;
    }
    return x;
}

int main(int argc, char **argv)
{
    cnn_gemm_reexec_if_generic(argv); /* the BLAS kernels cnn and cnnd run */
    const int N = argc > 1 ? atoi(argv[1]) : 8, reps = argc > 2 ? atoi(argv[2]) : 7;
    const int only = argc > 3 ? atoi(argv[3]) : -1;
    /* C, OC, H = W: ResNet-18 layers 1-4, VGG-16 layers, small and tiny convs */
    static const int shapes[][3] = {{64, 64, 56},   {128, 128, 28}, {256, 256, 14}, {512, 512, 7},
                                    {64, 128, 112}, {256, 256, 56}, {512, 512, 28}, {32, 32, 56},
                                    {16, 16, 56},   {16, 16, 14},   {8, 8, 56},     {3, 64, 56}};
    cnn_gemm_set_threads(1);
    printf("backend %s, N=%d, min of %d reps, thread CPU ms\n", cnn_gemm_backend(), N, reps);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        if (only >= 0 && (size_t)only != s)
            continue;
        /* clang-format off */
        struct cnn_conv2d p = {.c = shapes[s][0], .h = shapes[s][2], .w = shapes[s][2],
                               .oc = shapes[s][1], .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1,
                               .dw = 1, .pad_t = 1, .pad_l = 1, .pad_b = 1, .pad_r = 1,
                               .groups = 1, .has_bias = 1, .act = {CNN_ACT_RELU, 0, 0}};
        /* clang-format on */
        struct cnn_err err = {0};
        if (cnn_conv2d_shape(&p, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        size_t in_n = (size_t)p.c * N * p.h * p.w, out_n = (size_t)p.oc * N * p.oh * p.ow;
        float *inp = fill(in_n, 1), *w = fill((size_t)p.oc * p.c * 9, 2);
        float *b = fill((size_t)p.oc, 3), *u = fill(cnn_winograd_weights_floats(&p), 4);
        float *u4 = fill(cnn_winograd4_weights_floats(&p), 4);
        size_t col_n = cnn_conv2d_scratch_floats(&p, N),
               wino_n = cnn_winograd_scratch_floats(&p, N),
               wino4_n = cnn_winograd4_scratch_floats(&p, N);
        col_n = col_n > wino_n ? col_n : wino_n; /* Winograd forced on tiny convs */
        float *col = fill(col_n > wino4_n ? col_n : wino4_n, 5);
        float *o1 = fill(out_n, 6), *o2 = fill(out_n, 7), *o3 = fill(out_n, 8);
        cnn_winograd_transform_weights(u, w, &p);
        cnn_winograd4_transform_weights(u4, w, &p);
        const int t4 = N * ((p.oh + 3) / 4);
        double best[3] = {1e30, 1e30, 1e30};
        for (int r = 0; r < reps + 1; r++) { /* first round warms up */
            double t0 = thread_ms();
            cnn_conv2d_forward(o1, inp, w, b, col, &p, N);
            double t1 = thread_ms();
            cnn_conv2d_forward_winograd(o2, inp, u, b, col, &p, N);
            double t2 = thread_ms();
            cnn_conv2d_winograd4_rows(o3, NULL, inp, u4, 0, b, col, &p, N, 0, t4);
            double t3 = thread_ms();
            if (r > 0) {
                best[0] = fmin(best[0], t1 - t0);
                best[1] = fmin(best[1], t2 - t1);
                best[2] = fmin(best[2], t3 - t2);
            }
        }
        double diff = 0, diff4 = 0;
        for (size_t i = 0; i < out_n; i++) {
            diff = fmax(diff, fabs((double)o1[i] - o2[i]));
            diff4 = fmax(diff4, fabs((double)o1[i] - o3[i]));
        }
        printf("C=%3d OC=%3d %3dx%-3d im2col %8.2f  F2 %8.2f (%.2fx)  F4 %8.2f (%.2fx)  maxdiff "
               "%.1e %.1e  picks %d\n",
               p.c, p.oc, p.h, p.w, best[0], best[1], best[0] / best[1], best[2],
               best[0] / best[2], diff, diff4, cnn_conv2d_winograd_tile(&p));
        free(inp), free(w), free(b), free(u), free(u4), free(col), free(o1), free(o2), free(o3);
    }
    return 0;
}
