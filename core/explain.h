/* Explanations of a classifier's answer: the gradient of a class's score (its logit, the input
 * of a final softmax) with respect to the input image, SmoothGrad (the gradient averaged over
 * noisy copies) and occlusion (the score lost when a patch is covered), and the saliency map
 * (H, W) drawn from either.  Runs the trainer's unfused graph in evaluation mode with every
 * layer frozen (core/train.h), so nothing of the model is written.  Nothing here prints. */
#ifndef CNN_EXPLAIN_H
#define CNN_EXPLAIN_H

#include "err.h"
#include "model.h"

#include <stdint.h>

enum cnn_explain_method {
    CNN_EXPLAIN_GRAD = 0,       /* |d score / d input|, max over channels */
    CNN_EXPLAIN_SMOOTHGRAD = 1, /* the same of the gradient averaged over noisy copies */
    CNN_EXPLAIN_OCCLUSION = 2,  /* score lost when a patch around the pixel is covered */
    CNN_EXPLAIN_GRADINPUT = 3   /* gradient x (input - black): the first-order estimate of
                                   the score lost when the pixel turns black; > 0 part */
};

/* Parses "grad", "smoothgrad", "occlusion" or "gradinput"; 0 or CNN_EINVAL. */
int cnn_explain_method_parse(const char *s, enum cnn_explain_method *out, struct cnn_err *err);
const char *cnn_explain_method_name(enum cnn_explain_method m);

struct cnn_explain_opts {
    enum cnn_explain_method method;
    int samples;       /* SmoothGrad: noisy copies, 1..1000 (default 25) */
    float noise;       /* SmoothGrad: noise std as a fraction of the input's range (0.15) */
    uint64_t seed;     /* SmoothGrad noise */
    int patch, stride; /* occlusion: patch side and step in pixels; 0 = H/7 and patch/2 */
};

/* The class named by s in m: one of its labels, else a decimal index in 0..classes-1; -1
 * when s is neither (the `class` of `cnn explain` and POST .../explain). */
int cnn_explain_parse_class(const struct cnn_model *m, const char *s);

/* Defaults: gradinput (the method that passes make bench-saliency's occlusion check), 25
 * samples, noise 0.15, seed 1, automatic patch. */
void cnn_explain_opts_default(struct cnn_explain_opts *o);

struct cnn_explainer;

/* An explainer for m (borrowed: m must outlive it; only read) handling up to max_batch
 * images per pass (1..1024).  The model's last layer (or the input of a final softmax) must
 * give one value per class.  Owned by the caller: cnn_explainer_destroy().  NULL with err:
 * CNN_EINVAL for such a model or batch, CNN_ENOMEM.  One thread at a time per explainer. */
struct cnn_explainer *cnn_explainer_create(const struct cnn_model *m, int max_batch,
                                           struct cnn_err *err);
void cnn_explainer_destroy(struct cnn_explainer *e);

/* Evaluation-mode forward and backward of n images (n, C, H, W) NCHW, n in 1..max_batch.
 * cls[j]: the class to explain for image j, or -1 for its top-1 (then set to it).
 * grad (optional): (n, C, H, W), d logit[cls[j]] / d image j.  probs (optional): (n, K) the
 * model's output (probabilities when it ends in softmax); logits (optional): (n, K) the
 * scores explained.  CNN_EINVAL for n out of range, a class out of range or a non-finite
 * input value. */
int cnn_explain_gradient(struct cnn_explainer *e, const float *images, int n, int *cls,
                         float *grad, float *probs, float *logits, struct cnn_err *err);

/* The saliency map (H, W) of one image (C, H, W) by o->method, for class *cls (-1: top-1,
 * then set).  map values are >= 0 (occlusion drops below 0 are 0); larger = more
 * important.  probs (optional, K floats): the clean image's output. */
int cnn_explain_map(struct cnn_explainer *e, const float *image, int *cls,
                    const struct cnn_explain_opts *o, float *map, float *probs,
                    struct cnn_err *err);

/* map[p] = max over the C channels of |grad[c][p]|: (C, H, W) -> (H, W). */
void cnn_explain_reduce(const float *grad, int C, int H, int W, float *map);

#endif
