/* Writes the generated seeds of the model-file targets: OUT/model/{gray,branchy,moves}.cnn
 * (the native format, cnn_model_save) and OUT/onnx/{gray,branchy,moves}-opset{11,13}.onnx
 * (cnn_onnx_export_mem) from the tiny nets of fuzz_nets.h.  Run once by hand; the
 * outputs are committed under tests/fuzz/corpus/. */
#include "fuzz_nets.h"
#include "onnx_export.h"

#include <stdio.h>
#include <stdlib.h>

static int save_onnx(const struct cnn_model *m, int opset, const char *path)
{
    void *data = NULL;
    size_t size = 0;
    struct cnn_err err = {0};
    if (cnn_onnx_export_mem(m, opset, &data, &size, &err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    int rc = f && fwrite(data, 1, size, f) == size ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(data);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds OUTDIR (with OUTDIR/model and OUTDIR/onnx)\n");
        return 2;
    }
    const char *names[] = {"gray", "branchy", "moves"};
    for (int i = 0; i < 3; i++) {
        struct cnn_err err = {0};
        struct cnn_model *m = i == 0   ? fuzz_net_gray(7, &err)
                              : i == 1 ? fuzz_net_branchy(7, &err)
                                       : fuzz_net_moves(7, &err);
        char path[512];
        snprintf(path, sizeof path, "%s/model/%s.cnn", argv[1], names[i]);
        if (!m || cnn_model_compile(m, &err) != 0 || cnn_model_save(m, path, &err) != 0) {
            fprintf(stderr, "%s: %s\n", names[i], err.msg);
            return 1;
        }
        for (int opset = 11; opset <= 13; opset += 2) {
            snprintf(path, sizeof path, "%s/onnx/%s-opset%d.onnx", argv[1], names[i], opset);
            if (save_onnx(m, opset, path) != 0)
                return 1;
        }
        cnn_model_destroy(m);
    }
    return 0;
}
