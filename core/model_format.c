/* Model file layout helpers shared by reader and writer: the 16 parameter words of a layer
 * record packed and checked by the field table of its kind's row (layer_kind.h), the dims
 * of each weight slot, slot names for messages, the file checksum and a UTF-8 check for names,
 * labels, meta. */
#include "model_format.h"

#include "layer_kind.h"

#include <math.h>
#include <stddef.h>
#include <zlib.h>

_Static_assert(sizeof(enum cnn_act) == sizeof(int32_t), "act kind is stored as a 32-bit word");

/* The field table of a kind (its row); *n = 0 for kinds without parameters. */
static const struct cnn_layer_field *fields_of(enum cnn_layer_kind kind, int *n)
{
    const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(kind);
    *n = k->n_fields;
    return k->fields;
}

void cnn_mf_pack_params(const struct cnn_layer *l, uint32_t words[CNN_MF_PARAM_WORDS])
{
    int n;
    const struct cnn_layer_field *f = fields_of(l->kind, &n);
    const unsigned char *base = (const unsigned char *)&l->p;
    memset(words, 0, CNN_MF_PARAM_WORDS * sizeof words[0]);
    for (int i = 0; i < n; i++)
        memcpy(&words[i], base + f[i].off, 4); /* int, enum and float are all 4 bytes */
}

int cnn_mf_unpack_params(const uint32_t words[CNN_MF_PARAM_WORDS], struct cnn_layer_desc *d,
                         int index, struct cnn_err *err)
{
    int n;
    const struct cnn_layer_field *f = fields_of(d->kind, &n);
    unsigned char *base = (unsigned char *)&d->p;
    memset(&d->p, 0, sizeof d->p);
    for (int i = 0; i < n; i++) {
        uint32_t v = words[i];
        if (f[i].type == CNN_FIELD_FLAG && v > 1)
            return cnn_err_set(err, CNN_EFORMAT, "model file: layer %d '%s': %s is %u, want 0/1",
                               index, d->name, f[i].name, v);
        if (f[i].type == CNN_FIELD_ACT && v >= CNN_ACT_COUNT)
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s': unknown activation kind %u", index,
                               d->name, v);
        if (f[i].type == CNN_FIELD_FLOAT && !isfinite(mf_bits_f32(v)))
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s': parameter %s is not finite", index,
                               d->name, f[i].name);
        memcpy(base + f[i].off, &v, 4);
    }
    for (int i = n; i < CNN_MF_PARAM_WORDS; i++) {
        if (words[i] != 0)
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s': unused parameter word %d is not 0",
                               index, d->name, i);
    }
    return 0;
}

int cnn_mf_check_derived(const uint32_t words[CNN_MF_PARAM_WORDS], const struct cnn_layer *l,
                         int index, struct cnn_err *err)
{
    int n;
    const struct cnn_layer_field *f = fields_of(l->kind, &n);
    const unsigned char *base = (const unsigned char *)&l->p;
    for (int i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, base + f[i].off, 4);
        if (f[i].type == CNN_FIELD_DERIVED && (int32_t)words[i] != v)
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s': %s %s %d does not match its input "
                               "size %d",
                               index, l->name, cnn_layer_kind_name(l->kind), f[i].name,
                               (int)(int32_t)words[i], (int)v);
    }
    return 0;
}

int cnn_mf_slot_dims(const struct cnn_layer *l, int ndims[CNN_MAX_WEIGHTS_PER_LAYER],
                     int dims[CNN_MAX_WEIGHTS_PER_LAYER][CNN_MF_MAX_DIMS])
{
    for (int s = 0; s < l->n_weights; s++) {
        ndims[s] = l->weight_ndims[s];
        for (int k = 0; k < ndims[s]; k++)
            dims[s][k] = l->weight_dims[s][k];
    }
    return l->n_weights;
}

const char *cnn_mf_slot_name(enum cnn_layer_kind kind, int s)
{
    const struct cnn_layer_kind_ops *k = cnn_layer_kind_ops(kind);
    if (k && k->slot_names && s >= 0 && s < CNN_MAX_WEIGHTS_PER_LAYER && k->slot_names[s])
        return k->slot_names[s];
    return "?";
}

uint32_t cnn_mf_crc(uint32_t crc, const void *p, size_t n)
{
    return (uint32_t)crc32_z(crc, p, n);
}

int cnn_mf_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2, cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3, cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4, cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}
