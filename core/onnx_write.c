/* The ONNX model writer (onnx_write.h): one arena per model (a list of calloc'd blocks) holds
 * every protobuf-c struct, array and string, so a failure anywhere frees with one call;
 * weights are not copied (initializers borrow them); packing streams through a 64 KiB
 * buffer into a durable temp file. */
#include "onnx_write.h"
#include "durable.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cnn_onnx_mem {
    struct cnn_onnx_mem *next;
    max_align_t data[];
};

void *cnn_onnx_write_alloc(struct cnn_onnx_writer *w, size_t n)
{
    struct cnn_onnx_mem *b = calloc(1, sizeof *b + n);
    if (!b)
        return NULL;
    b->next = w->mem;
    w->mem = b;
    return b->data;
}

void cnn_onnx_write_free(struct cnn_onnx_writer *w)
{
    while (w->mem) {
        struct cnn_onnx_mem *b = w->mem;
        w->mem = b->next;
        free(b);
    }
}

int cnn_onnx_write_oom(struct cnn_onnx_writer *w)
{
    return cnn_err_set(w->err, CNN_ENOMEM, "onnx export: out of memory");
}

char *cnn_onnx_write_str(struct cnn_onnx_writer *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : cnn_onnx_write_alloc(w, (size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* A node appended to the graph, writing `out`; the caller fills input[0..n_in). */
Onnx__NodeProto *cnn_onnx_write_node(struct cnn_onnx_writer *w, const char *op, const char *out,
                                     int n_in)
{
    Onnx__NodeProto *n = cnn_onnx_write_alloc(w, sizeof *n);
    char **in = cnn_onnx_write_alloc(w, (size_t)n_in * sizeof *in);
    char **outs = cnn_onnx_write_alloc(w, sizeof *outs);
    Onnx__AttributeProto **attrs = cnn_onnx_write_alloc(w, CNN_ONNX_MAX_ATTRS * sizeof *attrs);
    if (!n || !in || !outs || !attrs || w->graph.n_node == w->cap_node)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)out;
    n->n_input = (size_t)n_in;
    n->input = in;
    n->n_output = 1;
    n->output = outs;
    outs[0] = (char *)out;
    n->attribute = attrs;
    w->graph.node[w->graph.n_node++] = n;
    return n;
}

static Onnx__AttributeProto *attr_new(struct cnn_onnx_writer *w, Onnx__NodeProto *n,
                                      const char *name, Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = cnn_onnx_write_alloc(w, sizeof *a);
    if (!a || n->n_attribute == CNN_ONNX_MAX_ATTRS)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

int cnn_onnx_write_attr_int(struct cnn_onnx_writer *w, Onnx__NodeProto *n, const char *name,
                            int64_t v)
{
    Onnx__AttributeProto *a = attr_new(w, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (!a)
        return cnn_onnx_write_oom(w);
    a->has_i = 1;
    a->i = v;
    return 0;
}

int cnn_onnx_write_attr_float(struct cnn_onnx_writer *w, Onnx__NodeProto *n, const char *name,
                              float v)
{
    Onnx__AttributeProto *a = attr_new(w, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (!a)
        return cnn_onnx_write_oom(w);
    a->has_f = 1;
    a->f = v;
    return 0;
}

int cnn_onnx_write_attr_ints(struct cnn_onnx_writer *w, Onnx__NodeProto *n, const char *name,
                             const int64_t *v, int k)
{
    Onnx__AttributeProto *a = attr_new(w, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = cnn_onnx_write_alloc(w, (size_t)k * sizeof *copy);
    if (!a || !copy)
        return cnn_onnx_write_oom(w);
    memcpy(copy, v, (size_t)k * sizeof *copy);
    a->n_ints = (size_t)k;
    a->ints = copy;
    return 0;
}

/* An initializer of `bytes` bytes at data (borrowed: it must outlive the packing). */
int cnn_onnx_write_tensor(struct cnn_onnx_writer *w, const char *name, int32_t type, int ndims,
                          const int64_t *dims, const void *data, size_t bytes)
{
    Onnx__TensorProto *t = cnn_onnx_write_alloc(w, sizeof *t);
    int64_t *d = cnn_onnx_write_alloc(w, (size_t)(ndims ? ndims : 1) * sizeof *d);
    if (!t || !d || !name || w->graph.n_initializer == w->cap_init)
        return cnn_onnx_write_oom(w);
    onnx__tensor_proto__init(t);
    if (ndims > 0) /* a scalar passes dims NULL */
        memcpy(d, dims, (size_t)ndims * sizeof *d);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = type;
    t->n_dims = (size_t)ndims;
    t->dims = d;
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = (uint8_t *)data;
    w->graph.initializer[w->graph.n_initializer++] = t;
    return 0;
}

/* A scalar float initializer "<base>.<what>" holding v; *name gets its name. */
int cnn_onnx_write_scalar(struct cnn_onnx_writer *w, const char *base, const char *what, float v,
                          const char **name)
{
    float *p = cnn_onnx_write_alloc(w, sizeof *p);
    if (!p)
        return cnn_onnx_write_oom(w);
    *p = v;
    *name = cnn_onnx_write_str(w, "%s.%s", base, what);
    return cnn_onnx_write_tensor(w, *name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL, p,
                                 sizeof *p);
}

/* A float tensor value_info: (N, d[0], ...) with N the dynamic batch "N". */
Onnx__ValueInfoProto *cnn_onnx_write_value_info(struct cnn_onnx_writer *w, const char *name,
                                                int ndims, const int *d)
{
    Onnx__ValueInfoProto *v = cnn_onnx_write_alloc(w, sizeof *v);
    Onnx__TypeProto *t = cnn_onnx_write_alloc(w, sizeof *t);
    Onnx__TypeProto__Tensor *tt = cnn_onnx_write_alloc(w, sizeof *tt);
    Onnx__TensorShapeProto *sh = cnn_onnx_write_alloc(w, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims =
        cnn_onnx_write_alloc(w, (size_t)(ndims + 1) * sizeof *dims);
    if (!v || !t || !tt || !sh || !dims)
        return NULL;
    for (int k = 0; k <= ndims; k++) {
        dims[k] = cnn_onnx_write_alloc(w, sizeof *dims[k]);
        if (!dims[k])
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dims[k]);
        if (k == 0) {
            dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dims[k]->dim_param = "N";
        } else {
            dims[k]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dims[k]->dim_value = d[k - 1];
        }
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)ndims + 1;
    sh->dim = dims;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    onnx__type_proto__init(t);
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    onnx__value_info_proto__init(v);
    v->name = (char *)name;
    v->type = t;
    return v;
}

int cnn_onnx_write_prop(struct cnn_onnx_writer *w, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *e = cnn_onnx_write_alloc(w, sizeof *e);
    if (!e || !value || w->model.n_metadata_props == w->cap_props)
        return cnn_onnx_write_oom(w);
    onnx__string_string_entry_proto__init(e);
    e->key = (char *)key;
    e->value = (char *)value;
    w->model.metadata_props[w->model.n_metadata_props++] = e;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cnn_onnx_write_check_names(struct cnn_onnx_writer *w)
{
    const Onnx__GraphProto *g = &w->graph;
    const char **names =
        cnn_onnx_write_alloc(w, (g->n_input + g->n_node + g->n_initializer + 1) * sizeof *names);
    if (!names)
        return cnn_onnx_write_oom(w);
    size_t n = 0;
    for (size_t i = 0; i < g->n_input; i++)
        names[n++] = g->input[i]->name;
    for (size_t i = 0; i < g->n_node; i++)
        names[n++] = g->node[i]->output[0];
    for (size_t i = 0; i < g->n_initializer; i++)
        names[n++] = g->initializer[i]->name;
    qsort(names, n, sizeof *names, cmp_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return cnn_err_set(w->err, CNN_EINVAL,
                               "onnx export: the name '%.60s' would be used twice (rename the "
                               "layer)",
                               names[i]);
    return 0;
}

/* Buffered protobuf-c sink writing to a file descriptor. */
struct sink {
    ProtobufCBuffer base;
    int fd;
    int error; /* errno value of the first failed write */
    size_t used;
    uint8_t buf[1 << 16];
};

static void sink_flush(struct sink *s)
{
    if (s->used && !s->error)
        s->error = cnn_durable_write_all(s->fd, s->buf, s->used);
    s->used = 0;
}

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    struct sink *s = (struct sink *)b;
    if (s->used + len > sizeof s->buf)
        sink_flush(s);
    if (len > sizeof s->buf) {
        if (!s->error)
            s->error = cnn_durable_write_all(s->fd, data, len);
        return;
    }
    memcpy(s->buf + s->used, data, len);
    s->used += len;
}

static int sink_fill(int fd, void *ctx)
{
    struct sink *s = malloc(sizeof *s);
    if (!s)
        return ENOMEM;
    s->base.append = sink_append;
    s->fd = fd;
    s->error = 0;
    s->used = 0;
    onnx__model_proto__pack_to_buffer(ctx, &s->base);
    sink_flush(s);
    int e = s->error;
    free(s);
    return e;
}

int cnn_onnx_write_begin(struct cnn_onnx_writer *w, size_t cap_node, size_t cap_init,
                         size_t cap_props, struct cnn_err *err)
{
    memset(w, 0, sizeof *w);
    w->err = err;
    onnx__model_proto__init(&w->model);
    onnx__graph_proto__init(&w->graph);
    w->model.graph = &w->graph;
    w->cap_node = cap_node;
    w->cap_init = cap_init;
    w->cap_props = cap_props;
    w->graph.node = cnn_onnx_write_alloc(w, (cap_node + 1) * sizeof *w->graph.node);
    w->graph.initializer = cnn_onnx_write_alloc(w, (cap_init + 1) * sizeof *w->graph.initializer);
    w->model.metadata_props =
        cnn_onnx_write_alloc(w, (cap_props + 1) * sizeof *w->model.metadata_props);
    if (!w->graph.node || !w->graph.initializer || !w->model.metadata_props)
        return cnn_onnx_write_oom(w);
    return 0;
}

static int check_size(struct cnn_onnx_writer *w, size_t *size)
{
    *size = onnx__model_proto__get_packed_size(&w->model);
    if (*size > INT32_MAX)
        return cnn_err_set(w->err, CNN_ELIMIT,
                           "onnx export: %zu bytes, over protobuf's 2 GiB (external data is not "
                           "written)",
                           *size);
    return 0;
}

int cnn_onnx_write_save(struct cnn_onnx_writer *w, const char *path)
{
    size_t size;
    int rc = check_size(w, &size);
    return rc ? rc : cnn_durable_stream(path, 0644, sink_fill, &w->model, w->err);
}

int cnn_onnx_write_mem(struct cnn_onnx_writer *w, void **data, size_t *size)
{
    *data = NULL;
    int rc = check_size(w, size);
    if (rc)
        return rc;
    uint8_t *buf = malloc(*size ? *size : 1);
    if (!buf)
        return cnn_err_set(w->err, CNN_ENOMEM, "onnx export: out of memory for %zu bytes", *size);
    *size = onnx__model_proto__pack(&w->model, buf);
    *data = buf;
    return 0;
}
