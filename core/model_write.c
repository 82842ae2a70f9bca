/* cnn_model_save: writes the native model file (docs/model-format.md) atomically through
 * the durable-write helper (core/durable.h), so the target path only ever holds a complete
 * file, format version 2: the header's CRC-32 covers every other byte of the file.
 * Saves the original weights (m->params), never the BN-folded copies of a compiled model. */
#include "model.h"
#include "durable.h"
#include "model_format.h"
#include "model_internal.h"
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct plan {
    uint64_t off[MF_SEC_COUNT], size[MF_SEC_COUNT];
    uint64_t file_size;
    uint32_t n_tensors;
    size_t meta_len;
};

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* Checks that m can be written and that what is written will load again. */
static int check_model(const struct cnn_model *m, struct plan *pl, struct cnn_err *err)
{
    if (m->n_layers < 1 || m->n_layers > CNN_MAX_LAYERS)
        return cnn_err_set(err, CNN_EINVAL, "model save: %d layers", m->n_layers);
    size_t floats = 0;
    pl->n_tensors = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const struct cnn_layer *l = &m->layers[i];
        size_t len = strnlen(l->name, CNN_NAME_MAX);
        if (len == 0 || len >= CNN_NAME_MAX ||
            !cnn_mf_utf8_valid((const unsigned char *)l->name, len))
            return cnn_err_set(err, CNN_EINVAL, "model save: layer %d name is not valid UTF-8", i);
        int ndims[CNN_MAX_WEIGHTS_PER_LAYER], dims[CNN_MAX_WEIGHTS_PER_LAYER][CNN_MF_MAX_DIMS];
        int n = cnn_mf_slot_dims(l, ndims, dims);
        if (n != l->n_weights)
            return cnn_err_set(err, CNN_EINVAL, "model save: layer %s has %d weight slots, not %d",
                               l->name, l->n_weights, n);
        for (int s = 0; s < n; s++) {
            size_t count;
            if (cnn_dims_count(dims[s], ndims[s], &count) || count != l->weight_count[s])
                return cnn_err_set(err, CNN_EINVAL, "model save: layer %s slot %d size mismatch",
                                   l->name, s);
            size_t end;
            if (!m->params || cnn_add_size(l->weight_offset[s], count, &end) || end > m->n_params)
                return cnn_err_set(err, CNN_EINVAL,
                                   "model save: layer %s has no parameter storage (alloc first)",
                                   l->name);
            if (cnn_add_size(floats, align_up(count, 16), &floats))
                return cnn_err_set(err, CNN_ELIMIT, "model save: too many weights");
            pl->n_tensors++;
        }
    }
    if (floats > CNN_MF_MAX_WEIGHT_BYTES / sizeof(float))
        return cnn_err_set(err, CNN_ELIMIT, "model save: weights over 16 GiB");
    if (m->n_labels != 0 && m->n_labels != cnn_model_num_classes(m))
        return cnn_err_set(err, CNN_EINVAL, "model save: %d labels for %d classes", m->n_labels,
                           cnn_model_num_classes(m));
    for (int i = 0; i < m->n_labels; i++) {
        size_t len = strnlen(m->labels[i], CNN_LABEL_MAX);
        if (len == 0 || len >= CNN_LABEL_MAX ||
            !cnn_mf_utf8_valid((const unsigned char *)m->labels[i], len))
            return cnn_err_set(err, CNN_EINVAL, "model save: label %d is empty or not UTF-8", i);
    }
    pl->meta_len = m->meta ? strlen(m->meta) : 0;
    if (pl->meta_len > CNN_MF_META_MAX)
        return cnn_err_set(err, CNN_ELIMIT, "model save: metadata over %u bytes", CNN_MF_META_MAX);
    if (!cnn_mf_utf8_valid((const unsigned char *)(m->meta ? m->meta : ""), pl->meta_len))
        return cnn_err_set(err, CNN_EINVAL, "model save: metadata is not valid UTF-8");

    uint64_t layers = 0;
    for (int i = 0; i < m->n_layers; i++)
        layers += CNN_MF_LAYER_FIXED + 4u * (uint64_t)m->layers[i].n_inputs +
                  CNN_MF_SLOT_SIZE * (uint64_t)m->layers[i].n_weights;
    pl->size[MF_SEC_PREPROC] = CNN_MF_PREPROC_SIZE;
    pl->size[MF_SEC_LAYERS] = layers;
    pl->size[MF_SEC_LABELS] = (uint64_t)m->n_labels * CNN_MF_LABEL_SIZE;
    pl->size[MF_SEC_META] = 4 + (uint64_t)pl->meta_len + 1;
    pl->size[MF_SEC_WEIGHTS] = (uint64_t)floats * sizeof(float);
    uint64_t off = CNN_MF_HEADER_SIZE;
    for (int s = 0; s < MF_SEC_COUNT; s++) {
        if (s == MF_SEC_WEIGHTS)
            off = align_up(off, CNN_MF_ALIGN);
        pl->off[s] = off;
        off += pl->size[s];
    }
    pl->file_size = off;
    return 0;
}

static void put_preproc(unsigned char *p, const struct cnn_preproc *pp)
{
    mf_put_u32(p + 0, (uint32_t)pp->c);
    mf_put_u32(p + 4, (uint32_t)pp->h);
    mf_put_u32(p + 8, (uint32_t)pp->w);
    mf_put_u32(p + 12, (uint32_t)pp->resize);
    mf_put_u32(p + 16, (uint32_t)pp->resize_short);
    mf_put_u32(p + 20, (uint32_t)pp->invert);
    for (int c = 0; c < 3; c++) {
        mf_put_u32(p + 24 + 4 * c, mf_f32_bits(pp->mean[c]));
        mf_put_u32(p + 36 + 4 * c, mf_f32_bits(pp->std[c]));
    }
}

/* Writes one layer record at p; returns its size.  *woff: next tensor's file offset. */
static size_t put_layer(unsigned char *p, const struct cnn_layer *l, uint64_t *woff)
{
    int ndims[CNN_MAX_WEIGHTS_PER_LAYER], dims[CNN_MAX_WEIGHTS_PER_LAYER][CNN_MF_MAX_DIMS];
    int n_slots = cnn_mf_slot_dims(l, ndims, dims);
    int n_inputs = l->kind == CNN_LAYER_INPUT ? 0 : l->n_inputs;
    size_t size = CNN_MF_LAYER_FIXED + 4u * (size_t)n_inputs + CNN_MF_SLOT_SIZE * (size_t)n_slots;
    uint32_t words[CNN_MF_PARAM_WORDS];

    mf_put_u32(p + MF_L_RECORD_SIZE, (uint32_t)size);
    mf_put_u32(p + MF_L_KIND, (uint32_t)l->kind);
    memcpy(p + MF_L_NAME, l->name, strnlen(l->name, CNN_NAME_MAX)); /* rest stays 0 */
    mf_put_u32(p + MF_L_N_INPUTS, (uint32_t)n_inputs);
    mf_put_u32(p + MF_L_N_SLOTS, (uint32_t)n_slots);
    mf_put_u32(p + MF_L_OUT_C, (uint32_t)l->c);
    mf_put_u32(p + MF_L_OUT_H, (uint32_t)l->h);
    mf_put_u32(p + MF_L_OUT_W, (uint32_t)l->w);
    cnn_mf_pack_params(l, words);
    for (int i = 0; i < CNN_MF_PARAM_WORDS; i++)
        mf_put_u32(p + MF_L_PARAMS + 4 * i, words[i]);
    for (int i = 0; i < n_inputs; i++)
        mf_put_u32(p + MF_L_INPUTS + 4 * i, (uint32_t)l->inputs[i]);
    unsigned char *sp = p + MF_L_INPUTS + 4 * (size_t)n_inputs;
    for (int s = 0; s < n_slots; s++, sp += CNN_MF_SLOT_SIZE) {
        mf_put_u32(sp + MF_S_NDIMS, (uint32_t)ndims[s]);
        for (int d = 0; d < ndims[s]; d++)
            mf_put_u32(sp + MF_S_DIMS + 4 * d, (uint32_t)dims[s][d]);
        mf_put_u64(sp + MF_S_OFFSET, *woff);
        *woff += align_up(l->weight_count[s], 16) * sizeof(float);
    }
    return size;
}

/* Everything before the weights: header, preproc, layers, labels, meta, zero padding. */
static unsigned char *build_head(const struct cnn_model *m, const struct plan *pl)
{
    size_t head = (size_t)pl->off[MF_SEC_WEIGHTS];
    unsigned char *b = calloc(1, head);
    if (!b)
        return NULL;
    memcpy(b + MF_H_MAGIC, CNN_MF_MAGIC, 8);
    mf_put_u32(b + MF_H_VERSION, CNN_MF_VERSION);
    mf_put_u32(b + MF_H_HEADER_SIZE, CNN_MF_HEADER_SIZE);
    mf_put_u64(b + MF_H_FILE_SIZE, pl->file_size);
    mf_put_u32(b + MF_H_LAYER_COUNT, (uint32_t)m->n_layers);
    mf_put_u32(b + MF_H_TENSOR_COUNT, pl->n_tensors);
    mf_put_u32(b + MF_H_LABEL_COUNT, (uint32_t)m->n_labels);
    mf_put_u32(b + MF_H_FLAGS, m->pp.bgr ? CNN_MF_FLAG_BGR : 0u); /* 0: as before BGR */
    for (int s = 0; s < MF_SEC_COUNT; s++) {
        mf_put_u64(b + MF_H_SECTIONS + 16 * s, pl->off[s]);
        mf_put_u64(b + MF_H_SECTIONS + 16 * s + 8, pl->size[s]);
    }
    put_preproc(b + pl->off[MF_SEC_PREPROC], &m->pp);
    unsigned char *p = b + pl->off[MF_SEC_LAYERS];
    uint64_t woff = pl->off[MF_SEC_WEIGHTS];
    for (int i = 0; i < m->n_layers; i++)
        p += put_layer(p, &m->layers[i], &woff);
    for (int i = 0; i < m->n_labels; i++)
        memcpy(b + pl->off[MF_SEC_LABELS] + (size_t)i * CNN_MF_LABEL_SIZE, m->labels[i],
               strnlen(m->labels[i], CNN_LABEL_MAX));
    p = b + pl->off[MF_SEC_META];
    mf_put_u32(p, (uint32_t)pl->meta_len);
    if (pl->meta_len)
        memcpy(p + 4, m->meta, pl->meta_len); /* the NUL after it is already 0 */
    return b;
}

/* The version-2 checksum of the file build_head and write_file make: head (its checksum
 * field skipped), then each tensor and its zero padding, in file order. */
static uint32_t file_crc(const struct cnn_model *m, const struct plan *pl,
                         const unsigned char *head)
{
    static const float zeros[16];
    uint32_t crc = cnn_mf_crc(0, head, MF_H_CHECKSUM);
    crc = cnn_mf_crc(crc, head + MF_H_RESERVED2, (size_t)pl->off[MF_SEC_WEIGHTS] - MF_H_RESERVED2);
    for (int i = 0; i < m->n_layers; i++) {
        const struct cnn_layer *l = &m->layers[i];
        for (int s = 0; s < l->n_weights; s++) {
            size_t n = l->weight_count[s], pad = align_up(n, 16) - n;
            crc = cnn_mf_crc(crc, m->params + l->weight_offset[s], n * sizeof(float));
            crc = cnn_mf_crc(crc, zeros, pad * sizeof(float));
        }
    }
    return crc;
}

/* Writes the whole file to fd; returns 0 or an errno value. */
static int write_file(int fd, const struct cnn_model *m, const struct plan *pl,
                      const unsigned char *head)
{
    static const float zeros[16];
    int e = cnn_durable_write_all(fd, head, (size_t)pl->off[MF_SEC_WEIGHTS]);
    for (int i = 0; i < m->n_layers && !e; i++) {
        const struct cnn_layer *l = &m->layers[i];
        for (int s = 0; s < l->n_weights && !e; s++) {
            size_t n = l->weight_count[s], pad = align_up(n, 16) - n;
            e = cnn_durable_write_all(fd, m->params + l->weight_offset[s], n * sizeof(float));
            if (!e && pad)
                e = cnn_durable_write_all(fd, zeros, pad * sizeof(float));
        }
    }
    return e;
}

struct save_ctx {
    const struct cnn_model *m;
    const struct plan *pl;
    const unsigned char *head;
};

static int fill(int fd, void *arg)
{
    const struct save_ctx *c = arg;
    return write_file(fd, c->m, c->pl, c->head);
}

int cnn_model_save(const struct cnn_model *m, const char *path, struct cnn_err *err)
{
    if (!m || !path || !*path)
        return cnn_err_set(err, CNN_EINVAL, "model save: no model or path");
    struct plan pl = {0};
    int rc = check_model(m, &pl, err);
    if (rc)
        return rc;
    unsigned char *head = build_head(m, &pl);
    if (!head)
        return cnn_err_set(err, CNN_ENOMEM, "model save: out of memory");
    mf_put_u32(head + MF_H_CHECKSUM, file_crc(m, &pl, head));
    struct save_ctx c = {m, &pl, head};
    struct cnn_err e = {0};
    rc = cnn_durable_stream(path, 0644, fill, &c, &e);
    free(head);
    return rc ? cnn_err_set(err, rc, "model save: %s", e.msg) : 0;
}
