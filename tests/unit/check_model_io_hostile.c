/* Suite model_io_hostile: the model file's layout as docs/model-format.md describes it, and
 * many corrupt or hostile files each rejected with its code and a message naming the problem
 * (byte patches written here independently of the reader), truncation at every offset,
 * random byte flips, missing, empty, FIFO and folder paths. */
#include "model.h"
#include "model_internal.h"
#include "session.h"
#include "test_model_io.h"
#include "test_util.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
/* ---- the file layout, as docs/model-format.md describes it ------------------- */

static unsigned char *g_valid; /* a valid file of build_model(5) */
static size_t g_valid_n;

static void make_valid_file(void)
{
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/valid.cnn", dir);
    struct cnn_err err = {0};
    struct cnn_model *m = build_model(5);
    ck_assert_int_eq(cnn_model_save(m, path, &err), 0);
    g_valid = read_all(path, &g_valid_n);
    cnn_model_destroy(m);
    rm_tree(dir);
}

/* A malloc'd copy of the valid file (g_valid_n bytes), freed by the caller. */
static unsigned char *valid_copy(void)
{
    unsigned char *b = malloc(g_valid_n);
    ck_assert_ptr_nonnull(b);
    memcpy(b, g_valid, g_valid_n);
    return b;
}

static void free_valid_file(void)
{
    free(g_valid);
    g_valid = NULL;
}

static uint32_t get32(const unsigned char *b, size_t off)
{
    return (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
           (uint32_t)b[off + 3] << 24;
}

static uint64_t get64(const unsigned char *b, size_t off)
{
    return get32(b, off) | (uint64_t)get32(b, off + 4) << 32;
}

static void put32(unsigned char *b, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[off + (size_t)i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *b, size_t off, uint64_t v)
{
    put32(b, off, (uint32_t)v);
    put32(b, off + 4, (uint32_t)(v >> 32));
}

static void putf(unsigned char *b, size_t off, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(b, off, u);
}

enum { SEC_PREPROC, SEC_LAYERS, SEC_LABELS, SEC_META, SEC_WEIGHTS, SEC_N };
static size_t sec_off(const unsigned char *b, int s)
{
    return (size_t)get64(b, 40 + 16 * (size_t)s);
}
static size_t sec_len(const unsigned char *b, int s)
{
    return (size_t)get64(b, 48 + 16 * (size_t)s);
}

/* Offset of layer record idx: records follow each other, each starting with its size. */
static size_t rec(const unsigned char *b, int idx)
{
    size_t pos = sec_off(b, SEC_LAYERS);
    for (int i = 0; i < idx; i++)
        pos += get32(b, pos);
    return pos;
}
static size_t rec_param(const unsigned char *b, int idx, int word)
{
    return rec(b, idx) + 80 + 4 * (size_t)word;
}
static size_t rec_input(const unsigned char *b, int idx, int k)
{
    return rec(b, idx) + 144 + 4 * (size_t)k;
}
static size_t rec_slot(const unsigned char *b, int idx, int s)
{
    return rec(b, idx) + 144 + 4 * (size_t)get32(b, rec(b, idx) + 56) + 32 * (size_t)s;
}
/* File offset of float j of weight slot s of layer idx. */
static size_t weight_at(const unsigned char *b, int idx, int s, size_t j)
{
    return (size_t)get64(b, rec_slot(b, idx, s) + 24) + 4 * j;
}
static void set_name(unsigned char *b, int idx, const char *name)
{
    memset(b + rec(b, idx) + 8, 0, 48);
    memcpy(b + rec(b, idx) + 8, name, strlen(name));
}

START_TEST(test_layout_matches_documentation)
{
    const unsigned char *b = g_valid;
    ck_assert_int_eq(memcmp(b, "CNNMODEL", 8), 0);
    ck_assert_uint_eq(get32(b, 8), 2);
    ck_assert_uint_eq(get32(b, 12), 128);
    ck_assert_uint_eq(get32(b, 120), model_file_crc(b, g_valid_n));
    ck_assert_uint_eq(get32(b, 124), 0);
    ck_assert_uint_eq(get64(b, 16), g_valid_n);
    ck_assert_uint_eq(get32(b, 24), L_COUNT);
    ck_assert_uint_eq(get32(b, 28), 2 + 4 + 1 + 2 + 2 + 2); /* conv1 bn1 conv2 conv3 fc1 fc2 */
    ck_assert_uint_eq(get32(b, 32), 5);
    ck_assert_uint_eq(sec_off(b, SEC_PREPROC), 128);
    ck_assert_uint_eq(sec_len(b, SEC_PREPROC), 48);
    ck_assert_uint_eq(get32(b, 128), 3);       /* c */
    ck_assert_uint_eq(get32(b, 128 + 16), 10); /* resize_short */
    ck_assert_uint_eq(get32(b, 128 + 20), 1);  /* invert */
    ck_assert_uint_eq(sec_off(b, SEC_WEIGHTS) % 64, 0);
    ck_assert_uint_eq(sec_off(b, SEC_WEIGHTS) + sec_len(b, SEC_WEIGHTS), g_valid_n);
    ck_assert_uint_eq(sec_len(b, SEC_LABELS), 5 * 64);
    ck_assert_str_eq((const char *)b + sec_off(b, SEC_LABELS) + 64 * 2, "bird");
    ck_assert_uint_eq(get32(b, sec_off(b, SEC_META)), strlen(test_meta));
    ck_assert_uint_eq(sec_len(b, SEC_META), 4 + strlen(test_meta) + 1);
    /* conv2: kind 1, name, 1 input (relu1), 1 slot (no bias), output (4,8,8), params */
    size_t r = rec(b, L_CONV2);
    ck_assert_uint_eq(get32(b, r), 144 + 4 + 32);
    ck_assert_uint_eq(get32(b, r + 4), CNN_LAYER_CONV2D);
    ck_assert_str_eq((const char *)b + r + 8, "conv2");
    ck_assert_uint_eq(get32(b, r + 56), 1);
    ck_assert_uint_eq(get32(b, r + 60), 1);
    ck_assert_uint_eq(get32(b, r + 64), 4);
    ck_assert_uint_eq(get32(b, rec_input(b, L_CONV2, 0)), L_RELU1);
    ck_assert_uint_eq(get32(b, rec_param(b, L_CONV2, 0)), 4);  /* oc */
    ck_assert_uint_eq(get32(b, rec_param(b, L_CONV2, 11)), 2); /* groups */
    size_t s = rec_slot(b, L_CONV2, 0);
    ck_assert_uint_eq(get32(b, s), 4);
    ck_assert_uint_eq(get32(b, s + 4), 4);
    ck_assert_uint_eq(get32(b, s + 8), 2); /* C / groups */
    ck_assert_uint_eq(get32(b, s + 12), 3);
    ck_assert_uint_eq(get32(b, s + 16), 3);
    /* every tensor 64-byte aligned and inside the weight section, in order */
    size_t prev_end = sec_off(b, SEC_WEIGHTS);
    for (int i = 0; i < L_COUNT; i++) {
        for (int k = 0; k < (int)get32(b, rec(b, i) + 60); k++) {
            size_t o = weight_at(b, i, k, 0);
            ck_assert_uint_eq(o % 64, 0);
            ck_assert_uint_ge(o, prev_end);
            prev_end = o;
        }
    }
    ck_assert_uint_lt(prev_end, g_valid_n);
}
END_TEST

/* ---- corrupt and hostile files ---------------------------------------------------- */

struct bad_case {
    const char *what;
    void (*patch)(unsigned char *b, size_t *n);
    int code;
    const char *words[3];
};

/* One patch per case; kept one per line (clang-format off) so the list reads as a table. */
#define PATCH(name) static void name(unsigned char *b, size_t *n)
#define W(idx, s, j) weight_at(b, idx, s, j)
#define META sec_off(b, SEC_META)
#define LABEL(i) (b + sec_off(b, SEC_LABELS) + 64 * (i))
// clang-format off
PATCH(p_magic) { (void)n, b[3] = 'X'; }
PATCH(p_version) { (void)n, put32(b, 8, 3); }
PATCH(p_header_size) { (void)n, put32(b, 12, 64); }
PATCH(p_appended) { memset(b + *n, 0, 64), *n += 64; }
PATCH(p_layer_count) { (void)n, put32(b, 24, 1000000); }
PATCH(p_layer_count_small) { (void)n, put32(b, 24, 4); }
PATCH(p_label_count) { (void)n, put32(b, 32, 50000000); }
PATCH(p_tensor_count) { (void)n, put32(b, 28, get32(b, 28) + 1); }
PATCH(p_flags) { (void)n, put32(b, 36, 2); } /* bit 0 is BGR; bit 1 is unknown */
PATCH(p_dims_absurd) /* conv1 w (4,3,3,3) -> (65536,65536,1,1) */
{
    (void)n;
    size_t s = rec_slot(b, L_CONV1, 0);
    put32(b, s + 4, 65536), put32(b, s + 8, 65536), put32(b, s + 12, 1), put32(b, s + 16, 1);
}
PATCH(p_dims_overflow)
{
    (void)n;
    for (int d = 0; d < 4; d++)
        put32(b, rec_slot(b, L_CONV1, 0) + 4 + 4 * (size_t)d, 0x7fffffff);
}
PATCH(p_dims_shape) /* conv1 w (4,3,3,3) -> (4,3,9,1): same count, wrong shape */
{
    (void)n;
    size_t s = rec_slot(b, L_CONV1, 0);
    put32(b, s + 12, 9), put32(b, s + 16, 1);
}
PATCH(p_dims_count) { (void)n, put32(b, rec_slot(b, L_FC2, 0) + 8, 11); } /* (5,10) -> (5,11) */
PATCH(p_ndims) { (void)n, put32(b, rec_slot(b, L_FC2, 0), 7); }
PATCH(p_sec_out) { (void)n, put64(b, 40 + 16 * SEC_WEIGHTS, 1ull << 40); }
PATCH(p_sec_len_out) { (void)n, put64(b, 48 + 16 * SEC_LABELS, UINT64_MAX - 8); } /* wraps */
PATCH(p_sec_overlap) { (void)n, put64(b, 40 + 16 * SEC_LABELS, sec_off(b, SEC_LAYERS) + 64); }
PATCH(p_weights_misaligned)
{
    (void)n;
    put64(b, 40 + 16 * SEC_WEIGHTS, sec_off(b, SEC_WEIGHTS) + 4);
    put64(b, 48 + 16 * SEC_WEIGHTS, sec_len(b, SEC_WEIGHTS) - 4);
}
PATCH(p_slot_misaligned) { (void)n, put64(b, rec_slot(b, L_CONV1, 1) + 24, W(L_CONV1, 1, 1)); }
PATCH(p_slot_outside) { (void)n, put64(b, rec_slot(b, L_FC1, 0) + 24, 1ull << 30); }
PATCH(p_slot_order) { (void)n, put64(b, rec_slot(b, L_CONV1, 1) + 24, W(L_CONV1, 0, 0)); }
PATCH(p_input_forward) { (void)n, put32(b, rec_input(b, L_ADD1, 1), 7); }
PATCH(p_input_self) { (void)n, put32(b, rec_input(b, L_ADD1, 0), L_ADD1); }
PATCH(p_kind) { (void)n, put32(b, rec(b, L_POOL1) + 4, 99); }
PATCH(p_first_not_input) { (void)n, put32(b, rec(b, 0) + 4, CNN_LAYER_CONV2D); }
PATCH(p_second_input) { (void)n, put32(b, rec(b, L_DROP) + 4, CNN_LAYER_INPUT); }
PATCH(p_record_size) { (void)n, put32(b, rec(b, L_BN1), get32(b, rec(b, L_BN1)) + 4); }
PATCH(p_n_inputs) { (void)n, put32(b, rec(b, L_CAT1) + 56, 500); }
PATCH(p_n_slots) { (void)n, put32(b, rec(b, L_POOL2) + 60, 9); }
PATCH(p_out_shape) { (void)n, put32(b, rec(b, L_CONV2) + 64, 5); }
PATCH(p_groups) { (void)n, put32(b, rec_param(b, L_CONV2, 11), 3); }
PATCH(p_kernel) { (void)n, put32(b, rec_param(b, L_POOL1, 0), 0); }
PATCH(p_dense_in) { (void)n, put32(b, rec_param(b, L_FC1, 0), 95); }
PATCH(p_flag) { (void)n, put32(b, rec_param(b, L_CONV1, 12), 2); }
PATCH(p_act_kind) { (void)n, put32(b, rec_param(b, L_CONV3, 13), 42); }
PATCH(p_param_nan) { (void)n, putf(b, rec_param(b, L_FC1, 4), NAN); }
PATCH(p_unused_word) { (void)n, put32(b, rec_param(b, L_LRN1, 9), 1); }
PATCH(p_bn_eps) { (void)n, putf(b, rec_param(b, L_BN1, 0), -1.0f); }
PATCH(p_nan_weight) { (void)n, putf(b, W(L_CONV2, 0, 5), NAN); }
PATCH(p_inf_weight) { (void)n, putf(b, W(L_FC1, 1, 3), INFINITY); }
PATCH(p_bn_var) { (void)n, putf(b, W(L_BN1, 3, 2), -1.0f); }
PATCH(p_padding) { (void)n, b[W(L_CONV1, 1, 4)] = 1; } /* conv1 b has 4 floats */
PATCH(p_label_mismatch) { (void)n, put32(b, 32, 4), put64(b, 48 + 16 * SEC_LABELS, 4 * 64); }
PATCH(p_label_unterminated) { (void)n, memset(LABEL(1), 'x', 64); }
PATCH(p_label_empty) { (void)n, memset(LABEL(2), 0, 64); }
PATCH(p_label_utf8) { (void)n, LABEL(4)[0] = 0xff; }
PATCH(p_name_unterminated) { (void)n, memset(b + rec(b, L_CONV2) + 8, 'a', 48); }
PATCH(p_name_empty) { (void)n, memset(b + rec(b, L_RELU1) + 8, 0, 48); }
PATCH(p_name_dup) { (void)n, set_name(b, L_CONV3, "conv1"); }
PATCH(p_name_dup_input) { (void)n, set_name(b, L_FLAT, "input"); }
PATCH(p_name_junk) { (void)n, b[rec(b, L_FC2) + 8 + 40] = 'z'; }
PATCH(p_meta_len) { (void)n, put32(b, META, get32(b, META) + 1); }
PATCH(p_meta_huge) { (void)n, put32(b, META, 0xfffffff0u); }
PATCH(p_meta_nul) { (void)n, b[META + 6] = 0; }
PATCH(p_meta_unterminated) { (void)n, b[META + sec_len(b, SEC_META) - 1] = 'x'; }
PATCH(p_preproc) { (void)n, put32(b, 128, CNN_PREPROC_MAX_C + 1); }
PATCH(p_preproc_resize) { (void)n, put32(b, 128 + 12, 7); }
PATCH(p_preproc_std) { (void)n, putf(b, 128 + 36 + 4, 0.0f); }
// clang-format on

static const struct bad_case bad_cases[] = {
    {"wrong magic", p_magic, CNN_EFORMAT, {"magic"}},
    {"wrong version", p_version, CNN_EFORMAT, {"version", "3"}},
    {"header size", p_header_size, CNN_EFORMAT, {"header size", "64"}},
    {"bytes appended", p_appended, CNN_EFORMAT, {"file size"}},
    {"absurd layer count", p_layer_count, CNN_ELIMIT, {"layer count", "1000000"}},
    {"layer count below records", p_layer_count_small, CNN_EFORMAT, {"stray bytes", "layer"}},
    {"absurd label count", p_label_count, CNN_ELIMIT, {"label count"}},
    {"tensor count", p_tensor_count, CNN_EFORMAT, {"weight tensors"}},
    {"header flags", p_flags, CNN_EFORMAT, {"flags"}},
    {"absurd tensor dims", p_dims_absurd, CNN_ELIMIT, {"conv1", "2^31"}},
    {"dims product overflow", p_dims_overflow, CNN_EFORMAT, {"conv1", "overflow"}},
    {"weight dims vs graph shape", p_dims_shape, CNN_EFORMAT, {"conv1", "(4,3,9,1)", "(4,3,3,3)"}},
    {"weight count vs graph", p_dims_count, CNN_EFORMAT, {"fc2", "do not match"}},
    {"slot ndims", p_ndims, CNN_EFORMAT, {"fc2", "7 dims"}},
    {"section out of file", p_sec_out, CNN_EFORMAT, {"weights", "out of the file"}},
    {"section size wraps", p_sec_len_out, CNN_EFORMAT, {"labels", "out of the file"}},
    {"sections overlap", p_sec_overlap, CNN_EFORMAT, {"labels", "overlaps"}},
    {"weight section misaligned", p_weights_misaligned, CNN_EFORMAT, {"weight data", "aligned"}},
    {"tensor misaligned", p_slot_misaligned, CNN_EFORMAT, {"conv1", "b", "aligned"}},
    {"tensor out of weight section", p_slot_outside, CNN_EFORMAT, {"fc1", "weight section"}},
    {"tensors overlap", p_slot_order, CNN_EFORMAT, {"conv1", "expected"}},
    {"input forward reference", p_input_forward, CNN_EFORMAT, {"add1", "refers to layer 7"}},
    {"input self reference", p_input_self, CNN_EFORMAT, {"add1", "refers to layer 5"}},
    {"unknown layer kind", p_kind, CNN_EFORMAT, {"pool1", "unknown layer kind 99"}},
    {"layer 0 not input", p_first_not_input, CNN_EFORMAT, {"layer 0", "input"}},
    {"second input layer", p_second_input, CNN_EFORMAT, {"drop", "second input"}},
    {"record size", p_record_size, CNN_EFORMAT, {"bn1", "record size"}},
    {"absurd input count", p_n_inputs, CNN_ELIMIT, {"cat1", "500 inputs"}},
    {"slot count", p_n_slots, CNN_EFORMAT, {"pool2", "slots"}},
    {"stored output shape", p_out_shape, CNN_EFORMAT, {"conv2", "output shape"}},
    {"groups vs channels", p_groups, CNN_EFORMAT, {"conv2", "groups"}},
    {"zero pool kernel", p_kernel, CNN_EFORMAT, {"pool1", "kernel"}},
    {"dense in vs input", p_dense_in, CNN_EFORMAT, {"fc1", "dense in 95"}},
    {"flag not 0/1", p_flag, CNN_EFORMAT, {"conv1", "has_bias"}},
    {"unknown activation", p_act_kind, CNN_EFORMAT, {"conv3", "activation"}},
    {"NaN parameter", p_param_nan, CNN_EFORMAT, {"fc1", "act_alpha", "not finite"}},
    {"unused param word", p_unused_word, CNN_EFORMAT, {"lrn1", "word 9"}},
    {"bn eps negative", p_bn_eps, CNN_EFORMAT, {"bn1", "eps"}},
    {"NaN weight", p_nan_weight, CNN_EFORMAT, {"conv2", "not finite"}},
    {"Inf weight", p_inf_weight, CNN_EFORMAT, {"fc1", "not finite"}},
    {"negative BN variance", p_bn_var, CNN_EFORMAT, {"bn1", "variance"}},
    {"tensor padding not zero", p_padding, CNN_EFORMAT, {"conv1", "padding"}},
    {"label count mismatch", p_label_mismatch, CNN_EFORMAT, {"label count 4", "5 classes"}},
    {"label unterminated", p_label_unterminated, CNN_EFORMAT, {"label 1", "NUL-terminated"}},
    {"label empty", p_label_empty, CNN_EFORMAT, {"label 2", "empty"}},
    {"label not UTF-8", p_label_utf8, CNN_EFORMAT, {"label 4", "UTF-8"}},
    {"name unterminated", p_name_unterminated, CNN_EFORMAT, {"layer 4", "NUL-terminated"}},
    {"name empty", p_name_empty, CNN_EFORMAT, {"layer 3", "empty"}},
    {"duplicate name", p_name_dup, CNN_EFORMAT, {"duplicate", "conv1"}},
    {"duplicate of input name", p_name_dup_input, CNN_EFORMAT, {"duplicate", "input"}},
    {"junk after name", p_name_junk, CNN_EFORMAT, {"layer 14", "after its NUL"}},
    {"meta length", p_meta_len, CNN_EFORMAT, {"meta length"}},
    {"absurd meta length", p_meta_huge, CNN_ELIMIT, {"meta length"}},
    {"meta embedded NUL", p_meta_nul, CNN_EFORMAT, {"meta", "NUL byte"}},
    {"meta unterminated", p_meta_unterminated, CNN_EFORMAT, {"meta", "NUL-terminated"}},
    {"preproc channels", p_preproc, CNN_EFORMAT, {"preproc", "channels"}},
    {"preproc resize mode", p_preproc_resize, CNN_EFORMAT, {"preproc", "resize"}},
    {"preproc std zero", p_preproc_std, CNN_EFORMAT, {"preproc", "std"}},
};
#define N_BAD_CASES ((int)(sizeof bad_cases / sizeof bad_cases[0]))

START_TEST(test_corrupt_file_rejected_with_clear_message)
{
    const struct bad_case *c = &bad_cases[_i];
    size_t n = g_valid_n;
    unsigned char *b = malloc(n + 256);
    ck_assert_ptr_nonnull(b);
    memcpy(b, g_valid, n);
    c->patch(b, &n);
    model_file_reseal(b, n);
    struct cnn_err err = {0};
    struct cnn_model *m = (struct cnn_model *)&err; /* must be reset to NULL */
    int rc = cnn_model_load_mem(b, n, &m, &err);
    ck_assert_msg(rc == c->code, "%s: rc %d, want %d (%s)", c->what, rc, c->code, err.msg);
    ck_assert_int_eq(err.code, c->code);
    ck_assert_ptr_null(m);
    for (int k = 0; k < 3 && c->words[k]; k++)
        ck_assert_msg(strstr(err.msg, c->words[k]) != NULL, "%s: message '%s' lacks '%s'", c->what,
                      err.msg, c->words[k]);
    free(b);
}
END_TEST

/* The same patches through a real file: cnn_model_load rejects them too (mmap path). */
START_TEST(test_corrupt_files_rejected_by_path_too)
{
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bad.cnn", dir);
    unsigned char *b = malloc(g_valid_n + 256);
    ck_assert_ptr_nonnull(b);
    for (int i = 0; i < N_BAD_CASES; i++) {
        size_t n = g_valid_n;
        memcpy(b, g_valid, n);
        bad_cases[i].patch(b, &n);
        model_file_reseal(b, n);
        write_all(path, b, n);
        struct cnn_err err = {0};
        struct cnn_model *m = NULL;
        int rc = cnn_model_load(path, &m, &err);
        ck_assert_msg(rc == bad_cases[i].code, "%s: rc %d (%s)", bad_cases[i].what, rc, err.msg);
        ck_assert_ptr_null(m);
    }
    free(b);
    rm_tree(dir);
}
END_TEST

START_TEST(test_truncated_at_every_offset_is_rejected)
{
    struct cnn_err err;
    for (size_t cut = 0; cut < g_valid_n; cut++) {
        struct cnn_model *m = NULL;
        memset(&err, 0, sizeof err);
        /* exact-size copy so ASan sees any read past the cut */
        unsigned char *b = malloc(cut ? cut : 1);
        memcpy(b, g_valid, cut);
        int rc = cnn_model_load_mem(b, cut, &m, &err);
        ck_assert_msg(rc == CNN_EFORMAT, "cut %zu: rc %d %s", cut, rc, err.msg);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err.msg, cut < 128 ? "truncated" : "file size"), "cut %zu: %s", cut,
                      err.msg);
        if (cut >= 128) {
            /* header claims the cut size: a section must now run past the end of the file */
            put64(b, 16, cut);
            int want = -1;
            for (int s = 0; s < SEC_N && want < 0; s++)
                if (sec_off(b, s) + sec_len(b, s) > cut)
                    want = s;
            static const char *const names[SEC_N] = {"preproc", "layers", "labels", "meta",
                                                     "weights"};
            memset(&err, 0, sizeof err);
            rc = cnn_model_load_mem(b, cut, &m, &err);
            ck_assert_msg(rc == CNN_EFORMAT, "cut %zu fixed: rc %d %s", cut, rc, err.msg);
            ck_assert_ptr_null(m);
            ck_assert_msg(strstr(err.msg, names[want]) && strstr(err.msg, "out of the file"),
                          "cut %zu: %s", cut, err.msg);
        }
        free(b);
    }
}
END_TEST

START_TEST(test_random_byte_flips_never_crash)
{
    rng_state = 0x5eed;
    size_t head = sec_off(g_valid, SEC_WEIGHTS);
    unsigned char *b = malloc(g_valid_n);
    ck_assert_ptr_nonnull(b);
    int accepted = 0, rejected = 0;
    for (int it = 0; it < 2000; it++) {
        memcpy(b, g_valid, g_valid_n);
        int flips = 1 + (int)(rng_next() % 4);
        for (int k = 0; k < flips; k++) {
            /* mostly in the structured part, sometimes in the weights */
            size_t pos = (rng_next() % 4) ? rng_next() % head : rng_next() % g_valid_n;
            b[pos] ^= (unsigned char)(1 + rng_next() % 255);
        }
        model_file_reseal(b, g_valid_n); /* the structural checks meet the damage */
        struct cnn_err err = {0};
        struct cnn_model *m = NULL;
        int rc = cnn_model_load_mem(b, g_valid_n, &m, &err);
        if (rc == 0) {
            ck_assert_ptr_nonnull(m);
            accepted++;
            cnn_model_destroy(m);
        } else {
            ck_assert_msg(rc == CNN_EFORMAT || rc == CNN_ELIMIT, "rc %d %s", rc, err.msg);
            ck_assert_ptr_null(m);
            ck_assert(err.msg[0] != '\0');
            rejected++;
        }
    }
    ck_assert_int_eq(accepted + rejected, 2000);
    ck_assert_int_gt(rejected, 1000); /* the checks do catch most structural damage */
    free(b);
}
END_TEST

/* One flipped bit anywhere after the header (layers, labels, meta, weights, padding) is
 * refused by the checksum, by load_mem and by path. */
START_TEST(test_any_flipped_bit_is_refused_by_the_checksum)
{
    unsigned char *b = valid_copy();
    for (size_t pos = 128; pos < g_valid_n; pos++) {
        b[pos] ^= (unsigned char)(1u << (pos % 8));
        struct cnn_err err = {0};
        struct cnn_model *m = NULL;
        int rc = cnn_model_load_mem(b, g_valid_n, &m, &err);
        ck_assert_msg(rc == CNN_EFORMAT && strstr(err.msg, "checksum mismatch"),
                      "byte %zu: rc %d %s", pos, rc, err.msg);
        ck_assert_ptr_null(m);
        b[pos] ^= (unsigned char)(1u << (pos % 8));
    }
    /* by path (mmap): one bit in the middle of the weight data */
    size_t mid = sec_off(b, SEC_WEIGHTS) + sec_len(b, SEC_WEIGHTS) / 2;
    b[mid] ^= 0x10;
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/flipped.cnn", dir);
    write_all(path, b, g_valid_n);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    ck_assert_int_eq(cnn_model_load(path, &m, &err), CNN_EFORMAT);
    ck_assert_ptr_null(m);
    printf("model_io_hostile: one flipped bit at byte %zu of %zu: %s\n", mid, g_valid_n, err.msg);
    ck_assert_ptr_nonnull(strstr(err.msg, "checksum mismatch"));
    rm_tree(dir);
    free(b);
}
END_TEST

/* A version-1 file (no checksum: version 1, bytes 120..127 zero) still loads, with the same
 * weights; it cannot detect a flipped low mantissa bit, which is why version 2 exists. */
START_TEST(test_version1_file_without_checksum_still_loads)
{
    unsigned char *b = valid_copy();
    put32(b, 8, 1);
    put64(b, 120, 0);
    struct cnn_err err = {0};
    struct cnn_model *m1 = NULL, *m2 = NULL;
    ck_assert_msg(cnn_model_load_mem(b, g_valid_n, &m1, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cnn_model_load_mem(g_valid, g_valid_n, &m2, &err), 0);
    size_t w = weight_at(b, L_FC2, 0, 0);
    float a, c;
    memcpy(&a, b + w, 4);
    ck_assert_float_eq(m1->params[m1->layers[L_FC2].weight_offset[0]], a);
    ck_assert_float_eq(m2->params[m2->layers[L_FC2].weight_offset[0]], a);
    cnn_model_destroy(m1);
    cnn_model_destroy(m2);
    b[w] ^= 1; /* lowest mantissa bit of fc2 w[0] */
    memcpy(&c, b + w, 4);
    ck_assert_int_eq(cnn_model_load_mem(b, g_valid_n, &m1, &err), 0);
    ck_assert_float_eq(m1->params[m1->layers[L_FC2].weight_offset[0]], c);
    cnn_model_destroy(m1);
    /* a version-1 header with a non-zero checksum word is refused (reserved field) */
    b[w] ^= 1;
    put32(b, 120, model_file_crc(b, g_valid_n));
    ck_assert_int_eq(cnn_model_load_mem(b, g_valid_n, &m1, &err), CNN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "reserved"));
    free(b);
}
END_TEST

START_TEST(test_load_missing_empty_fifo_and_folder_rejected)
{
    char dir[64], path[96];
    make_tmpdir(dir, sizeof dir);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    snprintf(path, sizeof path, "%s/none.cnn", dir);
    ck_assert_int_eq(cnn_model_load(path, &m, &err), CNN_ENOENT);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(cnn_model_load(dir, &m, &err), CNN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "regular"));
    snprintf(path, sizeof path, "%s/empty.cnn", dir);
    FILE *f = fopen(path, "wb");
    fclose(f);
    ck_assert_int_eq(cnn_model_load(path, &m, &err), CNN_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
    snprintf(path, sizeof path, "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(cnn_model_load(path, &m, &err), CNN_EFORMAT); /* and does not block */
    ck_assert_ptr_nonnull(strstr(err.msg, "regular"));
    ck_assert_int_eq(cnn_model_load_mem(NULL, 0, &m, &err), CNN_EFORMAT);
    ck_assert_ptr_null(m);
    rm_tree(dir);
}
END_TEST

Suite *model_io_hostile_suite(void)
{
    Suite *s = suite_create("model_io_hostile");
    TCase *tc = tcase_create("hostile");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, make_valid_file, free_valid_file);
    tcase_add_test(tc, test_layout_matches_documentation);
    tcase_add_loop_test(tc, test_corrupt_file_rejected_with_clear_message, 0, N_BAD_CASES);
    tcase_add_test(tc, test_corrupt_files_rejected_by_path_too);
    tcase_add_test(tc, test_truncated_at_every_offset_is_rejected);
    tcase_add_test(tc, test_random_byte_flips_never_crash);
    tcase_add_test(tc, test_any_flipped_bit_is_refused_by_the_checksum);
    tcase_add_test(tc, test_version1_file_without_checksum_still_loads);
    tcase_add_test(tc, test_load_missing_empty_fifo_and_folder_rejected);
    suite_add_tcase(s, tc);
    return s;
}
