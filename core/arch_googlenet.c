/* GoogLeNet (Szegedy et al. 2014, inception v1) as in the paper and Caffe's bvlc_googlenet:
 * convs with bias and ReLU, LRN (size 5, alpha 1e-4, beta 0.75, k 1) after the stem's first
 * pool and second conv, real 5x5 branches, max pools 3x3/2 in ceil mode, no batch norm and
 * no auxiliary classifiers; dropout 0.4 before the classifier.  Caffe's layer names. */
#include "arch_internal.h"

#include <stdio.h>

/* kxk conv (pad k/2) + ReLU named <prefix><name> and <prefix>relu_<name>. */
static int conv_relu(struct cnn_arch_builder *b, int x, const char *name, int oc, int k)
{
    char relu[CNN_NAME_MAX];
    snprintf(relu, sizeof relu, "relu_%s", name);
    x = cnn_arch_conv(b, x, name, oc, k, 1, k / 2, 1);
    return cnn_arch_relu(b, x, relu);
}

/* Inception module: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | maxpool 3x3/1 -> 1x1, concatenated. */
static int inception(struct cnn_arch_builder *b, int x, const char *id, int c1, int r3, int c3,
                     int r5, int c5, int cp)
{
    cnn_arch_prefix(b, "inception_%s/", id);
    int br[4];
    br[0] = conv_relu(b, x, "1x1", c1, 1);
    br[1] = conv_relu(b, conv_relu(b, x, "3x3_reduce", r3, 1), "3x3", c3, 3);
    br[2] = conv_relu(b, conv_relu(b, x, "5x5_reduce", r5, 1), "5x5", c5, 5);
    br[3] = conv_relu(b, cnn_arch_maxpool(b, x, "pool", 3, 1, 1, 1), "pool_proj", cp, 1);
    x = cnn_arch_concat(b, 4, br, "output");
    cnn_arch_prefix(b, "%s", "");
    return x;
}

int cnn_arch_googlenet(struct cnn_arch_builder *b, int nc)
{
    const float alpha = 1e-4f, beta = 0.75f, k = 1.0f;
    int x = cnn_arch_conv(b, 0, "conv1/7x7_s2", 64, 7, 2, 3, 1); /* 64x112x112 */
    x = cnn_arch_relu(b, x, "conv1/relu_7x7");
    x = cnn_arch_maxpool(b, x, "pool1/3x3_s2", 3, 2, 0, 1); /* 64x56x56 */
    x = cnn_arch_lrn(b, x, "pool1/norm1", 5, alpha, beta, k);
    cnn_arch_prefix(b, "conv2/");
    x = conv_relu(b, x, "3x3_reduce", 64, 1);
    x = conv_relu(b, x, "3x3", 192, 3); /* 192x56x56 */
    x = cnn_arch_lrn(b, x, "norm2", 5, alpha, beta, k);
    cnn_arch_prefix(b, "%s", "");
    x = cnn_arch_maxpool(b, x, "pool2/3x3_s2", 3, 2, 0, 1); /* 192x28x28 */
    x = inception(b, x, "3a", 64, 96, 128, 16, 32, 32);     /* 256x28x28 */
    x = inception(b, x, "3b", 128, 128, 192, 32, 96, 64);   /* 480x28x28 */
    x = cnn_arch_maxpool(b, x, "pool3/3x3_s2", 3, 2, 0, 1); /* 480x14x14 */
    x = inception(b, x, "4a", 192, 96, 208, 16, 48, 64);    /* 512x14x14 */
    x = inception(b, x, "4b", 160, 112, 224, 24, 64, 64);
    x = inception(b, x, "4c", 128, 128, 256, 24, 64, 64);
    x = inception(b, x, "4d", 112, 144, 288, 32, 64, 64);   /* 528x14x14 */
    x = inception(b, x, "4e", 256, 160, 320, 32, 128, 128); /* 832x14x14 */
    x = cnn_arch_maxpool(b, x, "pool4/3x3_s2", 3, 2, 0, 1); /* 832x7x7 */
    x = inception(b, x, "5a", 256, 160, 320, 32, 128, 128);
    x = inception(b, x, "5b", 384, 192, 384, 48, 128, 128); /* 1024x7x7 */
    /* Caffe's 7x7/1 average pool over the 7x7 map is the global average. */
    x = cnn_arch_global_avgpool(b, x, "pool5/7x7_s1");
    x = cnn_arch_dropout(b, x, "pool5/drop_7x7_s1", 0.4f);
    return cnn_arch_dense(b, x, "loss3/classifier", nc);
}
