/* Sessions: one thread's buffers for running a compiled model, and the forward pass.
 * At create time every value the plan produces gets a slot; a slot is reused once the
 * value in it has had its last reader, and elementwise ops write in place over an input
 * that dies with them (a conv over its fused residual).  All memory is one block; forward
 * never allocates or locks. */
#include "session.h"

#include "big_block.h"
#include "layer.h"
#include "layer_kind.h"
#include "model_internal.h"
#include "tensor.h"
#include "workers.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cnn_session {
    const struct cnn_model *m;
    int max_n;
    int pass_n;             /* images per pass (pass_images); slots and scratch fit it */
    int parts;              /* im2col scratch buffers, one per thread of a split forward */
    size_t col_stride;      /* floats between them */
    void *block;            /* owns every float buffer below */
    size_t block_bytes;
    float **value_buf;      /* per value id (layer index): its slot, NULL when never stored */
    float *col;             /* im2col scratch */
    float *input;           /* (max_n, C, H, W) NCHW staging for callers */
    float *probs;           /* (max_n, classes) */
    const float *op_in[CNN_MAX_INPUTS]; /* the current op's input values */
    const float *images;    /* the pass's input (value 0) read in place, or NULL: copied */
    double *op_ms;          /* borrowed: per-op times of the last pass, or NULL */
    clockid_t op_clock;     /* what op_ms measures */
};

static size_t value_floats(const struct cnn_model *m, int v, int max_n)
{
    const struct cnn_layer *l = &m->layers[v];
    return (size_t)l->c * (size_t)l->h * (size_t)l->w * (size_t)max_n;
}

/* A batch of more images than this runs as several passes, each through every layer: the
 * values of a pass then stay at most CNN_SESSION_PASS_BYTES per layer, so that a layer's
 * output is still in cache when the next one reads it, where one pass over the whole batch
 * streamed every value through memory.  Measured on an AMD EPYC (Zen 5, 1 MB L2 per core),
 * one thread, images/s: ResNet-50 batch 8 (3.2 MB per image at 256x56x56) 23.8 / 23.5 / 22.3
 * as one pass -> 25.5 / 25.4 / 23.7 one image per pass; ResNet-18 batch 8 (0.8 MB at
 * 64x56x56) 69.8 / 67.4 / 77.2 -> 81.9 / 81.6 / 80.6 two per pass (one per pass: 78.9 /
 * 68.5 / 79.1).  The session's slots and scratch are sized for a pass, not the batch. */
#define CNN_SESSION_PASS_BYTES ((size_t)2 << 20)

/* Weights past this many floats (32 MB: more than the L3 a core gets) come from memory
 * again in every pass: a model with such an op keeps a batch in one pass.  AlexNet (fc6
 * 9216 x 4096, 151 MB) at batch 8 on one thread, Zen 5: 58.6 images/s in one pass, 42.7 in
 * passes of one image. */
#define CNN_SESSION_PASS_MAX_WEIGHTS ((size_t)8 << 20)

/* Images per pass for a session made for batches of up to max_n.  Values an op writes
 * count; a conv's map that a fused pool reduces is never stored. */
static int pass_images(const struct cnn_model *m, int max_n)
{
    size_t largest = value_floats(m, 0, 1);
    for (int k = 0; k < m->n_ops; k++) {
        const size_t f = value_floats(m, m->ops[k].out, 1);
        largest = f > largest ? f : largest;
        /* an op's layer is its conv or dense, whatever it absorbed after it */
        if (m->layers[m->ops[k].layer].weight_count[0] > CNN_SESSION_PASS_MAX_WEIGHTS)
            return max_n;
    }
    const size_t n = CNN_SESSION_PASS_BYTES / (largest * sizeof(float)); /* largest >= 1 */
    return n < 1 ? 1 : n < (size_t)max_n ? (int)n : max_n;
}

/* The input op k writes its output over (input 0 of an elementwise kind, the residual
 * input 1 of a conv) when that value dies with op k and op reads it nowhere else; or -1. */
static int in_place_input(const struct cnn_model *m, const struct cnn_op *op, int k)
{
    const int j = op->res ? 1 : cnn_layer_kind_ops(op->kind)->in_place ? 0 : -1;
    if (j < 0)
        return -1;
    const int src = op->inputs[j];
    if (src == 0 || m->last_use[src] != k || (j == 1 && op->inputs[0] == src))
        return -1;
    return j;
}

/* Slot planning: value -> slot index; slot sizes.  Returns slot count or -1. */
struct slot_plan {
    int *value_slot;
    size_t *slot_floats;
    char *slot_busy;
    int n_slots;
};

static int pick_slot(struct slot_plan *sp, size_t need)
{
    int best = -1, largest = -1;
    for (int s = 0; s < sp->n_slots; s++) {
        if (sp->slot_busy[s])
            continue;
        if (sp->slot_floats[s] >= need &&
            (best < 0 || sp->slot_floats[s] < sp->slot_floats[best]))
            best = s;
        if (largest < 0 || sp->slot_floats[s] > sp->slot_floats[largest])
            largest = s;
    }
    if (best < 0)
        best = largest >= 0 ? largest : sp->n_slots++;
    if (sp->slot_floats[best] < need)
        sp->slot_floats[best] = need;
    sp->slot_busy[best] = 1;
    return best;
}

static void plan_slots(const struct cnn_model *m, int max_n, struct slot_plan *sp)
{
    for (int v = 0; v < m->n_layers; v++)
        sp->value_slot[v] = -1;
    sp->value_slot[0] = pick_slot(sp, value_floats(m, 0, max_n));
    for (int k = 0; k < m->n_ops; k++) {
        const struct cnn_op *op = &m->ops[k];
        const int reused = in_place_input(m, op, k);
        if (reused >= 0)
            sp->value_slot[op->out] = sp->value_slot[op->inputs[reused]];
        else
            sp->value_slot[op->out] = pick_slot(sp, value_floats(m, op->out, max_n));
        for (int j = 0; j < op->n_inputs; j++) {
            int v = op->inputs[j];
            if (m->last_use[v] != k || (reused >= 0 && v == op->inputs[reused]))
                continue;
            sp->slot_busy[sp->value_slot[v]] = 0;
        }
    }
}

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

static size_t col_floats(const struct cnn_model *m, int max_n)
{
    size_t col = 0;
    for (int k = 0; k < m->n_ops; k++) {
        const struct cnn_layer_kind_ops *kind = cnn_layer_kind_ops(m->ops[k].kind);
        size_t c = kind->scratch_floats ? kind->scratch_floats(&m->ops[k], max_n) : 0;
        if (c > col)
            col = c;
    }
    return col;
}

/* Fills sp and returns total floats of the block, or 0 on failure. */
static size_t layout(const struct cnn_model *m, int max_n, int pass_n, int parts,
                     struct slot_plan *sp)
{
    int n = m->n_layers;
    sp->value_slot = malloc((size_t)n * sizeof(int));
    sp->slot_floats = calloc((size_t)n + 1, sizeof(size_t));
    sp->slot_busy = calloc((size_t)n + 1, 1);
    sp->n_slots = 0;
    if (!sp->value_slot || !sp->slot_floats || !sp->slot_busy)
        return 0;
    plan_slots(m, pass_n, sp);
    size_t total = 0;
    for (int s = 0; s < sp->n_slots; s++)
        total += round16(sp->slot_floats[s]);
    total += round16(col_floats(m, pass_n)) * (size_t)parts;
    total += round16(value_floats(m, 0, max_n));
    total += round16((size_t)cnn_model_num_classes(m) * (size_t)max_n);
    return total;
}

static void free_plan(struct slot_plan *sp)
{
    free(sp->value_slot);
    free(sp->slot_floats);
    free(sp->slot_busy);
}

size_t cnn_session_plan(const struct cnn_model *m, int max_n)
{
    if (!m->compiled || max_n < 1)
        return 0;
    struct slot_plan sp = {0};
    size_t floats = layout(m, max_n, pass_images(m, max_n), 1, &sp);
    free_plan(&sp);
    return floats * sizeof(float);
}

struct cnn_session *cnn_session_create(const struct cnn_model *m, int max_n,
                                       struct cnn_err *err)
{
    return cnn_session_create_parts(m, max_n, 1, err);
}

struct cnn_session *cnn_session_create_parts(const struct cnn_model *m, int max_n, int parts,
                                             struct cnn_err *err)
{
    if (!m->compiled) {
        cnn_err_set(err, CNN_EINVAL, "session: model is not compiled");
        return NULL;
    }
    if (max_n < 1 || max_n > 65536) {
        cnn_err_set(err, CNN_EINVAL, "session: max batch %d out of range 1..65536", max_n);
        return NULL;
    }
    if (parts < 1 || parts > CNN_SESSION_MAX_PARTS) {
        cnn_err_set(err, CNN_EINVAL, "session: %d parts out of range 1..%d", parts,
                    CNN_SESSION_MAX_PARTS);
        return NULL;
    }
    struct cnn_session *s = calloc(1, sizeof *s);
    struct slot_plan sp = {0};
    if (!s)
        goto nomem;
    s->m = m;
    s->max_n = max_n;
    s->pass_n = pass_images(m, max_n);
    s->parts = parts;
    s->col_stride = round16(col_floats(m, s->pass_n));
    size_t floats = layout(m, max_n, s->pass_n, parts, &sp);
    size_t bytes;
    if (floats == 0 || cnn_mul_size(floats, sizeof(float), &bytes))
        goto nomem;
    s->block = cnn_big_block(bytes);
    s->block_bytes = bytes;
    s->value_buf = calloc((size_t)m->n_layers, sizeof(float *));
    if (!s->block || !s->value_buf)
        goto nomem;
    float *p = s->block;
    float **slot_base = malloc((size_t)(sp.n_slots + 1) * sizeof(float *));
    if (!slot_base)
        goto nomem;
    for (int k = 0; k < sp.n_slots; k++) {
        slot_base[k] = p;
        p += round16(sp.slot_floats[k]);
    }
    for (int v = 0; v < m->n_layers; v++)
        s->value_buf[v] = sp.value_slot[v] >= 0 ? slot_base[sp.value_slot[v]] : NULL;
    free(slot_base);
    s->col = p;
    p += s->col_stride * (size_t)parts;
    s->input = p;
    p += round16(value_floats(m, 0, max_n));
    s->probs = p;
    free_plan(&sp);
    return s;
nomem:
    free_plan(&sp);
    cnn_session_destroy(s);
    cnn_err_set(err, CNN_ENOMEM, "session: out of memory for batch %d", max_n);
    return NULL;
}

void cnn_session_destroy(struct cnn_session *s)
{
    if (!s)
        return;
    cnn_big_block_free(s->block, s->block_bytes);
    free(s->value_buf);
    free(s);
}

float *cnn_session_input(struct cnn_session *s)
{
    return s->input;
}

/* (a, b, inner) -> (b, a, inner): NCHW <-> CNHW. */
static void swap_outer(float *dst, const float *src, int a, int b, size_t inner)
{
    for (int i = 0; i < a; i++) {
        for (int j = 0; j < b; j++)
            memcpy(dst + ((size_t)j * a + i) * inner, src + ((size_t)i * b + j) * inner,
                   inner * sizeof(float));
    }
}

/* Value v of the current pass: the caller's images themselves when they are value 0 as is. */
static const float *value_in(const struct cnn_session *s, int v)
{
    return v == 0 && s->images ? s->images : s->value_buf[v];
}

/* One op through its kind's row: one indirect call per op, none inside the kernels. */
static void run_op(struct cnn_session *s, const struct cnn_model *m, const struct cnn_op *op,
                   int n)
{
    for (int j = 0; j < op->n_inputs; j++)
        s->op_in[j] = value_in(s, op->inputs[j]);
    const struct cnn_op_run r = {
        .out = s->value_buf[op->out], .in = s->op_in, .col = s->col, .n = n};
    cnn_layer_kind_ops(op->kind)->run(m, op, &r);
}

struct op_split {
    struct cnn_session *s;
    const struct cnn_model *m;
    const struct cnn_op *op;
    int n, round;
    float *const *cols; /* scratch of each part */
};

static void op_part_work(void *ctx, int part, int parts)
{
    const struct op_split *j = ctx;
    const struct cnn_op_run r = {.out = j->s->value_buf[j->op->out],
                                 .in = j->s->op_in,
                                 .col = j->cols[part],
                                 .n = j->n,
                                 .col0 = j->cols[0],
                                 .round = j->round};
    cnn_layer_kind_ops(j->op->kind)->run_part(j->m, j->op, &r, part, parts);
}

/* run_op over the team when the kind splits. */
static void run_op_team(struct cnn_session *s, const struct cnn_model *m, const struct cnn_op *op,
                        int n, struct cnn_workers *team, float *const *cols)
{
    const struct cnn_layer_kind_ops *ops = cnn_layer_kind_ops(op->kind);
    if (!ops->run_part) {
        run_op(s, m, op, n);
        return;
    }
    for (int j = 0; j < op->n_inputs; j++)
        s->op_in[j] = value_in(s, op->inputs[j]);
    struct op_split job = {.s = s, .m = m, .op = op, .n = n, .cols = cols};
    const int rounds = ops->run_rounds ? ops->run_rounds(op, n, cnn_workers_count(team)) : 1;
    for (job.round = 0; job.round < rounds; job.round++)
        cnn_workers_run(team, op_part_work, &job);
}

/* Op k of the plan: over the team when there is one. */
static void run_op_k(struct cnn_session *s, const struct cnn_model *m, int k, int n,
                     struct cnn_workers *team, float *const *cols)
{
    if (team)
        run_op_team(s, m, &m->ops[k], n, team, cols);
    else
        run_op(s, m, &m->ops[k], n);
}

static double now_ms(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

/* The ops of a profiled pass, each timed into s->op_ms (a separate loop: an unprofiled
 * pass pays nothing for it). */
static void run_ops_timed(struct cnn_session *s, const struct cnn_model *m,
                          struct cnn_workers *team, float *const *cols, int n)
{
    double t0 = now_ms(s->op_clock);
    for (int k = 0; k < m->n_ops; k++) {
        run_op_k(s, m, k, n, team, cols);
        double t1 = now_ms(s->op_clock);
        s->op_ms[k] += t1 - t0; /* summed over the passes of a call */
        t0 = t1;
    }
}

void cnn_session_profile(struct cnn_session *s, double *op_ms, int cpu_time)
{
    s->op_ms = op_ms;
    s->op_clock = cpu_time ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
}

/* One pass over n <= s->pass_n images; their outputs go to out ((n, classes) NCHW). */
static void forward_pass(struct cnn_session *s, const struct cnn_model *m,
                         struct cnn_workers *team, float *const *cols, const float *images, int n,
                         float *out)
{
    const struct cnn_layer *in = &m->layers[0];
    /* One image is the same in NCHW and CNHW, and no op writes value 0 (in_place_input),
     * so the ops read it where it is: ResNet-18 copied 0.6 MB, 0.05 ms, per pass. */
    s->images = n == 1 ? images : NULL;
    if (!s->images)
        swap_outer(s->value_buf[0], images, n, in->c, (size_t)in->h * (size_t)in->w);
    if (s->op_ms)
        run_ops_timed(s, m, team, cols, n);
    else
        for (int k = 0; k < m->n_ops; k++)
            run_op_k(s, m, k, n, team, cols);
    int v = m->alias_of[m->n_layers - 1];
    const struct cnn_layer *ol = &m->layers[v];
    swap_outer(out, value_in(s, v), ol->c, n, (size_t)ol->h * (size_t)ol->w);
    s->images = NULL;
}

/* The forward pass (as many as the batch needs: pass_images); with a team (2+
 * threads), part i of a split op uses cols[i]. */
static int forward_cols(struct cnn_session *s, const struct cnn_model *m, struct cnn_workers *team,
                        float *const *cols, const float *images, int n, const float **probs,
                        struct cnn_err *err)
{
    if (m != s->m)
        return cnn_err_set(err, CNN_EINVAL, "session: made for another model");
    if (n < 1 || n > s->max_n)
        return cnn_err_set(err, CNN_EINVAL, "session: batch %d outside 1..%d", n, s->max_n);
    const size_t in_floats = value_floats(m, 0, 1);
    const size_t out_floats = value_floats(m, m->alias_of[m->n_layers - 1], 1);
    if (s->op_ms)
        memset(s->op_ms, 0, (size_t)m->n_ops * sizeof *s->op_ms);
    for (int i = 0; i < n; i += s->pass_n) {
        const int k = n - i < s->pass_n ? n - i : s->pass_n;
        forward_pass(s, m, team, cols, images + (size_t)i * in_floats, k,
                     s->probs + (size_t)i * out_floats);
    }
    *probs = s->probs;
    return 0;
}

int cnn_session_forward(struct cnn_session *s, const struct cnn_model *m, const float *images,
                        int n, const float **probs, struct cnn_err *err)
{
    return forward_cols(s, m, NULL, NULL, images, n, probs, err);
}

int cnn_session_forward_team(struct cnn_session *s, const struct cnn_model *m,
                             struct cnn_workers *team, const float *images, int n,
                             const float **probs, struct cnn_err *err)
{
    const int parts = cnn_workers_count(team);
    if (parts > s->parts)
        return cnn_err_set(err, CNN_EINVAL, "session: team of %d threads, scratch for %d", parts,
                           s->parts);
    if (parts == 1)
        return forward_cols(s, m, NULL, NULL, images, n, probs, err);
    float *cols[CNN_SESSION_MAX_PARTS];
    for (int i = 0; i < parts; i++)
        cols[i] = s->col + (size_t)i * s->col_stride;
    return forward_cols(s, m, team, cols, images, n, probs, err);
}

int cnn_session_forward_lent(struct cnn_session *s, const struct cnn_model *m,
                             struct cnn_workers *team, struct cnn_session *const *lenders,
                             const float *images, int n, const float **probs, struct cnn_err *err)
{
    const int parts = cnn_workers_count(team);
    if (parts == 1)
        return forward_cols(s, m, NULL, NULL, images, n, probs, err);
    if (!lenders)
        return cnn_err_set(err, CNN_EINVAL, "session: team of %d threads, no lenders", parts);
    float *cols[CNN_SESSION_MAX_PARTS];
    cols[0] = s->col;
    for (int i = 1; i < parts; i++) {
        const struct cnn_session *l = lenders[i - 1];
        if (!l || l->m != m || l->max_n < n)
            return cnn_err_set(err, CNN_EINVAL,
                               "session: lender %d is missing, for another model or for "
                               "batches below %d",
                               i - 1, n);
        for (int j = 0; j < i; j++)
            if (cols[j] == l->col)
                return cnn_err_set(err, CNN_EINVAL,
                                   "session: lender %d is the session or another lender", i - 1);
        cols[i] = l->col;
    }
    return forward_cols(s, m, team, cols, images, n, probs, err);
}
