/* The body of POST /admin/v1/models/{name}/finetune: parsed and checked field by field into
 * a struct job_spec, with a message that starts with the field's name ("epochs: must be an
 * integer in 1..1000") for the 400 answer.  Unknown fields are refused too (a typo must not
 * silently train with a default).  The dataset path is checked lexically here
 * (safepath_check); resolving it under the data root is the caller's.  Pure; any thread.
 *
 *   {"dataset": {"format": "idx"|"folder", "path": "rel/path", "split": "train",
 *                "classes": [1, 8, 9]},
 *    "epochs": 1, "batch_size": 32, "learning_rate": 0.003, "momentum": 0.9,
 *    "weight_decay": 5e-4, "schedule": "cosine"|"step"|"constant", "freeze": "conv2",
 *    "labels": ["a", "b"], "validation_split": 0.05, "min_accuracy": 0,
 *    "gate": "parent"|"min_accuracy", "seed": 1} */
#ifndef JOB_SPEC_H
#define JOB_SPEC_H

#include "dataset.h"
#include "err.h"
#include "model.h"
#include "safepath.h"
#include "train.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_MAX_LABELS 1024
#define JOB_MAX_EPOCHS 1000
#define JOB_MAX_BATCH 1024
#define JOB_BODY_MAX (256 * 1024) /* bytes of the JSON body */

/* What a candidate must reach on the validation items to be published. */
enum job_gate {
    JOB_GATE_PARENT = 0,       /* the parent's accuracy on the same items, and min_accuracy */
    JOB_GATE_MIN_ACCURACY = 1, /* min_accuracy only (an absolute floor; 0 = always) */
};

struct job_spec {
    enum cnn_dataset_format format; /* CNN_DATASET_IDX or CNN_DATASET_FOLDER */
    char path[SAFEPATH_MAX + 1];    /* relative to the data root, lexically checked */
    char split[32];                 /* IDX file prefix; default "train" */
    int *classes;                   /* owned; NULL = every class */
    int n_classes;
    int epochs;
    int batch_size;
    double learning_rate, momentum, weight_decay;
    enum cnn_lr_schedule schedule;
    char freeze[CNN_NAME_MAX]; /* "" = nothing frozen */
    char **labels;             /* owned; NULL = keep the model's head */
    int n_labels;
    double validation_split;
    double min_accuracy; /* > 1 can never be met: the job ends rejected */
    enum job_gate gate;  /* default JOB_GATE_PARENT */
    uint64_t seed;
};

/* Parses body[0..len).  0, or CNN_EINVAL (bad JSON or a bad field, the message naming the
 * field) / CNN_ELIMIT (too large or deeply nested).  On success free with job_spec_free;
 * on failure nothing is left to free. */
int job_spec_parse(const char *body, size_t len, struct job_spec *out, struct cnn_err *err);
void job_spec_free(struct job_spec *s);

/* The spec as JSON with every default filled in (for job status and lineage); new ref. */
json_t *job_spec_json(const struct job_spec *s);

/* "parent", "min_accuracy". */
const char *job_gate_name(enum job_gate g);

/* "constant", "step", "cosine". */
const char *job_schedule_name(enum cnn_lr_schedule s);

#endif
