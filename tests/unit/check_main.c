/* Runs every unit suite (one per core module).  CNN_TEST_SUITE=name runs only that one.
 * Suites are weak so that a module's suite can be developed on its own; the list below is
 * the full set and check_main fails when one is missing from the build. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUITES(X) X(gemm) X(layers) X(image) X(model) X(model_io) X(session) X(arch) X(tool) X(train) X(grad) X(dataset) X(layer_kind)
#define DECLARE(name) Suite *name##_suite(void) __attribute__((weak));
SUITES(DECLARE)

int main(void)
{
    const char *only = getenv("CNN_TEST_SUITE");
    SRunner *sr = srunner_create(NULL);
    int missing = 0, added = 0;
#define ADD(name)                                                                              \
    if (!only || strcmp(only, #name) == 0) {                                                   \
        if (name##_suite) {                                                                    \
            srunner_add_suite(sr, name##_suite());                                             \
            added++;                                                                           \
        } else {                                                                               \
            fprintf(stderr, "check_main: suite %s is not built\n", #name);                     \
            missing++;                                                                         \
        }                                                                                      \
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
