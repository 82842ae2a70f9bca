/* A CNN model: a DAG of layers, their weights, class labels and input preprocessing.
 *
 * Life cycle.  Built (cnn_model_create + cnn_model_add + cnn_model_alloc_params, used by
 * architecture builders, tests and the trainer) or loaded (cnn_model_load, which does all
 * of that from a file and maps the weights read-only).  cnn_model_compile() then checks
 * every weight, folds batch norm into the preceding conv, fuses activations and builds the
 * inference plan; after it the model is immutable and travels as const struct cnn_model *,
 * shared by any number of threads, each with its own session (session.h).
 * Layers are stored in topological order: a layer's inputs have smaller indices.
 * Layer 0 is the input. The last layer is the output. */
#ifndef CNN_MODEL_H
#define CNN_MODEL_H

#include "err.h"
#include "layer.h"

#include <stddef.h>
#include <stdint.h>

#define CNN_NAME_MAX 48         /* layer name incl. NUL */
#define CNN_LABEL_MAX 64        /* class label incl. NUL */
#define CNN_MAX_INPUTS 128      /* inputs of one concat/add */
#define CNN_MAX_LAYERS 4096
#define CNN_MAX_CLASSES 100000
#define CNN_MAX_WEIGHTS_PER_LAYER 4

/* How raw pixels become the input tensor. Pixels are first scaled to [0,1]. */
enum cnn_resize { CNN_RESIZE_STRETCH = 0, /* bilinear to (h, w) directly */
                  CNN_RESIZE_SHORTER_CROP = 1 /* shorter side to resize_short, center crop (h, w) */ };

struct cnn_preproc {
    int c, h, w;            /* input tensor per image; images: 1 (gray) or 3 (RGB) channels */
    enum cnn_resize resize;
    int resize_short;       /* CNN_RESIZE_SHORTER_CROP: shorter side before the crop */
    int invert;             /* 1: x = 1 - x before normalizing (white-on-black datasets) */
    float mean[3], std[3];  /* x = (x - mean[c]) / std[c], c the OUTPUT channel (c < 3) */
    int bgr;                /* 1: channels in B,G,R order (mean[0] is blue's); needs c == 3 */
};

#define CNN_PREPROC_MAX_DIM 16384 /* input h, w and resize_short */
#define CNN_PREPROC_MAX_C 4096    /* input channels of a model fed tensors */

/* The one check of a model's preprocessing: 1..CNN_PREPROC_MAX_C channels, h and w in
 * 1..CNN_PREPROC_MAX_DIM, a known resize mode whose crop fits (resize_short >= h and w),
 * finite mean and non-zero finite std for each used channel (the first min(c, 3)), bgr 0 or 1
 * (1 only with c == 3).  0 or CNN_EINVAL. */
int cnn_preproc_check(const struct cnn_preproc *pp, struct cnn_err *err);

/* Channels that mean/std apply to: one per channel, the first 3 of a tensor-fed model. */
static inline int cnn_preproc_norm_channels(const struct cnn_preproc *pp)
{
    return pp->c < 3 ? pp->c : 3;
}

/* 1..max strict comma-separated finite floats ("0.5" or "0.485,0.456,0.406") into v, never
 * more than max; the count, or -1 (empty item, junk, overflow, non-finite, more than max). */
int cnn_parse_floats(const char *s, float *v, int max);

/* cnn_preproc_check() plus the image rule (decoding, datasets, /v1 classify): 1 or 3
 * channels.  0 or CNN_EINVAL. */
int cnn_preproc_check_image(const struct cnn_preproc *pp, struct cnn_err *err);

/* Description of one layer for cnn_model_add().  Fill kind, name, inputs and the params
 * member of that kind; input shape fields (c, h, w) inside params are filled by add. */
struct cnn_layer_desc {
    enum cnn_layer_kind kind;
    const char *name;        /* unique, < CNN_NAME_MAX; NULL = generated "<kind><index>" */
    int n_inputs;            /* 0 = the previous layer */
    const int *inputs;       /* layer indices */
    union cnn_layer_params p;
};

struct cnn_model;

/* New empty model with only the input layer. Owned by the caller: cnn_model_destroy(). */
struct cnn_model *cnn_model_create(const struct cnn_preproc *pp, struct cnn_err *err);

/* Appends a layer; checks it against its inputs' shapes. Returns its index (>= 0) or CNN_E*. */
int cnn_model_add(struct cnn_model *m, const struct cnn_layer_desc *d, struct cnn_err *err);

/* Sets the class labels (copied); n must equal the output's channel count. */
int cnn_model_set_labels(struct cnn_model *m, const char *const *labels, int n,
                         struct cnn_err *err);
/* Replaces how images are prepared for m (resize, invert, mean, std): pp's c, h and w must
 * be the model's input.  For the loader of a model before it is shared (the server applies
 * NAME/config.ini [preprocessing] with it).  0 or CNN_EINVAL. */
int cnn_model_set_preproc(struct cnn_model *m, const struct cnn_preproc *pp, struct cnn_err *err);
/* Sets free-form metadata text (copied): lineage, training info; "key=value" lines. */
int cnn_model_set_meta(struct cnn_model *m, const char *text, struct cnn_err *err);

/* Allocates the zeroed parameter block for all layers added (no more adds after it). */
int cnn_model_alloc_params(struct cnn_model *m, struct cnn_err *err);

/* Writable view of weight slot `slot` of layer `layer` (see enum cnn_layer_kind for the
 * slots) before compile; NULL when absent.  *count gets its float count. */
float *cnn_model_weights_mut(struct cnn_model *m, int layer, int slot, size_t *count);

/* He (conv/dense followed by relu-like) or Xavier init from seed; biases 0; BN gamma 1,
 * beta 0, mean 0, var 1. Deterministic for a given seed. */
void cnn_model_init_random(struct cnn_model *m, uint64_t seed);

/* Checks weights (finite, BN variance >= 0), folds BN, fuses activations, builds the plan.
 * After it the model must only be used through a const pointer. */
int cnn_model_compile(struct cnn_model *m, struct cnn_err *err);
/* The same with the largest Winograd output tile its convs may use: 4 (what
 * cnn_model_compile() allows: F(4x4) or F(2x2) by the cost model), 2 (F(2x2) only) or 0
 * (im2col only); for tests and benchmarks comparing the paths. */
int cnn_model_compile_wino(struct cnn_model *m, int max_tile, struct cnn_err *err);

/* Loads and compiles a model file (model_io.c). *out is owned by the caller. */
int cnn_model_load(const char *path, struct cnn_model **out, struct cnn_err *err);
/* Loads from memory (copied); same checks. For fuzzing and tests. */
int cnn_model_load_mem(const void *data, size_t size, struct cnn_model **out,
                       struct cnn_err *err);
/* Writes the model atomically: temp file in the same folder, fsync, rename, fsync folder. */
int cnn_model_save(const struct cnn_model *m, const char *path, struct cnn_err *err);

void cnn_model_destroy(struct cnn_model *m);

/* ---- read access (any thread) -------------------------------------------- */

int cnn_model_layer_count(const struct cnn_model *m);
const struct cnn_preproc *cnn_model_preproc(const struct cnn_model *m);
int cnn_model_num_classes(const struct cnn_model *m);
const char *cnn_model_label(const struct cnn_model *m, int i); /* NULL when unlabelled */
const char *cnn_model_meta(const struct cnn_model *m);         /* "" when none */
/* The value of the first "key=value" line of the metadata into buf (n > 0 bytes, cut to
 * fit); "" when there is none. */
void cnn_model_meta_value(const struct cnn_model *m, const char *key, char *buf, size_t n);
size_t cnn_model_param_count(const struct cnn_model *m);       /* learnable: conv, dense, BN gamma/beta */
double cnn_model_flops(const struct cnn_model *m);             /* 2 x conv+dense MACs per image */

struct cnn_layer_info {
    enum cnn_layer_kind kind;
    const char *name;
    int n_inputs;
    const int *inputs;
    int c, h, w;                /* output per image */
    size_t params;
    double flops;               /* per image */
};
void cnn_model_layer_info(const struct cnn_model *m, int i, struct cnn_layer_info *out);
/* Finds a layer by name; -1 when absent. */
int cnn_model_find_layer(const struct cnn_model *m, const char *name);

#endif
