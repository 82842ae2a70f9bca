/* ResNet-18 (basic blocks) and ResNet-50 (bottleneck blocks, stride on the 3x3 conv) exactly
 * as torchvision builds them: convs without bias, each followed by BN (eps 1e-5); a 1x1
 * conv + BN shortcut where the shape changes; ReLU after the residual add.  Layer names are
 * torchvision's module names, plus relu<i>/add for the unnamed functional steps. */
#include "arch_internal.h"

/* conv (no bias) + BN, optionally + ReLU; names <conv>, <bn>, <relu> under the prefix. */
static int conv_bn(struct cnn_arch_builder *b, int x, const char *conv, const char *bn,
                   const char *relu, int oc, int k, int stride, int pad)
{
    x = cnn_arch_conv(b, x, conv, oc, k, stride, pad, 0);
    x = cnn_arch_bn(b, x, bn);
    return relu ? cnn_arch_relu(b, x, relu) : x;
}

/* The shortcut: identity, or 1x1 conv + BN when stride or width changes. */
static int shortcut(struct cnn_arch_builder *b, int x, int in_c, int out_c, int stride)
{
    if (stride == 1 && in_c == out_c)
        return x;
    return conv_bn(b, x, "downsample.0", "downsample.1", NULL, out_c, 1, stride, 0);
}

static int residual_out(struct cnn_arch_builder *b, int y, int sc)
{
    int sum[2] = {y, sc};
    return cnn_arch_relu(b, cnn_arch_add(b, 2, sum, "add"), "relu_out");
}

static int basic_block(struct cnn_arch_builder *b, int x, int in_c, int planes, int stride)
{
    int y = conv_bn(b, x, "conv1", "bn1", "relu1", planes, 3, stride, 1);
    y = conv_bn(b, y, "conv2", "bn2", NULL, planes, 3, 1, 1);
    return residual_out(b, y, shortcut(b, x, in_c, planes, stride));
}

static int bottleneck(struct cnn_arch_builder *b, int x, int in_c, int planes, int stride)
{
    int y = conv_bn(b, x, "conv1", "bn1", "relu1", planes, 1, 1, 0);
    y = conv_bn(b, y, "conv2", "bn2", "relu2", planes, 3, stride, 1);
    y = conv_bn(b, y, "conv3", "bn3", NULL, 4 * planes, 1, 1, 0);
    return residual_out(b, y, shortcut(b, x, in_c, 4 * planes, stride));
}

/* Stem, four stages of blocks[i] blocks (64/128/256/512 planes), global pool and fc. */
static int resnet(struct cnn_arch_builder *b, const int blocks[4], int bottle, int nc)
{
    int x = conv_bn(b, 0, "conv1", "bn1", "relu", 64, 7, 2, 3); /* 64x112x112 */
    x = cnn_arch_maxpool(b, x, "maxpool", 3, 2, 1, 0);          /* 64x56x56 */
    int c = 64;
    for (int s = 0; s < 4; s++) {
        int planes = 64 << s;
        for (int i = 0; i < blocks[s]; i++) {
            int stride = (s > 0 && i == 0) ? 2 : 1;
            cnn_arch_prefix(b, "layer%d.%d.", s + 1, i);
            x = bottle ? bottleneck(b, x, c, planes, stride) : basic_block(b, x, c, planes, stride);
            c = bottle ? 4 * planes : planes;
        }
    }
    cnn_arch_prefix(b, "%s", "");
    x = cnn_arch_global_avgpool(b, x, "avgpool"); /* c x1x1: dense reads it directly */
    return cnn_arch_dense(b, x, "fc", nc);
}

int cnn_arch_resnet18(struct cnn_arch_builder *b, int nc)
{
    static const int blocks[4] = {2, 2, 2, 2};
    return resnet(b, blocks, 0, nc);
}

int cnn_arch_resnet50(struct cnn_arch_builder *b, int nc)
{
    static const int blocks[4] = {3, 4, 6, 3};
    return resnet(b, blocks, 1, nc);
}
