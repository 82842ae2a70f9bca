/* Plain feed-forward architectures: LeNet-5 and the small CIFAR CNN (exactly as in the
 * peers' make_models.py), the project's Fashion-MNIST CNN (the bundled model), AlexNet
 * (Krizhevsky et al. 2012, one tower, LRN), ZFNet (Zeiler & Fergus 2013), VGG-16
 * (configuration D, torchvision layer names) and Network in Network (Lin et al. 2013,
 * CIFAR-10 form).  Layer names follow the PyTorch / Caffe originals. */
#include "arch_internal.h"

#include <stdio.h>

int cnn_arch_lenet5(struct cnn_arch_builder *b, int nc)
{
    int x = 0;                                       /* 1x28x28 */
    x = cnn_arch_conv(b, x, "conv1", 6, 5, 1, 0, 1); /* 6x24x24 */
    x = cnn_arch_relu(b, x, "relu1");
    x = cnn_arch_maxpool(b, x, "pool1", 2, 2, 0, 0);  /* 6x12x12 */
    x = cnn_arch_conv(b, x, "conv2", 16, 5, 1, 0, 1); /* 16x8x8 */
    x = cnn_arch_relu(b, x, "relu2");
    x = cnn_arch_maxpool(b, x, "pool2", 2, 2, 0, 0); /* 16x4x4 */
    x = cnn_arch_flatten(b, x, "flatten");           /* 256 */
    x = cnn_arch_dense(b, x, "fc1", 120);
    x = cnn_arch_relu(b, x, "relu3");
    x = cnn_arch_dense(b, x, "fc2", 84);
    x = cnn_arch_relu(b, x, "relu4");
    return cnn_arch_dense(b, x, "fc3", nc);
}

int cnn_arch_cifar_cnn(struct cnn_arch_builder *b, int nc)
{
    static const int width[3] = {32, 64, 128};
    int x = 0; /* 3x32x32 -> 32x16x16 -> 64x8x8 -> 128x4x4 */
    char name[CNN_NAME_MAX];
    for (int i = 0; i < 3; i++) { /* nn.Sequential indices: conv, bn, relu, pool */
        snprintf(name, sizeof name, "features.%d", 4 * i);
        x = cnn_arch_conv(b, x, name, width[i], 3, 1, 1, 0);
        snprintf(name, sizeof name, "features.%d", 4 * i + 1);
        x = cnn_arch_bn(b, x, name);
        snprintf(name, sizeof name, "features.%d", 4 * i + 2);
        x = cnn_arch_relu(b, x, name);
        snprintf(name, sizeof name, "features.%d", 4 * i + 3);
        x = cnn_arch_maxpool(b, x, name, 2, 2, 0, 0);
    }
    x = cnn_arch_flatten(b, x, "flatten"); /* 2048 */
    return cnn_arch_dense(b, x, "fc", nc);
}

/* Two VGG-style blocks of [conv3x3-BN-ReLU] x 2 + maxpool (32, 64 channels), dropout,
 * fc 128, dropout, classifier: the bundled Fashion-MNIST model (models/README.md).  Convs
 * before BN carry no bias.  PyTorch equivalent in bench/train_torch.py. */
int cnn_arch_fashion_cnn(struct cnn_arch_builder *b, int nc)
{
    static const int width[4] = {32, 32, 64, 64};
    int x = 0; /* 1x28x28 -> 32x28x28 -> 32x14x14 -> 64x14x14 -> 64x7x7 */
    char name[CNN_NAME_MAX];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "conv%d", i + 1);
        x = cnn_arch_conv(b, x, name, width[i], 3, 1, 1, 0);
        snprintf(name, sizeof name, "bn%d", i + 1);
        x = cnn_arch_bn(b, x, name);
        snprintf(name, sizeof name, "relu%d", i + 1);
        x = cnn_arch_relu(b, x, name);
        if (i % 2 == 1) {
            snprintf(name, sizeof name, "pool%d", i / 2 + 1);
            x = cnn_arch_maxpool(b, x, name, 2, 2, 0, 0);
        }
    }
    x = cnn_arch_dropout(b, x, "drop1", 0.25f);
    x = cnn_arch_flatten(b, x, "flatten"); /* 3136 */
    x = cnn_arch_dense(b, x, "fc1", 128);
    x = cnn_arch_relu(b, x, "relu5");
    x = cnn_arch_dropout(b, x, "drop2", 0.5f);
    return cnn_arch_dense(b, x, "fc2", nc);
}

/* What AlexNet and ZFNet share after their second stage (256x13x13): three 3x3 convs
 * 384, 384, 256 with ReLU, a 3x3/2 max pool (ceil_mode as given; both give 6x6) and the
 * classifier fc6 4096, fc7 4096 (each ReLU + dropout 0.5), fc8 nc. */
static int classic_tail(struct cnn_arch_builder *b, int x, int nc, int ceil_mode)
{
    x = cnn_arch_conv(b, x, "conv3", 384, 3, 1, 1, 1);
    x = cnn_arch_relu(b, x, "relu3");
    x = cnn_arch_conv(b, x, "conv4", 384, 3, 1, 1, 1);
    x = cnn_arch_relu(b, x, "relu4");
    x = cnn_arch_conv(b, x, "conv5", 256, 3, 1, 1, 1);
    x = cnn_arch_relu(b, x, "relu5");
    x = cnn_arch_maxpool(b, x, "pool5", 3, 2, 0, ceil_mode); /* 256x6x6 */
    x = cnn_arch_flatten(b, x, "flatten");                   /* 9216 */
    x = cnn_arch_dense(b, x, "fc6", 4096);
    x = cnn_arch_relu(b, x, "relu6");
    x = cnn_arch_dropout(b, x, "drop6", 0.5f);
    x = cnn_arch_dense(b, x, "fc7", 4096);
    x = cnn_arch_relu(b, x, "relu7");
    x = cnn_arch_dropout(b, x, "drop7", 0.5f);
    return cnn_arch_dense(b, x, "fc8", nc);
}

int cnn_arch_alexnet(struct cnn_arch_builder *b, int nc)
{
    /* LRN as in the paper: k = 2, n = 5, alpha = 1e-4, beta = 0.75, after ReLU. */
    const float alpha = 1e-4f, beta = 0.75f, k = 2.0f;
    int x = 0;                                         /* 3x227x227 */
    x = cnn_arch_conv(b, x, "conv1", 96, 11, 4, 0, 1); /* 96x55x55 */
    x = cnn_arch_relu(b, x, "relu1");
    x = cnn_arch_lrn(b, x, "norm1", 5, alpha, beta, k);
    x = cnn_arch_maxpool(b, x, "pool1", 3, 2, 0, 0);   /* 96x27x27 */
    x = cnn_arch_conv(b, x, "conv2", 256, 5, 1, 2, 1); /* 256x27x27 */
    x = cnn_arch_relu(b, x, "relu2");
    x = cnn_arch_lrn(b, x, "norm2", 5, alpha, beta, k);
    x = cnn_arch_maxpool(b, x, "pool2", 3, 2, 0, 0); /* 256x13x13 */
    return classic_tail(b, x, nc, 0);
}

/* ZFNet, Figure 3 of Zeiler & Fergus, "Visualizing and Understanding Convolutional
 * Networks" (2013): AlexNet's plan with a 7x7/2 first conv, a dense 5x5/2 second conv
 * and no towers.  Each of the first two stages is conv, ReLU, 3x3/2 max pool, then
 * contrast normalisation across feature maps (AlexNet's LRN constants; the paper gives
 * none).  The paper's sizes 110, 55, 26, 13, 6 from a 224x224 crop need conv1 padded by 1
 * and pools that round up (Caffe's convention, ceil mode). */
int cnn_arch_zfnet(struct cnn_arch_builder *b, int nc)
{
    const float alpha = 1e-4f, beta = 0.75f, k = 2.0f;
    int x = 0;                                        /* 3x224x224 */
    x = cnn_arch_conv(b, x, "conv1", 96, 7, 2, 1, 1); /* 96x110x110 */
    x = cnn_arch_relu(b, x, "relu1");
    x = cnn_arch_maxpool(b, x, "pool1", 3, 2, 0, 1); /* 96x55x55 */
    x = cnn_arch_lrn(b, x, "norm1", 5, alpha, beta, k);
    x = cnn_arch_conv(b, x, "conv2", 256, 5, 2, 0, 1); /* 256x26x26 */
    x = cnn_arch_relu(b, x, "relu2");
    x = cnn_arch_maxpool(b, x, "pool2", 3, 2, 0, 1); /* 256x13x13 */
    x = cnn_arch_lrn(b, x, "norm2", 5, alpha, beta, k);
    return classic_tail(b, x, nc, 1);
}

int cnn_arch_vgg16(struct cnn_arch_builder *b, int nc)
{
    /* Configuration D; 0 marks a 2x2 max pool.  Names are torchvision's features.<i>. */
    static const int cfg[] = {64, 64,  0,   128, 128, 0,   256, 256, 256,
                              0,  512, 512, 512, 0,   512, 512, 512, 0};
    int x = 0, i = 0;
    char name[CNN_NAME_MAX];
    for (size_t j = 0; j < sizeof cfg / sizeof cfg[0]; j++) {
        snprintf(name, sizeof name, "features.%d", i++);
        if (cfg[j] == 0) {
            x = cnn_arch_maxpool(b, x, name, 2, 2, 0, 0);
            continue;
        }
        x = cnn_arch_conv(b, x, name, cfg[j], 3, 1, 1, 1);
        snprintf(name, sizeof name, "features.%d", i++);
        x = cnn_arch_relu(b, x, name);
    }
    /* 512x7x7 at 224x224: torchvision's adaptive 7x7 average pool is the identity. */
    x = cnn_arch_flatten(b, x, "flatten"); /* 25088 */
    x = cnn_arch_dense(b, x, "classifier.0", 4096);
    x = cnn_arch_relu(b, x, "classifier.1");
    x = cnn_arch_dropout(b, x, "classifier.2", 0.5f);
    x = cnn_arch_dense(b, x, "classifier.3", 4096);
    x = cnn_arch_relu(b, x, "classifier.4");
    x = cnn_arch_dropout(b, x, "classifier.5", 0.5f);
    return cnn_arch_dense(b, x, "classifier.6", nc);
}

/* One NIN "mlpconv" unit: a kxk conv and two 1x1 convs, each followed by ReLU.  The
 * last 1x1 conv of the network has nc channels and feeds global average pooling. */
static int mlpconv(struct cnn_arch_builder *b, int x, int unit, int oc, int k, int pad, int c1,
                   int c2)
{
    char name[CNN_NAME_MAX];
    snprintf(name, sizeof name, "conv%d", unit);
    x = cnn_arch_conv(b, x, name, oc, k, 1, pad, 1);
    snprintf(name, sizeof name, "relu%d", unit);
    x = cnn_arch_relu(b, x, name);
    snprintf(name, sizeof name, "cccp%d", 2 * unit - 1);
    x = cnn_arch_conv(b, x, name, c1, 1, 1, 0, 1);
    snprintf(name, sizeof name, "relu_cccp%d", 2 * unit - 1);
    x = cnn_arch_relu(b, x, name);
    snprintf(name, sizeof name, "cccp%d", 2 * unit);
    x = cnn_arch_conv(b, x, name, c2, 1, 1, 0, 1);
    snprintf(name, sizeof name, "relu_cccp%d", 2 * unit);
    return cnn_arch_relu(b, x, name);
}

int cnn_arch_nin(struct cnn_arch_builder *b, int nc)
{
    /* The CIFAR-10 model of Lin et al. (Caffe model zoo): pools in ceil mode, dropout 0.5. */
    int x = 0;                                       /* 3x32x32 */
    x = mlpconv(b, x, 1, 192, 5, 2, 160, 96);        /* 96x32x32 */
    x = cnn_arch_maxpool(b, x, "pool1", 3, 2, 0, 1); /* 96x16x16 */
    x = cnn_arch_dropout(b, x, "drop1", 0.5f);
    x = mlpconv(b, x, 2, 192, 5, 2, 192, 192);       /* 192x16x16 */
    x = cnn_arch_avgpool(b, x, "pool2", 3, 2, 0, 1); /* 192x8x8 */
    x = cnn_arch_dropout(b, x, "drop2", 0.5f);
    x = mlpconv(b, x, 3, 192, 3, 1, 192, nc);      /* nc x8x8 */
    return cnn_arch_global_avgpool(b, x, "pool3"); /* nc x1x1: the classifier output */
}
