/* ONNX constants: TensorProto decoding with every dim, product and byte count checked, the
 * nesting pre-scan that guards protobuf-c's recursive unpacker, and the table of named
 * graph values (a small open-addressing hash). */
#include "onnx_internal.h"

#include <stdlib.h>
#include <string.h>

void onnx_tensor_free(struct onnx_tensor *t)
{
    if (!t)
        return;
    free(t->f);
    free(t->i);
    free(t);
}

int onnx_dims_count(int ndims, const int64_t *dims, size_t *count, struct cnn_err *err)
{
    if (ndims < 0 || ndims > CNN_ONNX_MAX_DIMS)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: tensor of rank %d (at most %d)", ndims,
                           CNN_ONNX_MAX_DIMS);
    *count = 1;
    for (int k = 0; k < ndims; k++) {
        if (dims[k] < 0 || dims[k] > ONNX_MAX_TENSOR_FLOATS)
            return cnn_err_set(err, CNN_EFORMAT, "onnx: tensor dim %lld out of range",
                               (long long)dims[k]);
        if (dims[k] && *count > ONNX_MAX_TENSOR_FLOATS / (size_t)dims[k])
            return cnn_err_set(err, CNN_ELIMIT, "onnx: tensor of more than %u elements",
                               ONNX_MAX_TENSOR_FLOATS);
        *count *= (size_t)dims[k];
    }
    return 0;
}

struct onnx_tensor *onnx_tensor_new(int is_int, int ndims, const int64_t *dims, struct cnn_err *err)
{
    size_t count;
    if (onnx_dims_count(ndims, dims, &count, err))
        return NULL;
    struct onnx_tensor *t = calloc(1, sizeof *t);
    size_t elem = is_int ? sizeof(int64_t) : sizeof(float);
    void *data = t ? calloc(count ? count : 1, elem) : NULL;
    if (!data) {
        free(t);
        cnn_err_set(err, CNN_ENOMEM, "onnx: out of memory for a %zu-element tensor", count);
        return NULL;
    }
    t->is_int = is_int;
    t->ndims = ndims;
    if (ndims) /* a scalar may come with dims NULL */
        memcpy(t->dims, dims, (size_t)ndims * sizeof *dims);
    t->count = count;
    if (is_int)
        t->i = data;
    else
        t->f = data;
    return t;
}

static int64_t le_int(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; k--)
        v = (v << 8) | p[k];
    if (bytes == 4)
        return (int32_t)(uint32_t)v;
    return (int64_t)v;
}

/* Copies raw little-endian data of type dt into t (its size checked by the caller). */
static void from_raw(struct onnx_tensor *t, int dt, const ProtobufCBinaryData *raw)
{
    size_t elem =
        dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32
            ? 4
            : 8;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) { /* the common case, as stored */
        if (raw->len)
            memcpy(t->f, raw->data, raw->len);
        return;
    }
#endif
    for (size_t k = 0; k < t->count; k++) {
        const uint8_t *p = raw->data + k * elem;
        if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
            uint32_t u = (uint32_t)le_int(p, 4);
            memcpy(&t->f[k], &u, 4);
        } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
            uint64_t u = (uint64_t)le_int(p, 8);
            double d;
            memcpy(&d, &u, 8);
            t->f[k] = (float)d;
        } else {
            t->i[k] = le_int(p, (int)elem);
        }
    }
}

/* Values of type dt in tp's typed repeated field. */
static size_t stored_values(int dt, const Onnx__TensorProto *tp)
{
    return dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT    ? tp->n_float_data
           : dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? tp->n_double_data
           : dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32  ? tp->n_int32_data
                                                         : tp->n_int64_data;
}

/* Copies the typed repeated field of tp into t (its count checked by the caller). */
static void from_fields(struct onnx_tensor *t, int dt, const Onnx__TensorProto *tp)
{
    for (size_t k = 0; k < t->count; k++) {
        if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            t->f[k] = tp->float_data[k];
        else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
            t->f[k] = (float)tp->double_data[k];
        else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32)
            t->i[k] = tp->int32_data[k];
        else
            t->i[k] = tp->int64_data[k];
    }
}

int onnx_tensor_decode(const Onnx__TensorProto *tp, const char *who, struct onnx_tensor **out,
                       struct cnn_err *err)
{
    *out = NULL;
    int dt = tp->has_data_type ? tp->data_type : 0;
    if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return cnn_err_set(err, CNN_EFORMAT,
                           "onnx: tensor '%s': external data is not read (only data inside the "
                           "model file)",
                           who);
    if (tp->segment)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: tensor '%s': segmented tensors unsupported",
                           who);
    if (dt != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && dt != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE &&
        dt != ONNX__TENSOR_PROTO__DATA_TYPE__INT32 && dt != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        return cnn_err_set(err, CNN_EFORMAT,
                           "onnx: tensor '%s': unsupported data type %d (float, double, int32 "
                           "or int64)",
                           who, dt);
    if (tp->n_dims > CNN_ONNX_MAX_DIMS)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: tensor '%s': rank %zu (at most %d)", who,
                           tp->n_dims, CNN_ONNX_MAX_DIMS);
    int is_int =
        dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 || dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    /* Counted before allocating: a few bytes of dims must not make a huge empty tensor. */
    size_t count, elem = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
                                 dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32
                             ? 4
                             : 8;
    if (onnx_dims_count((int)tp->n_dims, tp->dims, &count, err))
        return err ? err->code : CNN_EFORMAT;
    if (tp->has_raw_data && tp->raw_data.len != count * elem)
        return cnn_err_set(err, CNN_EFORMAT,
                           "onnx: tensor '%s': raw_data has %zu bytes, its dims need %zu", who,
                           tp->raw_data.len, count * elem);
    if (!tp->has_raw_data && stored_values(dt, tp) != count)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: tensor '%s': %zu values, its dims need %zu",
                           who, stored_values(dt, tp), count);
    struct onnx_tensor *t = onnx_tensor_new(is_int, (int)tp->n_dims, tp->dims, err);
    if (!t)
        return err ? err->code : CNN_EFORMAT;
    if (tp->has_raw_data)
        from_raw(t, dt, &tp->raw_data);
    else
        from_fields(t, dt, tp);
    *out = t;
    return 0;
}

/* ---- nesting pre-scan ---- */

static int varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 1;
    }
    return 0;
}

/* Treats p[0..n) as a message if it parses as one: 1 (message, nesting within limits),
 * 0 (not a message: bytes or text), -1 (a message nested deeper than ONNX_MAX_NESTING).
 * Every length-delimited field that parses as a message counts as one; schema-free, so
 * any part of the proto (subgraphs, nested type protos) is covered. */
static int scan(const uint8_t *p, size_t n, int depth)
{
    size_t i = 0;
    while (i < n) {
        uint64_t key, v;
        if (!varint(p, n, &i, &key) || (key >> 3) == 0)
            return 0;
        switch (key & 7) {
        case 0:
            if (!varint(p, n, &i, &v))
                return 0;
            break;
        case 1:
        case 5: {
            size_t w = (key & 7) == 1 ? 8 : 4;
            if (n - i < w)
                return 0;
            i += w;
            break;
        }
        case 2:
            if (!varint(p, n, &i, &v) || v > n - i)
                return 0;
            if (v > 0 && depth <= ONNX_MAX_NESTING) {
                int r = scan(p + i, (size_t)v, depth + 1);
                if (r < 0 || (r == 1 && depth == ONNX_MAX_NESTING))
                    return -1; /* the call at depth MAX + 1 only looks, never recurses */
            }
            i += (size_t)v;
            break;
        default:
            return 0;
        }
    }
    return 1;
}

int onnx_check_nesting(const uint8_t *buf, size_t size, struct cnn_err *err)
{
    if (scan(buf, size, 0) < 0)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: messages nested more than %d deep",
                           ONNX_MAX_NESTING);
    return 0;
}

/* ---- named values ---- */

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

struct onnx_value *onnx_value_find(struct onnx_ctx *c, const char *name)
{
    if (!c->cap_vals || !name)
        return NULL;
    for (size_t k = hash(name) & (c->cap_vals - 1);; k = (k + 1) & (c->cap_vals - 1)) {
        struct onnx_value *v = &c->vals[k];
        if (!v->name)
            return NULL;
        if (strcmp(v->name, name) == 0)
            return v;
    }
}

static int grow(struct onnx_ctx *c)
{
    size_t cap = c->cap_vals ? 2 * c->cap_vals : 256;
    struct onnx_value *nv = calloc(cap, sizeof *nv);
    if (!nv)
        return cnn_err_set(c->err, CNN_ENOMEM, "onnx: out of memory");
    for (size_t j = 0; j < c->cap_vals; j++) {
        if (!c->vals[j].name)
            continue;
        size_t k = hash(c->vals[j].name) & (cap - 1);
        while (nv[k].name)
            k = (k + 1) & (cap - 1);
        nv[k] = c->vals[j];
    }
    free(c->vals);
    c->vals = nv;
    c->cap_vals = cap;
    return 0;
}

int onnx_value_add(struct onnx_ctx *c, const char *name, int layer, int rank, struct onnx_tensor *t)
{
    if (!name || !name[0]) {
        onnx_tensor_free(t);
        return 0; /* an unnamed optional output: nothing reads it */
    }
    if (onnx_value_find(c, name)) {
        onnx_tensor_free(t);
        return cnn_err_set(c->err, CNN_EFORMAT, "onnx: value '%s' defined twice", name);
    }
    if (2 * (c->n_vals + 1) > c->cap_vals && grow(c)) {
        onnx_tensor_free(t);
        return CNN_ENOMEM;
    }
    size_t k = hash(name) & (c->cap_vals - 1);
    while (c->vals[k].name)
        k = (k + 1) & (c->cap_vals - 1);
    c->vals[k] = (struct onnx_value){.name = name, .layer = layer, .rank = rank, .t = t};
    c->n_vals++;
    return 0;
}

void onnx_values_free(struct onnx_ctx *c)
{
    for (size_t k = 0; k < c->cap_vals; k++)
        onnx_tensor_free(c->vals[k].t);
    free(c->vals);
    c->vals = NULL;
    c->cap_vals = c->n_vals = 0;
}

int cnn_onnx_tensor_read(const void *data, size_t size, float **values, size_t *count,
                         int64_t dims[CNN_ONNX_MAX_DIMS], int *ndims, struct cnn_err *err)
{
    *values = NULL;
    if (size > CNN_ONNX_MAX_FILE_BYTES)
        return cnn_err_set(err, CNN_ELIMIT, "onnx: tensor file over %zu bytes",
                           CNN_ONNX_MAX_FILE_BYTES);
    if (onnx_check_nesting(data, size, err))
        return CNN_EFORMAT;
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, size, data);
    if (!tp)
        return cnn_err_set(err, CNN_EFORMAT, "onnx: not a TensorProto");
    struct onnx_tensor *t;
    int rc = onnx_tensor_decode(tp, tp->name ? tp->name : "", &t, err);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    if (rc)
        return rc;
    if (t->is_int) {
        onnx_tensor_free(t);
        return cnn_err_set(err, CNN_EFORMAT, "onnx: tensor is not float");
    }
    *values = t->f;
    t->f = NULL;
    *count = t->count;
    *ndims = t->ndims;
    memcpy(dims, t->dims, sizeof t->dims);
    onnx_tensor_free(t);
    return 0;
}
