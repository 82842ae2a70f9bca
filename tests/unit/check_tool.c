/* Suite `tool`: runs the built `cnn` tool (path in $CNN_TOOL) as a child process in a temp
 * folder and checks its stdout, stderr and exit status against values computed here through
 * the library directly: param counts and FLOPs of cnn_arch_build(), the top-1 of a direct
 * cnn_session_forward() on cnn_image_load_tensor() of the same PNG bytes (written here with
 * libpng), the seed's weights, JSON structure and escaping, bench arithmetic, and errors. */
#include "arch.h"
#include "image.h"
#include "model.h"
#include "session.h"
#include "test_util.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define MAX_ARGS 32

struct run {
    int status; /* exit status; -1 when killed by a signal */
    char *out, *err;
};

static char g_dir[256];

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/check_tool.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_msg(mkdtemp(g_dir) != NULL, "mkdtemp %s failed", g_dir);
}

static void teardown(void)
{
    rm_tree(g_dir);
}

/* Path of `name` inside the temp folder (static rotating buffers: up to 32 at once). */
static const char *tmp_path(const char *name)
{
    static char bufs[32][512];
    static int next;
    char *b = bufs[next++ % 32];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

static char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (size)
        *size = n;
    return buf;
}

/* Runs $CNN_TOOL with args (NULL-terminated, without the program), capturing output. */
static struct run run_tool(const char *a0, ...)
{
    const char *tool = getenv("CNN_TOOL");
    ck_assert_msg(tool && *tool, "CNN_TOOL is not set (make unit sets it to the built cnn)");
    char *argv[MAX_ARGS + 2];
    int n = 0;
    argv[n++] = (char *)tool;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < MAX_ARGS; a = va_arg(ap, const char *))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    char out_path[512], err_path[512];
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", g_dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", g_dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    int rc = posix_spawn(&pid, tool, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ck_assert_msg(rc == 0, "posix_spawn %s failed: %s", tool, strerror(rc));
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    struct run r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(out_path, NULL),
                    slurp(err_path, NULL)};
    unlink(out_path);
    unlink(err_path);
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* Number of '\n'-terminated lines in s. */
static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Digit grouping written independently of the tool: 1234567 -> "1,234,567". */
static void grouped(size_t v, char *buf)
{
    char rev[64];
    int n = 0, digits = 0;
    do {
        if (digits > 0 && digits % 3 == 0)
            rev[n++] = ',';
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
        digits++;
    } while (v);
    for (int i = 0; i < n; i++)
        buf[i] = rev[n - 1 - i];
    buf[n] = '\0';
}

/* Writes a w x h 8-bit gray PNG whose pixels come from a simple formula of (x, y, seed). */
static void write_gray_png(const char *path, int w, int h, int seed)
{
    unsigned char *pix = malloc((size_t)w * (size_t)h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            pix[y * w + x] =
                (unsigned char)((x * (3 + seed) + y * (5 + 2 * seed) + (x * y * seed) % 17) & 0xff);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = PNG_FORMAT_GRAY;
    ck_assert_msg(png_image_write_to_file(&img, path, 0, pix, 0, NULL), "libpng write %s: %s", path,
                  img.message);
    free(pix);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* The reference: top-1 index and its score of a direct forward pass on the file's bytes. */
static void direct_top1(const struct cnn_model *m, const char *png_path, int *index, float *score)
{
    size_t size;
    char *bytes = slurp(png_path, &size);
    struct cnn_err err = {0};
    struct cnn_session *s = cnn_session_create(m, 1, &err);
    ck_assert_msg(s != NULL, "%s", err.msg);
    ck_assert_int_eq(cnn_image_load_tensor(bytes, size, CNN_IMAGE_DEFAULT_MAX_PIXELS,
                                           cnn_model_preproc(m), cnn_session_input(s), &err),
                     0);
    const float *out;
    ck_assert_int_eq(cnn_session_forward(s, m, cnn_session_input(s), 1, &out, &err), 0);
    int best = 0;
    for (int k = 1; k < cnn_model_num_classes(m); k++)
        if (out[k] > out[best])
            best = k;
    *index = best;
    *score = out[best];
    cnn_session_destroy(s);
    free(bytes);
}

static size_t arch_params(const char *name, double *flops)
{
    struct cnn_model *m;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_arch_build(name, 0, &m, &err), 0);
    size_t p = cnn_model_param_count(m);
    if (flops)
        *flops = cnn_model_flops(m);
    cnn_model_destroy(m);
    return p;
}

static void init_lenet(const char *path, const char *seed)
{
    struct run r = run_tool("init", "lenet5", path, "--seed", seed, NULL);
    ck_assert_msg(r.status == 0, "init failed (%d): %s", r.status, r.err);
    ck_assert_ptr_nonnull(strstr(r.out, path));
    run_free(&r);
}

START_TEST(test_version_help_and_unknown_command)
{
    struct run r = run_tool("--version", NULL);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "cnn 0.1.0\n");
    run_free(&r);
    r = run_tool("--help", NULL);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "usage: cnn"));
    run_free(&r);
    const char *cmds[] = {"init", "info", "predict", "bench", "explain"};
    for (int i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, "usage: cnn %s", cmds[i]);
        r = run_tool(cmds[i], "--help", NULL);
        ck_assert_int_eq(r.status, 0);
        ck_assert_msg(strstr(r.out, want) && strstr(r.out, "example:"), "%s --help: %s", cmds[i],
                      r.out);
        run_free(&r);
    }
    r = run_tool("frobnicate", NULL);
    ck_assert_int_eq(r.status, 2);
    ck_assert_ptr_nonnull(strstr(r.err, "frobnicate"));
    ck_assert_ptr_nonnull(strstr(r.err, "usage:"));
    run_free(&r);
    r = run_tool(NULL);
    ck_assert_int_eq(r.status, 2);
    run_free(&r);
}
END_TEST

START_TEST(test_init_list_names_every_architecture)
{
    struct run r = run_tool("init", "--list", NULL);
    ck_assert_int_eq(r.status, 0);
    int n;
    const char *const *names = cnn_arch_names(&n);
    ck_assert_int_eq(count_lines(r.out), n);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(strstr(r.out, names[i]) != NULL, "%s missing", names[i]);
        ck_assert_ptr_nonnull(strstr(r.out, cnn_arch_describe(names[i])));
    }
    run_free(&r);
}
END_TEST

START_TEST(test_init_then_info_shows_arch_param_count)
{
    double flops;
    size_t params = arch_params("lenet5", &flops);
    char want_plain[64], want_grouped[80], g[48], want_flops[64];
    grouped(params, g);
    snprintf(want_plain, sizeof want_plain, "\nparams=%zu\n", params);
    snprintf(want_grouped, sizeof want_grouped, "\nparams: %s\n", g);
    snprintf(want_flops, sizeof want_flops, "\nflops=%.0f\n", flops);

    const char *model = tmp_path("lenet5.cnn");
    init_lenet(model, "5");
    struct run r = run_tool("info", model, NULL);
    ck_assert_msg(r.status == 0, "info: %s", r.err);
    ck_assert_msg(strstr(r.out, want_plain) != NULL, "no '%s' in:\n%s", want_plain, r.out);
    ck_assert_msg(strstr(r.out, want_grouped) != NULL, "no '%s' in:\n%s", want_grouped, r.out);
    ck_assert_ptr_nonnull(strstr(r.out, want_flops));
    ck_assert_ptr_nonnull(strstr(r.out, "input: 1x28x28"));
    ck_assert_ptr_nonnull(strstr(r.out, "classes: 10\n"));
    ck_assert_ptr_nonnull(strstr(r.out, "labels: 10"));
    ck_assert_ptr_nonnull(strstr(r.out, "arch=lenet5"));

    /* Every layer of the built graph is a table row "<index>  <name>  <kind>". */
    struct cnn_model *m;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_model_load(model, &m, &err), 0);
    for (int i = 0; i < cnn_model_layer_count(m); i++) {
        struct cnn_layer_info li;
        cnn_model_layer_info(m, i, &li);
        char row[128], shape[48];
        snprintf(row, sizeof row, "\n%5d  %s ", i, li.name);
        snprintf(shape, sizeof shape, " %dx%dx%d ", li.c, li.h, li.w);
        const char *p = strstr(r.out, row);
        ck_assert_msg(p != NULL, "no row for layer %d %s", i, li.name);
        const char *eol = strchr(p + 1, '\n');
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)(eol - p), p);
        ck_assert_msg(strstr(line, shape) != NULL, "row '%s' lacks %s", line, shape);
    }
    cnn_model_destroy(m);
    run_free(&r);

    /* arch:NAME describes the same architecture without a file. */
    r = run_tool("info", "arch:lenet5", NULL);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, want_plain));
    ck_assert_ptr_nonnull(strstr(r.out, want_flops));
    run_free(&r);
}
END_TEST

START_TEST(test_info_arch_resnet18_groups_large_counts)
{
    size_t params = arch_params("resnet18", NULL);
    char g[48], want[80];
    grouped(params, g);
    snprintf(want, sizeof want, "\nparams: %s\n", g);
    ck_assert_int_gt((int)strlen(g), 9); /* at least two separators */
    struct run r = run_tool("info", "arch:resnet18", NULL);
    ck_assert_int_eq(r.status, 0);
    ck_assert_msg(strstr(r.out, want) != NULL, "no '%s'", want);
    run_free(&r);
}
END_TEST

START_TEST(test_init_uses_seed_and_classes)
{
    const char *model = tmp_path("seeded.cnn");
    struct run r = run_tool("init", "lenet5", model, "--seed", "42", "--classes", "7", NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    run_free(&r);

    /* Reference: the same architecture built and initialised here from the same seed. */
    struct cnn_err err = {0};
    struct cnn_model *ref, *got;
    ck_assert_int_eq(cnn_arch_build("lenet5", 7, &ref, &err), 0);
    cnn_model_init_random(ref, 42);
    ck_assert_int_eq(cnn_model_compile(ref, &err), 0);
    ck_assert_int_eq(cnn_model_load(model, &got, &err), 0);
    ck_assert_int_eq(cnn_model_num_classes(got), 7);

    struct cnn_session *s1 = cnn_session_create(ref, 1, &err);
    struct cnn_session *s2 = cnn_session_create(got, 1, &err);
    ck_assert_ptr_nonnull(s1);
    ck_assert_ptr_nonnull(s2);
    float *x1 = cnn_session_input(s1), *x2 = cnn_session_input(s2);
    for (int i = 0; i < 28 * 28; i++)
        x1[i] = x2[i] = (float)((i * 37) % 101) / 101.0f;
    const float *o1, *o2;
    ck_assert_int_eq(cnn_session_forward(s1, ref, x1, 1, &o1, &err), 0);
    ck_assert_int_eq(cnn_session_forward(s2, got, x2, 1, &o2, &err), 0);
    for (int k = 0; k < 7; k++)
        ck_assert_float_eq(o1[k], o2[k]);
    cnn_session_destroy(s1);
    cnn_session_destroy(s2);
    cnn_model_destroy(ref);
    cnn_model_destroy(got);
}
END_TEST

/* Parses one "  label index score" line; returns 0 when it does not have that shape. */
static int parse_pred(const char *line, int *index, double *score)
{
    char label[128];
    return sscanf(line, "  %127s %d %lf", label, index, score) == 3;
}

START_TEST(test_predict_matches_direct_forward_per_image_in_order)
{
    const char *model = tmp_path("lenet5.cnn");
    init_lenet(model, "9");
    const char *png[4] = {tmp_path("a.png"), tmp_path("b.png"), tmp_path("c.png"),
                          tmp_path("d.png")};
    for (int i = 0; i < 3; i++)
        write_gray_png(png[i], 28, 28, i + 1);
    write_gray_png(png[3], 35, 21, 4); /* resized by the preprocessing */

    struct cnn_model *m;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_model_load(model, &m, &err), 0);

    struct run r = run_tool("predict", model, png[0], png[1], png[2], png[3], "--top", "3", NULL);
    ck_assert_msg(r.status == 0, "predict: %s", r.err);
    ck_assert_int_eq(count_lines(r.out), 4 * (1 + 3));
    const char *p = r.out;
    for (int i = 0; i < 4; i++) {
        /* block header: the image path, then 3 prediction lines, best first */
        size_t plen = strlen(png[i]);
        ck_assert_msg(strncmp(p, png[i], plen) == 0 && p[plen] == '\n',
                      "block %d does not start with %s:\n%s", i, png[i], r.out);
        p += plen + 1;
        int ref_idx;
        float ref_score;
        direct_top1(m, png[i], &ref_idx, &ref_score);
        double prev = INFINITY;
        for (int k = 0; k < 3; k++) {
            int idx;
            double score;
            ck_assert_msg(parse_pred(p, &idx, &score), "bad line: %.40s", p);
            char label[32];
            snprintf(label, sizeof label, "  class%d ", idx);
            ck_assert_msg(strncmp(p, label, strlen(label)) == 0, "label of %d: %.40s", idx, p);
            if (k == 0) {
                ck_assert_int_eq(idx, ref_idx);
                ck_assert_msg(fabs(score - ref_score) <= 1e-5 * fabs(ref_score) + 1e-7,
                              "image %d: printed %.9g, direct %.9g", i, score, (double)ref_score);
            }
            ck_assert(score <= prev);
            prev = score;
            p = strchr(p, '\n') + 1;
        }
    }
    cnn_model_destroy(m);
    run_free(&r);
}
END_TEST

/* Structural JSON check: strings with valid escapes, balanced {} and [] outside strings,
 * exactly one top-level object spanning the line. */
static int json_line_ok(const char *s, size_t len)
{
    int depth = 0, in_str = 0;
    if (len < 2 || s[0] != '{' || s[len - 1] != '}')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                i++;
                if (i >= len || !strchr("\"\\/bfnrtu", s[i]))
                    return 0;
            } else if (c == '"') {
                in_str = 0;
            } else if ((unsigned char)c < 0x20) {
                return 0;
            }
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[')
            depth++;
        else if (c == '}' || c == ']')
            depth--;
        if (depth < 0 || (depth == 0 && i + 1 < len))
            return 0;
    }
    return depth == 0 && !in_str;
}

START_TEST(test_predict_json_one_object_per_image_with_escaping)
{
    /* A model whose labels need escaping, written through the library. */
    struct cnn_model *m;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_arch_build("lenet5", 3, &m, &err), 0);
    const char *labels[3] = {"say \"hi\"", "back\\slash", "tab\there"};
    ck_assert_int_eq(cnn_model_set_labels(m, labels, 3, &err), 0);
    cnn_model_init_random(m, 3);
    ck_assert_int_eq(cnn_model_compile(m, &err), 0);
    const char *model = tmp_path("labels.cnn");
    ck_assert_int_eq(cnn_model_save(m, model, &err), 0);
    cnn_model_destroy(m);

    const char *a = tmp_path("q\"x.png"), *b = tmp_path("b.png");
    write_gray_png(a, 28, 28, 2);
    write_gray_png(b, 28, 28, 5);
    struct run r = run_tool("predict", model, a, b, "--json", "--top", "3", NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_int_eq(count_lines(r.out), 2);
    const char *line = r.out;
    for (int i = 0; i < 2; i++) {
        const char *eol = strchr(line, '\n');
        size_t len = (size_t)(eol - line);
        char *one = strndup(line, len);
        ck_assert_msg(json_line_ok(one, len), "not a JSON object: %s", one);
        ck_assert_ptr_nonnull(strstr(one, "\"image\":"));
        ck_assert_ptr_nonnull(strstr(one, "\"predictions\":["));
        ck_assert_ptr_nonnull(strstr(one, "\"say \\\"hi\\\"\""));
        ck_assert_ptr_nonnull(strstr(one, "\"back\\\\slash\""));
        ck_assert_ptr_nonnull(strstr(one, "\"tab\\there\""));
        int n_label = 0, n_index = 0, n_score = 0;
        for (const char *q = one; (q = strstr(q, "\"label\":")); q++)
            n_label++;
        for (const char *q = one; (q = strstr(q, "\"index\":")); q++)
            n_index++;
        for (const char *q = one; (q = strstr(q, "\"score\":")); q++)
            n_score++;
        ck_assert_int_eq(n_label, 3);
        ck_assert_int_eq(n_index, 3);
        ck_assert_int_eq(n_score, 3);
        free(one);
        line = eol + 1;
    }
    ck_assert_ptr_nonnull(strstr(r.out, "q\\\"x.png\""));
    ck_assert(strstr(r.out, b) > strstr(r.out, "q\\\"x.png"));
    run_free(&r);
}
END_TEST

/* Value of "key": in a JSON line (number), NAN when absent. */
static double json_num(const char *s, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

START_TEST(test_bench_human_and_json_lines)
{
    struct run r =
        run_tool("bench", "arch:lenet5", "--batch", "2", "--runs", "3", "--min-time", "0", NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_int_eq(count_lines(r.out), 1);
    const char *ips_txt = strstr(r.out, " images/s");
    ck_assert_ptr_nonnull(ips_txt);
    const char *start = ips_txt;
    while (start > r.out && start[-1] != ' ')
        start--;
    ck_assert_double_gt(strtod(start, NULL), 0);
    run_free(&r);

    double flops;
    arch_params("lenet5", &flops);
    r = run_tool("bench", "arch:lenet5", "--batch", "2", "--threads", "1", "--runs", "3",
                 "--min-time", "0", "--json", "--round", "4", "--name", "my\"net", NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_int_eq(count_lines(r.out), 1);
    size_t len = strlen(r.out) - 1;
    ck_assert_msg(json_line_ok(r.out, len), "not JSON: %s", r.out);
    ck_assert_ptr_nonnull(strstr(r.out, "{\"peer\":\"product\","));
    ck_assert_ptr_nonnull(strstr(r.out, "\"model\":\"my\\\"net\""));
    const char *keys[] = {"batch",      "threads",     "round",      "iters", "lat_ms_median",
                          "lat_ms_p10", "lat_ms_p90",  "lat_ms_min", "ips",   "gflops",
                          "own_cpu",    "foreign_cpu", "steal"};
    for (int i = 0; i < 13; i++)
        ck_assert_msg(!isnan(json_num(r.out, keys[i])), "no %s in %s", keys[i], r.out);
    ck_assert_double_eq(json_num(r.out, "batch"), 2);
    ck_assert_double_eq(json_num(r.out, "threads"), 1);
    ck_assert_double_eq(json_num(r.out, "round"), 4);
    ck_assert_double_ge(json_num(r.out, "iters"), 3);
    double med = json_num(r.out, "lat_ms_median"), ips = json_num(r.out, "ips");
    ck_assert_double_gt(med, 0);
    ck_assert_double_gt(ips, 0);
    ck_assert_double_le(json_num(r.out, "lat_ms_min"), json_num(r.out, "lat_ms_p10"));
    ck_assert_double_le(json_num(r.out, "lat_ms_p10"), med);
    ck_assert_double_le(med, json_num(r.out, "lat_ms_p90"));
    /* ips = batch * 1000 / median, gflops = ips * flops / 1e9 (within print rounding) */
    ck_assert_double_eq_tol(ips, 2 * 1000.0 / med, 0.01 * ips);
    ck_assert_double_eq_tol(json_num(r.out, "gflops"), ips * flops / 1e9,
                            0.01 * ips * flops / 1e9 + 1e-3);
    run_free(&r);
}
END_TEST

START_TEST(test_bench_file_model_named_by_its_arch)
{
    const char *model = tmp_path("lenet5.cnn");
    init_lenet(model, "1");
    struct run r = run_tool("bench", model, "--runs", "3", "--min-time", "0", "--json", NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_ptr_nonnull(strstr(r.out, "\"model\":\"lenet5\""));
    ck_assert_double_eq(json_num(r.out, "batch"), 1);
    ck_assert_double_eq(json_num(r.out, "round"), 1);
    run_free(&r);
}
END_TEST

/* Runs the tool, expects exit status `want` and stderr containing `needle` (when non-NULL). */
static void expect_fail(int want, const char *needle, struct run r)
{
    ck_assert_msg(r.status == want, "exit %d, want %d; stderr: %s", r.status, want, r.err);
    ck_assert_msg(strncmp(r.err, "cnn: ", 5) == 0, "stderr does not start 'cnn: ': %s", r.err);
    if (needle)
        ck_assert_msg(strstr(r.err, needle) != NULL, "stderr lacks '%s': %s", needle, r.err);
    run_free(&r);
}

START_TEST(test_errors_name_the_file_and_set_the_status)
{
    const char *model = tmp_path("lenet5.cnn");
    init_lenet(model, "2");
    const char *missing = tmp_path("missing.cnn");
    expect_fail(1, missing, run_tool("info", missing, NULL));
    const char *img = tmp_path("ok.png");
    write_gray_png(img, 28, 28, 1);
    expect_fail(1, missing, run_tool("predict", missing, img, NULL));

    /* a model file of random bytes */
    unsigned char junk[4096];
    unsigned s = 7;
    for (size_t i = 0; i < sizeof junk; i++) {
        s = s * 1103515245u + 12345u;
        junk[i] = (unsigned char)(s >> 16);
    }
    const char *corrupt = tmp_path("corrupt.cnn");
    write_bytes(corrupt, junk, sizeof junk);
    expect_fail(1, corrupt, run_tool("info", corrupt, NULL));
    expect_fail(1, corrupt, run_tool("bench", corrupt, "--runs", "1", NULL));

    /* images: a text file, a truncated PNG, a missing file; the good one first */
    const char *text = tmp_path("notes.png");
    write_bytes(text, "just some text\n", 15);
    expect_fail(1, text, run_tool("predict", model, img, text, NULL));
    size_t n;
    char *bytes = slurp(img, &n);
    const char *cut = tmp_path("cut.png");
    write_bytes(cut, bytes, n / 2);
    free(bytes);
    expect_fail(1, cut, run_tool("predict", model, cut, NULL));
    const char *noimg = tmp_path("nothere.png");
    expect_fail(1, noimg, run_tool("predict", model, noimg, NULL));

    /* unknown architectures */
    struct run r = run_tool("init", "nosuchnet", tmp_path("x.cnn"), NULL);
    ck_assert_int_ne(r.status, 0);
    expect_fail(r.status, "nosuchnet", r);
    r = run_tool("info", "arch:nosuchnet", NULL);
    ck_assert_int_ne(r.status, 0);
    expect_fail(r.status, "nosuchnet", r);
    ck_assert_int_ne(access(tmp_path("x.cnn"), F_OK), 0);

    /* usage errors: exit 2 */
    expect_fail(2, "--batch", run_tool("bench", "arch:lenet5", "--batch", "0", NULL));
    expect_fail(2, "--top", run_tool("predict", model, img, "--top", "0", NULL));
    expect_fail(2, "--seed", run_tool("init", "lenet5", tmp_path("y.cnn"), "--seed", "-1", NULL));
    expect_fail(2, "--bogus", run_tool("info", model, "--bogus", NULL));
    expect_fail(2, NULL, run_tool("predict", model, NULL));
    expect_fail(2, NULL, run_tool("info", NULL));
}
END_TEST

/* --profile: one JSON line per op after the bench line, their MFLOP summing to the model's
 * FLOPs x batch (the ms are wall times: only checked to be there); the table form has a
 * header and a total line, with CPU times too; split mode has no single session to profile
 * and CPU times are for one thread: usage errors. */
START_TEST(test_bench_profile_lines)
{
    double flops;
    arch_params("lenet5", &flops);
    struct run r = run_tool("bench", "arch:lenet5", "--batch", "2", "--runs", "3", "--min-time",
                            "0", "--json", "--profile", NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    int lines = count_lines(r.out);
    ck_assert_int_ge(lines, 4); /* conv, pool, ..., dense */
    double mflop = 0;
    const char *line = strchr(r.out, '\n') + 1;
    for (int i = 1; i < lines; i++) {
        const char *end = strchr(line, '\n');
        ck_assert_msg(json_line_ok(line, (size_t)(end - line)), "not JSON: %.*s",
                      (int)(end - line), line);
        ck_assert_double_eq(json_num(line, "op"), i - 1);
        ck_assert_msg(!isnan(json_num(line, "ms")), "no ms in %.*s", (int)(end - line), line);
        mflop += json_num(line, "mflop");
        line = end + 1;
    }
    ck_assert_double_eq_tol(mflop, 2 * flops / 1e6, 1e-3 * lines);
    ck_assert_ptr_nonnull(strstr(r.out, "\"layers\":[\"conv1\""));
    run_free(&r);
    r = run_tool("bench", "arch:lenet5", "--runs", "2", "--min-time", "0", "--profile", NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_int_eq(count_lines(r.out), lines + 2);
    ck_assert_ptr_nonnull(strstr(r.out, "variant"));
    ck_assert_ptr_nonnull(strstr(r.out, "\ntotal: "));
    run_free(&r);
    r = run_tool("bench", "arch:lenet5", "--runs", "2", "--min-time", "0", "--profile-cpu", NULL);
    ck_assert_msg(r.status == 0, "%s", r.err);
    ck_assert_int_eq(count_lines(r.out), lines + 2);
    run_free(&r);
    expect_fail(2, "--profile",
                run_tool("bench", "arch:lenet5", "--batch", "2", "--threads", "2", "--mode",
                         "split", "--profile", NULL));
    expect_fail(2, "--profile-cpu",
                run_tool("bench", "arch:lenet5", "--threads", "2", "--profile-cpu", NULL));
}
END_TEST

/* cnn explain: the heatmap PNG (28 px x 10), the class explained is the top-1 that
 * `cnn predict` gives, --class by index, the filter grid; bad options exit 2. */
START_TEST(test_explain_writes_heatmap_of_the_top1_and_refuses_bad_options)
{
    char model[512], img[512], heat[512], grid[512];
    snprintf(model, sizeof model, "%s", tmp_path("l.cnn"));
    snprintf(img, sizeof img, "%s", tmp_path("a.png"));
    snprintf(heat, sizeof heat, "%s", tmp_path("heat.png"));
    snprintf(grid, sizeof grid, "%s", tmp_path("grid.png"));
    init_lenet(model, "4");
    write_gray_png(img, 28, 28, 3);
    struct run p = run_tool("predict", model, img, "--top", "1", NULL);
    ck_assert_int_eq(p.status, 0);
    int top = -1;
    double score;
    ck_assert(parse_pred(strchr(p.out, '\n') + 1, &top, &score));
    run_free(&p);
    const char *methods[] = {"grad", "smoothgrad", "occlusion", "gradinput"};
    for (int i = 0; i < 4; i++) {
        struct run r = run_tool("explain", model, img, "--out", heat, "--method", methods[i],
                                "--samples", "3", NULL);
        ck_assert_msg(r.status == 0, "%s: %s", methods[i], r.err);
        char want[64];
        snprintf(want, sizeof want, "explained: class %d class%d (%s)", top, top, methods[i]);
        ck_assert_msg(strstr(r.out, want) != NULL, "%s", r.out);
        run_free(&r);
        size_t n;
        unsigned char *png = (unsigned char *)slurp(heat, &n);
        ck_assert(n > 24 && memcmp(png + 12, "IHDR", 4) == 0);
        ck_assert_int_eq(png[18] << 8 | png[19], 280); /* width */
        free(png);
    }
    struct run r = run_tool("explain", model, img, "--out", heat, "--class", "2", "--json", NULL);
    ck_assert_int_eq(r.status, 0);
    ck_assert_ptr_nonnull(strstr(r.out, "{\"class\":2,"));
    run_free(&r);
    r = run_tool("explain", model, "--filters", grid, NULL);
    ck_assert_int_eq(r.status, 0);
    run_free(&r);
    ck_assert(access(grid, F_OK) == 0);
    expect_fail(2, "--method", run_tool("explain", model, img, "--out", heat, "--method", "x",
                                        NULL));
    expect_fail(2, "--class", run_tool("explain", model, img, "--out", heat, "--class", "10",
                                       NULL));
    expect_fail(2, "--out", run_tool("explain", model, img, NULL));
    expect_fail(1, "nope.png", run_tool("explain", model, tmp_path("nope.png"), "--out", heat,
                                        NULL));
}
END_TEST

Suite *tool_suite(void)
{
    Suite *s = suite_create("tool");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_version_help_and_unknown_command);
    tcase_add_test(tc, test_init_list_names_every_architecture);
    tcase_add_test(tc, test_init_then_info_shows_arch_param_count);
    tcase_add_test(tc, test_info_arch_resnet18_groups_large_counts);
    tcase_add_test(tc, test_init_uses_seed_and_classes);
    tcase_add_test(tc, test_predict_matches_direct_forward_per_image_in_order);
    tcase_add_test(tc, test_predict_json_one_object_per_image_with_escaping);
    tcase_add_test(tc, test_bench_human_and_json_lines);
    tcase_add_test(tc, test_bench_profile_lines);
    tcase_add_test(tc, test_bench_file_model_named_by_its_arch);
    tcase_add_test(tc, test_errors_name_the_file_and_set_the_status);
    tcase_add_test(tc, test_explain_writes_heatmap_of_the_top1_and_refuses_bad_options);
    suite_add_tcase(s, tc);
    return s;
}
