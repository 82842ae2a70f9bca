/* Model file layout helpers shared by reader and writer: one table per layer kind says
 * which of the 16 parameter words of a layer record holds which field, the dims of each
 * weight slot, slot names for messages and a UTF-8 check for names, labels and meta. */
#include "model_format.h"

#include <math.h>
#include <stddef.h>

_Static_assert(sizeof(enum cnn_act) == sizeof(int32_t), "act kind is stored as a 32-bit word");

enum ftype { F_INT, F_FLOAT, F_FLAG, F_ACT };

struct field {
    const char *name;
    enum ftype type;
    size_t off; /* into the params union (all members start at its offset 0) */
};

#define CONV(f) offsetof(struct cnn_conv2d, f)
#define DENSE(f) offsetof(struct cnn_dense, f)
#define POOL(f) offsetof(struct cnn_pool2d, f)
#define BN(f) offsetof(struct cnn_batchnorm, f)
#define LRN(f) offsetof(struct cnn_lrn, f)
#define ACT(f) offsetof(struct cnn_act_params, f)

static const struct field conv_fields[] = {
    {"oc", F_INT, CONV(oc)},
    {"kh", F_INT, CONV(kh)},
    {"kw", F_INT, CONV(kw)},
    {"sh", F_INT, CONV(sh)},
    {"sw", F_INT, CONV(sw)},
    {"dh", F_INT, CONV(dh)},
    {"dw", F_INT, CONV(dw)},
    {"pad_t", F_INT, CONV(pad_t)},
    {"pad_l", F_INT, CONV(pad_l)},
    {"pad_b", F_INT, CONV(pad_b)},
    {"pad_r", F_INT, CONV(pad_r)},
    {"groups", F_INT, CONV(groups)},
    {"has_bias", F_FLAG, CONV(has_bias)},
    {"act", F_ACT, CONV(act.kind)},
    {"act_alpha", F_FLOAT, CONV(act.alpha)},
    {"act_beta", F_FLOAT, CONV(act.beta)},
};
static const struct field dense_fields[] = {
    {"in", F_INT, DENSE(in)},
    {"out", F_INT, DENSE(out)},
    {"has_bias", F_FLAG, DENSE(has_bias)},
    {"act", F_ACT, DENSE(act.kind)},
    {"act_alpha", F_FLOAT, DENSE(act.alpha)},
    {"act_beta", F_FLOAT, DENSE(act.beta)},
};
static const struct field pool_fields[] = {
    {"kh", F_INT, POOL(kh)},
    {"kw", F_INT, POOL(kw)},
    {"sh", F_INT, POOL(sh)},
    {"sw", F_INT, POOL(sw)},
    {"pad_t", F_INT, POOL(pad_t)},
    {"pad_l", F_INT, POOL(pad_l)},
    {"pad_b", F_INT, POOL(pad_b)},
    {"pad_r", F_INT, POOL(pad_r)},
    {"ceil_mode", F_FLAG, POOL(ceil_mode)},
    {"count_include_pad", F_FLAG, POOL(count_include_pad)},
};
static const struct field act_fields[] = {
    {"act", F_ACT, ACT(kind)},
    {"alpha", F_FLOAT, ACT(alpha)},
    {"beta", F_FLOAT, ACT(beta)},
};
static const struct field bn_fields[] = {
    {"eps", F_FLOAT, BN(eps)},
    {"act", F_ACT, BN(act.kind)},
    {"act_alpha", F_FLOAT, BN(act.alpha)},
    {"act_beta", F_FLOAT, BN(act.beta)},
};
static const struct field dropout_fields[] = {{"rate", F_FLOAT, 0}};
static const struct field lrn_fields[] = {
    {"size", F_INT, LRN(size)},
    {"alpha", F_FLOAT, LRN(alpha)},
    {"beta", F_FLOAT, LRN(beta)},
    {"k", F_FLOAT, LRN(k)},
};

#define TABLE(t) (*n = (int)(sizeof t / sizeof t[0]), t)

/* The field table of a kind; *n = 0 (and NULL) for kinds without parameters. */
static const struct field *fields_of(enum cnn_layer_kind kind, int *n)
{
    switch (kind) {
    case CNN_LAYER_CONV2D:
        return TABLE(conv_fields);
    case CNN_LAYER_DENSE:
        return TABLE(dense_fields);
    case CNN_LAYER_MAXPOOL:
    case CNN_LAYER_AVGPOOL:
        return TABLE(pool_fields);
    case CNN_LAYER_ACT:
        return TABLE(act_fields);
    case CNN_LAYER_BATCHNORM:
        return TABLE(bn_fields);
    case CNN_LAYER_DROPOUT:
        return TABLE(dropout_fields);
    case CNN_LAYER_LRN:
        return TABLE(lrn_fields);
    default:
        *n = 0;
        return NULL;
    }
}

void cnn_mf_pack_params(const struct cnn_layer *l, uint32_t words[CNN_MF_PARAM_WORDS])
{
    int n;
    const struct field *f = fields_of(l->kind, &n);
    const unsigned char *base = (const unsigned char *)&l->p;
    memset(words, 0, CNN_MF_PARAM_WORDS * sizeof words[0]);
    for (int i = 0; i < n; i++)
        memcpy(&words[i], base + f[i].off, 4); /* int, enum and float are all 4 bytes */
}

int cnn_mf_unpack_params(const uint32_t words[CNN_MF_PARAM_WORDS], struct cnn_layer_desc *d,
                         int index, struct cnn_err *err)
{
    int n;
    const struct field *f = fields_of(d->kind, &n);
    unsigned char *base = (unsigned char *)&d->p;
    memset(&d->p, 0, sizeof d->p);
    for (int i = 0; i < n; i++) {
        uint32_t v = words[i];
        if (f[i].type == F_FLAG && v > 1)
            return cnn_err_set(err, CNN_EFORMAT, "model file: layer %d '%s': %s is %u, want 0/1",
                               index, d->name, f[i].name, v);
        if (f[i].type == F_ACT && v >= CNN_ACT_COUNT)
            return cnn_err_set(err, CNN_EFORMAT,
                               "model file: layer %d '%s': unknown activation kind %u", index,
                               d->name, v);
        if (f[i].type == F_FLOAT && !isfinite(mf_bits_f32(v)))
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

int cnn_mf_slot_dims(const struct cnn_layer *l, int ndims[CNN_MAX_WEIGHTS_PER_LAYER],
                     int dims[CNN_MAX_WEIGHTS_PER_LAYER][CNN_MF_MAX_DIMS])
{
    int n = 0;
    switch (l->kind) {
    case CNN_LAYER_CONV2D: {
        const struct cnn_conv2d *p = &l->p.conv;
        ndims[n] = 4;
        dims[n][0] = p->oc, dims[n][1] = p->c / p->groups, dims[n][2] = p->kh, dims[n][3] = p->kw;
        n++;
        if (p->has_bias)
            ndims[n] = 1, dims[n][0] = p->oc, n++;
        break;
    }
    case CNN_LAYER_DENSE:
        ndims[n] = 2, dims[n][0] = l->p.dense.out, dims[n][1] = l->p.dense.in, n++;
        if (l->p.dense.has_bias)
            ndims[n] = 1, dims[n][0] = l->p.dense.out, n++;
        break;
    case CNN_LAYER_BATCHNORM:
        for (; n < 4; n++)
            ndims[n] = 1, dims[n][0] = l->c;
        break;
    default:
        break;
    }
    return n;
}

const char *cnn_mf_slot_name(enum cnn_layer_kind kind, int s)
{
    static const char *const wb[] = {"w", "b"};
    static const char *const bn[] = {"gamma", "beta", "mean", "var"};
    if ((kind == CNN_LAYER_CONV2D || kind == CNN_LAYER_DENSE) && s >= 0 && s < 2)
        return wb[s];
    if (kind == CNN_LAYER_BATCHNORM && s >= 0 && s < 4)
        return bn[s];
    return "?";
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
