/* Shared by the arch*.c files only: a small graph builder over cnn_model_add() that keeps
 * the first error (so an architecture reads as a straight list of layers and is checked
 * once at the end), and the per-architecture graph functions that arch.c dispatches to. */
#ifndef CNN_ARCH_INTERNAL_H
#define CNN_ARCH_INTERNAL_H

#include "model.h"

struct cnn_arch_builder {
    struct cnn_model *m;       /* borrowed */
    struct cnn_err *err;       /* borrowed, may be NULL */
    int rc;                    /* first error (negative CNN_E*), 0 while all went well */
    char prefix[CNN_NAME_MAX]; /* prepended to every layer name */
};

/* Sets the name prefix ("layer1.0."); "" clears it. */
void cnn_arch_prefix(struct cnn_arch_builder *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Each adds one layer named prefix+name reading layer `in` and returns its index, or the
 * builder's first error (negative) without adding anything once an error happened. */
int cnn_arch_conv(struct cnn_arch_builder *b, int in, const char *name, int oc, int k, int stride,
                  int pad, int has_bias);
int cnn_arch_bn(struct cnn_arch_builder *b, int in, const char *name); /* eps 1e-5 */
int cnn_arch_relu(struct cnn_arch_builder *b, int in, const char *name);
/* ceil_mode as in PyTorch/Caffe; average pools exclude padding from the divisor. */
int cnn_arch_maxpool(struct cnn_arch_builder *b, int in, const char *name, int k, int stride,
                     int pad, int ceil_mode);
int cnn_arch_avgpool(struct cnn_arch_builder *b, int in, const char *name, int k, int stride,
                     int pad, int ceil_mode);
int cnn_arch_global_avgpool(struct cnn_arch_builder *b, int in, const char *name);
int cnn_arch_lrn(struct cnn_arch_builder *b, int in, const char *name, int size, float alpha,
                 float beta, float k);
int cnn_arch_dropout(struct cnn_arch_builder *b, int in, const char *name, float rate);
int cnn_arch_flatten(struct cnn_arch_builder *b, int in, const char *name);
int cnn_arch_dense(struct cnn_arch_builder *b, int in, const char *name, int out);
int cnn_arch_softmax(struct cnn_arch_builder *b, int in, const char *name);
/* Elementwise sum (2+ inputs) / channel concat (1..CNN_MAX_INPUTS inputs). */
int cnn_arch_add(struct cnn_arch_builder *b, int n, const int *inputs, const char *name);
int cnn_arch_concat(struct cnn_arch_builder *b, int n, const int *inputs, const char *name);

/* Architecture graphs: add every layer after the input (layer 0) up to the classifier,
 * which has nc outputs.  Return the classifier's index or a negative CNN_E*. */
int cnn_arch_lenet5(struct cnn_arch_builder *b, int nc);
int cnn_arch_cifar_cnn(struct cnn_arch_builder *b, int nc);
int cnn_arch_fashion_cnn(struct cnn_arch_builder *b, int nc);
int cnn_arch_alexnet(struct cnn_arch_builder *b, int nc);
int cnn_arch_zfnet(struct cnn_arch_builder *b, int nc);
int cnn_arch_vgg16(struct cnn_arch_builder *b, int nc);
int cnn_arch_nin(struct cnn_arch_builder *b, int nc);
int cnn_arch_googlenet(struct cnn_arch_builder *b, int nc);
int cnn_arch_resnet18(struct cnn_arch_builder *b, int nc);
int cnn_arch_resnet50(struct cnn_arch_builder *b, int nc);
int cnn_arch_densenet121(struct cnn_arch_builder *b, int nc);

#endif
