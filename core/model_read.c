/* cnn_model_load / cnn_model_load_mem: read the native model file (docs/model-format.md).
 * The header, then (version 2) the whole file's CRC-32, then every other field is checked
 * before it is used, each failure with its own message; the model is rebuilt through the
 * model.h API (which re-checks shapes), then its weights point into a read-only mapping of
 * the file (or an owned copy for load_mem) and it is compiled. */
#include "model.h"
#include "model_format.h"
#include "onnx.h"
#include "model_internal.h"
#include "tensor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const sec_names[MF_SEC_COUNT] = {"preproc", "layers", "labels", "meta",
                                                    "weights"};

struct file {
    const unsigned char *b;
    size_t size;
    uint64_t off[MF_SEC_COUNT], len[MF_SEC_COUNT];
    uint32_t n_layers, n_tensors, n_labels;
    uint32_t flags;   /* header flags, CNN_MF_FLAG_* */
    uint32_t version; /* CNN_MF_VERSION_V1 (no checksum) or CNN_MF_VERSION */
};

static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* Re-labels an error from the model.h API as a file error (keeping ELIMIT / ENOMEM). */
static int wrap(struct cnn_err *err, int rc, const char *what)
{
    if (!err)
        return rc == CNN_EINVAL ? CNN_EFORMAT : rc;
    char inner[sizeof err->msg];
    memcpy(inner, err->msg, sizeof inner);
    return cnn_err_set(err, rc == CNN_EINVAL ? CNN_EFORMAT : rc, "model file: %s%s%s",
                       what ? what : "", what ? ": " : "", inner);
}

static int check_header(struct file *f, struct cnn_err *err)
{
    const unsigned char *b = f->b;
    if (f->size < CNN_MF_HEADER_SIZE)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: truncated: %zu bytes, the header needs %u", f->size,
                           CNN_MF_HEADER_SIZE);
    if (memcmp(b + MF_H_MAGIC, CNN_MF_MAGIC, 8) != 0)
        return cnn_err_set(err, CNN_EFORMAT, "model file: bad magic, not a CNNMODEL file");
    f->version = mf_get_u32(b + MF_H_VERSION);
    if (f->version != CNN_MF_VERSION && f->version != CNN_MF_VERSION_V1)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: unsupported format version %u (want %u or %u)", f->version,
                           CNN_MF_VERSION_V1, CNN_MF_VERSION);
    uint32_t hsize = mf_get_u32(b + MF_H_HEADER_SIZE);
    if (hsize != CNN_MF_HEADER_SIZE)
        return cnn_err_set(err, CNN_EFORMAT, "model file: header size %u (want %u)", hsize,
                           CNN_MF_HEADER_SIZE);
    uint64_t fsize = mf_get_u64(b + MF_H_FILE_SIZE);
    if (fsize != f->size)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: file size %zu differs from the header's %llu (truncated?)",
                           f->size, (unsigned long long)fsize);
    f->flags = mf_get_u32(b + MF_H_FLAGS);
    if ((f->flags & ~CNN_MF_FLAGS_KNOWN) != 0)
        return cnn_err_set(err, CNN_EFORMAT, "model file: unknown header flags 0x%x",
                           (unsigned)(f->flags & ~CNN_MF_FLAGS_KNOWN));
    if (f->version == CNN_MF_VERSION_V1 ? mf_get_u64(b + MF_H_RESERVED) != 0
                                        : mf_get_u32(b + MF_H_RESERVED2) != 0)
        return cnn_err_set(err, CNN_EFORMAT, "model file: header reserved field not 0");
    f->n_layers = mf_get_u32(b + MF_H_LAYER_COUNT);
    f->n_tensors = mf_get_u32(b + MF_H_TENSOR_COUNT);
    f->n_labels = mf_get_u32(b + MF_H_LABEL_COUNT);
    if (f->n_layers < 2)
        return cnn_err_set(err, CNN_EFORMAT, "model file: layer count %u (need input + 1)",
                           f->n_layers);
    if (f->n_layers > CNN_MAX_LAYERS)
        return cnn_err_set(err, CNN_ELIMIT, "model file: layer count %u over the limit %d",
                           f->n_layers, CNN_MAX_LAYERS);
    if (f->n_tensors > (uint32_t)CNN_MAX_LAYERS * CNN_MAX_WEIGHTS_PER_LAYER)
        return cnn_err_set(err, CNN_ELIMIT, "model file: weight tensor count %u over the limit",
                           f->n_tensors);
    if (f->n_labels > CNN_MAX_CLASSES)
        return cnn_err_set(err, CNN_ELIMIT, "model file: label count %u over the limit %d",
                           f->n_labels, CNN_MAX_CLASSES);

    uint64_t prev_end = CNN_MF_HEADER_SIZE;
    const char *prev = "header";
    for (int s = 0; s < MF_SEC_COUNT; s++) {
        uint64_t off = mf_get_u64(b + MF_H_SECTIONS + 16 * s);
        uint64_t len = mf_get_u64(b + MF_H_SECTIONS + 16 * s + 8);
        if (off > f->size || len > f->size - off)
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: section %s (offset %llu, size %llu) is out of the "
                               "file (%zu bytes)",
                               sec_names[s], (unsigned long long)off, (unsigned long long)len,
                               f->size);
        if (off < prev_end)
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: section %s at offset %llu overlaps the %s",
                               sec_names[s], (unsigned long long)off, prev);
        f->off[s] = off;
        f->len[s] = len;
        prev_end = off + len;
        prev = sec_names[s];
    }
    if (f->len[MF_SEC_PREPROC] != CNN_MF_PREPROC_SIZE)
        return cnn_err_set(err, CNN_EFORMAT, "model file: preproc section is %llu bytes (want %u)",
                           (unsigned long long)f->len[MF_SEC_PREPROC], CNN_MF_PREPROC_SIZE);
    if (f->len[MF_SEC_LAYERS] / CNN_MF_LAYER_FIXED < f->n_layers)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: layer table of %llu bytes cannot hold %u layers",
                           (unsigned long long)f->len[MF_SEC_LAYERS], f->n_layers);
    if (f->len[MF_SEC_LABELS] != (uint64_t)f->n_labels * CNN_MF_LABEL_SIZE)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: labels section is %llu bytes, %u labels need %llu",
                           (unsigned long long)f->len[MF_SEC_LABELS], f->n_labels,
                           (unsigned long long)f->n_labels * CNN_MF_LABEL_SIZE);
    if (f->off[MF_SEC_WEIGHTS] % CNN_MF_ALIGN != 0)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: weight data offset %llu is not %u-byte aligned",
                           (unsigned long long)f->off[MF_SEC_WEIGHTS], CNN_MF_ALIGN);
    if (f->len[MF_SEC_WEIGHTS] > CNN_MF_MAX_WEIGHT_BYTES)
        return cnn_err_set(err, CNN_ELIMIT, "model file: weight data of %llu bytes over 16 GiB",
                           (unsigned long long)f->len[MF_SEC_WEIGHTS]);
    if (prev_end != f->size)
        return cnn_err_set(err, CNN_EFORMAT, "model file: %llu stray bytes after the weight data",
                           (unsigned long long)(f->size - prev_end));
    return 0;
}

/* Version 2: the header's CRC-32 against every other byte (after check_header, so the size
 * is the header's).  Version 1 files have no checksum. */
static int check_crc(const struct file *f, struct cnn_err *err)
{
    if (f->version == CNN_MF_VERSION_V1)
        return 0;
    uint32_t want = mf_get_u32(f->b + MF_H_CHECKSUM);
    uint32_t got = cnn_mf_crc(0, f->b, MF_H_CHECKSUM);
    got = cnn_mf_crc(got, f->b + MF_H_RESERVED2, f->size - MF_H_RESERVED2);
    if (got != want)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: checksum mismatch (CRC-32 of the file 0x%08x, the header "
                           "says 0x%08x): the file is corrupt",
                           (unsigned)got, (unsigned)want);
    return 0;
}

static int read_preproc(const struct file *f, struct cnn_preproc *pp, struct cnn_err *err)
{
    const unsigned char *p = f->b + f->off[MF_SEC_PREPROC];
    int32_t v[6];
    for (int i = 0; i < 6; i++)
        v[i] = (int32_t)mf_get_u32(p + 4 * i);
    if (v[3] != CNN_RESIZE_STRETCH && v[3] != CNN_RESIZE_SHORTER_CROP)
        return cnn_err_set(err, CNN_EFORMAT, "model file: preproc: unknown resize mode %d",
                           (int)v[3]);
    if (v[5] != 0 && v[5] != 1)
        return cnn_err_set(err, CNN_EFORMAT, "model file: preproc: invert is %d, want 0/1",
                           (int)v[5]);
    memset(pp, 0, sizeof *pp);
    pp->c = v[0], pp->h = v[1], pp->w = v[2];
    pp->resize = (enum cnn_resize)v[3];
    pp->resize_short = v[4];
    pp->invert = v[5];
    pp->bgr = (f->flags & CNN_MF_FLAG_BGR) != 0; /* c == 3 checked with the rest */
    for (int c = 0; c < 3; c++) {
        pp->mean[c] = mf_bits_f32(mf_get_u32(p + 24 + 4 * c));
        pp->std[c] = mf_bits_f32(mf_get_u32(p + 36 + 4 * c));
    }
    return 0;
}

/* Checks a NUL-padded string field of cap bytes: terminated, non-empty, zero padding, UTF-8. */
static const char *field_problem(const unsigned char *s, size_t cap)
{
    const unsigned char *nul = memchr(s, 0, cap);
    if (!nul)
        return "is not NUL-terminated";
    size_t len = (size_t)(nul - s);
    if (len == 0)
        return "is empty";
    for (size_t i = len; i < cap; i++) {
        if (s[i])
            return "has non-zero bytes after its NUL";
    }
    if (!cnn_mf_utf8_valid(s, len))
        return "is not valid UTF-8";
    return NULL;
}

static void fmt_dims(char *buf, size_t n, const uint32_t *dims, int nd)
{
    int k = snprintf(buf, n, "(");
    for (int d = 0; d < nd && k > 0 && (size_t)k < n; d++)
        k += snprintf(buf + k, n - (size_t)k, d ? ",%u" : "%u", dims[d]);
    if (k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, ")");
}

/* Checks the weight slot records of built layer idx at sp; *cursor: next tensor's float
 * offset in the weight section (advanced). */
static int read_slots(const struct file *f, const struct cnn_model *m, int idx,
                      const unsigned char *sp, uint32_t n_slots, size_t *cursor,
                      struct cnn_err *err)
{
    const struct cnn_layer *l = &m->layers[idx];
    int want_nd[CNN_MAX_WEIGHTS_PER_LAYER], want[CNN_MAX_WEIGHTS_PER_LAYER][CNN_MF_MAX_DIMS];
    int want_slots = cnn_mf_slot_dims(l, want_nd, want);
    if ((int)n_slots != want_slots || want_slots != l->n_weights)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: layer %d '%s': %u weight slots, a %s needs %d", idx,
                           l->name, n_slots, cnn_layer_kind_name(l->kind), want_slots);
    for (int s = 0; s < want_slots; s++, sp += CNN_MF_SLOT_SIZE) {
        const char *sn = cnn_mf_slot_name(l->kind, s);
        uint32_t nd = mf_get_u32(sp + MF_S_NDIMS);
        uint32_t dims[CNN_MF_MAX_DIMS];
        if (nd < 1 || nd > CNN_MF_MAX_DIMS)
            return cnn_err_set(err, CNN_EFORMAT, "model file: layer %d '%s' slot %s: %u dims", idx,
                               l->name, sn, nd);
        int idims[CNN_MF_MAX_DIMS];
        for (uint32_t d = 0; d < CNN_MF_MAX_DIMS; d++) {
            dims[d] = mf_get_u32(sp + MF_S_DIMS + 4 * d);
            if (d >= nd ? dims[d] != 0 : (dims[d] == 0 || dims[d] > INT_MAX))
                return cnn_err_set(err, CNN_EFORMAT,
                                   "model file: layer %d '%s' slot %s: dim %u is %u", idx, l->name,
                                   sn, d, dims[d]);
            idims[d] = (int)dims[d];
        }
        if (mf_get_u32(sp + MF_S_RESERVED) != 0)
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s' slot %s: reserved field not 0", idx,
                               l->name, sn);
        char got[64], exp[64];
        fmt_dims(got, sizeof got, dims, (int)nd);
        size_t count;
        if (cnn_dims_count(idims, (int)nd, &count))
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s' slot %s: dims %s overflow", idx, l->name,
                               sn, got);
        if (count > CNN_MF_MAX_TENSOR_FLOATS)
            return cnn_err_set(err, CNN_ELIMIT,
                               "model file: layer %d '%s' slot %s: dims %s, %zu floats over the "
                               "2^31 limit",
                               idx, l->name, sn, got, count);
        uint32_t wd[CNN_MF_MAX_DIMS];
        for (int d = 0; d < want_nd[s]; d++)
            wd[d] = (uint32_t)want[s][d];
        fmt_dims(exp, sizeof exp, wd, want_nd[s]);
        if (strcmp(got, exp) != 0 || count != l->weight_count[s])
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s' slot %s: dims %s do not match the "
                               "layer's shape %s",
                               idx, l->name, sn, got, exp);

        uint64_t off = mf_get_u64(sp + MF_S_OFFSET);
        uint64_t w0 = f->off[MF_SEC_WEIGHTS], wlen = f->len[MF_SEC_WEIGHTS];
        if (off % CNN_MF_ALIGN != 0)
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s' slot %s: data offset %llu is not "
                               "%u-byte aligned",
                               idx, l->name, sn, (unsigned long long)off, CNN_MF_ALIGN);
        if (off < w0 || off - w0 > wlen || (wlen - (off - w0)) / sizeof(float) < align16(count))
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s' slot %s: data at %llu (%zu floats) "
                               "is out of the weight section",
                               idx, l->name, sn, (unsigned long long)off, count);
        if (off - w0 != (uint64_t)*cursor * sizeof(float))
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s' slot %s: data offset %llu, expected "
                               "%llu (tensors follow each other in layer order)",
                               idx, l->name, sn, (unsigned long long)off,
                               (unsigned long long)(w0 + *cursor * sizeof(float)));
        *cursor += align16(count); /* cannot overflow: bounded by the section just checked */
        const unsigned char *pad = f->b + off + count * sizeof(float);
        for (size_t k = 0; k < (align16(count) - count) * sizeof(float); k++) {
            if (pad[k])
                return cnn_err_set(err, CNN_EFORMAT,
                                   "model file: layer %d '%s' slot %s: padding after the data "
                                   "is not 0",
                                   idx, l->name, sn);
        }
    }
    return 0;
}

/* Layer record 0: the input, whose shape the preproc already gave; only its name is read. */
static int read_input_layer(struct cnn_model *m, const unsigned char *rec, const char *name,
                            uint32_t kind, uint32_t n_inputs, uint32_t n_slots,
                            const uint32_t words[CNN_MF_PARAM_WORDS], struct cnn_err *err)
{
    int32_t oc = (int32_t)mf_get_u32(rec + MF_L_OUT_C), oh = (int32_t)mf_get_u32(rec + MF_L_OUT_H),
            ow = (int32_t)mf_get_u32(rec + MF_L_OUT_W);
    if (kind != CNN_LAYER_INPUT || n_inputs != 0 || n_slots != 0)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: layer 0 '%s' must be the input (kind %u, %u inputs)",
                           name, kind, n_inputs);
    for (int i = 0; i < CNN_MF_PARAM_WORDS; i++) {
        if (words[i])
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer 0 '%s': parameter word %d is not 0", name, i);
    }
    struct cnn_layer *in = &m->layers[0];
    if (oc != in->c || oh != in->h || ow != in->w)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: input layer shape (%d,%d,%d) differs from the "
                           "preproc (%d,%d,%d)",
                           (int)oc, (int)oh, (int)ow, in->c, in->h, in->w);
    memset(in->name, 0, sizeof in->name);
    strcpy(in->name, name); /* terminated within CNN_NAME_MAX: checked above */
    return 0;
}

/* Reads and checks layer record idx at rec (bounds checked by the caller: avail bytes) and
 * adds it to m.  *rsize gets the record size. */
static int read_layer(const struct file *f, struct cnn_model *m, int idx, const unsigned char *rec,
                      uint64_t avail, uint64_t *rsize, size_t *cursor, struct cnn_err *err)
{
    if (avail < CNN_MF_LAYER_FIXED)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: layer %d: record truncated (layer table ends)", idx);
    uint32_t kind = mf_get_u32(rec + MF_L_KIND);
    uint32_t n_inputs = mf_get_u32(rec + MF_L_N_INPUTS);
    uint32_t n_slots = mf_get_u32(rec + MF_L_N_SLOTS);
    const char *problem = field_problem(rec + MF_L_NAME, CNN_NAME_MAX);
    if (problem)
        return cnn_err_set(err, CNN_EFORMAT, "model file: layer %d: name %s", idx, problem);
    const char *name = (const char *)(rec + MF_L_NAME);
    if (kind >= CNN_LAYER_KIND_COUNT)
        return cnn_err_set(err, CNN_EFORMAT, "model file: layer %d '%s': unknown layer kind %u",
                           idx, name, kind);
    if (n_inputs > CNN_MAX_INPUTS)
        return cnn_err_set(err, CNN_ELIMIT, "model file: layer %d '%s': %u inputs (max %d)", idx,
                           name, n_inputs, CNN_MAX_INPUTS);
    if (n_slots > CNN_MAX_WEIGHTS_PER_LAYER)
        return cnn_err_set(err, CNN_EFORMAT, "model file: layer %d '%s': %u weight slots (max %d)",
                           idx, name, n_slots, CNN_MAX_WEIGHTS_PER_LAYER);
    uint64_t want = CNN_MF_LAYER_FIXED + 4u * (uint64_t)n_inputs + CNN_MF_SLOT_SIZE * n_slots;
    uint32_t size = mf_get_u32(rec + MF_L_RECORD_SIZE);
    if (size != want)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: layer %d '%s': record size %u, expected %llu", idx, name,
                           size, (unsigned long long)want);
    if (size > avail)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: layer %d '%s': record runs past the layer table", idx,
                           name);
    if (mf_get_u32(rec + MF_L_RESERVED) != 0)
        return cnn_err_set(err, CNN_EFORMAT, "model file: layer %d '%s': reserved field not 0", idx,
                           name);
    *rsize = size;
    int32_t oc = (int32_t)mf_get_u32(rec + MF_L_OUT_C), oh = (int32_t)mf_get_u32(rec + MF_L_OUT_H),
            ow = (int32_t)mf_get_u32(rec + MF_L_OUT_W);
    uint32_t words[CNN_MF_PARAM_WORDS];
    for (int i = 0; i < CNN_MF_PARAM_WORDS; i++)
        words[i] = mf_get_u32(rec + MF_L_PARAMS + 4 * i);

    int dup = cnn_model_find_layer(m, name);
    if (dup >= 0 && !(idx == 0 && dup == 0))
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: layer %d: duplicate layer name '%s' (also layer %d)", idx,
                           name, dup);
    if (idx == 0)
        return read_input_layer(m, rec, name, kind, n_inputs, n_slots, words, err);
    if (kind == CNN_LAYER_INPUT)
        return cnn_err_set(err, CNN_EFORMAT, "model file: layer %d '%s': a second input layer", idx,
                           name);
    if (n_inputs == 0)
        return cnn_err_set(err, CNN_EFORMAT, "model file: layer %d '%s': no inputs", idx, name);
    int inputs[CNN_MAX_INPUTS];
    for (uint32_t i = 0; i < n_inputs; i++) {
        uint32_t v = mf_get_u32(rec + MF_L_INPUTS + 4 * i);
        if (v >= (uint32_t)idx)
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s': input %u refers to layer %u, not an "
                               "earlier one",
                               idx, name, i, v);
        inputs[i] = (int)v;
    }
    struct cnn_layer_desc d = {.kind = (enum cnn_layer_kind)kind,
                               .name = name,
                               .n_inputs = (int)n_inputs,
                               .inputs = inputs};
    int rc = cnn_mf_unpack_params(words, &d, idx, err);
    if (rc)
        return rc;
    rc = cnn_model_add(m, &d, err);
    if (rc < 0) {
        char what[CNN_NAME_MAX + 32];
        snprintf(what, sizeof what, "layer %d '%s'", idx, name);
        return wrap(err, rc, what);
    }
    const struct cnn_layer *l = &m->layers[idx];
    if (oc != l->c || oh != l->h || ow != l->w)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: layer %d '%s': stored output shape (%d,%d,%d) does not "
                           "match the graph's (%d,%d,%d)",
                           idx, name, (int)oc, (int)oh, (int)ow, l->c, l->h, l->w);
    if ((rc = cnn_mf_check_derived(words, l, idx, err)) != 0)
        return rc;
    uint32_t again[CNN_MF_PARAM_WORDS];
    cnn_mf_pack_params(l, again);
    if (memcmp(again, words, sizeof words) != 0)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: layer %d '%s': parameters changed when rebuilt", idx, name);
    return read_slots(f, m, idx, rec + MF_L_INPUTS + 4 * (size_t)n_inputs, n_slots, cursor, err);
}

static int read_layers(const struct file *f, struct cnn_model *m, struct cnn_err *err)
{
    uint64_t pos = f->off[MF_SEC_LAYERS], end = pos + f->len[MF_SEC_LAYERS];
    size_t cursor = 0;
    for (uint32_t i = 0; i < f->n_layers; i++) {
        uint64_t rsize = 0;
        int rc = read_layer(f, m, (int)i, f->b + pos, end - pos, &rsize, &cursor, err);
        if (rc)
            return rc;
        pos += rsize;
    }
    if (pos != end)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: %llu stray bytes after the last layer record",
                           (unsigned long long)(end - pos));
    uint32_t tensors = 0;
    for (int i = 0; i < m->n_layers; i++)
        tensors += (uint32_t)m->layers[i].n_weights;
    if (tensors != f->n_tensors)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: header says %u weight tensors, the layers have %u",
                           f->n_tensors, tensors);
    int rc = cnn_model_layout_params(m, err);
    if (rc)
        return wrap(err, rc, "weights");
    if ((uint64_t)m->n_params * sizeof(float) != f->len[MF_SEC_WEIGHTS] || m->n_params != cursor)
        return cnn_err_set(
            err, CNN_EFORMAT, "model file: weight section is %llu bytes, the layers need %llu",
            (unsigned long long)f->len[MF_SEC_WEIGHTS], (unsigned long long)cursor * sizeof(float));
    return 0;
}

static int read_labels(const struct file *f, struct cnn_model *m, struct cnn_err *err)
{
    if (f->n_labels == 0)
        return 0;
    int classes = cnn_model_num_classes(m);
    if ((int)f->n_labels != classes)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: label count %u does not match the %d classes of the "
                           "output layer '%s'",
                           f->n_labels, classes, m->layers[m->n_layers - 1].name);
    const char **labels = malloc(f->n_labels * sizeof *labels); /* count checked vs file */
    if (!labels)
        return cnn_err_set(err, CNN_ENOMEM, "model file: out of memory for labels");
    for (uint32_t i = 0; i < f->n_labels; i++) {
        const unsigned char *s = f->b + f->off[MF_SEC_LABELS] + (size_t)i * CNN_MF_LABEL_SIZE;
        const char *problem = field_problem(s, CNN_MF_LABEL_SIZE);
        if (problem) {
            free(labels);
            return cnn_err_set(err, CNN_EFORMAT, "model file: label %u %s", i, problem);
        }
        labels[i] = (const char *)s;
    }
    int rc = cnn_model_set_labels(m, labels, (int)f->n_labels, err);
    free(labels);
    return rc ? wrap(err, rc, "labels") : 0;
}

static int read_meta(const struct file *f, struct cnn_model *m, struct cnn_err *err)
{
    const unsigned char *p = f->b + f->off[MF_SEC_META];
    uint64_t sec = f->len[MF_SEC_META];
    if (sec < 5)
        return cnn_err_set(err, CNN_EFORMAT, "model file: meta section is %llu bytes (min 5)",
                           (unsigned long long)sec);
    uint32_t len = mf_get_u32(p);
    if (len > CNN_MF_META_MAX)
        return cnn_err_set(err, CNN_ELIMIT, "model file: meta length %u over the limit %u", len,
                           CNN_MF_META_MAX);
    if ((uint64_t)len + 5 != sec)
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: meta length %u does not fit its section of %llu bytes", len,
                           (unsigned long long)sec);
    if (p[4 + len] != 0)
        return cnn_err_set(err, CNN_EFORMAT, "model file: meta text is not NUL-terminated");
    if (memchr(p + 4, 0, len))
        return cnn_err_set(err, CNN_EFORMAT, "model file: meta text contains a NUL byte");
    if (!cnn_mf_utf8_valid(p + 4, len))
        return cnn_err_set(err, CNN_EFORMAT, "model file: meta text is not valid UTF-8");
    if (len == 0)
        return 0;
    int rc = cnn_model_set_meta(m, (const char *)(p + 4), err);
    return rc ? wrap(err, rc, "meta") : 0;
}

/* Everything but the weights: *out gets a model with layers, labels, meta and the
 * parameter layout, params still NULL. */
static int build(struct file *f, struct cnn_model **out, struct cnn_err *err)
{
    *out = NULL;
    int rc = check_header(f, err);
    if (rc == 0)
        rc = check_crc(f, err);
    if (rc)
        return rc;
    struct cnn_preproc pp;
    if ((rc = read_preproc(f, &pp, err)) != 0)
        return rc;
    struct cnn_model *m = cnn_model_create(&pp, err);
    if (!m)
        return wrap(err, err ? err->code : CNN_EFORMAT, NULL); /* says "preproc: ..." */
    if ((rc = read_layers(f, m, err)) != 0 || (rc = read_labels(f, m, err)) != 0 ||
        (rc = read_meta(f, m, err)) != 0) {
        cnn_model_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}

static int finish(struct cnn_model *m, struct cnn_model **out, struct cnn_err *err)
{
    int rc = cnn_model_compile(m, err);
    if (rc) {
        cnn_model_destroy(m);
        return wrap(err, rc, "compile");
    }
    *out = m;
    return 0;
}

int cnn_model_load_mem(const void *data, size_t size, struct cnn_model **out, struct cnn_err *err)
{
    if (!out)
        return cnn_err_set(err, CNN_EINVAL, "model load: no output pointer");
    *out = NULL;
    if (!data && size)
        return cnn_err_set(err, CNN_EINVAL, "model load: no data");
    struct file f = {.b = data, .size = size};
    struct cnn_model *m;
    int rc = build(&f, &m, err);
    if (rc)
        return rc;
    size_t bytes = (size_t)f.len[MF_SEC_WEIGHTS];
    m->owned_params = aligned_alloc(CNN_MF_ALIGN, bytes ? bytes : CNN_MF_ALIGN);
    if (!m->owned_params) {
        cnn_model_destroy(m);
        return cnn_err_set(err, CNN_ENOMEM, "model file: out of memory for %zu weight bytes",
                           bytes);
    }
    memcpy(m->owned_params, f.b + f.off[MF_SEC_WEIGHTS], bytes);
    m->params = m->owned_params;
    return finish(m, out, err);
}

int cnn_model_load(const char *path, struct cnn_model **out, struct cnn_err *err)
{
    if (!out || !path)
        return cnn_err_set(err, CNN_EINVAL, "model load: no path or output pointer");
    *out = NULL;
    if (cnn_onnx_is_onnx_path(path))
        return cnn_onnx_load(path, out, err);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block us */
    if (fd < 0) {
        int e = errno;
        char buf[96];
        if (strerror_r(e, buf, sizeof buf) != 0)
            buf[0] = '\0';
        return cnn_err_set(err, e == ENOENT || e == ENOTDIR ? CNN_ENOENT : CNN_EIO,
                           "model file: cannot open: %s", buf);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cnn_err_set(err, CNN_EFORMAT, "model file: not a regular file");
    }
    if ((uint64_t)st.st_size < CNN_MF_HEADER_SIZE) {
        close(fd);
        return cnn_err_set(err, CNN_EFORMAT,
                           "model file: truncated: %lld bytes, the header "
                           "needs %u",
                           (long long)st.st_size, CNN_MF_HEADER_SIZE);
    }
    if ((uint64_t)st.st_size > CNN_MF_MAX_WEIGHT_BYTES + ((uint64_t)1 << 30)) {
        close(fd);
        return cnn_err_set(err, CNN_ELIMIT, "model file: %lld bytes, over the 17 GiB limit",
                           (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return cnn_err_set(err, CNN_EIO, "model file: mmap of %zu bytes failed", size);
    struct file f = {.b = map, .size = size};
    struct cnn_model *m;
    int rc = build(&f, &m, err);
    if (rc) {
        munmap(map, size);
        return rc;
    }
    /* Aligned: the map is page aligned and the format puts weights at a 64-byte offset. */
    m->map = map;
    m->map_size = size;
    m->params = (float *)(void *)((unsigned char *)map + f.off[MF_SEC_WEIGHTS]);
    return finish(m, out, err);
}
