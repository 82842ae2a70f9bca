/* A fine-tune job's training curve for the dashboard: (step, loss, accuracy) of every step
 * while there is room, then of every 2nd, 4th, ... step (the stored points are halved when
 * full, so a long job keeps JOB_CURVE_MAX evenly spread points); and the confusion matrix of
 * the trained model on the validation items once the job has one.  Plain data in the job
 * (jobs_internal.h), guarded by the jobs mutex like the rest of the job. */
#ifndef JOB_CURVE_H
#define JOB_CURVE_H

#include <jansson.h>

#define JOB_CURVE_MAX 2048

struct job_curve {
    double step[JOB_CURVE_MAX], loss[JOB_CURVE_MAX], acc[JOB_CURVE_MAX];
    int n;
    long every; /* keep steps that are multiples of this (1, 2, 4, ...) */
    long *confusion; /* owned, k * k; NULL until the job has one */
    int k;
};

/* The step's own batch loss and accuracy (step counts from 1). */
void job_curve_add(struct job_curve *c, long step, double loss, double accuracy);
/* Takes over confusion (k * k longs, malloc'd). */
void job_curve_set_confusion(struct job_curve *c, long *confusion, int k);
void job_curve_free(struct job_curve *c);

/* {"steps": [...], "loss": [...], "accuracy": [...], "every": N} (new reference). */
json_t *job_curve_json(const struct job_curve *c);
/* [[...], ...] rows: true class, columns: predicted; null when none (new reference). */
json_t *job_curve_confusion_json(const struct job_curve *c);

#endif
