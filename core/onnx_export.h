/* Export of a model to ONNX (an onnx.proto ModelProto packed with protobuf-c): the stored,
 * unfolded graph (batch norm stays BatchNormalization, a fused activation becomes its own
 * node), every weight an initializer, input "input" (N, C, H, W) with a dynamic batch,
 * output "output" (N, K); labels, preprocessing and metadata go into metadata_props
 * (keys in docs/onnx.md, "Export").  Threads: any; the model is only read. */
#ifndef CNN_ONNX_EXPORT_H
#define CNN_ONNX_EXPORT_H

#include "err.h"
#include "model.h"

#include <stddef.h>

#define CNN_ONNX_OPSET_MIN 7
#define CNN_ONNX_OPSET_MAX 17
#define CNN_ONNX_OPSET_DEFAULT 13

/* Writes m as an ONNX model of operator set `opset` (CNN_ONNX_OPSET_MIN..MAX) to path through
 * core/durable (temp file, fsync, rename).  Fails with CNN_EINVAL naming the layer when a
 * layer has no ONNX form at that opset (e.g. pool ceil_mode before opset 10 when it changes
 * the output size), CNN_ELIMIT over protobuf's 2 GiB, CNN_ENOMEM, CNN_EIO. */
int cnn_onnx_export_save(const struct cnn_model *m, const char *path, int opset,
                         struct cnn_err *err);
/* The same model packed into memory: *data (owned by the caller, free()) of *size bytes. */
int cnn_onnx_export_mem(const struct cnn_model *m, int opset, void **data, size_t *size,
                        struct cnn_err *err);

#endif
