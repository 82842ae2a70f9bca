/* Epoch loop over a dataset with a trainer (shuffle per epoch from the seed, augmented
 * mini-batches, validation, progress, cancel between steps) and dataset evaluation of a
 * compiled model into a confusion matrix. */
#include "train_loop.h"

#include "session.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seed of stream b under seed a (splitmix64 finaliser of a mixed with b). */
static uint64_t derive(uint64_t a, uint64_t b)
{
    uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cancelled(const atomic_int *cancel)
{
    return cancel && atomic_load_explicit(cancel, memory_order_relaxed) != 0;
}

long cnn_train_loop_steps_per_epoch(int n_train, int batch)
{
    if (n_train <= 0 || batch <= 0)
        return 0;
    long steps = ((long)n_train + batch - 1) / batch;
    if (steps > 1 && n_train % batch == 1)
        steps--; /* a last batch of one item: batch norm cannot normalise it */
    return steps;
}

static int same_shape(const struct cnn_preproc *a, const struct cnn_preproc *b)
{
    return a->c == b->c && a->h == b->h && a->w == b->w;
}

static int check_items(const struct cnn_dataset *d, const struct cnn_preproc *input, int classes,
                       const int *idx, int n, struct cnn_err *err)
{
    const struct cnn_preproc *pp = cnn_dataset_preproc(d);
    if (!input || !same_shape(pp, input))
        return cnn_err_set(
            err, CNN_EINVAL, "train: dataset items are %dx%dx%d, the model takes %dx%dx%d", pp->c,
            pp->h, pp->w, input ? input->c : 0, input ? input->h : 0, input ? input->w : 0);
    if (cnn_dataset_num_classes(d) > classes)
        return cnn_err_set(err, CNN_EINVAL, "train: dataset has %d classes, the model %d",
                           cnn_dataset_num_classes(d), classes);
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= cnn_dataset_count(d))
            return cnn_err_set(err, CNN_EINVAL, "train: item index %d not in the dataset", idx[i]);
    return 0;
}

int cnn_train_loop_validate(struct cnn_trainer *t, const struct cnn_dataset *d, const int *idx,
                            int n, int batch, const atomic_int *cancel, double *acc, double *loss,
                            struct cnn_err *err)
{
    *acc = *loss = NAN;
    if (n <= 0)
        return 0;
    if (batch < 1)
        return cnn_err_set(err, CNN_EINVAL, "train: batch %d must be >= 1", batch);
    const struct cnn_preproc *pp = cnn_dataset_preproc(d);
    size_t item = (size_t)pp->c * (size_t)pp->h * (size_t)pp->w;
    int K = cnn_trainer_num_classes(t);
    float *images = malloc((size_t)batch * item * sizeof *images);
    float *probs = malloc((size_t)batch * (size_t)K * sizeof *probs);
    int *labels = malloc((size_t)batch * sizeof *labels);
    int rc = 0;
    if (!images || !probs || !labels) {
        rc = cnn_err_set(err, CNN_ENOMEM, "train: out of memory for validation");
        goto out;
    }
    long right = 0;
    double sum = 0;
    for (int first = 0; first < n; first += batch) {
        if (cancelled(cancel)) {
            rc = cnn_err_set(err, CNN_ECANCELED, "train: cancelled during validation");
            goto out;
        }
        int nb = n - first < batch ? n - first : batch, correct = 0;
        cnn_dataset_batch(d, idx + first, nb, NULL, 0, images, labels);
        rc = cnn_trainer_evaluate(t, images, labels, nb, probs, &correct, err);
        if (rc)
            goto out;
        right += correct;
        for (int j = 0; j < nb; j++) {
            double p = probs[(size_t)j * K + labels[j]];
            sum -= log(p > 1e-12 ? p : 1e-12);
        }
    }
    *acc = (double)right / n;
    *loss = sum / n;
out:
    free(images);
    free(probs);
    free(labels);
    return rc;
}

static int check_config(const struct cnn_loop_config *c, int n_train, struct cnn_err *err)
{
    if (!c)
        return cnn_err_set(err, CNN_EINVAL, "train: no loop configuration");
    if (c->epochs < 1)
        return cnn_err_set(err, CNN_EINVAL, "train: epochs %d must be >= 1", c->epochs);
    if (c->batch < 1 || c->batch > 65536)
        return cnn_err_set(err, CNN_EINVAL, "train: batch %d not in 1..65536", c->batch);
    if (c->aug.crop_pad < 0 || c->aug.crop_pad > 1024)
        return cnn_err_set(err, CNN_EINVAL, "train: crop padding %d not in 0..1024",
                           c->aug.crop_pad);
    if (n_train < 1)
        return cnn_err_set(err, CNN_EINVAL, "train: no training items");
    return 0;
}

/* State of one run, kept together so the step loop stays short. */
struct run {
    struct cnn_trainer *t;
    const struct cnn_dataset *d;
    const struct cnn_loop_config *c;
    float *images;
    int *labels, *perm;
    long spe, total_steps, done_steps, done_items;
    double t_start, train_s; /* wall start, seconds spent in training steps */
};

static void report_step(const struct run *r, int epoch, long step, double loss, long right,
                        long items, double t_epoch, const struct cnn_train_stats *st)
{
    if (!r->c->progress)
        return;
    double now = now_s();
    struct cnn_train_progress p = {
        .epoch = epoch,
        .epochs = r->c->epochs,
        .step = step,
        .steps_per_epoch = r->spe,
        .total_step = r->done_steps,
        .total_steps = r->total_steps,
        .total_items = r->done_items,
        .loss = items ? loss / items : NAN,
        .accuracy = items ? (double)right / items : NAN,
        .step_loss = st->loss,
        .step_accuracy = st->n ? (double)st->correct / st->n : NAN,
        .lr = st->lr,
        .items_per_s = now > t_epoch ? items / (now - t_epoch) : 0,
        .elapsed_s = now - r->t_start,
        .eta_s =
            r->done_steps ? r->train_s / r->done_steps * (r->total_steps - r->done_steps) : NAN,
    };
    r->c->progress(&p, r->c->progress_arg);
}

/* One epoch's steps; fills res (train part). */
static int run_epoch(struct run *r, const int *train_idx, int n_train, int epoch,
                     struct cnn_epoch_result *res, struct cnn_err *err)
{
    const struct cnn_loop_config *c = r->c;
    uint64_t es = derive(c->seed, (uint64_t)epoch);
    cnn_dataset_shuffle(r->perm, train_idx, n_train, es);
    double t0 = now_s(), loss = 0;
    long right = 0, items = 0, step = 0;
    for (; step < r->spe; step++) {
        if (c->max_steps > 0 && r->done_steps >= c->max_steps)
            break;
        if (cancelled(c->cancel))
            return cnn_err_set(err, CNN_ECANCELED, "train: cancelled at epoch %d step %ld",
                               epoch + 1, step);
        int first = (int)(step * c->batch);
        int nb = n_train - first < c->batch ? n_train - first : c->batch;
        double ts = now_s();
        cnn_dataset_batch(r->d, r->perm + first, nb, &c->aug, derive(es, (uint64_t)step + 1),
                          r->images, r->labels);
        struct cnn_train_stats st;
        int rc = cnn_trainer_step(r->t, r->images, r->labels, NULL, nb, &st, err);
        if (rc)
            return rc;
        r->train_s += now_s() - ts;
        r->done_steps++;
        r->done_items += nb;
        loss += (double)st.loss * nb;
        right += st.correct;
        items += nb;
        report_step(r, epoch, step + 1, loss, right, items, t0, &st);
    }
    double dt = now_s() - t0;
    res->epoch = epoch;
    res->steps = step;
    res->items = items;
    res->train_loss = items ? loss / items : NAN;
    res->train_acc = items ? (double)right / items : NAN;
    res->items_per_s = dt > 0 ? items / dt : 0;
    return 0;
}

int cnn_train_loop_run(struct cnn_trainer *t, const struct cnn_dataset *d, const int *train_idx,
                       int n_train, const int *val_idx, int n_val, const struct cnn_loop_config *c,
                       struct cnn_epoch_result *results, int *epochs_done, struct cnn_err *err)
{
    if (epochs_done)
        *epochs_done = 0;
    if (!t || !d || !train_idx || (n_val > 0 && !val_idx))
        return cnn_err_set(err, CNN_EINVAL, "train: missing trainer, dataset or items");
    int rc = check_config(c, n_train, err);
    int K = cnn_trainer_num_classes(t);
    if (rc == 0)
        rc = check_items(d, c->input, K, train_idx, n_train, err);
    if (rc == 0)
        rc = check_items(d, c->input, K, val_idx, n_val > 0 ? n_val : 0, err);
    if (rc)
        return rc;
    const struct cnn_preproc *pp = cnn_dataset_preproc(d);
    size_t item = (size_t)pp->c * (size_t)pp->h * (size_t)pp->w;
    struct run r = {.t = t, .d = d, .c = c, .t_start = now_s()};
    r.spe = cnn_train_loop_steps_per_epoch(n_train, c->batch);
    r.total_steps = r.spe * c->epochs;
    if (c->max_steps > 0 && c->max_steps < r.total_steps)
        r.total_steps = c->max_steps;
    r.images = malloc((size_t)c->batch * item * sizeof *r.images);
    r.labels = malloc((size_t)c->batch * sizeof *r.labels);
    r.perm = malloc((size_t)n_train * sizeof *r.perm);
    if (!r.images || !r.labels || !r.perm) {
        rc = cnn_err_set(err, CNN_ENOMEM, "train: out of memory for batches");
        goto out;
    }
    for (int e = 0; e < c->epochs; e++) {
        if (c->max_steps > 0 && r.done_steps >= c->max_steps)
            break;
        struct cnn_epoch_result res;
        memset(&res, 0, sizeof res);
        double t0 = now_s();
        rc = run_epoch(&r, train_idx, n_train, e, &res, err);
        if (rc == 0)
            rc = cnn_train_loop_validate(t, d, val_idx, n_val, c->batch, c->cancel, &res.val_acc,
                                         &res.val_loss, err);
        if (rc)
            goto out;
        res.seconds = now_s() - t0;
        if (results)
            results[e] = res;
        if (epochs_done)
            *epochs_done = e + 1;
        if (c->progress) {
            struct cnn_train_progress p = {
                .epoch = e,
                .epochs = c->epochs,
                .step = res.steps,
                .steps_per_epoch = r.spe,
                .total_step = r.done_steps,
                .total_steps = r.total_steps,
                .total_items = r.done_items,
                .loss = res.train_loss,
                .accuracy = res.train_acc,
                .step_loss = NAN,
                .step_accuracy = NAN,
                .lr = cnn_trainer_lr(t),
                .items_per_s = res.items_per_s,
                .elapsed_s = now_s() - r.t_start,
                .eta_s =
                    r.done_steps ? r.train_s / r.done_steps * (r.total_steps - r.done_steps) : NAN,
                .epoch_done = &res,
            };
            c->progress(&p, c->progress_arg);
        }
    }
out:
    free(r.images);
    free(r.labels);
    free(r.perm);
    return rc;
}

int cnn_train_loop_confusion(const struct cnn_model *m, const struct cnn_dataset *d, const int *idx,
                             int n, const int *label_map, int batch, const atomic_int *cancel,
                             long *confusion, struct cnn_err *err)
{
    if (!m || !d || !confusion)
        return cnn_err_set(err, CNN_EINVAL, "eval: missing model, dataset or matrix");
    if (batch < 1 || batch > 65536)
        return cnn_err_set(err, CNN_EINVAL, "eval: batch %d not in 1..65536", batch);
    int K = cnn_model_num_classes(m);
    if (!idx)
        n = cnn_dataset_count(d);
    int rc = check_items(d, cnn_model_preproc(m), label_map ? INT32_MAX : K, idx, idx ? n : 0, err);
    if (rc)
        return rc;
    for (int k = 0; label_map && k < cnn_dataset_num_classes(d); k++)
        if (label_map[k] < 0 || label_map[k] >= K)
            return cnn_err_set(err, CNN_EINVAL, "eval: dataset class %d maps to %d, not in 0..%d",
                               k, label_map[k], K - 1);
    if (n <= 0)
        return 0;
    if (batch > n)
        batch = n;
    struct cnn_session *s = cnn_session_create(m, batch, err);
    int *labels = malloc((size_t)batch * sizeof *labels);
    int *all = idx ? NULL : malloc((size_t)n * sizeof *all);
    if (!s || !labels || (!idx && !all)) {
        rc = s ? cnn_err_set(err, CNN_ENOMEM, "eval: out of memory") : err ? err->code : CNN_ENOMEM;
        goto out;
    }
    if (!idx) {
        for (int i = 0; i < n; i++)
            all[i] = i;
        idx = all;
    }
    for (int first = 0; first < n; first += batch) {
        if (cancelled(cancel)) {
            rc = cnn_err_set(err, CNN_ECANCELED, "eval: cancelled");
            goto out;
        }
        int nb = n - first < batch ? n - first : batch;
        float *in = cnn_session_input(s);
        cnn_dataset_batch(d, idx + first, nb, NULL, 0, in, labels);
        const float *probs;
        rc = cnn_session_forward(s, m, in, nb, &probs, err);
        if (rc)
            goto out;
        for (int j = 0; j < nb; j++) {
            const float *p = probs + (size_t)j * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (p[k] > p[best])
                    best = k;
            int cls = label_map ? label_map[labels[j]] : labels[j];
            confusion[(size_t)cls * K + best]++;
        }
    }
out:
    cnn_session_destroy(s);
    free(labels);
    free(all);
    return rc;
}
