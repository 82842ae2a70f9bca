/* Suite `kinds_net`: a net that uses every layer kind and activation added for ONNX
 * import (fused into conv, dense and BN where they fuse): the compiled, batched session
 * against the naive interpreter (ref_net.c), a save/load round trip that computes the same
 * bits, the trainer's whole-net finite-difference check (input and learned weights) and 3
 * threads against 1, `cnn info` and the names, and the shape checks and file reader that
 * refuse bad parameters.  The kernels themselves: check_kinds.c. */
#include "layer_kind.h"
#include "model.h"
#include "ref_net.h"
#include "session.h"
#include "test_fd.h"
#include "test_kinds_nets.h"
#include "test_nets.h"
#include "test_train.h"
#include "test_util.h"
#include "train.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every new kind and act is in the net, and compile fused what it fuses. */
START_TEST(test_kinds_net_session_matches_naive_reference)
{
    struct cnn_model *m = test_net_kinds(3);
    int seen[CNN_LAYER_KIND_COUNT] = {0};
    for (int i = 0; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info li;
        cnn_model_layer_info(m, i, &li);
        seen[li.kind]++;
    }
    for (int k = CNN_LAYER_GLOBAL_MAXPOOL; k < CNN_LAYER_KIND_COUNT; k++)
        ck_assert_msg(seen[k] > 0, "kind %s not in the net", cnn_layer_kind_name(k));
    compiled(m);
    enum { N = 3 };
    const size_t img = 3 * 9 * 7;
    const int K = cnn_model_num_classes(m);
    float x[N * 3 * 9 * 7], ref[5];
    double want[N * 5];
    test_fill(x, N * img, 17);
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, N, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    const float *out = NULL;
    ck_assert_int_eq(cnn_session_forward(s, m, x, N, &out, &err), 0);
    double spread = 0;
    for (int n = 0; n < N; n++) {
        ck_assert_int_eq(ref_net_forward(m, x + n * img, ref), 0);
        for (int k = 0; k < K; k++) {
            want[n * K + k] = ref[k];
            spread = fmax(spread, fabs(ref[k] - want[k])); /* item n against item 0 */
        }
    }
    check_close("kinds net: session vs naive reference", out, want, (size_t)N * K);
    ck_assert_msg(spread > 1e-3,
                  "output does not depend on the input: the test would not see errors");
    cnn_session_destroy(s);
    cnn_model_destroy(m);
}
END_TEST

/* Saved and loaded: the same graph, parameters and weights, and the same output bits. */
START_TEST(test_kinds_net_save_load_round_trip)
{
    struct cnn_model *m = compiled(test_net_kinds(4));
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/kinds.cnn", dir);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    struct cnn_model *r = NULL;
    ck_assert_msg(cnn_model_load(path, &r, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_layer_count(r), cnn_model_layer_count(m));
    ck_assert_uint_eq(cnn_model_param_count(r), cnn_model_param_count(m));
    for (int i = 0; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info a, b;
        cnn_model_layer_info(m, i, &a);
        cnn_model_layer_info(r, i, &b);
        ck_assert_int_eq(a.kind, b.kind);
        ck_assert_str_eq(a.name, b.name);
        ck_assert(a.c == b.c && a.h == b.h && a.w == b.w && a.params == b.params);
    }
    enum { N = 2 };
    float x[N * 3 * 9 * 7];
    test_fill(x, sizeof x / sizeof *x, 5);
    struct cnn_session *s1 = cnn_session_create(m, N, &err), *s2 = cnn_session_create(r, N, &err);
    ck_assert(s1 && s2);
    const float *o1 = NULL, *o2 = NULL;
    ck_assert_int_eq(cnn_session_forward(s1, m, x, N, &o1, &err), 0);
    ck_assert_int_eq(cnn_session_forward(s2, r, x, N, &o2, &err), 0);
    ck_assert_int_eq(memcmp(o1, o2, N * 5 * sizeof(float)), 0);
    printf("%-44s identical (%d values)\n", "kinds net: output after save/load", N * 5);
    cnn_session_destroy(s1);
    cnn_session_destroy(s2);
    cnn_model_destroy(r);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

/* The trainer through every new kind: input and learned-weight gradients (conv, BN,
 * PReLU per channel and shared, dense) against finite differences of the loss, for
 * cross-entropy (read through log-softmax) and squared error. */
START_TEST(test_kinds_net_gradients_match_finite_differences)
{
    enum { N = 3 };
    float x[N * 3 * 9 * 7], tgt[N * 5];
    int y[N] = {4, 0, 2};
    test_fill(x, sizeof x / sizeof *x, 23);
    test_fill(tgt, sizeof tgt / sizeof *tgt, 29);
    for (int k = 0; k < N * 5; k++)     /* near the log-probabilities: a small loss, whose float */
        tgt[k] = -1.6f + 0.3f * tgt[k]; /* rounding stays below the differences measured */
    struct cnn_model *m = compiled(test_net_kinds(6));
    gradcheck(m, x, y, NULL, N, CNN_LOSS_XENT);
    gradcheck(m, x, NULL, tgt, N, CNN_LOSS_MSE);
    cnn_model_destroy(m);
}
END_TEST

/* Each kind's split over a worker team (channels, planes, part 0) gives one thread's
 * gradients, and a few SGD steps move the PReLU slopes but not the constants. */
START_TEST(test_kinds_net_threads_match_one_thread)
{
    enum { N = 4 };
    float x[N * 3 * 9 * 7];
    int y[N] = {1, 3, 0, 4};
    test_fill(x, sizeof x / sizeof *x, 31);
    struct cnn_model *m = compiled(test_net_kinds(8));
    struct cnn_trainer *t[2];
    for (int k = 0; k < 2; k++) {
        struct cnn_train_config cfg;
        cnn_train_config_default(&cfg);
        cfg.max_batch = N;
        cfg.input_grad = 1;
        cfg.threads = k == 0 ? 1 : 3;
        t[k] = trainer(m, &cfg);
        struct cnn_train_stats st;
        struct cnn_err err = {0};
        ck_assert_msg(cnn_trainer_compute_gradients(t[k], x, y, NULL, N, &st, &err) == 0, "%s",
                      err.msg);
    }
    for (int i = 1; i < cnn_model_layer_count(m); i++)
        for (int s = 0; s < 4; s++) {
            size_t n1 = 0, n2 = 0;
            const float *g1 = cnn_trainer_grad(t[0], i, s, &n1),
                        *g2 = cnn_trainer_grad(t[1], i, s, &n2);
            if (!g1)
                continue;
            ck_assert_uint_eq(n1, n2);
            check_same("3 threads vs 1: weight gradient", g2, g1, n1, 1e-5f);
        }
    check_same("3 threads vs 1: input gradient", cnn_trainer_input_grad(t[1]),
               cnn_trainer_input_grad(t[0]), N * 3 * 9 * 7, 1e-5f);
    /* SGD: PReLU slopes are learned, scale-shift constants are not */
    const int pr = cnn_model_find_layer(m, "prelu1"), ss = cnn_model_find_layer(m, "ss1");
    size_t np, ns;
    float *slope0 = copy_slot(t[0], pr, 0, &np), *scale0 = copy_slot(t[0], ss, 0, &ns);
    struct cnn_train_stats st;
    step(t[0], x, y, N, &st);
    const float *slope1 = cnn_trainer_weights(t[0], pr, 0, NULL);
    const float *scale1 = cnn_trainer_weights(t[0], ss, 0, NULL);
    ck_assert_int_ne(memcmp(slope0, slope1, np * sizeof(float)), 0);
    ck_assert_int_eq(memcmp(scale0, scale1, ns * sizeof(float)), 0);
    free(slope0), free(scale0);
    cnn_trainer_destroy(t[0]);
    cnn_trainer_destroy(t[1]);
    cnn_model_destroy(m);
}
END_TEST

/* Hard sigmoid and hard swish fused into each conv path (im2col with stride and padding,
 * pointwise, depthwise, Winograd) and into dense, against the naive interpreter. */
START_TEST(test_cnn_info_names_the_new_kinds)
{
    const char *tool = getenv("CNN_TOOL");
    ck_assert_msg(tool && *tool, "CNN_TOOL is not set (make unit sets it to the built cnn)");
    struct cnn_model *m = compiled(test_net_kinds(10));
    char dir[64], path[128], cmd[512], buf[8192];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/kinds.cnn", dir);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    snprintf(cmd, sizeof cmd, "'%s' info '%s' 2>&1", tool, path);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    static const char *const want[] = {"global_maxpool", "prelu", "scale_shift", "pad",
                                       "log_softmax"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(buf, want[i]) != NULL, "cnn info does not name %s:\n%s", want[i], buf);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

/* Names in messages and `cnn info`; the table's slots; learnable parameter counts. */
START_TEST(test_kinds_names_and_rows)
{
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_GLOBAL_MAXPOOL), "global_maxpool");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_PRELU), "prelu");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_SCALE_SHIFT), "scale_shift");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_PAD), "pad");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_LOG_SOFTMAX), "log_softmax");
    ck_assert_str_eq(cnn_layer_kind_name(CNN_LAYER_TRANSPOSE), "transpose");
    ck_assert_str_eq(cnn_act_name(CNN_ACT_HARD_SIGMOID), "hard_sigmoid");
    ck_assert_str_eq(cnn_act_name(CNN_ACT_HARD_SWISH), "hard_swish");
    ck_assert_str_eq(cnn_act_name(CNN_ACT_COUNT), "unknown");
    /* the kind numbers of model files written before these kinds existed stay */
    ck_assert_int_eq(CNN_LAYER_SOFTMAX, 13);
    ck_assert_int_eq(CNN_LAYER_GLOBAL_MAXPOOL, 14);
    ck_assert_int_eq(CNN_LAYER_LOG_SOFTMAX, 18);
    ck_assert_int_eq(CNN_LAYER_RESHAPE, 19);
    ck_assert_int_eq(CNN_LAYER_TRANSPOSE, 20);
    ck_assert_int_eq(CNN_ACT_TANH, 5);
    ck_assert_int_eq(CNN_ACT_HARD_SWISH, 7);
    ck_assert_int_eq(cnn_layer_kind_ops(CNN_LAYER_PRELU)->learned_slots, 1);
    ck_assert_int_eq(cnn_layer_kind_ops(CNN_LAYER_SCALE_SHIFT)->learned_slots, 0);
    struct cnn_model *m = test_net_kinds(9);
    /* learnable: conv1 6*3*9+6, bn 2*6, conv2 8*6*9+8, prelu1 8, prelu2 1, fc1 16*12+12,
     * fc2 12*5+5; scale-shift constants are not counted */
    ck_assert_uint_eq(cnn_model_param_count(m), 168 + 12 + 440 + 8 + 1 + 204 + 65);
    cnn_model_destroy(m);
}
END_TEST

static int add_rc(struct cnn_model *m, struct cnn_layer_desc d, struct cnn_err *err)
{
    return cnn_model_add(m, &d, err);
}

/* Shape checks: each bad parameter is refused with CNN_EINVAL and a message naming the
 * layer; nothing is added. */
START_TEST(test_kinds_refuse_bad_parameters)
{
    struct cnn_model *m = new_model(3, 4, 5);
    struct cnn_err err = {0};
    static const int two[2] = {0, 0};
    struct cnn_layer_desc rs_bad = simple(CNN_LAYER_RESHAPE, "r");
    rs_bad.p.reshape = (struct cnn_reshape){.h = 4, .w = 4};
    struct cnn_layer_desc lsm2 = simple(CNN_LAYER_LOG_SOFTMAX, "l");
    lsm2.n_inputs = 2;
    lsm2.inputs = two;
    const struct cnn_layer_desc bad[] = {
        prelu("p", 2),
        prelu("p", 0),
        prelu("p", -3),
        scale_shift("s", 4, CNN_ACT_NONE),
        scale_shift("s", 1, CNN_ACT_COUNT),
        pad("z", -4, 0, 0, 0, 0.0f),
        pad("z", 0, -2, 0, -3, 0.0f),
        pad("z", 0, 0, 1 << 30, 0, 0.0f),
        pad("z", 2147483647, 0, 2147483647, 0, 0.0f),
        pad("z", 0, 0, 0, 0, NAN),
        act2("a", CNN_ACT_HARD_SIGMOID, INFINITY, 0.5f),
        lsm2, /* one input (on a map it is over the channels at each position) */
        rs_bad, /* 4x4 of a 4x5 plane */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(add_rc(m, bad[i], &err) == CNN_EINVAL, "case %zu accepted", i);
        ck_assert_msg(strstr(err.msg, bad[i].name) != NULL, "case %zu: %s", i, err.msg);
        ck_assert_int_eq(cnn_model_layer_count(m), 1);
    }
    /* the edges that are fine: crop to one row, one shared slope, pads of 0 */
    ck_assert_int_ge(add_rc(m, pad("crop", -3, -4, 0, 0, 0.0f), &err), 0);
    ck_assert_int_ge(add_rc(m, prelu("p1", 1), &err), 0);
    ck_assert_int_ge(add_rc(m, pad("same", 0, 0, 0, 0, 0.0f), &err), 0);
    struct cnn_layer_info li;
    cnn_model_layer_info(m, 3, &li);
    ck_assert(li.c == 3 && li.h == 1 && li.w == 1);
    cnn_model_destroy(m);
}
END_TEST

/* ---- hostile files ------------------------------------------------------------------ */

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (unsigned char)(v >> (8 * k));
}

/* Offset of the layer record named `name` in a saved model (docs/model-format.md 3). */
static size_t record_of(const unsigned char *file, size_t size, const char *name)
{
    size_t off = (size_t)get_le32(file + 56); /* layers_offset, low word (files are small) */
    const uint32_t layers = get_le32(file + 24);
    for (uint32_t i = 0; i < layers && off + 144 <= size; i++) {
        if (strcmp((const char *)file + off + 8, name) == 0)
            return off;
        off += get_le32(file + off);
    }
    ck_abort_msg("no layer %s in the file", name);
    return 0;
}

/* A saved net with one word of a new kind's record changed is refused with a message
 * naming the layer (the reader checks words, then cnn_model_add's shape rules); kind
 * numbers past the last one are refused too.  Nothing crashes under ASan. */
START_TEST(test_kinds_hostile_records_are_refused)
{
    struct cnn_model *m = compiled(test_net_kinds(12));
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/kinds.cnn", dir);
    struct cnn_err err = {0};
    ck_assert_msg(cnn_model_save(m, path, &err) == 0, "%s", err.msg);
    size_t size;
    unsigned char *file = read_all(path, &size);
    const struct {
        const char *layer;
        int word; /* parameter word, or -1 for the kind */
        uint32_t value;
        int code;
        const char *needle;
    } cases[] = {
        {"prelu1", 0, 3, CNN_EFORMAT, "prelu1"},               /* channels neither 1 nor C */
        {"prelu2", 0, 8, CNN_EFORMAT, "prelu2"},               /* 8 of 16 channels */
        {"ss1", 0, 0, CNN_EFORMAT, "ss1"},                     /* channels 0 */
        {"ss1", 1, CNN_ACT_COUNT, CNN_EFORMAT, "ss1"},         /* unknown fused act */
        {"ss2", 2, 0x7fc00000u, CNN_EFORMAT, "ss2"},           /* act alpha NaN */
        {"pad1", 0, 0x80000000u, CNN_EFORMAT, "pad1"},         /* pad_t INT_MIN */
        {"pad1", 2, 0x7fffffffu, CNN_EFORMAT, "pad1"},         /* pad_b INT_MAX */
        {"pad1", 4, 0x7f800000u, CNN_EFORMAT, "pad1"},         /* value Inf */
        {"gmp", 0, 1, CNN_EFORMAT, "gmp"},                     /* unused word not 0 */
        {"logprob", 0, CNN_SOFTMAX_SPAN_COUNT, CNN_EFORMAT, "logprob"}, /* span past row */
        {"logprob", 1, 1, CNN_EFORMAT, "logprob"},             /* unused word not 0 */
        {"reshape1", 0, 3, CNN_EFORMAT, "reshape1"},           /* 3x6 of a 4x3 plane */
        {"reshape1", 1, 0, CNN_EFORMAT, "reshape1"},           /* w 0 */
        {"transpose1", 7, 0, CNN_EFORMAT, "transpose1"},       /* perm 0,0,3,5,2,4 */
        {"transpose1", 2, 3, CNN_EFORMAT, "transpose1"},       /* a view of 144 of 96 */
        {"transpose1", 0, 0, CNN_EFORMAT, "transpose1"},       /* a view dim 0 */
        {"transpose1", 12, 4, CNN_EFORMAT, "transpose1"},      /* an output of 48 */
        {"transpose1", 15, 1, CNN_EFORMAT, "transpose1"},      /* unused word not 0 */
        {"hsig1", 0, CNN_ACT_COUNT, CNN_EFORMAT, "hsig1"},     /* act past hard swish */
        {"gmp", -1, CNN_LAYER_KIND_COUNT, CNN_EFORMAT, "gmp"}, /* kind past transpose */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char *bad = malloc(size);
        memcpy(bad, file, size);
        const size_t rec = record_of(bad, size, cases[i].layer);
        put_le32(bad + rec + (cases[i].word < 0 ? 4 : 80 + 4 * (size_t)cases[i].word),
                 cases[i].value);
        model_file_reseal(bad, size);
        struct cnn_model *r = NULL;
        const int rc = cnn_model_load_mem(bad, size, &r, &err);
        ck_assert_msg(rc != 0 && r == NULL, "case %zu loaded", i);
        ck_assert_msg(rc == cases[i].code, "case %zu: code %d (%s)", i, rc, err.msg);
        ck_assert_msg(strstr(err.msg, cases[i].needle) != NULL, "case %zu: %s", i, err.msg);
        free(bad);
    }
    struct cnn_model *r = NULL; /* the untouched bytes still load */
    ck_assert_msg(cnn_model_load_mem(file, size, &r, &err) == 0, "%s", err.msg);
    cnn_model_destroy(r);
    free(file);
    cnn_model_destroy(m);
    rm_tree(dir);
}
END_TEST

Suite *kinds_net_suite(void)
{
    Suite *s = suite_create("kinds_net");
    TCase *tc = tcase_create("net");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_kinds_net_session_matches_naive_reference);
    tcase_add_test(tc, test_kinds_net_save_load_round_trip);
    tcase_add_test(tc, test_kinds_net_gradients_match_finite_differences);
    tcase_add_test(tc, test_kinds_net_threads_match_one_thread);
    tcase_add_test(tc, test_cnn_info_names_the_new_kinds);
    tcase_add_test(tc, test_kinds_names_and_rows);
    tcase_add_test(tc, test_kinds_refuse_bad_parameters);
    tcase_add_test(tc, test_kinds_hostile_records_are_refused);
    suite_add_tcase(s, tc);
    return s;
}
