/* Fuzz target: ONNX files (core/onnx_import.c and the op table, constant folding, metadata,
 * onnx_tensor.c): cnn_onnx_load_mem, run once when it loads (fuzz_model_run.h), and the
 * same bytes as a TensorProto (cnn_onnx_tensor_read, as `cnn onnx-test` reads them). */
#include "fuzz.h"
#include "fuzz_model_run.h"
#include "onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    if (cnn_onnx_load_mem(data, size, NULL, 0, &m, &err) == 0) {
        fuzz_run_model(m);
        cnn_model_destroy(m);
    } else if (m || !err.msg[0]) {
        abort(); /* a refusal leaves nothing and says why */
    }
    float *values = NULL;
    size_t count = 0;
    int64_t dims[CNN_ONNX_MAX_DIMS];
    int ndims = 0;
    if (cnn_onnx_tensor_read(data, size, &values, &count, dims, &ndims, &err) == 0) {
        size_t prod = 1;
        for (int i = 0; i < ndims; i++)
            prod *= (size_t)dims[i];
        if (ndims < 0 || ndims > CNN_ONNX_MAX_DIMS || (ndims && prod != count))
            abort(); /* the shape describes the values */
        volatile float sink = 0;
        for (size_t i = 0; i < count; i++)
            sink += values[i];
        (void)sink;
        free(values);
    }
    return 0;
}
