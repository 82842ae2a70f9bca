/* The table of shipped architectures and cnn_arch_build(): create the model with the
 * architecture's preprocessing, add its graph and a final softmax, label the classes
 * "class<i>", record the name in the metadata and allocate the (zeroed) parameters. */
#include "arch.h"
#include "arch_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct cnn_preproc GRAY28 = {
    .c = 1, .h = 28, .w = 28, .resize = CNN_RESIZE_STRETCH, .mean = {0, 0, 0}, .std = {1, 1, 1}};
/* Fashion-MNIST training-set statistics of the pixels scaled to [0,1]. */
static const struct cnn_preproc FASHION28 = {.c = 1,
                                             .h = 28,
                                             .w = 28,
                                             .resize = CNN_RESIZE_STRETCH,
                                             .mean = {0.2860f, 0, 0},
                                             .std = {0.3530f, 1, 1}};
/* CIFAR-10 training-set channel statistics. */
static const struct cnn_preproc CIFAR32 = {.c = 3,
                                           .h = 32,
                                           .w = 32,
                                           .resize = CNN_RESIZE_STRETCH,
                                           .mean = {0.4914f, 0.4822f, 0.4465f},
                                           .std = {0.2470f, 0.2435f, 0.2616f}};
/* ImageNet statistics as torchvision uses them; shorter side to 256, center crop. */
static const struct cnn_preproc IMAGENET224 = {.c = 3,
                                               .h = 224,
                                               .w = 224,
                                               .resize = CNN_RESIZE_SHORTER_CROP,
                                               .resize_short = 256,
                                               .mean = {0.485f, 0.456f, 0.406f},
                                               .std = {0.229f, 0.224f, 0.225f}};
static const struct cnn_preproc IMAGENET227 = {.c = 3,
                                               .h = 227,
                                               .w = 227,
                                               .resize = CNN_RESIZE_SHORTER_CROP,
                                               .resize_short = 256,
                                               .mean = {0.485f, 0.456f, 0.406f},
                                               .std = {0.229f, 0.224f, 0.225f}};

struct arch {
    const char *name;
    int (*graph)(struct cnn_arch_builder *b, int nc);
    int classes; /* default */
    const struct cnn_preproc *pp;
    const char *describe;
};

static const struct arch ARCHS[] = {
    {"lenet5", cnn_arch_lenet5, 10, &GRAY28,
     "1x28x28 gray, 10 classes: LeNet-5 style (LeCun et al. 1998) with ReLU and max pooling, "
     "as the peers' make_models.py"},
    {"cifar_cnn", cnn_arch_cifar_cnn, 10, &CIFAR32,
     "3x32x32 RGB, 10 classes: 3x[conv3x3-BN-ReLU-maxpool] 32/64/128 + fc, as the peers' "
     "make_models.py"},
    {"fashion_cnn", cnn_arch_fashion_cnn, 10, &FASHION28,
     "1x28x28 gray, 10 classes: 2x[2x(conv3x3-BN-ReLU)-maxpool] 32/64 + dropout-fc128-dropout-fc, "
     "the bundled Fashion-MNIST model"},
    {"alexnet", cnn_arch_alexnet, 1000, &IMAGENET227,
     "3x227x227 RGB, 1000 classes: AlexNet (Krizhevsky et al. 2012), single tower, LRN after "
     "conv1/conv2, overlapping max pools, dropout"},
    {"zfnet", cnn_arch_zfnet, 1000, &IMAGENET224,
     "3x224x224 RGB, 1000 classes: ZFNet (Zeiler & Fergus 2013), 7x7/2 conv1, LRN after "
     "pool1/pool2, pools in ceil mode, dropout"},
    {"vgg16", cnn_arch_vgg16, 1000, &IMAGENET224,
     "3x224x224 RGB, 1000 classes: VGG-16 configuration D (Simonyan & Zisserman 2014), "
     "torchvision layout"},
    {"nin", cnn_arch_nin, 10, &CIFAR32,
     "3x32x32 RGB, 10 classes: Network in Network (Lin et al. 2013), CIFAR-10 form, 1x1 "
     "mlpconv layers and global average pooling"},
    {"googlenet", cnn_arch_googlenet, 1000, &IMAGENET224,
     "3x224x224 RGB, 1000 classes: GoogLeNet / inception v1 (Szegedy et al. 2014), the paper's "
     "form (Caffe bvlc_googlenet): LRN, 5x5 branches, no BN, no auxiliary classifiers"},
    {"resnet18", cnn_arch_resnet18, 1000, &IMAGENET224,
     "3x224x224 RGB, 1000 classes: ResNet-18 (He et al. 2015), torchvision resnet18"},
    {"resnet50", cnn_arch_resnet50, 1000, &IMAGENET224,
     "3x224x224 RGB, 1000 classes: ResNet-50 (He et al. 2015), torchvision resnet50 "
     "(stride on the 3x3 conv)"},
    {"densenet121", cnn_arch_densenet121, 1000, &IMAGENET224,
     "3x224x224 RGB, 1000 classes: DenseNet-121 (Huang et al. 2017), torchvision densenet121"},
};
#define N_ARCHS ((int)(sizeof ARCHS / sizeof ARCHS[0]))

static const struct arch *find(const char *name)
{
    for (int i = 0; name && i < N_ARCHS; i++)
        if (strcmp(ARCHS[i].name, name) == 0)
            return &ARCHS[i];
    return NULL;
}

const char *const *cnn_arch_names(int *count)
{
    static const char *const names[N_ARCHS + 1] = {
        "lenet5",   "cifar_cnn", "fashion_cnn", "alexnet",  "zfnet",       "vgg16",
        "nin",      "googlenet", "resnet18",    "resnet50", "densenet121", NULL};
    if (count)
        *count = N_ARCHS;
    return names;
}

const char *cnn_arch_describe(const char *name)
{
    const struct arch *a = find(name);
    return a ? a->describe : NULL;
}

/* Labels "class0".."class<n-1>". */
static int set_labels(struct cnn_model *m, int n, struct cnn_err *err)
{
    char(*text)[24] = malloc((size_t)n * sizeof *text);
    const char **labels = malloc((size_t)n * sizeof *labels);
    int rc = 0;
    if (!text || !labels) {
        rc = cnn_err_set(err, CNN_ENOMEM, "arch: out of memory for %d labels", n);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        snprintf(text[i], sizeof text[i], "class%d", i);
        labels[i] = text[i];
    }
    rc = cnn_model_set_labels(m, labels, n, err);
out:
    free(text);
    free(labels);
    return rc;
}

int cnn_arch_build(const char *name, int num_classes, struct cnn_model **out, struct cnn_err *err)
{
    if (!out)
        return cnn_err_set(err, CNN_EINVAL, "arch: no output pointer");
    *out = NULL;
    if (!name)
        return cnn_err_set(err, CNN_EINVAL, "arch: no architecture name");
    const struct arch *a = find(name);
    if (!a)
        return cnn_err_set(err, CNN_ENOENT, "arch: unknown architecture '%.64s'", name);
    if (num_classes < 0 || num_classes > CNN_MAX_CLASSES)
        return cnn_err_set(err, CNN_EINVAL, "arch: %d classes (want 1..%d, or 0 for %d)",
                           num_classes, CNN_MAX_CLASSES, a->classes);
    int nc = num_classes ? num_classes : a->classes;

    struct cnn_model *m = cnn_model_create(a->pp, err);
    if (!m)
        return err ? err->code : CNN_ENOMEM;
    struct cnn_arch_builder b = {.m = m, .err = err};
    int x = a->graph(&b, nc);
    x = cnn_arch_softmax(&b, x, "prob");
    int rc = b.rc;
    if (rc == 0 && x != cnn_model_layer_count(m) - 1)
        rc = cnn_err_set(err, CNN_EINVAL, "arch: %s does not end in its classifier", name);
    if (rc == 0)
        rc = set_labels(m, nc, err);
    char meta[64];
    snprintf(meta, sizeof meta, "arch=%s\n", a->name);
    if (rc == 0)
        rc = cnn_model_set_meta(m, meta, err);
    if (rc == 0)
        rc = cnn_model_alloc_params(m, err);
    if (rc) {
        cnn_model_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}
