/* A session: every mutable buffer one thread needs to run forward passes of one model.
 * Sized once (cnn_session_create) for the model and a maximum batch; cnn_session_forward
 * then never allocates, never locks and never writes the model.  One session per thread. */
#ifndef CNN_SESSION_H
#define CNN_SESSION_H

#include "err.h"
#include "model.h"

#include <stddef.h>

struct cnn_session;

/* Bytes of session memory a worker needs for batches of up to max_n images. */
size_t cnn_session_plan(const struct cnn_model *m, int max_n);

/* Owned by the caller; destroy with cnn_session_destroy(). */
struct cnn_session *cnn_session_create(const struct cnn_model *m, int max_n,
                                       struct cnn_err *err);
void cnn_session_destroy(struct cnn_session *s);

/* Input buffer of the session, (max_n, C, H, W) NCHW: decode images straight into it. */
float *cnn_session_input(struct cnn_session *s);

/* images: (n, C, H, W) NCHW, may be cnn_session_input(s).  *probs: (n, num_classes), the
 * output of the last layer (softmax probabilities when the model ends in softmax), owned
 * by s and valid until the next call with s.  Fails only on n outside 1..max_n. */
int cnn_session_forward(struct cnn_session *s, const struct cnn_model *m, const float *images,
                        int n, const float **probs, struct cnn_err *err);

#endif
