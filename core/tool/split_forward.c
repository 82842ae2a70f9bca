/* Split runner (see split_forward.h): one session per part of the batch, the parts run by
 * a worker team (core/workers.c: the caller and W-1 helper threads, which spin briefly
 * before sleeping since a LeNet batch takes ~70 us, less than a futex wake-up). */
#include "split_forward.h"

#include "session.h"
#include "workers.h"

#include <stdlib.h>
#include <string.h>

struct split_runner {
    const struct cnn_model *m;
    int batch, workers, classes;
    size_t image_floats;
    float *input, *output;
    struct cnn_session **s; /* one per part */
    int *rc;                /* per part, of the last pass */
    struct cnn_workers *team;
    int n; /* images of the current pass */
};

/* Slice [*lo, *hi) of n images for part i. */
static void slice(int n, int parts, int i, int *lo, int *hi)
{
    size_t a, b;
    cnn_part_range((size_t)n, i, parts, &a, &b);
    *lo = (int)a, *hi = (int)b;
}

static void run_slice(void *ctx, int part, int parts)
{
    struct split_runner *r = ctx;
    int lo, hi;
    slice(r->n, parts, part, &lo, &hi);
    r->rc[part] = 0;
    if (hi <= lo)
        return;
    const float *out;
    struct cnn_err err;
    r->rc[part] = cnn_session_forward(r->s[part], r->m, r->input + (size_t)lo * r->image_floats,
                                      hi - lo, &out, &err);
    if (r->rc[part] == 0)
        memcpy(r->output + (size_t)lo * r->classes, out,
               sizeof(float) * (size_t)(hi - lo) * r->classes);
}

struct split_runner *split_create(const struct cnn_model *m, int batch, int workers,
                                  struct cnn_err *err)
{
    if (workers < 1 || workers > batch) {
        cnn_err_set(err, CNN_EINVAL, "split: %d workers for batch %d", workers, batch);
        return NULL;
    }
    struct split_runner *r = calloc(1, sizeof *r);
    if (!r)
        goto nomem;
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    r->m = m;
    r->batch = batch;
    r->workers = workers;
    r->classes = cnn_model_num_classes(m);
    r->image_floats = (size_t)pp->c * pp->h * pp->w;
    r->input = calloc((size_t)batch * r->image_floats, sizeof(float));
    r->output = calloc((size_t)batch * r->classes, sizeof(float));
    r->s = calloc((size_t)workers, sizeof *r->s);
    r->rc = calloc((size_t)workers, sizeof *r->rc);
    if (!r->input || !r->output || !r->s || !r->rc)
        goto nomem;
    for (int i = 0; i < workers; i++) {
        int lo, hi;
        slice(batch, workers, i, &lo, &hi);
        if (!(r->s[i] = cnn_session_create(m, hi - lo, err))) {
            split_destroy(r);
            return NULL;
        }
    }
    if (!(r->team = cnn_workers_create(workers, err))) {
        split_destroy(r);
        return NULL;
    }
    return r;
nomem:
    split_destroy(r);
    cnn_err_set(err, CNN_ENOMEM, "split: out of memory");
    return NULL;
}

float *split_input(struct split_runner *r)
{
    return r->input;
}

int split_forward(struct split_runner *r, int n, const float **out, struct cnn_err *err)
{
    if (n < 1 || n > r->batch)
        return cnn_err_set(err, CNN_EINVAL, "split: batch %d outside 1..%d", n, r->batch);
    r->n = n;
    cnn_workers_run(r->team, run_slice, r);
    for (int i = 0; i < r->workers; i++)
        if (r->rc[i])
            return cnn_err_set(err, r->rc[i], "split: worker %d failed", i);
    *out = r->output;
    return 0;
}

void split_destroy(struct split_runner *r)
{
    if (!r)
        return;
    cnn_workers_destroy(r->team);
    for (int i = 0; r->s && i < r->workers; i++)
        cnn_session_destroy(r->s[i]);
    free(r->s);
    free(r->rc);
    free(r->input);
    free(r->output);
    free(r);
}
