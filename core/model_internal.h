/* The insides of struct cnn_model, for the core files that build, load, save, compile and
 * run it (model.c, model_*.c, session.c, layer_*.c, train).  Everyone else uses model.h. */
#ifndef CNN_MODEL_INTERNAL_H
#define CNN_MODEL_INTERNAL_H

#include "model.h"

#define CNN_MAX_WEIGHT_DIMS 4 /* of one weight slot */

struct cnn_layer {
    enum cnn_layer_kind kind;
    char name[CNN_NAME_MAX];
    int n_inputs;
    int inputs[CNN_MAX_INPUTS];
    union cnn_layer_params p;
    int c, h, w;                                   /* output shape per image */
    int n_weights;                                 /* weight slots used (0..4) */
    size_t weight_count[CNN_MAX_WEIGHTS_PER_LAYER];
    size_t weight_offset[CNN_MAX_WEIGHTS_PER_LAYER]; /* floats into params, 16-aligned */
    int weight_ndims[CNN_MAX_WEIGHTS_PER_LAYER];     /* dims of each slot, outermost first */
    int weight_dims[CNN_MAX_WEIGHTS_PER_LAYER][CNN_MAX_WEIGHT_DIMS];
};

/* One step of the compiled inference plan (model.c builds it, session.c runs it). */
struct cnn_op {
    enum cnn_layer_kind kind;     /* INPUT never appears; BATCHNORM = standalone scale/shift */
    int layer;                    /* the layer whose output this op writes */
    int n_inputs;
    const int *inputs;            /* value ids (= layer indices) read */
    int out;                      /* value id written */
    struct cnn_conv2d conv;       /* conv with folded BN and fused act */
    struct cnn_dense dense;
    struct cnn_act_params act;    /* fused activation for add / scale-shift / act */
    const float *w, *b;           /* conv/dense weights (maybe folded copies); BN: scale, shift */
    const float *u;               /* conv: Winograd weights ((wino+2)^2, OC, C) in folded, or NULL */
    int wino;                     /* conv: Winograd output tile 2 or 4 (then w is NULL when BN
                                   * was folded: u is all the op reads), 0 = no Winograd */
    int u_packed;                 /* conv: 1 when each plane of u is packed for cnn_gemm_packed() */
    const float *wd;              /* conv: direct-conv weights (conv_direct.h) in folded, or NULL */
    const float *wp;              /* conv: weights packed for cnn_gemm_packed() in folded, or NULL
                                   * (then w is NULL when BN was folded, as for u) */
    struct cnn_pool2d pool;       /* conv: the max pool fused into it (pool.kh > 0), or zeros */
    int res;                      /* conv: 1 when inputs[1] is a residual added before the act
                                   * (an absorbed add); the session may write out over it */
};

struct cnn_model {
    struct cnn_preproc pp;
    struct cnn_layer *layers;     /* n_layers, layer 0 = input */
    int n_layers, cap_layers;
    char (*labels)[CNN_LABEL_MAX];
    int n_labels;
    char *meta;                   /* owned, NUL-terminated, may be NULL */
    float *params;                /* all weights; points into map or owned_params */
    size_t n_params;              /* floats */
    float *owned_params;          /* malloc'd when built in memory */
    void *map;                    /* mmap of the file, or NULL */
    size_t map_size;
    int compiled;
    /* inference plan (after compile) */
    struct cnn_op *ops;
    int n_ops;
    int *alias_of;                /* per layer: value id whose buffer this layer's output is */
    int *last_use;                /* per value id: index of the last op reading it */
    int *op_inputs;               /* storage behind ops[].inputs */
    float *folded;                /* owned (cnn_big_block): folded conv weights, BN scale/shift */
    size_t folded_bytes;          /* as asked of cnn_big_block */
};

/* Computes weight_offset of every slot (16-float aligned, layer order, slot order) and
 * n_params, without allocating.  cnn_model_alloc_params and the loader both use it. */
int cnn_model_layout_params(struct cnn_model *m, struct cnn_err *err);

/* cnn_model_compile_wino() with a conv's residual add fused into the conv (fuse_residual 1,
 * what both public compile calls do) or kept as an add op (0: tests compare the two). */
int cnn_model_compile_plan(struct cnn_model *m, int max_tile, int fuse_residual,
                           struct cnn_err *err);

#endif
