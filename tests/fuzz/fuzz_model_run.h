/* Shared by the model-file targets: a model that loaded must also run.  Runs one forward
 * pass of a batch of 2 (a ramp input) when the model is small enough to be quick. */
#ifndef FUZZ_MODEL_RUN_H
#define FUZZ_MODEL_RUN_H

#include "model.h"
#include "session.h"

#include <stdlib.h>

static inline void fuzz_run_model(const struct cnn_model *m)
{
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    if (cnn_model_flops(m) > 2e7 || cnn_session_plan(m, 2) > ((size_t)64 << 20))
        return;
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, 2, &err);
    if (!s)
        return; /* out of memory is a refusal, not a crash */
    float *in = cnn_session_input(s);
    size_t n = (size_t)2 * pp->c * pp->h * pp->w;
    for (size_t i = 0; i < n; i++)
        in[i] = (float)(i % 17) / 8.0f - 1.0f;
    const float *probs = NULL;
    if (cnn_session_forward(s, m, in, 2, &probs, &err) != 0 || !probs)
        abort(); /* forward fails only on a bad batch size */
    volatile float sink = 0;
    for (int i = 0; i < 2 * cnn_model_num_classes(m); i++)
        sink += probs[i]; /* every output is readable */
    (void)sink;
    cnn_session_destroy(s);
}

#endif
