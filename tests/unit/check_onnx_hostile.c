/* Suite onnx_hostile: hostile ONNX files, each refused with its code and a message naming
 * the problem (truncated, wrong tensor type, huge and overflowing dims, a cycle, a missing
 * initializer, an unknown op, raw_data size mismatch, external data, 10,000 nodes, deeply
 * nested subgraphs, a dangling input, garbage, a non-NCHW input, negative dims), and every
 * truncation of a valid file; run under ASan by `make san`. */
#include "alloc_counter.h"
#include "onnx.h"
#include "test_onnx.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Wraps inner as field `field` (length-delimited) in front of it, writing backwards at *pos. */
static void wrap(uint8_t *buf, size_t *pos, size_t inner_len, int field)
{
    uint8_t tmp[12];
    int n = 0;
    size_t v = inner_len;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    *pos -= (size_t)n;
    memcpy(buf + *pos, tmp, (size_t)n);
    buf[--*pos] = (uint8_t)(field << 3 | 2);
}

/* graph -> node -> attribute -> g -> graph ... 20,000 levels deep, as a ModelProto. */
static uint8_t *deep_nesting(size_t *size)
{
    size_t cap = 1 << 20, pos = cap;
    uint8_t *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (int k = 0; k < 20000; k++) {
        wrap(buf, &pos, cap - pos, 6); /* AttributeProto.g */
        wrap(buf, &pos, cap - pos, 5); /* NodeProto.attribute */
        wrap(buf, &pos, cap - pos, 1); /* GraphProto.node */
    }
    wrap(buf, &pos, cap - pos, 7); /* ModelProto.graph */
    *size = cap - pos;
    memmove(buf, buf + pos, *size);
    return buf;
}

enum { N_HOSTILE = 15 };

static const struct {
    int code;
    const char *msg;
} HOSTILE[N_HOSTILE] = {
    {CNN_EFORMAT, "not a valid ModelProto"},                             /* truncated */
    {CNN_EFORMAT, "unsupported data type 8"},                            /* string weights */
    {CNN_EFORMAT, "out of range"},                                       /* huge dim */
    {CNN_ELIMIT, "more than"},                                           /* product overflows */
    {CNN_EFORMAT, "names nothing defined before it"},                    /* cycle */
    {CNN_EFORMAT, "input 'W' names nothing"},                            /* missing initializer */
    {CNN_EFORMAT, "node 'conv7' (Foo, opset 13): unsupported operator"}, /* unknown op */
    {CNN_EFORMAT, "raw_data has 10 bytes"},                              /* raw size mismatch */
    {CNN_EFORMAT, "external data"},                                      /* outside the folder */
    {CNN_ELIMIT, "layers"},                                              /* 10,000 nodes */
    {CNN_EFORMAT, "nested more than"},                                   /* deep subgraphs */
    {CNN_EFORMAT, "input 'nope' names nothing"},                         /* dangling input */
    {CNN_EFORMAT, "not a valid ModelProto"},                             /* garbage */
    {CNN_EFORMAT, "input rank 5"},                                       /* not N,C,H,W */
    {CNN_EFORMAT, "out of range"},                                       /* negative dim */
};

static uint8_t *hostile_file(int i, size_t *size)
{
    struct tox_graph *g = tox_conv_net();
    Onnx__TensorProto *w = g->inits[0];
    static const int64_t huge[4] = {(int64_t)1 << 40, 3, 3, 3},
                         over[4] = {1 << 30, 1 << 30, 1 << 30, 4}, neg[4] = {-1, 3, 3, 3};
    switch (i) {
    case 1:
        w->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__STRING;
        break;
    case 2:
    case 3:
    case 14:
        w->n_float_data = 0;
        memcpy(w->dims, i == 2 ? huge : i == 3 ? over : neg, sizeof huge);
        break;
    case 4:
        g->n_nodes = 0;
        tox_node(g, "Relu", "a", "b", NULL, NULL, "a_out");
        tox_node(g, "Relu", "b", "a_out", NULL, NULL, "b");
        g->output = "b";
        break;
    case 5:
        g->inits[0] = g->inits[--g->n_inits];
        break;
    case 6: /* the Relu after the conv becomes an unknown op */
        g->nodes[1]->op_type = tox_str("Foo");
        g->nodes[1]->name = tox_str("conv7");
        break;
    case 7:
        w->n_float_data = 0;
        w->has_raw_data = 1;
        w->raw_data.len = 10;
        w->raw_data.data = tox_alloc(10);
        break;
    case 8: {
        w->n_float_data = 0;
        w->has_data_location = 1;
        w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
        Onnx__StringStringEntryProto *e = tox_alloc(sizeof *e);
        onnx__string_string_entry_proto__init(e);
        e->key = tox_str("location");
        e->value = tox_str("../../../etc/passwd");
        w->n_external_data = 1;
        w->external_data = tox_alloc(sizeof *w->external_data);
        w->external_data[0] = e;
        break;
    }
    case 9: {
        g->n_nodes = 0;
        char in[16] = "x", out[16];
        for (int k = 0; k < 10000; k++) {
            snprintf(out, sizeof out, "r%d", k);
            tox_node(g, "Relu", out, in, NULL, NULL, out);
            strcpy(in, out);
        }
        g->output = "r9999";
        break;
    }
    case 10:
        return deep_nesting(size);
    case 11:
        g->nodes[1]->input[0] = tox_str("nope");
        break;
    case 12: {
        uint8_t *buf = malloc(4096);
        ck_assert_ptr_nonnull(buf);
        for (int k = 0; k < 4096; k++)
            buf[k] = (uint8_t)(k * 131 + 7) | 0x07; /* wire type 7: never valid */
        *size = 4096;
        return buf;
    }
    case 13:
        g->in_rank = 5;
        g->in_dims[4] = 8;
        break;
    }
    uint8_t *buf = tox_pack(g, size);
    if (i == 0)
        *size = *size / 2;
    return buf;
}

START_TEST(test_hostile_file_rejected_with_clear_error)
{
    size_t size;
    uint8_t *buf = hostile_file(_i, &size);
    struct cnn_err err = {0};
    struct cnn_model *m = (struct cnn_model *)&err; /* must be reset to NULL */
    int rc = cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err);
    ck_assert_msg(rc == HOSTILE[_i].code, "case %d: rc %d (%s)", _i, rc, err.msg);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, HOSTILE[_i].msg), "case %d: message '%s' lacks '%s'", _i, err.msg,
                  HOSTILE[_i].msg);
    free(buf);
    tox_arena_free();
}
END_TEST

/* Every proper prefix of a valid file is refused (no crash, nothing returned). */
START_TEST(test_truncated_at_every_offset_rejected)
{
    size_t size;
    uint8_t *buf = tox_pack(tox_conv_net(), &size);
    for (size_t cut = 0; cut < size; cut++) {
        struct cnn_err err = {0};
        struct cnn_model *m = NULL;
        uint8_t *part = malloc(cut ? cut : 1); /* exact size: ASan sees any over-read */
        ck_assert_ptr_nonnull(part);
        memcpy(part, buf, cut);
        int rc = cnn_onnx_load_mem(part, cut, NULL, 0, &m, &err);
        ck_assert_msg(rc == CNN_EFORMAT && !m, "cut at %zu of %zu: rc %d (%s)", cut, size, rc,
                      err.msg);
        free(part);
    }
    free(buf);
    tox_arena_free();
}
END_TEST

/* A 331-byte file found by the onnx fuzzer (tests/fuzz/crashes/onnx/oom-88ec48d0...): a
 * Reshape of 6 constant values to a shape of ~790 M elements.  It must be refused from the
 * counts, before a tensor of that shape is allocated (it took 3.2 GB before).  The allocation
 * bound is checked where the counting allocator is linked (not under sanitizers). */
START_TEST(test_huge_folded_shape_refused_before_allocating)
{
    FILE *f = fopen("tests/fuzz/crashes/onnx/oom-88ec48d00b27f937fc283ecab789b8cca1b35b96", "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t buf[4096];
    size_t size = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ck_assert_uint_eq(size, 331);
    if (alloc_counter_largest)
        alloc_counter_largest(1);
    struct cnn_err err = {0};
    struct cnn_model *m = NULL;
    int rc = cnn_onnx_load_mem(buf, size, NULL, 0, &m, &err);
    ck_assert_msg(rc == CNN_EFORMAT && !m, "rc %d (%s)", rc, err.msg);
    ck_assert_msg(strstr(err.msg, "shape does not match 6 values"), "message '%s'", err.msg);
    if (alloc_counter_largest)
        ck_assert_msg(alloc_counter_largest(0) < ((size_t)64 << 20),
                      "largest allocation %zu bytes", alloc_counter_largest(0));
}
END_TEST

Suite *onnx_hostile_suite(void)
{
    Suite *s = suite_create("onnx_hostile");
    TCase *tc = tcase_create("onnx_hostile");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_hostile_file_rejected_with_clear_error, 0, N_HOSTILE);
    tcase_add_test(tc, test_truncated_at_every_offset_rejected);
    tcase_add_test(tc, test_huge_folded_shape_refused_before_allocating);
    suite_add_tcase(s, tc);
    return s;
}
