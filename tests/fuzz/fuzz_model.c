/* Fuzz target: native model files (core/model_read.c, model_format.c, model_compile.c):
 * cnn_model_load_mem; a model that loads is described layer by layer and run once
 * (fuzz_model_run.h). */
#include "fuzz.h"
#include "fuzz_model_run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    if (cnn_model_load_mem(data, size, &m, &err) != 0) {
        if (m || !err.msg[0])
            abort(); /* a refusal leaves nothing and says why */
        return 0;
    }
    for (int i = 0; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info info;
        cnn_model_layer_info(m, i, &info);
    }
    char buf[64];
    cnn_model_meta_value(m, "arch", buf, sizeof buf);
    fuzz_run_model(m);
    cnn_model_destroy(m);
    return 0;
}
