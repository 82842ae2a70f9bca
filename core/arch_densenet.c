/* DenseNet-121 (Huang et al. 2017) as torchvision builds it: growth 32, bottleneck width 128,
 * blocks of 6/12/24/16 layers of BN-ReLU-conv1x1-BN-ReLU-conv3x3, transitions BN-ReLU-conv1x1
 * (halving channels)-avgpool 2x2.  Every layer reads one concat of the block input and all
 * earlier layers' outputs, listed in order, so the concats of a block are prefixes of one
 * another (an executor may place them in one shared buffer).  BN stands alone (before a
 * conv it cannot be folded); the graph runs it as scale-and-shift. */
#include "arch_internal.h"

#define GROWTH 32
#define BN_WIDTH (4 * GROWTH)
#define MAX_BLOCK 24

/* One dense block of n layers reading x (c channels); returns the block's output concat. */
static int dense_block(struct cnn_arch_builder *b, int x, int block, int n)
{
    int feats[1 + MAX_BLOCK]; /* x, then each layer's GROWTH new channels */
    feats[0] = x;
    for (int i = 1; i <= n; i++) {
        cnn_arch_prefix(b, "features.denseblock%d.denselayer%d.", block, i);
        int y = i == 1 ? x : cnn_arch_concat(b, i, feats, "cat");
        y = cnn_arch_bn(b, y, "norm1");
        y = cnn_arch_relu(b, y, "relu1");
        y = cnn_arch_conv(b, y, "conv1", BN_WIDTH, 1, 1, 0, 0);
        y = cnn_arch_bn(b, y, "norm2");
        y = cnn_arch_relu(b, y, "relu2");
        feats[i] = cnn_arch_conv(b, y, "conv2", GROWTH, 3, 1, 1, 0);
    }
    cnn_arch_prefix(b, "features.denseblock%d.", block);
    return cnn_arch_concat(b, n + 1, feats, "cat");
}

int cnn_arch_densenet121(struct cnn_arch_builder *b, int nc)
{
    static const int layers[4] = {6, 12, 24, 16};
    cnn_arch_prefix(b, "features.");
    int x = cnn_arch_conv(b, 0, "conv0", 64, 7, 2, 3, 0); /* 64x112x112 */
    x = cnn_arch_bn(b, x, "norm0");
    x = cnn_arch_relu(b, x, "relu0");
    x = cnn_arch_maxpool(b, x, "pool0", 3, 2, 1, 0); /* 64x56x56 */
    int c = 64;
    for (int s = 0; s < 4; s++) {
        x = dense_block(b, x, s + 1, layers[s]);
        c += layers[s] * GROWTH;
        if (s == 3)
            break;
        cnn_arch_prefix(b, "features.transition%d.", s + 1);
        x = cnn_arch_bn(b, x, "norm");
        x = cnn_arch_relu(b, x, "relu");
        c /= 2;
        x = cnn_arch_conv(b, x, "conv", c, 1, 1, 0, 0);
        x = cnn_arch_avgpool(b, x, "pool", 2, 2, 0, 0); /* 56 -> 28 -> 14 -> 7 */
    }
    cnn_arch_prefix(b, "%s", "");
    x = cnn_arch_bn(b, x, "features.norm5"); /* 1024x7x7 */
    x = cnn_arch_relu(b, x, "relu");
    x = cnn_arch_global_avgpool(b, x, "avgpool");
    return cnn_arch_dense(b, x, "classifier", nc);
}
