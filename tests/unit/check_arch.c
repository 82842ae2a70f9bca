/* Suite `arch`: every shipped architecture built by cnn_arch_build() against independent
 * references -- parameter counts and FLOPs from PyTorch/torchvision and the papers, output
 * and intermediate shapes, preprocessing constants -- plus argument errors.
 *
 * References.  lenet5, cifar_cnn, resnet18: params/macs/flops copied into
 * tests/data/peers_manifest.json from the peers' manifest (make_models.py: torch's
 * parameters() sum and Conv2d/Linear forward-hook MACs).  VGG-16 138,357,544, ResNet-50
 * 25,557,032, DenseNet-121 7,978,856: the published torchvision ImageNet counts (torchvision
 * model docs; also sum(p.numel() for p in torchvision.models.vgg16().parameters()) etc.).
 * AlexNet, NIN, GoogLeNet, fashion_cnn and every MAC count below came from torch 1.13 with
 * equivalent definitions; count_macs is make_models.py's hook counter (fashion_cnn: the
 * nn.Sequential of bench/train_torch.py, 468,010 params, 18,691,840 MACs):
 *   import torch, torch.nn as n, torchvision; from make_models import count_macs
 *   C, R, M, L = n.Conv2d, n.ReLU, n.MaxPool2d, n.LocalResponseNorm
 *   def cr(i, o, k, p=0): return [C(i, o, k, padding=p), R()]
 *   alex = n.Sequential(C(3,96,11,4), R(), L(5,1e-4,0.75,2), M(3,2), C(96,256,5,padding=2), R(),
 *     L(5,1e-4,0.75,2), M(3,2), *cr(256,384,3,1), *cr(384,384,3,1), *cr(384,256,3,1), M(3,2),
 *     n.Flatten(), n.Linear(9216,4096), R(), n.Dropout(), n.Linear(4096,4096), R(),
 *     n.Dropout(), n.Linear(4096,1000))                                  # 62,378,344
 *   nin = n.Sequential(*cr(3,192,5,2), *cr(192,160,1), *cr(160,96,1), M(3,2,ceil_mode=True),
 *     n.Dropout(), *cr(96,192,5,2), *cr(192,192,1), *cr(192,192,1),
 *     n.AvgPool2d(3,2,ceil_mode=True), n.Dropout(), *cr(192,192,3,1), *cr(192,192,1),
 *     *cr(192,10,1), n.AdaptiveAvgPool2d(1), n.Flatten())                  # 966,986
 *   class Inc(n.Module):  # b1 | b2r -> b2 3x3 | b3r -> b3 5x5 | maxpool 3/1 -> proj
 *     def __init__(s, i, a, b2r, b2, b3r, b3, d):
 *       super().__init__(); s.b = n.ModuleList([n.Sequential(*cr(i,a,1)),
 *         n.Sequential(*cr(i,b2r,1), *cr(b2r,b2,3,1)), n.Sequential(*cr(i,b3r,1), *cr(b3r,b3,5,2)),
 *         n.Sequential(M(3,1,1,ceil_mode=True), *cr(i,d,1))])
 *     def forward(s, x): return torch.cat([f(x) for f in s.b], 1)
 *   goog = n.Sequential(C(3,64,7,2,3), R(), M(3,2,ceil_mode=True), L(5,1e-4,0.75,1),
 *     *cr(64,64,1), *cr(64,192,3,1), L(5,1e-4,0.75,1), M(3,2,ceil_mode=True),
 *     Inc(192,64,96,128,16,32,32), Inc(256,128,128,192,32,96,64), M(3,2,ceil_mode=True),
 *     Inc(480,192,96,208,16,48,64), Inc(512,160,112,224,24,64,64), Inc(512,128,128,256,24,64,64),
 *     Inc(512,112,144,288,32,64,64), Inc(528,256,160,320,32,128,128), M(3,2,ceil_mode=True),
 *     Inc(832,256,160,320,32,128,128), Inc(832,384,192,384,48,128,128), n.AvgPool2d(7,1),
 *     n.Dropout(0.4), n.Flatten(), n.Linear(1024,1000))                    # 6,998,552
 *   count_macs(m, chw)["macs"] for each, torchvision.models.<name>() for the others.
 * ZFNet (no torch here): the paper's Figure 3 sizes (110, 55, 26, 13, 6) and by hand,
 * sum of o*i*k*k + o and of o*i*k*k*oh*ow: conv 14,208 + 614,656 + 885,120 + 1,327,488 +
 * 884,992, fc 37,752,832 + 16,781,312 + 4,097,000 = 62,357,608 params (= AlexNet's
 * 62,378,344 above less the 20,736 of its 11x11 conv1: the other layers have the same
 * shapes), MACs 170,755,200 + 415,334,400 + 149,520,384 + 224,280,576 + 149,520,384 +
 * 58,621,952 = 1,168,032,896. */
#include "arch.h"
#include "model.h"
#include "model_internal.h"
#include "ref_net.h"
#include "session.h"
#include "test_nets.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pp_kind { PP_GRAY28, PP_CIFAR, PP_IMAGENET, PP_FASHION };

struct shape_ref {
    const char *layer;
    int c, h, w;
};

struct arch_ref {
    const char *name;
    int classes, in_c, in_h, in_w;
    enum pp_kind pp;
    int crop_from;     /* ImageNet: shorter side before the center crop */
    int from_manifest; /* 1: params and macs come from tests/data/peers_manifest.json */
    size_t params;
    double macs; /* conv + linear multiply-accumulates per image */
    struct shape_ref shapes[3];
};

/* Shapes: the output sizes of the original networks (torchvision / the papers' tables).
 * clang-format off: one architecture per row reads better than one field per line. */
/* clang-format off */
static const struct arch_ref REFS[] = {
    {"lenet5", 10, 1, 28, 28, PP_GRAY28, 0, 1, 0, 0,
     {{"conv1", 6, 24, 24}, {"pool1", 6, 12, 12}, {"pool2", 16, 4, 4}}},
    {"cifar_cnn", 10, 3, 32, 32, PP_CIFAR, 0, 1, 0, 0,
     {{"features.0", 32, 32, 32}, {"features.7", 64, 8, 8}, {"features.11", 128, 4, 4}}},
    {"fashion_cnn", 10, 1, 28, 28, PP_FASHION, 0, 0, 468010, 18691840.0,
     {{"relu2", 32, 28, 28}, {"pool1", 32, 14, 14}, {"pool2", 64, 7, 7}}},
    {"alexnet", 1000, 3, 227, 227, PP_IMAGENET, 256, 0, 62378344, 1135256096.0,
     {{"conv1", 96, 55, 55}, {"pool2", 256, 13, 13}, {"pool5", 256, 6, 6}}},
    {"zfnet", 1000, 3, 224, 224, PP_IMAGENET, 256, 0, 62357608, 1168032896.0,
     {{"conv1", 96, 110, 110}, {"norm1", 96, 55, 55}, {"pool2", 256, 13, 13}}},
    {"vgg16", 1000, 3, 224, 224, PP_IMAGENET, 256, 0, 138357544, 15470264320.0,
     {{"features.4", 64, 112, 112}, {"features.28", 512, 14, 14}, {"features.30", 512, 7, 7}}},
    {"nin", 10, 3, 32, 32, PP_CIFAR, 0, 0, 966986, 222486528.0,
     {{"pool1", 96, 16, 16}, {"pool2", 192, 8, 8}, {"relu_cccp6", 10, 8, 8}}},
    {"googlenet", 1000, 3, 224, 224, PP_IMAGENET, 256, 0, 6998552, 1582671872.0,
     {{"inception_3a/output", 256, 28, 28}, {"inception_4e/output", 832, 14, 14},
      {"inception_5b/output", 1024, 7, 7}}},
    {"resnet18", 1000, 3, 224, 224, PP_IMAGENET, 256, 1, 0, 0,
     {{"maxpool", 64, 56, 56}, {"layer3.0.relu_out", 256, 14, 14},
      {"layer4.1.relu_out", 512, 7, 7}}},
    {"resnet50", 1000, 3, 224, 224, PP_IMAGENET, 256, 0, 25557032, 4089184256.0,
     {{"layer1.2.relu_out", 256, 56, 56}, {"layer3.5.relu_out", 1024, 14, 14},
      {"layer4.2.relu_out", 2048, 7, 7}}},
    {"densenet121", 1000, 3, 224, 224, PP_IMAGENET, 256, 0, 7978856, 2834161664.0,
     {{"features.denseblock1.cat", 256, 56, 56}, {"features.transition2.pool", 256, 14, 14},
      {"features.norm5", 1024, 7, 7}}},
};
/* clang-format on */
#define N_REFS ((int)(sizeof REFS / sizeof REFS[0]))

/* ---- the peers' manifest ------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* The number after "key": inside the object that follows "model": in the JSON text. */
static double manifest_value(const char *json, const char *model, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", model);
    const char *obj = strstr(json, pat);
    ck_assert_msg(obj != NULL, "model %s missing from the manifest", model);
    const char *end = strchr(obj, '}');
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(obj, pat);
    ck_assert_msg(at != NULL && at < end, "%s.%s missing from the manifest", model, key);
    char *stop;
    double v = strtod(at + strlen(pat), &stop);
    ck_assert_msg(stop != at + strlen(pat), "%s.%s is not a number", model, key);
    return v;
}

static char *load_manifest(void)
{
    const char *dir = getenv("CNN_TEST_DATA");
    char path[512];
    snprintf(path, sizeof path, "%s/peers_manifest.json", dir ? dir : "tests/data");
    char *json = read_text(path);
    ck_assert_msg(json != NULL, "cannot read %s (run from the repo root or set CNN_TEST_DATA)",
                  path);
    return json;
}

static struct cnn_model *build(const char *name, int classes)
{
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    int rc = cnn_arch_build(name, classes, &m, &err);
    ck_assert_msg(rc == 0, "%s: %s", name, err.msg);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* ---- one architecture per loop iteration -------------------------------- */

START_TEST(test_arch_params_flops_and_shapes_match_references)
{
    const struct arch_ref *r = &REFS[_i];
    size_t params = r->params;
    double macs = r->macs;
    if (r->from_manifest) {
        char *json = load_manifest();
        params = (size_t)manifest_value(json, r->name, "params");
        macs = manifest_value(json, r->name, "macs");
        ck_assert_double_eq(manifest_value(json, r->name, "flops"), 2.0 * macs);
        free(json);
    }
    struct cnn_model *m = build(r->name, 0);
    ck_assert_msg(cnn_model_param_count(m) == params, "%s: %zu params, reference %zu", r->name,
                  cnn_model_param_count(m), params);
    ck_assert_msg(cnn_model_flops(m) == 2.0 * macs, "%s: %.0f flops, reference %.0f", r->name,
                  cnn_model_flops(m), 2.0 * macs);

    /* input, intermediate and output shapes */
    struct cnn_layer_info li;
    cnn_model_layer_info(m, 0, &li);
    ck_assert_int_eq(li.kind, CNN_LAYER_INPUT);
    ck_assert_msg(li.c == r->in_c && li.h == r->in_h && li.w == r->in_w, "%s: input %dx%dx%d",
                  r->name, li.c, li.h, li.w);
    for (int s = 0; s < 3; s++) {
        const struct shape_ref *sr = &r->shapes[s];
        int i = cnn_model_find_layer(m, sr->layer);
        ck_assert_msg(i > 0, "%s: no layer %s", r->name, sr->layer);
        cnn_model_layer_info(m, i, &li);
        ck_assert_msg(li.c == sr->c && li.h == sr->h && li.w == sr->w,
                      "%s: %s is %dx%dx%d, expected %dx%dx%d", r->name, sr->layer, li.c, li.h, li.w,
                      sr->c, sr->h, sr->w);
    }
    int last = cnn_model_layer_count(m) - 1;
    cnn_model_layer_info(m, last, &li);
    ck_assert_int_eq(li.kind, CNN_LAYER_SOFTMAX);
    ck_assert_msg(li.c == r->classes && li.h == 1 && li.w == 1, "%s: output %dx%dx%d", r->name,
                  li.c, li.h, li.w);
    ck_assert_int_eq(cnn_model_num_classes(m), r->classes);

    /* labels and metadata */
    ck_assert_str_eq(cnn_model_label(m, 0), "class0");
    char want[32];
    snprintf(want, sizeof want, "class%d", r->classes - 1);
    ck_assert_str_eq(cnn_model_label(m, r->classes - 1), want);
    ck_assert_ptr_null(cnn_model_label(m, r->classes));
    snprintf(want, sizeof want, "arch=%s\n", r->name);
    ck_assert_ptr_nonnull(strstr(cnn_model_meta(m), want));

    /* preprocessing: the datasets' published statistics */
    const struct cnn_preproc *pp = cnn_model_preproc(m);
    ck_assert_int_eq(pp->c, r->in_c);
    ck_assert_int_eq(pp->h, r->in_h);
    ck_assert_int_eq(pp->w, r->in_w);
    ck_assert_int_eq(pp->invert, 0);
    static const float imnet_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float imnet_std[3] = {0.229f, 0.224f, 0.225f};
    static const float cifar_mean[3] = {0.4914f, 0.4822f, 0.4465f};
    static const float cifar_std[3] = {0.2470f, 0.2435f, 0.2616f};
    for (int c = 0; c < r->in_c; c++) {
        float mean = 0.0f, std = 1.0f;
        if (r->pp == PP_IMAGENET)
            mean = imnet_mean[c], std = imnet_std[c];
        else if (r->pp == PP_CIFAR)
            mean = cifar_mean[c], std = cifar_std[c];
        else if (r->pp == PP_FASHION) /* numpy over train-images-idx3-ubyte / 255 */
            mean = 0.2860f, std = 0.3530f;
        ck_assert_float_eq_tol(pp->mean[c], mean, 1e-6f);
        ck_assert_float_eq_tol(pp->std[c], std, 1e-6f);
    }
    if (r->pp == PP_IMAGENET) {
        ck_assert_int_eq(pp->resize, CNN_RESIZE_SHORTER_CROP);
        ck_assert_int_eq(pp->resize_short, r->crop_from);
    } else {
        ck_assert_int_eq(pp->resize, CNN_RESIZE_STRETCH);
    }

    /* the one-line description starts with the input shape */
    const char *d = cnn_arch_describe(r->name);
    ck_assert_ptr_nonnull(d);
    snprintf(want, sizeof want, "%dx%dx%d ", r->in_c, r->in_h, r->in_w);
    ck_assert_msg(strncmp(d, want, strlen(want)) == 0, "%s: describe '%s'", r->name, d);
    ck_assert_ptr_null(strchr(d, '\n'));
    cnn_model_destroy(m);
}
END_TEST

/* ---- class count, names, errors ----------------------------------------- */

/* With k classes only the classifier changes: its weights + biases are fan_in * k + k. */
START_TEST(test_num_classes_resizes_only_the_classifier)
{
    static const struct {
        const char *name;
        int classes, fan_in;
        const char *last_label;
    } cases[] = {
        {"lenet5", 3, 84, "class2"}, {"nin", 100, 192, "class99"}, {"resnet18", 5, 512, "class4"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cnn_model *ref = build(cases[i].name, 0);
        struct cnn_model *m = build(cases[i].name, cases[i].classes);
        int def = cnn_model_num_classes(ref);
        size_t fc_def = (size_t)(cases[i].fan_in + 1) * (size_t)def;
        size_t fc_new = (size_t)(cases[i].fan_in + 1) * (size_t)cases[i].classes;
        ck_assert_uint_eq(cnn_model_param_count(m), cnn_model_param_count(ref) - fc_def + fc_new);
        ck_assert_int_eq(cnn_model_num_classes(m), cases[i].classes);
        ck_assert_int_eq(cnn_model_layer_count(m), cnn_model_layer_count(ref));
        ck_assert_str_eq(cnn_model_label(m, cases[i].classes - 1), cases[i].last_label);
        cnn_model_destroy(ref);
        cnn_model_destroy(m);
    }
}
END_TEST

START_TEST(test_names_are_listed_unique_and_described)
{
    int n = -1;
    const char *const *names = cnn_arch_names(&n);
    ck_assert_int_eq(n, N_REFS);
    ck_assert_ptr_null(names[n]);
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < N_REFS; j++)
            found += strcmp(names[i], REFS[j].name) == 0;
        ck_assert_msg(found == 1, "%s listed but not referenced in the test", names[i]);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(names[i], names[j]);
        ck_assert_ptr_nonnull(cnn_arch_describe(names[i]));
    }
    ck_assert_ptr_null(cnn_arch_describe("lenet"));
    ck_assert_ptr_null(cnn_arch_describe(NULL));
    ck_assert_ptr_nonnull(cnn_arch_names(NULL));
}
END_TEST

START_TEST(test_bad_arguments_are_rejected)
{
    struct cnn_err err = {0};
    static int not_a_model;
    struct cnn_model *m = (struct cnn_model *)&not_a_model; /* a failed build sets NULL */
    ck_assert_int_eq(cnn_arch_build("resnet19", 0, &m, &err), CNN_ENOENT);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(err.code, CNN_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "resnet19"));
    ck_assert_int_eq(cnn_arch_build("", 0, &m, &err), CNN_ENOENT);
    ck_assert_int_eq(cnn_arch_build("LENET5", 0, &m, &err), CNN_ENOENT);
    ck_assert_int_eq(cnn_arch_build(NULL, 0, &m, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_arch_build("lenet5", -1, &m, &err), CNN_EINVAL);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(cnn_arch_build("lenet5", CNN_MAX_CLASSES + 1, &m, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_arch_build("lenet5", 0, NULL, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_arch_build("nosuch", 0, &m, NULL), CNN_ENOENT); /* err optional */
}
END_TEST

/* The built graphs are what the compiler accepts: small ones, and DenseNet-121 for its
 * standalone BNs and many-input concats. */
START_TEST(test_built_models_init_and_compile)
{
    static const char *const names[] = {"lenet5", "cifar_cnn", "nin", "densenet121"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct cnn_err err = {0};
        struct cnn_model *m = build(names[i], 0);
        size_t count = 0;
        const float *w = cnn_model_weights_mut(m, 1, 0, &count); /* first conv */
        ck_assert_ptr_nonnull(w);
        ck_assert_uint_gt(count, 0);
        ck_assert_float_eq(w[0], 0.0f); /* allocated zeroed, not initialised */
        cnn_model_init_random(m, 42);
        int nonzero = 0;
        for (size_t k = 0; k < count; k++)
            nonzero += w[k] != 0.0f;
        ck_assert_int_gt(nonzero, (int)(count / 2));
        ck_assert_msg(cnn_model_compile(m, &err) == 0, "%s: %s", names[i], err.msg);
        cnn_model_destroy(m);
    }
}
END_TEST

/* Random BN affine and running statistics so that folding BN into the conv is not trivial. */
static void randomize_batchnorm(struct cnn_model *m, uint64_t seed)
{
    static const float lo[4] = {0.5f, -0.2f, -0.2f, 0.5f}; /* gamma, beta, mean, var */
    for (int i = 1; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info li;
        cnn_model_layer_info(m, i, &li);
        if (li.kind != CNN_LAYER_BATCHNORM)
            continue;
        for (int slot = 0; slot < 4; slot++) {
            size_t n = 0;
            float *v = cnn_model_weights_mut(m, i, slot, &n);
            ck_assert_ptr_nonnull(v);
            test_fill(v, n, seed++); /* [-1, 1) */
            for (size_t k = 0; k < n; k++)
                v[k] = lo[slot] + (v[k] + 1.0f) * (lo[slot] < 0 ? 0.2f : 0.5f);
        }
    }
}

/* The small shipped networks, compiled and run batched through a session, agree with the
 * naive per-image interpreter of the same graph (tests/unit/ref_net.c). */
START_TEST(test_small_archs_run_like_the_naive_reference)
{
    static const char *const names[] = {"lenet5", "cifar_cnn", "nin"};
    for (size_t a = 0; a < sizeof names / sizeof names[0]; a++) {
        struct cnn_err err = {0};
        struct cnn_model *m = build(names[a], 0);
        cnn_model_init_random(m, 7 + a);
        randomize_batchnorm(m, 100 * a);
        ck_assert_msg(cnn_model_compile(m, &err) == 0, "%s: %s", names[a], err.msg);
        const struct cnn_preproc *pp = cnn_model_preproc(m);
        int N = 2, K = cnn_model_num_classes(m);
        size_t img = (size_t)pp->c * pp->h * pp->w;
        float *x = malloc(N * img * sizeof(float)), *ref = malloc(K * sizeof(float));
        ck_assert(x && ref);
        test_fill(x, N * img, 1000 + a);
        struct cnn_session *s = cnn_session_create(m, N, &err);
        ck_assert_msg(s != NULL, "%s: %s", names[a], err.msg);
        const float *out = NULL;
        ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0);
        double worst = 0, spread = 0;
        for (int n = 0; n < N; n++) {
            ck_assert_int_eq(ref_net_forward(m, x + n * img, ref), 0);
            for (int k = 0; k < K; k++) {
                worst = fmax(worst, fabs((double)out[n * K + k] - ref[k]));
                spread = fmax(spread, fabs((double)ref[k] - 1.0 / K));
            }
        }
        ck_assert_msg(worst <= 1e-4, "%s: max abs err %g", names[a], worst);
        ck_assert_msg(spread > 1e-3, "%s: output is uniform, the test would not see errors",
                      names[a]);
        cnn_session_destroy(s);
        free(x);
        free(ref);
        cnn_model_destroy(m);
    }
}
END_TEST

/* Every architecture of `cnn init --list` (random weights and BN statistics, a batch of 2)
 * through the compiled plan with Winograd F(4x4)+F(2x2) as the cost model picks, with F(2x2)
 * only and with im2col only: the softmax outputs within 1e-4 of the im2col path.  Prints
 * how many convs took each variant (a net with 3x3 stride-1 convs of 16+ channels must have
 * used Winograd), how many of them run on packed U, and the largest probability, so a
 * uniform output would show. */
static int wino_ops(const struct cnn_model *m, int tile)
{
    int n = 0;
    for (int k = 0; k < m->n_ops; k++)
        n += m->ops[k].kind == CNN_LAYER_CONV2D && m->ops[k].wino == tile;
    return n;
}

/* Winograd convs whose U is packed for cnn_gemm_packed() (AVX2, 128+ input channels). */
static int wino_packed_ops(const struct cnn_model *m)
{
    int n = 0;
    for (int k = 0; k < m->n_ops; k++)
        n += m->ops[k].kind == CNN_LAYER_CONV2D && m->ops[k].wino && m->ops[k].u_packed;
    return n;
}

START_TEST(test_every_arch_winograd_matches_im2col_softmax)
{
    int count = 0;
    const char *name = cnn_arch_names(&count)[_i];
    enum { N = 2 };
    float *outs[3] = {NULL, NULL, NULL};
    int used[3][2], packed[3], K = 0;
    static const int max_tile[3] = {4, 2, 0};
    for (int v = 0; v < 3; v++) {
        struct cnn_err err = {0};
        struct cnn_model *m = build(name, 0);
        cnn_model_init_random(m, 11);
        randomize_batchnorm(m, 300);
        ck_assert_msg(cnn_model_compile_wino(m, max_tile[v], &err) == 0, "%s: %s", name, err.msg);
        used[v][0] = wino_ops(m, 4), used[v][1] = wino_ops(m, 2), packed[v] = wino_packed_ops(m);
        const struct cnn_preproc *pp = cnn_model_preproc(m);
        size_t img = (size_t)pp->c * pp->h * pp->w;
        K = cnn_model_num_classes(m);
        float *x = malloc(N * img * sizeof(float));
        outs[v] = malloc(N * (size_t)K * sizeof(float));
        ck_assert(x && outs[v]);
        test_fill(x, N * img, 77);
        struct cnn_session *s = cnn_session_create(m, N, &err);
        ck_assert_msg(s != NULL, "%s: %s", name, err.msg);
        const float *out = NULL;
        ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0);
        memcpy(outs[v], out, N * (size_t)K * sizeof(float));
        cnn_session_destroy(s);
        free(x);
        cnn_model_destroy(m);
    }
    double d4 = 0, d2 = 0, top = 0;
    for (int i = 0; i < N * K; i++) {
        d4 = fmax(d4, fabs((double)outs[0][i] - outs[2][i]));
        d2 = fmax(d2, fabs((double)outs[1][i] - outs[2][i]));
        top = fmax(top, outs[2][i]);
    }
    printf("arch %-12s convs F(4x4) %2d F(2x2) %2d (F(2x2) only: %2d, im2col only: %d; packed U "
           "%d, %d): softmax vs im2col max abs diff %.3g (F(2x2) only %.3g), largest "
           "probability %.3g\n",
           name, used[0][0], used[0][1], used[1][1], used[2][0] + used[2][1], packed[0], packed[1],
           d4, d2, top);
    ck_assert_int_eq(used[1][0] + used[2][0] + used[2][1], 0);
    ck_assert_int_eq(used[0][0] + used[0][1], used[1][1]); /* the same convs, other tiles */
    ck_assert_msg(d4 <= 1e-4 && d2 <= 1e-4, "%s: %g %g", name, d4, d2);
    for (int v = 0; v < 3; v++)
        free(outs[v]);
}
END_TEST

/* cnn_model_compile_wino() takes 0, 2 or 4 only. */
START_TEST(test_compile_wino_rejects_other_tiles)
{
    struct cnn_err err = {0};
    struct cnn_model *m = build("cifar_cnn", 0);
    ck_assert_int_eq(cnn_model_compile_wino(m, 3, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "tile 3"));
    ck_assert_int_eq(cnn_model_compile_wino(m, 6, &err), CNN_EINVAL);
    ck_assert_int_eq(cnn_model_compile_wino(m, 2, &err), 0);
    cnn_model_destroy(m);
}
END_TEST

Suite *arch_suite(void)
{
    Suite *s = suite_create("arch");
    TCase *tc = tcase_create("build");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_arch_params_flops_and_shapes_match_references, 0, N_REFS);
    tcase_add_test(tc, test_num_classes_resizes_only_the_classifier);
    tcase_add_test(tc, test_names_are_listed_unique_and_described);
    tcase_add_test(tc, test_bad_arguments_are_rejected);
    tcase_add_test(tc, test_built_models_init_and_compile);
    tcase_add_test(tc, test_small_archs_run_like_the_naive_reference);
    tcase_add_test(tc, test_compile_wino_rejects_other_tiles);
    suite_add_tcase(s, tc);
    int n_archs = 0;
    cnn_arch_names(&n_archs);
    tc = tcase_create("winograd");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, test_every_arch_winograd_matches_im2col_softmax, 0, n_archs);
    suite_add_tcase(s, tc);
    return s;
}
