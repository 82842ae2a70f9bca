/* Graph builder helpers for the architecture files: one function per layer kind that fills
 * a struct cnn_layer_desc, names the layer with the current prefix and keeps the first
 * error, so a failed add stops the rest of the build. */
#include "arch_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cnn_arch_prefix(struct cnn_arch_builder *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->prefix, sizeof b->prefix, fmt, ap);
    va_end(ap);
    if ((n < 0 || (size_t)n >= sizeof b->prefix) && b->rc == 0)
        b->rc = cnn_err_set(b->err, CNN_EINVAL, "arch: layer name prefix too long");
}

/* Adds d with the single input `in` (or the n inputs given) and records the first error. */
static int add(struct cnn_arch_builder *b, struct cnn_layer_desc *d, const char *name, int n,
               const int *inputs)
{
    if (b->rc)
        return b->rc;
    char full[CNN_NAME_MAX];
    size_t lp = strlen(b->prefix), ln = strlen(name);
    if (lp + ln >= sizeof full)
        return b->rc = cnn_err_set(b->err, CNN_EINVAL, "arch: layer name %s%s too long", b->prefix,
                                   name);
    memcpy(full, b->prefix, lp);
    memcpy(full + lp, name, ln + 1);
    d->name = full;
    d->n_inputs = n;
    d->inputs = inputs;
    int idx = cnn_model_add(b->m, d, b->err);
    if (idx < 0)
        b->rc = idx;
    return idx;
}

static int add1(struct cnn_arch_builder *b, struct cnn_layer_desc *d, int in, const char *name)
{
    int inputs[1] = {in};
    return add(b, d, name, 1, inputs);
}

int cnn_arch_conv(struct cnn_arch_builder *b, int in, const char *name, int oc, int k, int stride,
                  int pad, int has_bias)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONV2D};
    struct cnn_conv2d *c = &d.p.conv;
    c->oc = oc;
    c->kh = c->kw = k;
    c->sh = c->sw = stride;
    c->dh = c->dw = 1;
    c->pad_t = c->pad_l = c->pad_b = c->pad_r = pad;
    c->groups = 1;
    c->has_bias = has_bias;
    return add1(b, &d, in, name);
}

int cnn_arch_bn(struct cnn_arch_builder *b, int in, const char *name)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_BATCHNORM};
    d.p.bn.eps = 1e-5f; /* PyTorch's BatchNorm2d default, used by every model here */
    return add1(b, &d, in, name);
}

int cnn_arch_relu(struct cnn_arch_builder *b, int in, const char *name)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_ACT};
    d.p.act.kind = CNN_ACT_RELU;
    return add1(b, &d, in, name);
}

static int pool(struct cnn_arch_builder *b, enum cnn_layer_kind kind, int in, const char *name,
                int k, int stride, int pad, int ceil_mode)
{
    struct cnn_layer_desc d = {.kind = kind};
    struct cnn_pool2d *p = &d.p.pool;
    p->kh = p->kw = k;
    p->sh = p->sw = stride;
    p->pad_t = p->pad_l = p->pad_b = p->pad_r = pad;
    p->ceil_mode = ceil_mode;
    return add1(b, &d, in, name);
}

int cnn_arch_maxpool(struct cnn_arch_builder *b, int in, const char *name, int k, int stride,
                     int pad, int ceil_mode)
{
    return pool(b, CNN_LAYER_MAXPOOL, in, name, k, stride, pad, ceil_mode);
}

int cnn_arch_avgpool(struct cnn_arch_builder *b, int in, const char *name, int k, int stride,
                     int pad, int ceil_mode)
{
    return pool(b, CNN_LAYER_AVGPOOL, in, name, k, stride, pad, ceil_mode);
}

int cnn_arch_global_avgpool(struct cnn_arch_builder *b, int in, const char *name)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_GLOBAL_AVGPOOL};
    return add1(b, &d, in, name);
}

int cnn_arch_lrn(struct cnn_arch_builder *b, int in, const char *name, int size, float alpha,
                 float beta, float k)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_LRN};
    d.p.lrn = (struct cnn_lrn){.size = size, .alpha = alpha, .beta = beta, .k = k};
    return add1(b, &d, in, name);
}

int cnn_arch_dropout(struct cnn_arch_builder *b, int in, const char *name, float rate)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_DROPOUT};
    d.p.dropout_rate = rate;
    return add1(b, &d, in, name);
}

int cnn_arch_flatten(struct cnn_arch_builder *b, int in, const char *name)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_FLATTEN};
    return add1(b, &d, in, name);
}

int cnn_arch_dense(struct cnn_arch_builder *b, int in, const char *name, int out)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_DENSE};
    d.p.dense = (struct cnn_dense){.out = out, .has_bias = 1};
    return add1(b, &d, in, name);
}

int cnn_arch_softmax(struct cnn_arch_builder *b, int in, const char *name)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_SOFTMAX};
    return add1(b, &d, in, name);
}

int cnn_arch_add(struct cnn_arch_builder *b, int n, const int *inputs, const char *name)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_ADD};
    return add(b, &d, name, n, inputs);
}

int cnn_arch_concat(struct cnn_arch_builder *b, int n, const int *inputs, const char *name)
{
    struct cnn_layer_desc d = {.kind = CNN_LAYER_CONCAT};
    return add(b, &d, name, n, inputs);
}
