/* ONNX import: a ModelProto (protobuf-c, generated from Debian's onnx.proto) becomes a
 * compiled cnn_model built from the existing layer kinds (docs/onnx.md lists the ops).
 * cnn_model_load() calls cnn_onnx_load() for files whose name ends in ".onnx"; the
 * conformance runner (`cnn onnx-test`) uses the _mem form with extra graph inputs bound
 * as constants and reads TensorProto files with cnn_onnx_tensor_read(). */
#ifndef CNN_ONNX_H
#define CNN_ONNX_H

#include "err.h"
#include "model.h"

#include <stddef.h>
#include <stdint.h>

#define CNN_ONNX_MAX_FILE_BYTES ((size_t)2 << 30) /* protobuf's own 2 GiB message limit */
#define CNN_ONNX_MAX_DIMS 8

/* 1 when path names an ONNX file (ends in ".onnx"): the one place that decides. */
int cnn_onnx_is_onnx_path(const char *path);

/* Loads and compiles the ONNX model at path (a regular file of at most
 * CNN_ONNX_MAX_FILE_BYTES).  *out is owned by the caller.  Errors: CNN_ENOENT/CNN_EIO
 * (file), CNN_EFORMAT (bad protobuf or graph; an unsupported operator's message names
 * the node, the op and the opset and contains "unsupported"), CNN_ELIMIT, CNN_ENOMEM.
 * Nothing is left allocated on failure.  Any thread. */
int cnn_onnx_load(const char *path, struct cnn_model **out, struct cnn_err *err);

/* A serialized TensorProto (borrowed) given for a graph input. */
struct cnn_onnx_feed {
    const void *data;
    size_t size;
};

/* As cnn_onnx_load from memory.  feeds[i] (may be NULL when n_feeds is 0) becomes the
 * constant value of the (i+1)-th graph input that is not an initializer: the first one is
 * the image input, the others (an ONNX test's weights given as inputs) are bound. */
int cnn_onnx_load_mem(const void *data, size_t size, const struct cnn_onnx_feed *feeds, int n_feeds,
                      struct cnn_model **out, struct cnn_err *err);

/* Decodes a serialized float TensorProto: *values (owned, free()) gets *count floats,
 * dims[0..*ndims) its shape (at most CNN_ONNX_MAX_DIMS).  CNN_EFORMAT for a bad file or a
 * type other than float. */
int cnn_onnx_tensor_read(const void *data, size_t size, float **values, size_t *count,
                         int64_t dims[CNN_ONNX_MAX_DIMS], int *ndims, struct cnn_err *err);

#endif
