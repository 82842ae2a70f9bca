/* Model graph: building layer by layer with shape checks, the parameter block, random
 * initialisation and read accessors; what each layer kind means is its row (layer_kind.h).
 * Compilation (BN folding, fusion, the plan) lives in model_compile.c; the file format in
 * model_read.c / model_write.c. */
#include "model.h"

#include "big_block.h"
#include "layer_kind.h"
#include "model_internal.h"
#include "tensor.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int cnn_preproc_check(const struct cnn_preproc *pp, struct cnn_err *err)
{
    if (!pp)
        return cnn_err_set(err, CNN_EINVAL, "preproc: no preprocessing given");
    if (pp->c < 1 || pp->c > CNN_PREPROC_MAX_C)
        return cnn_err_set(err, CNN_EINVAL, "preproc: channels %d out of range 1..%d", pp->c,
                           CNN_PREPROC_MAX_C);
    if (pp->h < 1 || pp->w < 1 || pp->h > CNN_PREPROC_MAX_DIM || pp->w > CNN_PREPROC_MAX_DIM)
        return cnn_err_set(err, CNN_EINVAL, "preproc: input size %dx%d out of range 1..%d",
                           pp->h, pp->w, CNN_PREPROC_MAX_DIM);
    if (pp->resize == CNN_RESIZE_SHORTER_CROP) {
        /* the crop must fit whichever side of the image is the shorter */
        int crop = pp->h > pp->w ? pp->h : pp->w;
        if (pp->resize_short < crop || pp->resize_short > CNN_PREPROC_MAX_DIM)
            return cnn_err_set(err, CNN_EINVAL,
                               "preproc: resize_short %d outside %d..%d (the crop %dx%d must fit)",
                               pp->resize_short, crop, CNN_PREPROC_MAX_DIM, pp->w, pp->h);
    } else if (pp->resize != CNN_RESIZE_STRETCH) {
        return cnn_err_set(err, CNN_EINVAL, "preproc: unknown resize mode %d", (int)pp->resize);
    }
    if (pp->bgr != 0 && pp->bgr != 1)
        return cnn_err_set(err, CNN_EINVAL, "preproc: bgr is %d, want 0 or 1", pp->bgr);
    if (pp->bgr && pp->c != 3)
        return cnn_err_set(err, CNN_EINVAL, "preproc: BGR channel order needs 3 channels, not %d",
                           pp->c);
    for (int c = 0; c < cnn_preproc_norm_channels(pp); c++) {
        if (!isfinite(pp->mean[c]) || !isfinite(pp->std[c]) || pp->std[c] == 0.0f)
            return cnn_err_set(err, CNN_EINVAL, "preproc: mean/std of channel %d invalid", c);
    }
    return 0;
}

int cnn_parse_floats(const char *s, float *v, int max)
{
    for (int k = 0; k < max; k++) {
        char *end;
        errno = 0;
        v[k] = strtof(s, &end);
        if (errno || end == s || !isfinite(v[k]) || (*end != '\0' && *end != ','))
            return -1;
        if (*end == '\0')
            return k + 1;
        s = end + 1;
    }
    return -1;
}

int cnn_preproc_check_image(const struct cnn_preproc *pp, struct cnn_err *err)
{
    int rc = cnn_preproc_check(pp, err);
    if (rc == 0 && pp->c != 1 && pp->c != 3)
        rc = cnn_err_set(err, CNN_EINVAL,
                         "preproc: the model takes %d channels, images have 1 or 3 (feed tensors)",
                         pp->c);
    return rc;
}

struct cnn_model *cnn_model_create(const struct cnn_preproc *pp, struct cnn_err *err)
{
    if (cnn_preproc_check(pp, err))
        return NULL;
    struct cnn_model *m = calloc(1, sizeof *m);
    if (!m) {
        cnn_err_set(err, CNN_ENOMEM, "model: out of memory");
        return NULL;
    }
    m->pp = *pp;
    m->cap_layers = 16;
    m->layers = calloc((size_t)m->cap_layers, sizeof *m->layers);
    if (!m->layers) {
        free(m);
        cnn_err_set(err, CNN_ENOMEM, "model: out of memory");
        return NULL;
    }
    struct cnn_layer *in = &m->layers[0];
    in->kind = CNN_LAYER_INPUT;
    snprintf(in->name, sizeof in->name, "input");
    in->c = pp->c;
    in->h = pp->h;
    in->w = pp->w;
    m->n_layers = 1;
    return m;
}

void cnn_model_destroy(struct cnn_model *m)
{
    if (!m)
        return;
    if (m->map)
        munmap(m->map, m->map_size);
    free(m->owned_params);
    free(m->layers);
    free(m->labels);
    free(m->meta);
    free(m->ops);
    free(m->alias_of);
    free(m->last_use);
    free(m->op_inputs);
    cnn_big_block_free(m->folded, m->folded_bytes);
    free(m);
}

/* Fills out-shape and weight slots of l, whose inputs are already set, from its row. */
static int infer_layer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err)
{
    l->n_weights = 0;
    int rc = cnn_layer_kind_ops(l->kind)->infer(m, l, err);
    if (rc)
        return rc;
    size_t per_image;
    int od[3] = {l->c, l->h, l->w};
    if (l->c < 1 || l->h < 1 || l->w < 1 || cnn_dims_count(od, 3, &per_image) ||
        per_image > CNN_MAX_IMAGE_FLOATS)
        return cnn_err_set(err, CNN_ELIMIT, "layer %s: output %dx%dx%d out of range", l->name,
                           l->c, l->h, l->w);
    return 0;
}

int cnn_model_add(struct cnn_model *m, const struct cnn_layer_desc *d, struct cnn_err *err)
{
    if (m->params || m->compiled)
        return cnn_err_set(err, CNN_EINVAL, "model: cannot add layers after params exist");
    if (m->n_layers >= CNN_MAX_LAYERS)
        return cnn_err_set(err, CNN_ELIMIT, "model: more than %d layers", CNN_MAX_LAYERS);
    if (d->kind == CNN_LAYER_INPUT || (int)d->kind <= 0 || d->kind >= CNN_LAYER_KIND_COUNT)
        return cnn_err_set(err, CNN_EINVAL, "model: layer %d has invalid kind %d", m->n_layers,
                           (int)d->kind);
    if (d->n_inputs < 0 || d->n_inputs > CNN_MAX_INPUTS || (d->n_inputs > 0 && !d->inputs))
        return cnn_err_set(err, CNN_EINVAL, "model: layer %d has %d inputs (max %d)",
                           m->n_layers, d->n_inputs, CNN_MAX_INPUTS);
    if (m->n_layers == m->cap_layers) {
        int cap = m->cap_layers * 2;
        struct cnn_layer *nl = realloc(m->layers, (size_t)cap * sizeof *nl);
        if (!nl)
            return cnn_err_set(err, CNN_ENOMEM, "model: out of memory");
        m->layers = nl;
        m->cap_layers = cap;
    }
    int idx = m->n_layers;
    struct cnn_layer *l = &m->layers[idx];
    memset(l, 0, sizeof *l);
    l->kind = d->kind;
    if (d->name) {
        size_t len = strnlen(d->name, CNN_NAME_MAX);
        if (len == 0 || len >= CNN_NAME_MAX)
            return cnn_err_set(err, CNN_EINVAL, "model: layer %d name empty or too long", idx);
        memcpy(l->name, d->name, len);
    } else {
        snprintf(l->name, sizeof l->name, "%s%d", cnn_layer_kind_name(d->kind), idx);
    }
    if (cnn_model_find_layer(m, l->name) >= 0)
        return cnn_err_set(err, CNN_EINVAL, "model: duplicate layer name %s", l->name);
    if (d->n_inputs == 0) {
        l->n_inputs = 1;
        l->inputs[0] = idx - 1;
    } else {
        l->n_inputs = d->n_inputs;
        for (int i = 0; i < d->n_inputs; i++) {
            if (d->inputs[i] < 0 || d->inputs[i] >= idx)
                return cnn_err_set(err, CNN_EINVAL,
                                   "layer %s: input %d refers to layer %d (must be < %d)",
                                   l->name, i, d->inputs[i], idx);
            l->inputs[i] = d->inputs[i];
        }
    }
    if (l->n_inputs > 1 && !cnn_layer_kind_ops(l->kind)->multi_input)
        return cnn_err_set(err, CNN_EINVAL, "layer %s: %s takes one input", l->name,
                           cnn_layer_kind_name(l->kind));
    memcpy(&l->p, &d->p, sizeof l->p);
    int rc = infer_layer(m, l, err);
    if (rc)
        return rc;
    m->n_layers++;
    return idx;
}

int cnn_model_set_labels(struct cnn_model *m, const char *const *labels, int n,
                         struct cnn_err *err)
{
    if (n != cnn_model_num_classes(m))
        return cnn_err_set(err, CNN_EINVAL, "model: %d labels for %d classes", n,
                           cnn_model_num_classes(m));
    char(*copy)[CNN_LABEL_MAX] = calloc((size_t)n, sizeof *copy);
    if (!copy)
        return cnn_err_set(err, CNN_ENOMEM, "model: out of memory");
    for (int i = 0; i < n; i++) {
        size_t len = strnlen(labels[i], CNN_LABEL_MAX);
        if (len == 0 || len >= CNN_LABEL_MAX) {
            free(copy);
            return cnn_err_set(err, CNN_EINVAL, "model: label %d empty or longer than %d", i,
                               CNN_LABEL_MAX - 1);
        }
        memcpy(copy[i], labels[i], len);
    }
    free(m->labels);
    m->labels = copy;
    m->n_labels = n;
    return 0;
}

int cnn_model_set_preproc(struct cnn_model *m, const struct cnn_preproc *pp, struct cnn_err *err)
{
    if (pp->c != m->pp.c || pp->h != m->pp.h || pp->w != m->pp.w)
        return cnn_err_set(err, CNN_EINVAL,
                           "model: preprocessing for a %dx%dx%d input, the model takes %dx%dx%d",
                           pp->c, pp->h, pp->w, m->pp.c, m->pp.h, m->pp.w);
    int rc = cnn_preproc_check(pp, err);
    if (rc == 0)
        m->pp = *pp;
    return rc;
}

int cnn_model_set_meta(struct cnn_model *m, const char *text, struct cnn_err *err)
{
    size_t len = strlen(text);
    if (len > (1u << 20))
        return cnn_err_set(err, CNN_ELIMIT, "model: metadata over 1 MiB");
    char *copy = malloc(len + 1);
    if (!copy)
        return cnn_err_set(err, CNN_ENOMEM, "model: out of memory");
    memcpy(copy, text, len + 1);
    free(m->meta);
    m->meta = copy;
    return 0;
}

int cnn_model_layout_params(struct cnn_model *m, struct cnn_err *err)
{
    size_t off = 0;
    for (int i = 0; i < m->n_layers; i++) {
        struct cnn_layer *l = &m->layers[i];
        for (int s = 0; s < l->n_weights; s++) {
            l->weight_offset[s] = off;
            size_t padded = (l->weight_count[s] + 15) & ~(size_t)15;
            if (cnn_add_size(off, padded, &off) || off > ((size_t)1 << 32))
                return cnn_err_set(err, CNN_ELIMIT, "model: over 2^32 parameters");
        }
    }
    m->n_params = off;
    return 0;
}

int cnn_model_alloc_params(struct cnn_model *m, struct cnn_err *err)
{
    if (m->params)
        return cnn_err_set(err, CNN_EINVAL, "model: params already allocated");
    int rc = cnn_model_layout_params(m, err);
    if (rc)
        return rc;
    m->owned_params = aligned_alloc(64, ((m->n_params ? m->n_params : 16) * sizeof(float) + 63) &
                                            ~(size_t)63);
    if (!m->owned_params)
        return cnn_err_set(err, CNN_ENOMEM, "model: out of memory for %zu parameters",
                           m->n_params);
    memset(m->owned_params, 0, m->n_params * sizeof(float));
    m->params = m->owned_params;
    return 0;
}

float *cnn_model_weights_mut(struct cnn_model *m, int layer, int slot, size_t *count)
{
    if (!m->owned_params || m->compiled || layer < 0 || layer >= m->n_layers)
        return NULL;
    const struct cnn_layer *l = &m->layers[layer];
    if (slot < 0 || slot >= l->n_weights)
        return NULL;
    if (count)
        *count = l->weight_count[slot];
    return m->params + l->weight_offset[slot];
}

/* splitmix64: small, seedable, identical on every platform. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) /* (0, 1) */
{
    return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

/* 1 when the layer's output (through a BN) reaches a relu-like activation. */
static int feeds_relu(const struct cnn_model *m, int layer)
{
    for (int j = layer + 1; j < m->n_layers; j++) {
        const struct cnn_layer *l = &m->layers[j];
        if (l->n_inputs != 1 || l->inputs[0] != layer)
            continue;
        if (l->kind == CNN_LAYER_BATCHNORM)
            return feeds_relu(m, j);
        if (l->kind == CNN_LAYER_ACT)
            return l->p.act.kind == CNN_ACT_RELU || l->p.act.kind == CNN_ACT_LEAKY_RELU ||
                   l->p.act.kind == CNN_ACT_CLIP;
        return 0;
    }
    return 0;
}

void cnn_model_init_fan(struct cnn_model *m, int i, double fan_in, double fan_out, int relu,
                        uint64_t *rng)
{
    const struct cnn_layer *l = &m->layers[i];
    float *w = m->params + l->weight_offset[0];
    int he = relu || feeds_relu(m, i);
    /* He: normal, std sqrt(2/fan_in); Xavier: uniform +-sqrt(6/(fan_in+fan_out)) */
    double scale = he ? sqrt(2.0 / fan_in) : sqrt(6.0 / (fan_in + fan_out));
    for (size_t k = 0; k < l->weight_count[0]; k++) {
        double v;
        if (he) {
            double u1 = rng_uniform(rng), u2 = rng_uniform(rng);
            v = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2) * scale;
        } else {
            v = (2.0 * rng_uniform(rng) - 1.0) * scale;
        }
        w[k] = (float)v;
    }
    if (l->n_weights > 1)
        memset(m->params + l->weight_offset[1], 0, l->weight_count[1] * sizeof(float));
}

void cnn_model_init_random(struct cnn_model *m, uint64_t seed)
{
    uint64_t s = seed;
    for (int i = 1; i < m->n_layers; i++) {
        const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(m->layers[i].kind);
        if (k->init)
            k->init(m, i, &s);
    }
}

/* ---- read access --------------------------------------------------------- */

int cnn_model_layer_count(const struct cnn_model *m)
{
    return m->n_layers;
}

const struct cnn_preproc *cnn_model_preproc(const struct cnn_model *m)
{
    return &m->pp;
}

int cnn_model_num_classes(const struct cnn_model *m)
{
    const struct cnn_layer *l = &m->layers[m->n_layers - 1];
    return l->c * l->h * l->w;
}

const char *cnn_model_label(const struct cnn_model *m, int i)
{
    if (m->labels && i >= 0 && i < m->n_labels)
        return m->labels[i];
    return NULL;
}

const char *cnn_model_meta(const struct cnn_model *m)
{
    return m->meta ? m->meta : "";
}

void cnn_model_meta_value(const struct cnn_model *m, const char *key, char *buf, size_t n)
{
    const size_t klen = strlen(key);
    buf[0] = '\0';
    for (const char *line = cnn_model_meta(m); line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=') {
            snprintf(buf, n, "%.*s", (int)(len - klen - 1), line + klen + 1);
            return;
        }
        line = end ? end + 1 : NULL;
    }
}

/* Learned floats: the slots SGD updates (running statistics are not learned). */
static size_t layer_params(const struct cnn_layer *l)
{
    int slots = cnn_layer_kind_ops(l->kind)->learned_slots;
    size_t n = 0;
    for (int s = 0; s < slots && s < l->n_weights; s++)
        n += l->weight_count[s];
    return n;
}

static double layer_flops(const struct cnn_layer *l)
{
    const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(l->kind);
    return k->flops ? k->flops(l) : 0.0;
}

size_t cnn_model_param_count(const struct cnn_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->n_layers; i++)
        n += layer_params(&m->layers[i]);
    return n;
}

double cnn_model_flops(const struct cnn_model *m)
{
    double f = 0;
    for (int i = 0; i < m->n_layers; i++)
        f += layer_flops(&m->layers[i]);
    return f;
}

void cnn_model_layer_info(const struct cnn_model *m, int i, struct cnn_layer_info *out)
{
    const struct cnn_layer *l = &m->layers[i];
    out->kind = l->kind;
    out->name = l->name;
    out->n_inputs = l->kind == CNN_LAYER_INPUT ? 0 : l->n_inputs;
    out->inputs = l->inputs;
    out->c = l->c;
    out->h = l->h;
    out->w = l->w;
    out->params = layer_params(l);
    out->flops = layer_flops(l);
}

int cnn_model_find_layer(const struct cnn_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++) {
        if (strcmp(m->layers[i].name, name) == 0)
            return i;
    }
    return -1;
}
