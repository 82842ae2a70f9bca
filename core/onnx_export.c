/* Model -> ONNX (onnx_export.h): the graph's input and output, labels, preprocessing and
 * metadata as metadata_props, the opset and IR version, around the nodes of each layer
 * (core/onnx_export_layers.c).  The protobuf side (arena, nodes, packing into a durable file)
 * is core/onnx_write.c. */
#include "onnx_export.h"
#include "onnx_export_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* "output" (N, K) from the last layer: its last node renamed when that already writes a
 * (N, K) value, else a Flatten. */
static int ox_output(struct ox *x)
{
    const int last = x->m->n_layers - 1;
    const int k = cnn_model_num_classes(x->m);
    Onnx__NodeProto *tail = x->w.graph.n_node ? x->w.graph.node[x->w.graph.n_node - 1] : NULL;
    if (x->rank[last] == 2 && tail && tail->output[0] == x->val[last]) {
        tail->output[0] = "output";
        tail->name = "output";
    } else {
        Onnx__NodeProto *n = cnn_onnx_write_node(&x->w, "Flatten", "output", 1);
        if (!n || cnn_onnx_write_attr_int(&x->w, n, "axis", 1))
            return cnn_onnx_write_oom(&x->w);
        n->input[0] = (char *)x->val[last];
    }
    const struct cnn_preproc *pp = &x->m->pp;
    const int in_dims[3] = {pp->c, pp->h, pp->w};
    Onnx__ValueInfoProto **io = cnn_onnx_write_alloc(&x->w, 2 * sizeof *io);
    if (!io || !(io[0] = cnn_onnx_write_value_info(&x->w, "input", 3, in_dims)) ||
        !(io[1] = cnn_onnx_write_value_info(&x->w, "output", 1, &k)))
        return cnn_onnx_write_oom(&x->w);
    x->w.graph.n_input = 1;
    x->w.graph.input = io;
    x->w.graph.n_output = 1;
    x->w.graph.output = io + 1;
    return 0;
}

/* "a,b,c" of the c (1..3) used channels of v (a 2-channel model has 2: the importer reads
 * back exactly cnn_preproc_norm_channels values). */
static char *ox_floats(struct ox *x, const float *v, int c)
{
    return c == 3   ? cnn_onnx_write_str(&x->w, "%.9g,%.9g,%.9g", v[0], v[1], v[2])
           : c == 2 ? cnn_onnx_write_str(&x->w, "%.9g,%.9g", v[0], v[1])
                    : cnn_onnx_write_str(&x->w, "%.9g", v[0]);
}

/* Labels (one a line), preprocessing and the model's metadata text: docs/onnx.md. */
static int ox_props(struct ox *x)
{
    const struct cnn_model *m = x->m;
    const struct cnn_preproc *pp = &m->pp;
    int rc = cnn_onnx_write_prop(
        &x->w, "cnn.resize", pp->resize == CNN_RESIZE_SHORTER_CROP ? "shorter_crop" : "stretch");
    if (rc == 0 && pp->resize == CNN_RESIZE_SHORTER_CROP)
        rc = cnn_onnx_write_prop(&x->w, "cnn.resize_short",
                                 cnn_onnx_write_str(&x->w, "%d", pp->resize_short));
    if (rc == 0)
        rc = cnn_onnx_write_prop(&x->w, "cnn.invert", pp->invert ? "1" : "0");
    if (rc == 0 && pp->c == 3) /* gray models have no channel order */
        rc = cnn_onnx_write_prop(&x->w, "cnn.channel_order", pp->bgr ? "bgr" : "rgb");
    if (rc == 0)
        rc = cnn_onnx_write_prop(&x->w, "cnn.mean", ox_floats(x, pp->mean, cnn_preproc_norm_channels(pp)));
    if (rc == 0)
        rc = cnn_onnx_write_prop(&x->w, "cnn.std", ox_floats(x, pp->std, cnn_preproc_norm_channels(pp)));
    if (rc == 0 && m->meta && m->meta[0])
        rc = cnn_onnx_write_prop(&x->w, "cnn.meta", m->meta);
    if (rc || !m->labels)
        return rc;
    char *text = cnn_onnx_write_alloc(&x->w, (size_t)m->n_labels * CNN_LABEL_MAX + 1), *p = text;
    if (!text)
        return cnn_onnx_write_oom(&x->w);
    for (int i = 0; i < m->n_labels; i++) {
        if (strchr(m->labels[i], '\n'))
            return cnn_err_set(x->err, CNN_EINVAL, "onnx export: label %d holds a newline", i);
        p += sprintf(p, "%s%s", i ? "\n" : "", m->labels[i]);
    }
    return cnn_onnx_write_prop(&x->w, "cnn.labels", text);
}

/* IR version of the ONNX release that introduced each opset (docs/Versioning.md), at least
 * 4: IR 3 wants every initializer listed as a graph input too. */
static int64_t ox_ir_version(int opset)
{
    return opset <= 9 ? 4 : opset == 10 ? 5 : opset == 11 ? 6 : opset <= 14 ? 7 : 8;
}

/* The value name of layer i: its own name, except that "input" and "output" stay the graph's. */
static const char *ox_value_name(struct ox *x, int i)
{
    const char *name = x->m->layers[i].name;
    if (i == 0)
        return "input";
    if (strcmp(name, "input") == 0 || strcmp(name, "output") == 0)
        return cnn_onnx_write_str(&x->w, "%s_%d", name, i);
    return name;
}

/* Builds x->w.model for x->m; on failure the error is in x->err. */
static int ox_build(struct ox *x)
{
    const struct cnn_model *m = x->m;
    const size_t L = (size_t)m->n_layers;
    x->val = cnn_onnx_write_alloc(&x->w, L * sizeof *x->val);
    x->as2 = cnn_onnx_write_alloc(&x->w, L * sizeof *x->as2);
    x->as4 = cnn_onnx_write_alloc(&x->w, L * sizeof *x->as4);
    x->rank = cnn_onnx_write_alloc(&x->w, L * sizeof *x->rank);
    Onnx__OperatorSetIdProto *ops = cnn_onnx_write_alloc(&x->w, sizeof *ops);
    Onnx__OperatorSetIdProto **opsp = cnn_onnx_write_alloc(&x->w, sizeof *opsp);
    if (!x->val || !x->as2 || !x->as4 || !x->rank || !ops || !opsp)
        return cnn_onnx_write_oom(&x->w);
    for (size_t i = 0; i < L; i++)
        if (!(x->val[i] = ox_value_name(x, (int)i)))
            return cnn_onnx_write_oom(&x->w);
    x->rank[0] = 4;
    for (int i = 1; i < m->n_layers; i++) {
        int rc = cnn_onnx_export_layer(x, i);
        if (rc)
            return rc;
    }
    int rc = ox_output(x);
    if (rc == 0)
        rc = cnn_onnx_write_check_names(&x->w);
    if (rc == 0)
        rc = ox_props(x);
    if (rc)
        return rc;
    char arch[CNN_NAME_MAX];
    cnn_model_meta_value(m, "arch", arch, sizeof arch);
    x->w.graph.name = arch[0] ? cnn_onnx_write_str(&x->w, "%s", arch) : "cnn";
    onnx__operator_set_id_proto__init(ops);
    ops->domain = "";
    ops->has_version = 1;
    ops->version = x->opset;
    opsp[0] = ops;
    x->w.model.has_ir_version = 1;
    x->w.model.ir_version = ox_ir_version(x->opset);
    x->w.model.n_opset_import = 1;
    x->w.model.opset_import = opsp;
    x->w.model.producer_name = "cnnd";
    return x->w.graph.name ? 0 : cnn_onnx_write_oom(&x->w);
}

/* Builds the model of m into x (then cnn_onnx_write_free(&x->w) either way). */
static int ox_begin(struct ox *x, const struct cnn_model *m, int opset, struct cnn_err *err)
{
    memset(x, 0, sizeof *x);
    x->m = m;
    x->opset = opset;
    x->err = err;
    const size_t L = (size_t)m->n_layers;
    int rc = cnn_onnx_write_begin(&x->w, OX_NODES_PER_LAYER * L + 1, OX_INITS_PER_LAYER * L + 1,
                                  OX_MAX_PROPS, err);
    if (rc)
        return rc;
    if (opset < CNN_ONNX_OPSET_MIN || opset > CNN_ONNX_OPSET_MAX)
        return cnn_err_set(err, CNN_EINVAL, "onnx export: opset %d outside %d..%d", opset,
                           CNN_ONNX_OPSET_MIN, CNN_ONNX_OPSET_MAX);
    if (!m->params)
        return cnn_err_set(err, CNN_EINVAL, "onnx export: the model has no weights");
    return ox_build(x);
}

int cnn_onnx_export_save(const struct cnn_model *m, const char *path, int opset,
                         struct cnn_err *err)
{
    struct cnn_err local = {0};
    struct ox x;
    int rc = ox_begin(&x, m, opset, err ? err : &local);
    if (rc == 0)
        rc = cnn_onnx_write_save(&x.w, path);
    cnn_onnx_write_free(&x.w);
    return rc;
}

int cnn_onnx_export_mem(const struct cnn_model *m, int opset, void **data, size_t *size,
                        struct cnn_err *err)
{
    struct cnn_err local = {0};
    struct ox x;
    *data = NULL;
    *size = 0;
    int rc = ox_begin(&x, m, opset, err ? err : &local);
    if (rc == 0)
        rc = cnn_onnx_write_mem(&x.w, data, size);
    cnn_onnx_write_free(&x.w);
    return rc;
}
