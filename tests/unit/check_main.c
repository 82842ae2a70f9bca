/* Runs every unit suite (one per core module or topic).  CNN_TEST_SUITE=name runs only that
 * one, CNN_TEST_SUITE=a,b,c the suites listed.  Suites are weak so that a module's suite can
 * be developed on its own; the list below is the full set and check_main fails when one is
 * missing from the build or a listed name is not a suite. */
#include "gemm.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
#define SUITES(X)                                                                          \
    X(gemm) X(layers) X(layers_conv) X(image) X(image_preproc) X(model) X(model_io)        \
    X(model_io_hostile) X(session) X(arch) X(tool) X(train) X(train_workflow)              \
    X(train_driver) X(grad_conv) X(grad_layers) X(dataset) X(durable) X(layer_kind)        \
    X(kinds) X(kinds_net) X(onnx) X(onnx_hostile) X(onnx_kinds) X(onnx_export)        \
    X(explain) X(onnx_ranks) X(gemm_small) X(session_team) X(onnx_moves)                     \
    X(conv_direct) X(fuse) X(model_ops) X(workers) X(gemm_packed) X(im2col_pack)
/* clang-format on */
#define DECLARE(name) Suite *name##_suite(void) __attribute__((weak));
SUITES(DECLARE)

/* Whether name is one of the comma-separated entries of list (every suite when NULL). */
static int listed(const char *list, const char *name)
{
    if (!list)
        return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* Whether every entry of list names a suite. */
static int all_known(const char *list)
{
    static const char *const names[] = {
#define NAME(name) #name,
        SUITES(NAME)
#undef NAME
    };
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ","), i;
        for (i = 0; i < sizeof names / sizeof names[0]; i++)
            if (strlen(names[i]) == len && strncmp(p, names[i], len) == 0)
                break;
        if (i == sizeof names / sizeof names[0]) {
            fprintf(stderr, "check_main: no suite named %.*s\n", (int)len, p);
            return 0;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return 1;
}

int main(int argc, char **argv)
{
    (void)argc;
    char core[96];
    cnn_gemm_reexec_if_generic(argv); /* the BLAS kernels cnn and cnnd run, named first */
    printf("blas core: %s\n", cnn_gemm_describe(core, sizeof core));
    fflush(stdout);
    const char *only = getenv("CNN_TEST_SUITE");
    if (only && !all_known(only))
        return 1;
    SRunner *sr = srunner_create(NULL);
    int missing = 0, added = 0;
#define ADD(name)                                                                                  \
    if (listed(only, #name)) {                                                                     \
        if (name##_suite) {                                                                        \
            srunner_add_suite(sr, name##_suite());                                                 \
            added++;                                                                               \
        } else {                                                                                   \
            fprintf(stderr, "check_main: suite %s is not built\n", #name);                         \
            missing++;                                                                             \
        }                                                                                          \
    }
    SUITES(ADD)
#undef ADD
    if (added == 0) {
        fprintf(stderr, "check_main: no suite matches CNN_TEST_SUITE=%s\n", only ? only : "");
        srunner_free(sr);
        return 1;
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return (failed == 0 && missing == 0) ? 0 : 1;
}
