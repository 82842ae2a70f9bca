/* Backward kernels of every layer kind, the training-mode forward of batch norm and dropout,
 * and the losses.  Same layout and rules as layer.h: activations are (C, N, H, W), dense
 * data (K, N); kernels never allocate (scratch comes from the caller, sized by the
 * *_scratch_floats functions) and keep no state, so any thread may call them on its own
 * buffers.  Gradients are ACCUMULATED (+=) into dinp / dw / db / dgamma / dbeta; the
 * trainer zeroes them each step (the *_set variants WRITE dinp: its first writer's).  Any gradient pointer may be NULL: that gradient is then
 * neither computed nor written (a frozen layer, or the first layer's dinp).  Gradient
 * buffers never alias the forward tensors or dout.  Fused activations (conv, dense,
 * batchnorm, add) are NOT part of these kernels: the trainer runs an activation as its own
 * step and calls cnn_act_backward() for it. */
#ifndef CNN_GRAD_H
#define CNN_GRAD_H

#include "err.h"
#include "layer.h"

#include <stddef.h>
#include <stdint.h>

/* ---- conv2d and dense (grad_conv.c, grad_dense.c) ------------------------ */

/* Floats of scratch cnn_conv2d_backward() needs for batch N: one chunk of one group's
 * col matrix (the forward's im2col chunk); 0 for pointwise and depthwise convs.  SIZE_MAX
 * when the size overflows. */
size_t cnn_conv2d_backward_scratch_floats(const struct cnn_conv2d *p, int N);

/* dout (OC, N, OH, OW)   inp (C, N, H, W)   w (OC, C/G, KH, KW)
 * dinp (C, N, H, W) += conv input gradient     (col2im of W^T * dout)
 * dw (OC, C/G, KH, KW) += dout * col^T         (one GEMM per group per chunk)
 * db (OC) += sum of dout over N, OH, OW        (pass NULL when the conv has no bias)
 * Groups, dilation, stride and asymmetric padding as in the forward; p->act is ignored
 * (dout is the gradient of the pre-activation output).  scratch: see above. */
void cnn_conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                         const float *w, float *scratch, const struct cnn_conv2d *p, int N);
/* dinp and dw of cnn_conv2d_backward() from the output grid rows [r_lo, r_hi) only (row
 * r = n * OH + oy), for splitting a batch over threads: each thread needs its own scratch
 * and dw, and its rows must be whole images (r_lo, r_hi multiples of OH) so that no two
 * threads add into the same dinp pixel.  Not for depthwise convs. */
void cnn_conv2d_backward_rows(float *dinp, float *dw, const float *dout, const float *inp,
                              const float *w, float *scratch, const struct cnn_conv2d *p, int N,
                              int r_lo, int r_hi);

/* The input gradient of a stride-1 3x3 conv is a conv too: of dout, with w transposed
 * (C, OC) and each kernel rotated 180 degrees, padded 2 - pad on each side.  When that conv
 * and p both suit Winograd (cnn_conv2d_use_winograd()), *q gets it and this returns 1:
 * then cnn_conv2d_winograd_rows(dinp, dinp, dout, u, NULL, scratch, q, N, t_lo, t_hi) adds
 * the input gradient of tile rows [t_lo, t_hi) of dinp (no col2im, and 16 multiplies per
 * 2x2 tile instead of 36), with scratch of cnn_winograd_scratch_floats(q, N) floats. */
int cnn_conv2d_backward_winograd_shape(const struct cnn_conv2d *p, struct cnn_conv2d *q);
/* u (cnn_winograd_weights_floats(p) floats) for the above from w; tmp: 9 * OC * C floats. */
void cnn_conv2d_backward_winograd_weights(float *u, float *tmp, const float *w,
                                          const struct cnn_conv2d *p);

/* dout (OUT, N)   inp (IN, N)   w (OUT, IN); p->act ignored.
 * dw += dout * inp^T, db += row sums of dout, dinp (IN, N) += w^T * dout. */
void cnn_dense_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const struct cnn_dense *p, int N);

/* ---- pooling (grad_pool.c) ---------------------------------------------- */

/* dout (C, N, OH, OW)   inp (C, N, H, W) the forward input   dinp (C, N, H, W).
 * Each output's gradient goes to the argmax of its window, recomputed from inp: the first
 * maximum in row-major window order wins, as in cnn_maxpool_forward(). */
void cnn_maxpool_backward(float *dinp, const float *dout, const float *inp,
                          const struct cnn_pool2d *p, int N);
/* The same with dinp WRITTEN: pixels no window picks get 0. */
void cnn_maxpool_backward_set(float *dinp, const float *dout, const float *inp,
                              const struct cnn_pool2d *p, int N);
/* Each output's gradient spread evenly over its window, with ceil mode, padding and
 * count_include_pad exactly as cnn_avgpool_forward(). */
void cnn_avgpool_backward(float *dinp, const float *dout, const struct cnn_pool2d *p, int N);
/* dout (planes)   dinp (planes, hw) += dout / hw. */
void cnn_global_avgpool_backward(float *dinp, const float *dout, size_t planes, size_t hw);

/* ---- elementwise and reshaping (grad_act.c) ------------------------------ */

/* dinp += dout * act'(x) for n floats.  x: the forward input, y = act(x): the forward
 * output; pass whichever you kept (the other may be NULL).  relu, leaky relu and clip use x
 * when non-NULL, else y (leaky relu from y needs alpha > 0); sigmoid and tanh use y when
 * non-NULL, else recompute it from x; hard sigmoid uses either; hard swish needs x.
 * Gradients at the kinks follow PyTorch: relu 0 at x = 0, leaky alpha at x = 0, clip 0
 * outside the open interval (alpha, beta), hard sigmoid 0 where alpha*x + beta is outside
 * (0, 1), hard swish x/3 + 1/2 on [-3, 3]. */
void cnn_act_backward(float *dinp, const float *dout, const float *x, const float *y, size_t n,
                      const struct cnn_act_params *act);
/* The same with dinp WRITTEN (= dout * act'(x)) instead of added into. */
void cnn_act_backward_set(float *dinp, const float *dout, const float *x, const float *y, size_t n,
                          const struct cnn_act_params *act);

/* out, dout (K, N) from cnn_softmax_forward():  dinp (K, N) += y * (dout - sum_k dout*y). */
void cnn_softmax_backward(float *dinp, const float *dout, const float *out, int K, int N);

/* Inverse of cnn_flatten_forward(): dout (C*HW, N) -> dinp (C, N, HW) += . */
void cnn_flatten_backward(float *dinp, const float *dout, int C, int N, int hw);

/* d[i] += s[i] for n floats.
 * ADD backward: each input's gradient += dout (call once per input).
 * CONCAT backward: input i's gradient += the block of dout that holds its channels; in
 * (C, N, H, W) that is n = C_i*N*H*W floats starting at (C_0 + ... + C_{i-1})*N*H*W. */
void cnn_grad_accumulate(float *d, const float *s, size_t n);

/* ---- batch norm, dropout, LRN (grad_norm.c) ------------------------------ */

/* Training-mode batch norm over inp (C, N*H*W = n_hw): per channel the batch mean and
 * biased variance over n_hw values normalise x: out = gamma * (x - mean) * inv_std + beta,
 * inv_std = 1/sqrt(var + eps).  p->act is NOT applied.  Saves save_mean (C) and
 * save_inv_std (C) for the backward, and updates running_mean / running_var (C) in place
 * as PyTorch does: r = (1 - momentum) * r + momentum * batch stat, with the UNBIASED
 * variance (var * n_hw / (n_hw - 1)).  Either running pointer may be NULL (no update).
 * out may alias inp.  Returns CNN_EINVAL when n_hw < 2 (PyTorch refuses it too). */
int cnn_batchnorm_train_forward(float *out, float *save_mean, float *save_inv_std,
                                float *running_mean, float *running_var, const float *inp,
                                const float *gamma, const float *beta, float eps, float momentum,
                                int C, size_t n_hw, struct cnn_err *err);
/* Backward of the above through the batch statistics.  inp: the forward input (not
 * overwritten), save_mean / save_inv_std from the forward.  With xhat = (x - mean)*inv_std:
 * dgamma += sum dout*xhat, dbeta += sum dout,
 * dinp += gamma*inv_std/M * (M*dout - sum dout - xhat * sum dout*xhat), M = n_hw. */
void cnn_batchnorm_train_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                  const float *inp, const float *gamma, const float *save_mean,
                                  const float *save_inv_std, int C, size_t n_hw);
/* The same, but dinp (non-NULL) is WRITTEN, not added into: for a gradient buffer that
 * holds nothing yet (saves zeroing it first). */
void cnn_batchnorm_train_backward_set(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                      const float *inp, const float *gamma,
                                      const float *save_mean, const float *save_inv_std, int C,
                                      size_t n_hw);
/* Training-mode batch norm followed by a relu, in the passes of the batch norm alone: the
 * forward writes out = max(batch norm of inp, 0) (NaN -> 0) with the statistics of
 * cnn_batchnorm_train_forward(); the backward takes dout and out of the RELU and runs
 * cnn_batchnorm_train_backward() (add) or its _set form (!add) on the gradient
 * dout * (out > 0) without storing it.  The same numbers as the two layers. */
int cnn_batchnorm_relu_train_forward(float *out, float *save_mean, float *save_inv_std,
                                     float *running_mean, float *running_var, const float *inp,
                                     const float *gamma, const float *beta, float eps,
                                     float momentum, int C, size_t n_hw, struct cnn_err *err);
void cnn_batchnorm_relu_train_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                       const float *out, const float *inp, const float *gamma,
                                       const float *save_mean, const float *save_inv_std, int C,
                                       size_t n_hw, int add);
/* Backward of inference-mode batch norm (fixed running statistics, e.g. a frozen BN):
 * y = gamma * (x - mean) / sqrt(var + eps) + beta with mean, var the running stats. */
void cnn_batchnorm_eval_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                                 const float *inp, const float *gamma, const float *mean,
                                 const float *var, float eps, int C, size_t n_hw);

/* Inverted dropout in training mode over n floats: each unit is dropped with probability
 * rate (mask 0, out 0) or kept (mask 1, out = x / (1 - rate)); rate 1 drops everything.
 * *rng is the caller's generator state: seed it once (any value), it advances by one
 * step per unit, so the same seed gives the same masks.  out may alias inp.
 * mask: n bytes, kept for the backward.  rate must be in [0, 1]. */
void cnn_dropout_train_forward(float *out, uint8_t *mask, const float *inp, float rate, size_t n,
                               uint64_t *rng);
/* dinp += dout * mask / (1 - rate) (0 where dropped; 0 everywhere when rate is 1). */
void cnn_dropout_backward(float *dinp, const float *dout, const uint8_t *mask, float rate,
                          size_t n);

/* Floats of scratch cnn_lrn_backward() needs: (C + 1) * n_hw (SIZE_MAX on overflow). */
size_t cnn_lrn_backward_scratch_floats(int C, size_t n_hw);
/* dout, inp (C, N*H*W = n_hw) with the forward's input; dinp += LRN input gradient. */
void cnn_lrn_backward(float *dinp, const float *dout, const float *inp, float *scratch,
                      const struct cnn_lrn *p, int C, size_t n_hw);

/* ---- losses (grad_loss.c) ----------------------------------------------- */

/* Softmax cross-entropy fused with its gradient, numerically stable (log-sum-exp with the
 * max subtracted, sums in double).  logits (K, N); labels[N] in [0, K).
 * *loss = mean over the N items of -log softmax(logits)[label].
 * dlogits (K, N), when non-NULL, is WRITTEN (not accumulated: it starts the backward
 * pass) with (softmax - onehot(label)) / N.  *correct (when non-NULL) = number of items
 * whose top-1 logit (first maximum wins) is the label.  Returns CNN_EINVAL (and writes
 * nothing) when a label is out of range or K, N < 1. */
int cnn_softmax_xent(float *loss, float *dlogits, int *correct, const float *logits,
                     const int *labels, int K, int N, struct cnn_err *err);

/* Squared error with PyTorch MSELoss(reduction='mean') semantics: returns the mean over
 * all count elements of (pred - target)^2; dpred, when non-NULL, is WRITTEN with
 * 2 * (pred - target) / count.  Elementwise, so any layout works (both the same). */
float cnn_mse_loss(float *dpred, const float *pred, const float *target, size_t count);

#endif
