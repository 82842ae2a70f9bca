/* ONNX import: unpack a ModelProto, check the graph input, walk the nodes in file order
 * (ONNX requires topological order, so a node reading a name not yet defined -- a cycle
 * or a dangling input -- is an error) through the op table of onnx_ops.c, copy the
 * weights into the model's parameter block and compile it like any other model. */
#include "onnx_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cnn_onnx_is_onnx_path(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n > 5 && strcmp(path + n - 5, ".onnx") == 0;
}

/* ---- helpers for the op rows ---- */

static const char *node_name(const Onnx__NodeProto *n)
{
    if (n->name && n->name[0])
        return n->name;
    return n->n_output && n->output[0] ? n->output[0] : "";
}

int onnx_node_err(struct onnx_ctx *c, int code, const char *fmt, ...)
{
    char why[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = c->node;
    return cnn_err_set(c->err, code, "onnx: node '%.40s' (%.24s, opset %d): %s", node_name(n),
                       n->op_type ? n->op_type : "?", c->opset, why);
}

int onnx_input(struct onnx_ctx *c, int i, int optional, struct onnx_value **out)
{
    const Onnx__NodeProto *n = c->node;
    *out = NULL;
    if ((size_t)i >= n->n_input || !n->input[i][0]) {
        if (optional)
            return 0;
        return onnx_node_err(c, CNN_EFORMAT, "input %d missing", i);
    }
    *out = onnx_value_find(c, n->input[i]);
    if (!*out)
        return onnx_node_err(c, CNN_EFORMAT,
                             "input '%.40s' names nothing defined before it (missing "
                             "initializer, cycle or unsorted graph)",
                             n->input[i]);
    if ((*out)->layer >= 0 && (*out)->rank > 4 && !onnx_any_rank(n->op_type))
        return onnx_node_err(c, CNN_EFORMAT,
                             "unsupported: input %d ('%.40s') of rank %d (above 4 only through "
                             "Reshape, Transpose, Squeeze, Unsqueeze, Flatten)",
                             i, n->input[i], (*out)->rank);
    return 0;
}

int onnx_input_const(struct onnx_ctx *c, int i, int optional, struct onnx_tensor **out)
{
    struct onnx_value *v;
    *out = NULL;
    int rc = onnx_input(c, i, optional, &v);
    if (rc || !v)
        return rc;
    if (!v->t)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: input %d ('%.40s') must be a constant",
                             i, c->node->input[i]);
    *out = v->t;
    return 0;
}

int onnx_input_layer(struct onnx_ctx *c, int i, struct onnx_value **out)
{
    int rc = onnx_input(c, i, 0, out);
    if (rc)
        return rc;
    if ((*out)->layer < 0)
        return onnx_node_err(c, CNN_EFORMAT, "unsupported: input %d ('%.40s') is a constant", i,
                             c->node->input[i]);
    return 0;
}

const Onnx__AttributeProto *onnx_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->name && strcmp(n->attribute[k]->name, name) == 0)
            return n->attribute[k];
    return NULL;
}

int64_t onnx_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    return a && a->has_i ? a->i : def;
}

float onnx_attr_float(const Onnx__NodeProto *n, const char *name, float def)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    return a && a->has_f ? a->f : def;
}

int onnx_attr_ints(const Onnx__NodeProto *n, const char *name, int64_t *v, int max)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    if (!a)
        return 0;
    if (a->n_ints > (size_t)max)
        return -1;
    if (a->n_ints)
        memcpy(v, a->ints, a->n_ints * sizeof *v);
    return (int)a->n_ints;
}

int onnx_attr_is(const Onnx__NodeProto *n, const char *name, const char *s)
{
    const Onnx__AttributeProto *a = onnx_attr(n, name);
    size_t len = strlen(s);
    return a && a->has_s && a->s.len == len && memcmp(a->s.data, s, len) == 0;
}

static int add_pending(struct onnx_ctx *c, int layer, int slot, float *data, size_t count)
{
    if (c->n_pend == c->cap_pend) {
        size_t cap = c->cap_pend ? 2 * c->cap_pend : 64;
        struct onnx_pending *np = realloc(c->pend, cap * sizeof *np);
        if (!np) {
            free(data);
            return cnn_err_set(c->err, CNN_ENOMEM, "onnx: out of memory");
        }
        c->pend = np;
        c->cap_pend = cap;
    }
    c->pend[c->n_pend++] = (struct onnx_pending){layer, slot, data, count};
    return 0;
}

int onnx_add_layer(struct onnx_ctx *c, struct cnn_layer_desc *d, int n_in, const int *in, int rank,
                   float **weights, const size_t *count, int n_weights)
{
    char name[CNN_NAME_MAX];
    snprintf(name, sizeof name, "%s", node_name(c->node));
    for (char *p = name; *p; p++) /* printable ASCII: valid UTF-8 however it was cut */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '_';
    /* names must be unique in a model: fall back to the generated one when taken or empty */
    d->name = name[0] && cnn_model_find_layer(c->m, name) < 0 ? name : NULL;
    d->n_inputs = n_in;
    d->inputs = in;
    int idx = cnn_model_add(c->m, d, c->err);
    int rc = idx < 0 ? idx : 0;
    if (rc)
        onnx_node_err(c, rc, "%s", c->err ? c->err->msg : "layer rejected");
    for (int k = 0; k < n_weights; k++) {
        if (!weights[k])
            continue;
        if (rc)
            free(weights[k]);
        else
            rc = add_pending(c, idx, k, weights[k], count[k]);
        weights[k] = NULL;
    }
    if (rc)
        return rc;
    if (rank && (rc = onnx_value_add(c, c->node->n_output ? c->node->output[0] : NULL, idx, rank,
                                     NULL)) != 0)
        return rc;
    return idx;
}

int onnx_alias(struct onnx_ctx *c, int i, const struct onnx_value *v)
{
    if ((size_t)i >= c->node->n_output)
        return onnx_node_err(c, CNN_EFORMAT, "output %d missing", i);
    struct onnx_tensor *t = NULL;
    if (v->t) { /* constants are owned by their entry: copy */
        t = onnx_tensor_new(v->t->is_int, v->t->ndims, v->t->dims, c->err);
        if (!t)
            return c->err ? c->err->code : CNN_ENOMEM;
        if (t->is_int)
            memcpy(t->i, v->t->i, t->count * sizeof *t->i);
        else
            memcpy(t->f, v->t->f, t->count * sizeof *t->f);
    }
    int rc = onnx_value_add(c, c->node->output[i], v->layer, v->rank, t);
    struct onnx_value *nv = rc == 0 && v->rank > 4 ? onnx_value_find(c, c->node->output[i]) : NULL;
    if (nv) /* NULL for an unnamed output */
        memcpy(nv->dims, v->dims, sizeof nv->dims);
    return rc;
}

int onnx_set_const(struct onnx_ctx *c, int i, struct onnx_tensor *t)
{
    if ((size_t)i >= c->node->n_output) {
        onnx_tensor_free(t);
        return onnx_node_err(c, CNN_EFORMAT, "output %d missing", i);
    }
    return onnx_value_add(c, c->node->output[i], -1, 0, t);
}

int onnx_err_code(const struct onnx_ctx *c)
{
    return c->err && c->err->code ? c->err->code : CNN_EFORMAT;
}

void onnx_layer_shape(const struct onnx_ctx *c, int l, int *ch, int *h, int *w)
{
    struct cnn_layer_info li;
    cnn_model_layer_info(c->m, l, &li);
    *ch = li.c;
    *h = li.h;
    *w = li.w;
}

/* ---- the model ---- */

static int model_opset(const Onnx__ModelProto *mp, struct cnn_err *err)
{
    for (size_t k = 0; k < mp->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[k];
        if ((!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0) && o->has_version) {
            if (o->version < 1 || o->version > 1000)
                return cnn_err_set(err, CNN_EFORMAT, "onnx: opset %lld out of range",
                                   (long long)o->version);
            return (int)o->version;
        }
    }
    return cnn_err_set(err, CNN_EFORMAT, "onnx: no opset for the default domain");
}

static int is_initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t k = 0; k < g->n_initializer; k++)
        if (g->initializer[k]->name && strcmp(g->initializer[k]->name, name) == 0)
            return 1;
    return 0;
}

/* A rank-1 input (N) is the rank-2 value (N, 1) only when every node acts on each element
 * alone (its other inputs scalars, as the ops check): then no axis is ever read and the
 * layout cannot matter.  Any other graph keeps the rank-1 skip. */
static int elementwise_only(const Onnx__GraphProto *g, struct cnn_err *err)
{
    static const char *const ops[] = {"Relu",        "LeakyRelu", "Sigmoid", "Tanh",    "Clip",
                                      "HardSigmoid", "HardSwish", "Dropout", "Identity"};
    for (size_t k = 0; k < g->n_node; k++) {
        const char *op = g->node[k]->op_type ? g->node[k]->op_type : "";
        size_t i = 0;
        while (i < sizeof ops / sizeof ops[0] && strcmp(ops[i], op) != 0)
            i++;
        if (i == sizeof ops / sizeof ops[0])
            return cnn_err_set(err, CNN_EFORMAT,
                               "onnx: unsupported input rank 1 (needs N,C,H,W, N,C,L or N,K; or "
                               "only elementwise ops)");
    }
    return 0;
}

/* The preprocessing of the image input: its shape (N or dynamic, C, H, W), or (N, K) taken
 * as (N, K, 1, 1) -- the importer's rank-2 values, as after Flatten -- or (N, C, L) taken as
 * (N, C, 1, L) (1-D convs and pools run as 2-D ones of height 1), or (N) taken as (N, 1)
 * (*rank 4, 2, 3 or 1; see elementwise_only); neutral normalisation (pixels in [0,1], mean
 * 0, std 1, stretched to H x W). */
static int input_preproc(const Onnx__ValueInfoProto *vi, const Onnx__GraphProto *g,
                         struct cnn_preproc *pp, int *rank, struct cnn_err *err)
{
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: unsupported input: not a tensor");
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return cnn_err_set(err, CNN_EFORMAT,
                           "onnx: unsupported input: element type %d (needs float)", tt->elem_type);
    if (!tt->shape || tt->shape->n_dim < 1 || tt->shape->n_dim > 4)
        return cnn_err_set(err, CNN_EFORMAT,
                           "onnx: unsupported input rank %zu (needs N,C,H,W, N,C,L or N,K)",
                           tt->shape ? tt->shape->n_dim : 0);
    *rank = (int)tt->shape->n_dim;
    if (*rank == 1 && elementwise_only(g, err))
        return CNN_EFORMAT;
    int64_t d[3] = {1, 1, 1}; /* C, H, W */
    for (int k = 0; k + 1 < *rank; k++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[k + 1];
        if (dim->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            return cnn_err_set(err, CNN_EFORMAT,
                               "onnx: unsupported input: dim %d is dynamic (C, H, W must be "
                               "fixed)",
                               k + 1);
        d[*rank == 3 && k == 1 ? 2 : k] = dim->dim_value; /* (N, C, L): L on W */
    }
    if (d[0] < 1 || d[0] > CNN_PREPROC_MAX_C)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: input channels %lld out of range 1..%d",
                           (long long)d[0], CNN_PREPROC_MAX_C);
    if (d[1] < 1 || d[2] < 1 || d[1] > CNN_PREPROC_MAX_DIM || d[2] > CNN_PREPROC_MAX_DIM)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: unsupported input size %lldx%lld (1..%d)",
                           (long long)d[1], (long long)d[2], CNN_PREPROC_MAX_DIM);
    *pp = (struct cnn_preproc){
        .c = (int)d[0], .h = (int)d[1], .w = (int)d[2], .resize = CNN_RESIZE_STRETCH};
    for (int k = 0; k < 3; k++) {
        pp->mean[k] = 0.0f;
        pp->std[k] = 1.0f;
    }
    return 0;
}

/* Frees the values of an initializer once they are decoded into a tensor, so that the import
 * never holds the file's weights in the protobuf and in the tensors at once (ResNet-50: 102
 * MB each).  Nothing reads them again; protobuf-c's free_unpacked skips the NULLs, and the
 * arrays came from its default allocator, which is malloc. */
static void drop_values(Onnx__TensorProto *tp)
{
#define DROP(array, count) (free(array), (array) = NULL, (count) = 0)
    DROP(tp->raw_data.data, tp->raw_data.len);
    DROP(tp->float_data, tp->n_float_data);
    DROP(tp->double_data, tp->n_double_data);
    DROP(tp->int32_data, tp->n_int32_data);
    DROP(tp->int64_data, tp->n_int64_data);
#undef DROP
}

/* Defines the initializers (consuming their values, see drop_values), the image input
 * (layer 0) and the fed inputs. */
static int define_inputs(struct onnx_ctx *c, Onnx__GraphProto *g, int rank,
                         const struct cnn_onnx_feed *feeds, int n_feeds)
{
    int rc;
    for (size_t k = 0; k < g->n_initializer; k++) {
        Onnx__TensorProto *tp = g->initializer[k];
        struct onnx_tensor *t;
        if ((rc = onnx_tensor_decode(tp, tp->name ? tp->name : "", &t, c->err)) != 0 ||
            (rc = onnx_value_add(c, tp->name, -1, 0, t)) != 0)
            return rc;
        drop_values(tp);
    }
    int seen = 0;
    for (size_t k = 0; k < g->n_input; k++) {
        const char *name = g->input[k]->name;
        if (!name || is_initializer(g, name))
            continue;
        if (seen == 0) {
            rc = onnx_value_add(c, name, 0, rank, NULL);
        } else if (seen <= n_feeds) {
            Onnx__TensorProto *tp =
                onnx__tensor_proto__unpack(NULL, feeds[seen - 1].size, feeds[seen - 1].data);
            if (!tp)
                return cnn_err_set(c->err, CNN_EFORMAT, "onnx: feed for '%.40s' unreadable", name);
            struct onnx_tensor *t;
            rc = onnx_tensor_decode(tp, name, &t, c->err);
            onnx__tensor_proto__free_unpacked(tp, NULL);
            if (!rc)
                rc = onnx_value_add(c, name, -1, 0, t);
        } else {
            return cnn_err_set(c->err, CNN_EFORMAT,
                               "onnx: unsupported: graph input '%.40s' beside the image input "
                               "(one input only)",
                               name);
        }
        if (rc)
            return rc;
        seen++;
    }
    return 0;
}

static int run_nodes(struct onnx_ctx *c, const Onnx__GraphProto *g)
{
    if (g->n_node > ONNX_MAX_NODES)
        return cnn_err_set(c->err, CNN_ELIMIT, "onnx: %zu nodes (at most %d)", g->n_node,
                           ONNX_MAX_NODES);
    c->graph = g;
    c->scan_budget = ONNX_SCAN_BUDGET;
    for (size_t k = 0; k < g->n_node; k++) {
        const Onnx__NodeProto *n = g->node[k];
        c->node = n;
        c->node_index = k;
        if (!n->op_type)
            return onnx_node_err(c, CNN_EFORMAT, "no op_type");
        onnx_op_fn fn = n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") != 0
                            ? NULL
                            : onnx_op_find(n->op_type);
        if (!fn)
            return onnx_node_err(c, CNN_EFORMAT, "unsupported operator");
        for (size_t a = 0; a < n->n_attribute; a++)
            if (n->attribute[a]->g || n->attribute[a]->n_graphs)
                return onnx_node_err(c, CNN_EFORMAT, "unsupported: subgraph attribute");
        const struct onnx_value *from = n == c->fused ? onnx_value_find(c, c->fused_from) : NULL;
        int rc = from ? onnx_alias(c, 0, from) : fn(c, n); /* folded into an earlier layer */
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The graph's one output must be the last layer's output; a graph whose output is its input
 * (through Identity or Dropout) gets a copy layer (act none). */
static int check_output(struct onnx_ctx *c, const Onnx__GraphProto *g)
{
    if (g->n_output != 1)
        return cnn_err_set(c->err, CNN_EFORMAT, "onnx: unsupported: %zu graph outputs (needs 1)",
                           g->n_output);
    const char *name = g->output[0]->name;
    struct onnx_value *v = onnx_value_find(c, name);
    if (!v)
        return cnn_err_set(c->err, CNN_EFORMAT, "onnx: graph output '%.40s' names nothing",
                           name ? name : "");
    if (v->layer == 0 && cnn_model_layer_count(c->m) == 1) {
        int in0 = 0;
        struct cnn_layer_desc d = {.kind = CNN_LAYER_ACT, .n_inputs = 1, .inputs = &in0};
        d.p.act.kind = CNN_ACT_NONE;
        int rc = cnn_model_add(c->m, &d, c->err);
        return rc < 0 ? rc : 0;
    }
    if (v->layer < 1)
        return cnn_err_set(c->err, CNN_EFORMAT, "onnx: unsupported: graph output '%.40s' is %s",
                           name, v->layer == 0 ? "the input" : "a constant");
    if (v->layer != cnn_model_layer_count(c->m) - 1)
        return cnn_err_set(c->err, CNN_EFORMAT,
                           "onnx: unsupported: graph output '%.40s' is not the last layer", name);
    return 0;
}

static int fill_weights(struct onnx_ctx *c)
{
    int rc = cnn_model_alloc_params(c->m, c->err);
    if (rc)
        return rc;
    for (size_t k = 0; k < c->n_pend; k++) {
        const struct onnx_pending *p = &c->pend[k];
        size_t count;
        float *dst = cnn_model_weights_mut(c->m, p->layer, p->slot, &count);
        if (!dst || count != p->count)
            return cnn_err_set(c->err, CNN_EFORMAT,
                               "onnx: layer %d weight %d: %zu values, the layer needs %zu",
                               p->layer, p->slot, p->count, dst ? count : 0);
        memcpy(dst, p->data, count * sizeof *dst);
    }
    return 0;
}

/* Messages quote names from the file: control and non-ASCII bytes become '?' so that a log
 * line or a JSON reply carries them safely. */
static void clean_msg(struct cnn_err *err)
{
    for (char *p = err ? err->msg : NULL; p && *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
}

/* The model of mp with its weights, not compiled; everything else the walk made is freed.
 * The initializers' values in mp are consumed: mp is only good for freeing afterwards. */
static int build(Onnx__ModelProto *mp, const struct cnn_onnx_feed *feeds, int n_feeds,
                 struct cnn_model **out, struct cnn_err *err)
{
    Onnx__GraphProto *g = mp->graph;
    if (!g)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: model has no graph");
    struct onnx_ctx c = {.err = err};
    int rc = model_opset(mp, err);
    if (rc < 0)
        return rc;
    c.opset = rc;
    const Onnx__ValueInfoProto *image = NULL;
    for (size_t k = 0; k < g->n_input && !image; k++)
        if (g->input[k]->name && !is_initializer(g, g->input[k]->name))
            image = g->input[k];
    if (!image)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: graph has no input besides initializers");
    struct cnn_preproc pp;
    int rank = 4;
    if ((rc = input_preproc(image, g, &pp, &rank, err)) != 0 ||
        (rc = onnx_meta_preproc(mp, &pp, err)) != 0)
        return rc;
    rank = rank == 1 ? 2 : rank; /* (N, 1), elementwise ops only */
    const Onnx__TensorShapeProto__Dimension *n0 = image->type->tensor_type->shape->dim[0];
    if (n0->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && n0->dim_value > 0)
        c.batch = n0->dim_value;
    c.m = cnn_model_create(&pp, err);
    if (!c.m)
        return err ? err->code : CNN_EINVAL;
    if ((rc = define_inputs(&c, g, rank, feeds, n_feeds)) == 0 && (rc = run_nodes(&c, g)) == 0)
        rc = check_output(&c, g);
    /* The layers' weights wait in c.pend now: free the constants before the parameter block
     * exists, so that the weights are never held three times over. */
    onnx_values_free(&c);
    if (rc == 0 && (rc = fill_weights(&c)) == 0)
        rc = onnx_meta_apply(mp, c.m, err);
    for (size_t k = 0; k < c.n_pend; k++)
        free(c.pend[k].data);
    free(c.pend);
    if (rc) {
        cnn_model_destroy(c.m);
        return rc;
    }
    *out = c.m;
    return 0;
}

/* Checks the sizes and the nesting of data and the feeds, then unpacks data into *mp. */
static int unpack(const void *data, size_t size, const struct cnn_onnx_feed *feeds, int n_feeds,
                  Onnx__ModelProto **mp, struct cnn_err *err)
{
    *mp = NULL;
    if ((!data && size) || n_feeds < 0 || (n_feeds && !feeds))
        return cnn_err_set(err, CNN_EINVAL, "onnx: no data");
    if (size > CNN_ONNX_MAX_FILE_BYTES)
        return cnn_err_set(err, CNN_ELIMIT, "onnx: file of %zu bytes (at most %zu)", size,
                           CNN_ONNX_MAX_FILE_BYTES);
    for (int k = 0; k < n_feeds; k++)
        if (onnx_check_nesting(feeds[k].data, feeds[k].size, err))
            return CNN_EFORMAT;
    if (onnx_check_nesting(data, size, err))
        return CNN_EFORMAT;
    *mp = onnx__model_proto__unpack(NULL, size, data);
    if (!*mp)
        return cnn_err_set(err, CNN_EFORMAT,
                           "onnx: not a valid ModelProto (truncated or not protobuf)");
    return 0;
}

/* Builds from mp, frees mp (before compiling, to keep the peak memory down), compiles. */
static int finish(Onnx__ModelProto *mp, const struct cnn_onnx_feed *feeds, int n_feeds,
                  struct cnn_model **out, struct cnn_err *err)
{
    struct cnn_model *m = NULL;
    int rc = build(mp, feeds, n_feeds, &m, err);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (rc == 0 && (rc = cnn_model_compile(m, err)) != 0)
        cnn_model_destroy(m);
    if (rc) {
        clean_msg(err);
        return rc;
    }
    *out = m;
    return 0;
}

int cnn_onnx_load_mem(const void *data, size_t size, const struct cnn_onnx_feed *feeds, int n_feeds,
                      struct cnn_model **out, struct cnn_err *err)
{
    if (!out)
        return cnn_err_set(err, CNN_EINVAL, "onnx: no output pointer");
    *out = NULL;
    Onnx__ModelProto *mp;
    int rc = unpack(data, size, feeds, n_feeds, &mp, err);
    return rc ? rc : finish(mp, feeds, n_feeds, out, err);
}

/* The whole regular file at path into *buf (owned), at most CNN_ONNX_MAX_FILE_BYTES. */
static int read_file(const char *path, uint8_t **buf, size_t *size, struct cnn_err *err)
{
    *buf = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return cnn_err_set(err, errno == ENOENT || errno == ENOTDIR ? CNN_ENOENT : CNN_EIO,
                           "onnx: cannot open the model file");
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = cnn_err_set(err, CNN_EFORMAT, "onnx: model file is not a regular file");
    else if ((uint64_t)st.st_size > CNN_ONNX_MAX_FILE_BYTES)
        rc = cnn_err_set(err, CNN_ELIMIT, "onnx: model file of %lld bytes (at most %zu)",
                         (long long)st.st_size, CNN_ONNX_MAX_FILE_BYTES);
    else if (!(*buf = malloc(st.st_size ? (size_t)st.st_size : 1)))
        rc = cnn_err_set(err, CNN_ENOMEM, "onnx: out of memory for %lld bytes",
                         (long long)st.st_size);
    size_t got = 0;
    while (rc == 0 && got < (size_t)st.st_size) {
        ssize_t r = read(fd, *buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = cnn_err_set(err, CNN_EIO, "onnx: read of the model file failed");
        else
            got += (size_t)r;
    }
    close(fd);
    if (rc) {
        free(*buf);
        *buf = NULL;
        *size = 0;
    }
    *size = got;
    return rc;
}

int cnn_onnx_load(const char *path, struct cnn_model **out, struct cnn_err *err)
{
    if (!out || !path)
        return cnn_err_set(err, CNN_EINVAL, "onnx: no path or output pointer");
    *out = NULL;
    uint8_t *buf;
    size_t size = 0;
    Onnx__ModelProto *mp = NULL;
    int rc = read_file(path, &buf, &size, err);
    if (rc == 0)
        rc = unpack(buf, size, NULL, 0, &mp, err);
    free(buf); /* protobuf-c copied what it keeps */
    return rc ? rc : finish(mp, NULL, 0, out, err);
}
