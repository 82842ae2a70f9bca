/* Building an ONNX ModelProto with protobuf-c and writing it out: an arena that owns every
 * protobuf struct and string of one model, nodes with attributes, initializers that borrow
 * their bytes, value infos with a dynamic batch, metadata_props, a name-uniqueness check and
 * packing into a durable file (core/durable.h) or memory.  For core/onnx_export.c. */
#ifndef CNN_ONNX_WRITE_H
#define CNN_ONNX_WRITE_H

#include "err.h"
#include "onnx.pb-c.h"

#include <stddef.h>
#include <stdint.h>

#define CNN_ONNX_MAX_ATTRS 6 /* of one node: Conv and AveragePool have 5 */

struct cnn_onnx_mem;

/* One model being built.  model.graph points at graph: the writer must not move. */
struct cnn_onnx_writer {
    struct cnn_err *err; /* non-NULL: every failure below stores its message here */
    struct cnn_onnx_mem *mem;
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    size_t cap_node, cap_init, cap_props;
};

/* Empty model and graph with room for the given numbers of nodes, initializers and
 * metadata_props (fixed: appending past them fails).  0 or CNN_ENOMEM; call
 * cnn_onnx_write_free() either way. */
int cnn_onnx_write_begin(struct cnn_onnx_writer *w, size_t cap_node, size_t cap_init,
                         size_t cap_props, struct cnn_err *err);
/* Frees everything the writer allocated. */
void cnn_onnx_write_free(struct cnn_onnx_writer *w);

/* n zeroed bytes owned by the writer, or NULL. */
void *cnn_onnx_write_alloc(struct cnn_onnx_writer *w, size_t n);
/* A formatted string owned by the writer, or NULL. */
char *cnn_onnx_write_str(struct cnn_onnx_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Stores "onnx export: out of memory" in w->err; returns CNN_ENOMEM. */
int cnn_onnx_write_oom(struct cnn_onnx_writer *w);

/* A node `op` appended to the graph, named and writing `out` (borrowed strings); the caller
 * fills input[0..n_in).  NULL when out of memory or room. */
Onnx__NodeProto *cnn_onnx_write_node(struct cnn_onnx_writer *w, const char *op, const char *out,
                                     int n_in);
/* Attributes of n (name borrowed); 0 or CNN_ENOMEM (also past CNN_ONNX_MAX_ATTRS). */
int cnn_onnx_write_attr_int(struct cnn_onnx_writer *w, Onnx__NodeProto *n, const char *name,
                            int64_t v);
int cnn_onnx_write_attr_float(struct cnn_onnx_writer *w, Onnx__NodeProto *n, const char *name,
                              float v);
int cnn_onnx_write_attr_ints(struct cnn_onnx_writer *w, Onnx__NodeProto *n, const char *name,
                             const int64_t *v, int k);

/* An initializer `name` (NULL: CNN_ENOMEM, for a failed cnn_onnx_write_str) of data type
 * `type`, dims[0..ndims), whose raw_data is the `bytes` bytes at data (borrowed until the
 * packing: little-endian, as ONNX wants). */
int cnn_onnx_write_tensor(struct cnn_onnx_writer *w, const char *name, int32_t type, int ndims,
                          const int64_t *dims, const void *data, size_t bytes);
/* A scalar float initializer "<base>.<what>" holding v; *name gets its name. */
int cnn_onnx_write_scalar(struct cnn_onnx_writer *w, const char *base, const char *what, float v,
                          const char **name);
/* A float tensor value info (N, d[0..ndims)) with N the dynamic dimension "N", or NULL. */
Onnx__ValueInfoProto *cnn_onnx_write_value_info(struct cnn_onnx_writer *w, const char *name,
                                                int ndims, const int *d);
/* A metadata_props entry (strings borrowed; value NULL: CNN_ENOMEM). */
int cnn_onnx_write_prop(struct cnn_onnx_writer *w, const char *key, const char *value);

/* CNN_EINVAL naming the first value name (graph input, node output or initializer) that is
 * used twice; else 0. */
int cnn_onnx_write_check_names(struct cnn_onnx_writer *w);

/* Packs w->model into path through core/durable (mode 0644), streamed in 64 KiB writes /
 * into *data (owned by the caller, free()) of *size bytes.  CNN_ELIMIT over 2 GiB
 * (protobuf's limit), CNN_ENOMEM, or the durable write's error. */
int cnn_onnx_write_save(struct cnn_onnx_writer *w, const char *path);
int cnn_onnx_write_mem(struct cnn_onnx_writer *w, void **data, size_t *size);

#endif
