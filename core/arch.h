/* The shipped architectures (LeNet-5, a small CIFAR CNN, the Fashion-MNIST CNN, AlexNet, VGG-16, NIN, GoogLeNet,
 * ResNet-18/50, DenseNet-121), built layer by layer through model.h with their input
 * preprocessing, so the trainer, the `cnn` tool and the tests can make any of them by name. */
#ifndef CNN_ARCH_H
#define CNN_ARCH_H

#include "err.h"
#include "model.h"

/* Builds architecture `name` with num_classes outputs (0 = its default: 10 or 1000).
 * The graph ends in a softmax layer "prob" after the classifier; labels are "class0",
 * "class1", ...; metadata holds "arch=<name>".  Parameters are allocated and zeroed, NOT
 * initialised and the model is not compiled: the caller runs cnn_model_init_random() (or
 * fills the weights) and then cnn_model_compile() or cnn_model_save().
 * *out is owned by the caller (cnn_model_destroy).  Any thread.
 * Fails with CNN_ENOENT for an unknown name, CNN_EINVAL for NULL arguments or num_classes
 * outside 0..CNN_MAX_CLASSES, CNN_ENOMEM when memory runs out; *out is then NULL. */
int cnn_arch_build(const char *name, int num_classes, struct cnn_model **out, struct cnn_err *err);

/* The architecture names, in a fixed order; *count gets their number.  Static storage. */
const char *const *cnn_arch_names(int *count);

/* One line for `name`: input shape, default classes and origin; NULL when unknown. */
const char *cnn_arch_describe(const char *name);

#endif
