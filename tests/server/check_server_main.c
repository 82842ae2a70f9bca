/* Runs the server suites.  CNN_TEST_SUITE=name runs only that one.  Suites are weak so each
 * module's suite can be built and run while the others are still being written: a missing
 * suite prints "not built" and fails the run only when every suite is run (CNN_TEST_SUITE
 * unset) and CNN_SERVER_ALL=1 asks for the complete set. */
#include "gemm.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUITES(X)                                                                                  \
    X(batcher) X(registry) X(registry_scan) X(registry_pin) X(config) X(http) X(infer)          \
        X(metrics) X(admin_auth) X(safepath) X(job_spec) X(jobs) X(memtrim)
#define DECLARE(name) Suite *name##_suite(void) __attribute__((weak));
SUITES(DECLARE)

int main(int argc, char **argv)
{
    (void)argc;
    char core[96];
    cnn_gemm_reexec_if_generic(argv); /* the BLAS kernels cnnd runs, named first */
    printf("blas core: %s\n", cnn_gemm_describe(core, sizeof core));
    fflush(stdout);
    const char *only = getenv("CNN_TEST_SUITE");
    if (only && !*only)
        only = NULL;
    const char *all = getenv("CNN_SERVER_ALL");
    int require_all = !only && all && strcmp(all, "1") == 0;
    SRunner *sr = srunner_create(NULL);
    int missing = 0, added = 0, known = 0;
#define ADD(name)                                                                                  \
    if (!only || strcmp(only, #name) == 0) {                                                       \
        known++;                                                                                   \
        if (name##_suite) {                                                                        \
            srunner_add_suite(sr, name##_suite());                                                 \
            added++;                                                                               \
        } else {                                                                                   \
            fprintf(stderr, "check_server: suite %s is not built\n", #name);                       \
            missing++;                                                                             \
        }                                                                                          \
    }
    SUITES(ADD)
#undef ADD
    if (known == 0) {
        fprintf(stderr, "check_server: no suite named %s\n", only);
        srunner_free(sr);
        return 1;
    }
    int failed = 0;
    if (added > 0) {
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
    }
    srunner_free(sr);
    if (failed > 0)
        return 1;
    return (missing > 0 && require_all) ? 1 : 0;
}
