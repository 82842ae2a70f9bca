/* The table of layer kinds: one row (struct cnn_layer_kind_ops) per enum cnn_layer_kind holds
 * all core knows of a kind -- name, shape checks, weight slots, file-record fields, compile
 * step, session forward, trainer forward and backward -- so model, compiler, session, trainer
 * and file format look a kind up instead of switching over it.  Rows live in layer_<kind>.c,
 * cnn_layer_kind_ops() (layer_kinds.c) finds them; recipe for a new kind: docs/engine.md. */
#ifndef CNN_LAYER_KIND_H
#define CNN_LAYER_KIND_H

#include "model_internal.h"

#include <stddef.h>
#include <stdint.h>

#define CNN_MAX_DIM (1 << 24)              /* any single C, H or W */
#define CNN_MAX_IMAGE_FLOATS (1u << 30)    /* C*H*W of one activation or one weight tensor */

/* ---- file record: the 16 parameter words of a layer (docs/model-format.md) ------------- */

enum cnn_field_type {
    CNN_FIELD_INT,
    CNN_FIELD_FLOAT,   /* must be finite */
    CNN_FIELD_FLAG,    /* 0 or 1 */
    CNN_FIELD_ACT,     /* an enum cnn_act */
    CNN_FIELD_DERIVED, /* an int shape inference sets; a stored value must match it */
};

/* Word i of the record = the 4 bytes at offset off into the params union. */
struct cnn_layer_field {
    const char *name;
    enum cnn_field_type type;
    size_t off;
};

/* ---- compile and session ------------------------------------------------------------- */

/* State of cnn_model_compile() that a kind's plan step may use (model_compile.c). */
struct cnn_compile {
    struct cnn_model *m;
    int *n_consumers;
    int *consumer;  /* one consumer of each layer (the only one when n_consumers == 1) */
    char *absorbed; /* layer fused into an earlier op */
    float *folded;
    size_t folded_used;
    int max_wino;   /* largest Winograd tile a conv may use (cnn_model_compile_wino) */
    int fuse_residual; /* a conv may absorb the add that alone reads it (cnn_model_compile_plan) */
    int used_inputs;   /* entries of m->op_inputs taken so far */
};
/* The single-input layer that alone reads `layer`, or -1. */
int cnn_compile_sole_consumer(const struct cnn_compile *cs, int layer);
/* n floats (16-aligned) of the model's folded-weight block, sized by folded_floats. */
float *cnn_compile_take(struct cnn_compile *cs, size_t n);
/* Absorbs a following activation layer into *act (then op writes that layer) when act is
 * none and the activation is the sole consumer of op's output. */
void cnn_compile_fuse_act(struct cnn_compile *cs, struct cnn_op *op, struct cnn_act_params *act);
/* Absorbs an add of exactly two inputs that alone reads op's output when the add's other
 * input is already computed (its value exists when op runs): that value becomes op's
 * input 1 (op->res = 1), op then writes the add.  The caller's kernel must compute
 * act(op + residual); call before cnn_compile_fuse_act.  Returns 1 when fused. */
int cnn_compile_fuse_residual(struct cnn_compile *cs, struct cnn_op *op);

/* What one op's forward reads and writes in a session (session.c fills it per op). */
struct cnn_op_run {
    float *out;                /* the op's output value */
    const float *const *in;    /* op->n_inputs input values */
    float *col;                /* scratch_floats(op, max_n) floats */
    int n;                     /* batch */
    float *col0;               /* split forward: part 0's col, which every part may use in a
                                * round before the last (run_rounds) */
    int round;                 /* split forward: 0 .. run_rounds - 1 */
};

/* ---- trainer ------------------------------------------------------------------------ */

struct cnn_trainer;
struct train_fwd_job;
struct train_bwd_job;
/* Sizes train_graph_alloc gathers over the layers (each kind raises what it needs). */
struct train_sizes {
    size_t scratch;      /* per part */
    size_t conv_weights; /* largest conv weight tensor */
    size_t wino_weights; /* largest Winograd-transformed weight tensor */
    int max_c;           /* most channels of a batch norm */
};

/* ---- the row -------------------------------------------------------------------------- */

struct cnn_layer_kind_ops {
    const char *name;  /* "conv2d": messages, generated layer names, `cnn info` */
    int multi_input;   /* takes more than one input (add, concat) */
    /* the parameter words of the file record, in order (at most 16) */
    const struct cnn_layer_field *fields;
    int n_fields;
    const char *const *slot_names; /* weight slot names for messages; NULL when none */
    int learned_slots; /* leading weight slots SGD updates (at most n_weights of a layer) */
    int decay_slots;   /* leading weight slots that get weight decay */

    /* Checks l->p against the inputs' shapes (m->layers[l->inputs[k]]), fills the derived
     * params, l->c, l->h, l->w and the weight slots (cnn_layer_add_slot).  Required. */
    int (*infer)(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err);
    /* The activation the layer applies after itself, or NULL (hook NULL: none). */
    const struct cnn_act_params *(*fused_act)(const struct cnn_layer *l);
    double (*flops)(const struct cnn_layer *l);              /* per image; NULL: 0 */
    void (*init)(struct cnn_model *m, int i, uint64_t *rng); /* NULL: weights stay 0 */
    /* Checks beyond "every weight finite" at compile; NULL: none. */
    int (*check_weights)(const struct cnn_model *m, const struct cnn_layer *l,
                         struct cnn_err *err);

    /* Compile: 1 when the layer is its input's value (no op); NULL: never. */
    int (*is_alias)(const struct cnn_model *m, const struct cnn_layer *l);
    size_t (*folded_floats)(const struct cnn_layer *l); /* bound of what plan takes; NULL: 0 */
    /* Fills the kind's part of op (weights, fusion); NULL: nothing to fill. */
    void (*plan)(struct cnn_compile *cs, struct cnn_op *op, const struct cnn_layer *l);
    int in_place; /* the session may write the output over input 0 when input 0 dies */
    size_t (*scratch_floats)(const struct cnn_op *op, int max_n); /* session col; NULL: 0 */
    /* The inference forward of one op.  Required (never called for input). */
    void (*run)(const struct cnn_model *m, const struct cnn_op *op, const struct cnn_op_run *r);
    /* Part `part` of `parts` of run, all parts at once on a worker team, each with its own
     * r->col (the session's split forward).  NULL: part 0 runs `run`, the others idle. */
    void (*run_part)(const struct cnn_model *m, const struct cnn_op *op,
                     const struct cnn_op_run *r, int part, int parts);
    /* Rounds of run_part for batch n over `parts` (every part of round i ends before any of
     * round i + 1 starts; r->round tells which); NULL: 1. */
    int (*run_rounds)(const struct cnn_op *op, int n, int parts);

    /* Trainer: allocates the layer's own train_layer buffers and raises *sz; 0 or -1 (out
     * of memory).  NULL: none. */
    int (*train_alloc)(struct cnn_trainer *t, int i, struct train_sizes *sz);
    /* Before a forward of layer i (once, not per part); NULL: none. */
    void (*train_prepare)(struct cnn_trainer *t, int i, int training);
    /* Part `part` of `parts` of the forward / backward (train_internal.h); required. */
    int (*train_forward)(const struct train_fwd_job *job, int part, int parts,
                         struct cnn_err *err);
    void (*train_backward)(const struct train_bwd_job *job, int part, int parts);
    /* After all parts of a backward (e.g. summing per-part gradients); NULL: none. */
    void (*train_reduce)(struct cnn_trainer *t, int i);
};

/* The row of kind (NULL for CNN_LAYER_KIND_COUNT or an out-of-range value). */
const struct cnn_layer_kind_ops *cnn_layer_kind_ops(enum cnn_layer_kind kind);

/* ---- helpers for the rows (layer_kinds.c) --------------------------------------------- */

/* Appends a weight slot of dims d[0..ndims) to l (count checked against
 * CNN_MAX_IMAGE_FLOATS: CNN_ELIMIT). */
int cnn_layer_add_slot(struct cnn_layer *l, int ndims, const int *d, struct cnn_err *err);
/* Input k of l. */
static inline const struct cnn_layer *cnn_layer_input(const struct cnn_model *m,
                                                      const struct cnn_layer *l, int k)
{
    return &m->layers[l->inputs[k]];
}
/* l's output shape = that of its input 0; returns 0. */
int cnn_layer_same_shape(const struct cnn_model *m, struct cnn_layer *l);
/* Batch norm as y = x * scale + shift per channel, from its running statistics
 * (layer_batchnorm.c; the conv row folds it with this). */
void cnn_batchnorm_scale_shift(const struct cnn_model *m, const struct cnn_layer *bn, float *scale,
                               float *shift);
/* The file-record field (span) and shape check of the softmax and log_softmax rows
 * (layer_log_softmax.c). */
extern const struct cnn_layer_field cnn_softmax_fields[1];
int cnn_softmax_infer(const struct cnn_model *m, struct cnn_layer *l, struct cnn_err *err);
/* He (relu-like after it) or Xavier init of weight slot 0 of layer i, slot 1 zeroed
 * (model.c; the generator stream is that of cnn_model_init_random). */
void cnn_model_init_fan(struct cnn_model *m, int i, double fan_in, double fan_out, int relu,
                        uint64_t *rng);

#endif
