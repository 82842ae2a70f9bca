/* Naive reference forward pass for tests: one image at a time, NCHW, every layer written
 * as plain loops from its definition (no im2col, no GEMM, no folding, no fusion).  It is the
 * independent reference that the engine's compiled, batched pass is checked against. */
#ifndef REF_NET_H
#define REF_NET_H

struct cnn_model;

/* image: (C, H, W) of the model input; out: num_classes floats.  Returns 0, -1 on OOM. */
int ref_net_forward(const struct cnn_model *m, const float *image, float *out);

#endif
