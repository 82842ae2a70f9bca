/* The native model file layout (docs/model-format.md), shared by the writer
 * (model_write.c) and the reader (model_read.c): section sizes, little-endian field
 * access and the per-kind meaning of the 16 parameter words of a layer record.
 * Private to those files; everyone else uses cnn_model_save / cnn_model_load. */
#ifndef CNN_MODEL_FORMAT_H
#define CNN_MODEL_FORMAT_H

#include "model_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model files hold little-endian float32 weights that are mapped as they are"
#endif

#define CNN_MF_MAGIC "CNNMODEL"
#define CNN_MF_VERSION 2u    /* written; 1 (no checksum) is still read */
#define CNN_MF_VERSION_V1 1u
#define CNN_MF_HEADER_SIZE 128u
#define CNN_MF_PREPROC_SIZE 48u
#define CNN_MF_LAYER_FIXED 144u /* layer record without its inputs and slots */
#define CNN_MF_SLOT_SIZE 32u
#define CNN_MF_LABEL_SIZE 64u /* = CNN_LABEL_MAX */
#define CNN_MF_ALIGN 64u      /* weight section and every tensor */
#define CNN_MF_PARAM_WORDS 16
#define CNN_MF_MAX_DIMS 4
#define CNN_MF_META_MAX (1u << 20)                   /* bytes, without the NUL */
#define CNN_MF_MAX_TENSOR_FLOATS ((uint64_t)1 << 31) /* one weight tensor */
#define CNN_MF_MAX_WEIGHT_BYTES ((uint64_t)16 << 30) /* the whole weight section */

_Static_assert(CNN_MF_LABEL_SIZE == CNN_LABEL_MAX, "label field is CNN_LABEL_MAX bytes");
_Static_assert(CNN_MF_MAX_DIMS == CNN_MAX_WEIGHT_DIMS, "slot dims");
_Static_assert(CNN_MF_ALIGN == 16 * sizeof(float), "tensor alignment = 16-float slots");

/* Header field offsets. */
enum {
    MF_H_MAGIC = 0,
    MF_H_VERSION = 8,
    MF_H_HEADER_SIZE = 12,
    MF_H_FILE_SIZE = 16,
    MF_H_LAYER_COUNT = 24,
    MF_H_TENSOR_COUNT = 28,
    MF_H_LABEL_COUNT = 32,
    MF_H_FLAGS = 36,
    MF_H_SECTIONS = 40, /* 5 x (u64 offset, u64 size) */
    MF_H_RESERVED = 120,  /* version 1: u64, 0 */
    MF_H_CHECKSUM = 120,  /* version 2: u32 CRC-32 of every byte but these 4 */
    MF_H_RESERVED2 = 124, /* version 2: u32, 0 */
};

/* Header flags bits; any other bit set is refused (an old reader, which wants flags == 0,
 * refuses a file using one instead of misreading it). */
#define CNN_MF_FLAG_BGR 1u /* preprocessing writes channels in B,G,R order */
#define CNN_MF_FLAGS_KNOWN CNN_MF_FLAG_BGR

/* Sections, in file order. */
enum { MF_SEC_PREPROC, MF_SEC_LAYERS, MF_SEC_LABELS, MF_SEC_META, MF_SEC_WEIGHTS, MF_SEC_COUNT };

/* Layer record field offsets. */
enum {
    MF_L_RECORD_SIZE = 0,
    MF_L_KIND = 4,
    MF_L_NAME = 8,
    MF_L_N_INPUTS = 56,
    MF_L_N_SLOTS = 60,
    MF_L_OUT_C = 64,
    MF_L_OUT_H = 68,
    MF_L_OUT_W = 72,
    MF_L_RESERVED = 76,
    MF_L_PARAMS = 80,
    MF_L_INPUTS = 144,
};

/* Slot record field offsets (relative to the slot). */
enum { MF_S_NDIMS = 0, MF_S_DIMS = 4, MF_S_RESERVED = 20, MF_S_OFFSET = 24 };

static inline uint32_t mf_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t mf_get_u64(const unsigned char *p)
{
    return (uint64_t)mf_get_u32(p) | (uint64_t)mf_get_u32(p + 4) << 32;
}

static inline void mf_put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void mf_put_u64(unsigned char *p, uint64_t v)
{
    mf_put_u32(p, (uint32_t)v);
    mf_put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t mf_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float mf_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Writes the kind-specific parameters of l into words[16]; unused words are 0. */
void cnn_mf_pack_params(const struct cnn_layer *l, uint32_t words[CNN_MF_PARAM_WORDS]);

/* Reads words[16] into d->p for d->kind (a valid kind other than INPUT).  Checks what
 * cnn_model_add does not: 0/1 flags, finite floats, unused words 0.  Messages name the
 * layer (index and name) and the field; returns 0 or CNN_EFORMAT. */
int cnn_mf_unpack_params(const uint32_t words[CNN_MF_PARAM_WORDS], struct cnn_layer_desc *d,
                         int index, struct cnn_err *err);

/* After cnn_model_add rebuilt l from words: each CNN_FIELD_DERIVED word must equal what
 * shape inference derived (e.g. dense in).  0 or CNN_EFORMAT naming the field. */
int cnn_mf_check_derived(const uint32_t words[CNN_MF_PARAM_WORDS], const struct cnn_layer *l,
                         int index, struct cnn_err *err);

/* Dims of each weight slot of built layer l (cnn_model_add filled it): dims[s][0..ndims[s]),
 * outermost first.  Returns the slot count (= l->n_weights for every kind). */
int cnn_mf_slot_dims(const struct cnn_layer *l, int ndims[CNN_MAX_WEIGHTS_PER_LAYER],
                     int dims[CNN_MAX_WEIGHTS_PER_LAYER][CNN_MF_MAX_DIMS]);

/* Name of weight slot s of a layer kind, for messages ("w", "b", "gamma", ...). */
const char *cnn_mf_slot_name(enum cnn_layer_kind kind, int s);

/* The version-2 checksum: zlib's CRC-32 continued from crc over p[0..n) (any size).
 * A file's checksum is cnn_mf_crc over bytes [0, 120) then [124, file_size). */
uint32_t cnn_mf_crc(uint32_t crc, const void *p, size_t n);

/* 1 when s[0..n) is valid UTF-8 (no overlong forms, surrogates or code points > U+10FFFF). */
int cnn_mf_utf8_valid(const unsigned char *s, size_t n);

#endif
