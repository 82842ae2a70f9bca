/* Turning a model's output row into answers: top-k classes (the same order as `cnn
 * predict`: score descending, ties to the lower index, NaN last), class labels with the
 * "class<i>" fallback, and the KServe classification-extension string "score:index:label".
 * Pure functions; any thread. */
#ifndef PREDICT_H
#define PREDICT_H

#include "err.h"
#include "model.h"

#include <jansson.h>

struct jsonw;

#include <stddef.h>

struct prediction {
    int index;
    float score;
};

/* The k best of scores[0..classes) into out[0..k), best first; 1 <= k <= classes.
 * CNN_ENOMEM when scratch for a large k cannot be had. */
int predict_topk(const float *scores, int classes, int k, struct prediction *out,
                 struct cnn_err *err);

/* Label of class i: the model's, or "class<i>" written into buf when it has none. */
const char *predict_label(const struct cnn_model *m, int i, char *buf, size_t cap);

/* Writes "score:index:label" (score as %f, like Triton); returns the length, or -1 when it
 * does not fit in cap. */
int predict_format_class(char *buf, size_t cap, float score, int index, const char *label);

/* A JSON string for s; bytes that are not valid UTF-8 become '?' (labels come from model
 * files).  New reference, NULL only when out of memory. */
json_t *predict_json_string(const char *s);

/* Writes [{"label":..,"index":..,"score":..}, ...] for the k best of scores[0..classes) of
 * model m into w (scores that are not finite become null).  0, or CNN_ENOMEM. */
int predict_write_top(struct jsonw *w, const struct cnn_model *m, const float *scores, int k,
                      struct cnn_err *err);

#endif
