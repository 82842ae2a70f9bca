/* Step curves and the confusion matrix of a job (see job_curve.h). */
#include "job_curve.h"

#include <math.h>
#include <stdlib.h>

void job_curve_add(struct job_curve *c, long step, double loss, double accuracy)
{
    if (c->every < 1)
        c->every = 1;
    if (step % c->every != 0)
        return;
    if (c->n == JOB_CURVE_MAX) { /* keep every other point: the multiples of 2 * every */
        int kept = 0;
        for (int i = 0; i < c->n; i++)
            if ((long)c->step[i] % (2 * c->every) == 0) {
                c->step[kept] = c->step[i], c->loss[kept] = c->loss[i], c->acc[kept] = c->acc[i];
                kept++;
            }
        c->n = kept;
        c->every *= 2;
        if (step % c->every != 0)
            return;
    }
    c->step[c->n] = (double)step, c->loss[c->n] = loss, c->acc[c->n] = accuracy;
    c->n++;
}

void job_curve_set_confusion(struct job_curve *c, long *confusion, int k)
{
    free(c->confusion);
    c->confusion = confusion;
    c->k = confusion ? k : 0;
}

void job_curve_free(struct job_curve *c)
{
    free(c->confusion);
    c->confusion = NULL;
    c->k = 0;
}

static json_t *series(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, isfinite(v[i]) ? json_real(v[i]) : json_null());
    return a;
}

json_t *job_curve_json(const struct job_curve *c)
{
    json_t *steps = json_array();
    for (int i = 0; steps && i < c->n; i++)
        json_array_append_new(steps, json_integer((json_int_t)c->step[i]));
    return json_pack("{s:o, s:o, s:o, s:I}", "steps", steps ? steps : json_null(), "loss",
                     series(c->loss, c->n), "accuracy", series(c->acc, c->n), "every",
                     (json_int_t)(c->every < 1 ? 1 : c->every));
}

json_t *job_curve_confusion_json(const struct job_curve *c)
{
    if (!c->confusion)
        return json_null();
    json_t *rows = json_array();
    for (int i = 0; rows && i < c->k; i++) {
        json_t *row = json_array();
        for (int j = 0; row && j < c->k; j++)
            json_array_append_new(row, json_integer(c->confusion[(size_t)i * c->k + j]));
        json_array_append_new(rows, row);
    }
    return rows;
}
