/* session_raw MODEL N SEED IN.f32 OUT.f32: runs N seeded inputs through cnnd's own forward
 * pass (cnn_model_load + cnn_session_forward) and writes the input (N, C, H, W) and the
 * output (N, K) as raw little-endian float32, for comparison with a peer engine running
 * the same input (tests/conformance/export_ort.sh).  Inputs are uniform in [-2, 2).
 * session_raw --net dag|wide|ranks|kinds|kinds_flat SEED OUT.cnn saves a unit-test network with
 * seeded weights (every layer kind: tests/unit/test_nets.h, test_onnx_nets.h, test_kinds_nets.h).
 */
#include "gemm.h"
#include "model.h"
#include "session.h"
#include "test_kinds_nets.h"
#include "test_nets.h"
#include "test_onnx_nets.h"

#include <check.h>
#include <string.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int write_f32(const char *path, const float *v, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(v, sizeof *v, n, f) == n;
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "session_raw: cannot write %s\n", path);
    return ok ? 0 : 1;
}

static const char *g_net, *g_out;
static uint64_t g_seed;

/* The test_nets builders assert with check, so they run as a check test (no fork). */
START_TEST(save_net)
{
    struct cnn_model *m = strcmp(g_net, "dag") == 0          ? test_net_dag(g_seed)
                          : strcmp(g_net, "wide") == 0       ? test_net_wide(g_seed)
                          : strcmp(g_net, "kinds") == 0      ? test_net_kinds(g_seed)
                          : strcmp(g_net, "kinds_flat") == 0 ? test_net_kinds_flat(g_seed)
                                                             : test_net_ranks(g_seed);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_compile(m, &err) == 0, "%s", err.msg);
    ck_assert_msg(cnn_model_save(m, g_out, &err) == 0, "%s", err.msg);
    cnn_model_destroy(m);
}
END_TEST

static int run_save_net(const char *name, uint64_t seed, const char *out)
{
    if (strcmp(name, "dag") != 0 && strcmp(name, "wide") != 0 && strcmp(name, "ranks") != 0 &&
        strcmp(name, "kinds") != 0 && strcmp(name, "kinds_flat") != 0) {
        fprintf(stderr, "session_raw: no network %s (dag, wide, ranks, kinds, kinds_flat)\n", name);
        return 2;
    }
    g_net = name, g_seed = seed, g_out = out;
    Suite *s = suite_create("session_raw");
    TCase *tc = tcase_create("net");
    tcase_add_test(tc, save_net);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}

int main(int argc, char **argv)
{
    cnn_gemm_reexec_if_generic(argv); /* the BLAS kernels cnn and cnnd run */
    if (argc == 5 && strcmp(argv[1], "--net") == 0)
        return run_save_net(argv[2], strtoull(argv[3], NULL, 10), argv[4]);
    if (argc != 6) {
        fprintf(stderr, "usage: session_raw MODEL N SEED IN.f32 OUT.f32\n");
        return 2;
    }
    int n = atoi(argv[2]);
    uint64_t s = strtoull(argv[3], NULL, 10) * 6364136223846793005ull + 1;
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    if (n < 1 || n > 64 || cnn_model_load(argv[1], &m, &err) != 0) {
        fprintf(stderr, "session_raw: %s: %s\n", argv[1],
                n < 1 || n > 64 ? "N not 1..64" : err.msg);
        return 1;
    }
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    size_t per = (size_t)pp->c * pp->h * pp->w, k = (size_t)cnn_model_num_classes(m);
    float *in = malloc(per * n * sizeof *in);
    struct cnn_session *ses = cnn_session_create(m, n, &err);
    const float *probs = NULL;
    int rc = 1;
    if (in && ses) {
        for (size_t i = 0; i < per * n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            in[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 4.0 - 2.0);
        }
        if (cnn_session_forward(ses, m, in, n, &probs, &err) == 0)
            rc = write_f32(argv[4], in, per * n) || write_f32(argv[5], probs, k * n);
    }
    if (rc && err.msg[0])
        fprintf(stderr, "session_raw: %s\n", err.msg);
    cnn_session_destroy(ses);
    free(in);
    cnn_model_destroy(m);
    return rc;
}
