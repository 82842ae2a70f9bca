/* Admin suites: the bearer token (constant-time compare of right, wrong-same-length and
 * wrong-other-length tokens, header parsing, token file creation, permissions, env
 * override), data-root path resolution (escape attempts: absolute, "..", percent-encoded
 * "..", NUL, control characters, very long, symlinks leading outside, prefix siblings) and
 * the fine-tune body (each bad field answered with a message naming it). */
#include "admin_auth.h"
#include "job_spec.h"
#include "safepath.h"
#include "server_test_models.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- admin_auth -------------------------------------------------------------------- */

static const char TOKEN[] = "0123456789abcdef0123456789abcdef"; /* 32 characters */

static struct admin_token token_of(const char *s)
{
    struct admin_token t;
    struct cnn_err err = {0};
    ck_assert_msg(admin_token_set(&t, s, strlen(s), &err) == 0, "%s", err.msg);
    return t;
}

START_TEST(test_token_equal_only_for_the_exact_token)
{
    struct admin_token t = token_of(TOKEN);
    ck_assert_int_eq(admin_token_equal(&t, TOKEN, strlen(TOKEN)), 1);
    char wrong[sizeof TOKEN];
    for (size_t i = 0; i < strlen(TOKEN); i++) { /* every position, same length */
        memcpy(wrong, TOKEN, sizeof TOKEN);
        wrong[i] = wrong[i] == 'x' ? 'y' : 'x';
        ck_assert_int_eq(admin_token_equal(&t, wrong, strlen(wrong)), 0);
    }
    ck_assert_int_eq(admin_token_equal(&t, TOKEN, strlen(TOKEN) - 1), 0); /* prefix */
    ck_assert_int_eq(admin_token_equal(&t, "", 0), 0);
    char longer[sizeof TOKEN + 1];
    snprintf(longer, sizeof longer, "%s0", TOKEN); /* token + one byte */
    ck_assert_int_eq(admin_token_equal(&t, longer, strlen(longer)), 0);
    /* a 256-byte token, and a presented value past the limit that starts with it */
    char big[ADMIN_TOKEN_MAX + 8];
    memset(big, 'k', sizeof big);
    struct admin_token tb;
    struct cnn_err err = {0};
    ck_assert_int_eq(admin_token_set(&tb, big, ADMIN_TOKEN_MAX, &err), 0);
    ck_assert_int_eq(admin_token_equal(&tb, big, ADMIN_TOKEN_MAX), 1);
    ck_assert_int_eq(admin_token_equal(&tb, big, ADMIN_TOKEN_MAX + 8), 0);
    ck_assert_int_eq(admin_token_equal(&tb, big, ADMIN_TOKEN_MAX - 1), 0);
    /* a zero token matches nothing, not even zero bytes */
    struct admin_token zero;
    memset(&zero, 0, sizeof zero);
    ck_assert_int_eq(admin_token_equal(&zero, "", 0), 0);
}
END_TEST

START_TEST(test_token_header_needs_bearer_scheme)
{
    struct admin_token t = token_of(TOKEN);
    char h[128];
    snprintf(h, sizeof h, "Bearer %s", TOKEN);
    ck_assert_int_eq(admin_token_check_header(&t, h), 1);
    snprintf(h, sizeof h, "bearer \t %s  ", TOKEN);
    ck_assert_int_eq(admin_token_check_header(&t, h), 1);
    snprintf(h, sizeof h, "Basic %s", TOKEN);
    ck_assert_int_eq(admin_token_check_header(&t, h), 0);
    snprintf(h, sizeof h, "Bearer%s", TOKEN);
    ck_assert_int_eq(admin_token_check_header(&t, h), 0);
    snprintf(h, sizeof h, "%s", TOKEN);
    ck_assert_int_eq(admin_token_check_header(&t, h), 0);
    ck_assert_int_eq(admin_token_check_header(&t, NULL), 0);
    ck_assert_int_eq(admin_token_check_header(&t, "Bearer "), 0);
}
END_TEST

/* This thread's CPU time, not wall time: other processes on a loaded machine (the test
 * runs beside builds) then do not count, only the compare's own work does. */
static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wrong tokens of the right length (first or last byte wrong) and of other lengths cost
 * about the same: the best of 31 interleaved rounds each, within a factor 2 (a compare that
 * stopped at the first differing byte or at a length mismatch would be ~30-100x apart). */
START_TEST(test_token_compare_time_does_not_depend_on_where_or_how_long)
{
    struct admin_token t = token_of(TOKEN);
    char first[sizeof TOKEN], last[sizeof TOKEN];
    memcpy(first, TOKEN, sizeof TOKEN);
    memcpy(last, TOKEN, sizeof TOKEN);
    first[0] = 'x';
    last[sizeof TOKEN - 2] = 'x';
    char longer[sizeof TOKEN + 10];
    snprintf(longer, sizeof longer, "%s0123456789", TOKEN);
    const char *cases[4] = {first, last, "x", longer};
    size_t lens[4] = {strlen(first), strlen(last), 1, strlen(longer)};
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    int sink = 0;
    for (int round = 0; round < 31; round++)
        for (int c = 0; c < 4; c++) {
            double t0 = seconds_now();
            for (int i = 0; i < 20000; i++)
                sink += admin_token_equal(&t, cases[c], lens[c]);
            double dt = seconds_now() - t0;
            if (dt < best[c])
                best[c] = dt;
        }
    ck_assert_int_eq(sink, 0);
    double lo = best[0], hi = best[0];
    for (int c = 1; c < 4; c++) {
        lo = best[c] < lo ? best[c] : lo;
        hi = best[c] > hi ? best[c] : hi;
    }
    ck_assert_msg(hi < 2.0 * lo, "compare times differ: %.3g %.3g %.3g %.3g s", best[0], best[1],
                  best[2], best[3]);
}
END_TEST

START_TEST(test_token_file_created_0600_and_read_back)
{
    char *dir = stm_tempdir();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/admin.token", dir);
    struct admin_token a, b;
    struct cnn_err err = {0};
    int created = 0;
    ck_assert_msg(admin_token_load(&a, NULL, path, &created, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(created, 1);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq((int)a.len, 64); /* 256 bits as hex */
    for (size_t i = 0; i < a.len; i++)
        ck_assert(strchr("0123456789abcdef", a.value[i]) != NULL);
    /* the file holds exactly the token and a newline */
    FILE *f = fopen(path, "r");
    char line[128] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_int_eq((int)strlen(line), 65);
    ck_assert(memcmp(line, a.value, 64) == 0);
    ck_assert_int_eq(admin_token_load(&b, NULL, path, &created, &err), 0);
    ck_assert_int_eq(created, 0);
    ck_assert(b.len == a.len && memcmp(a.value, b.value, a.len) == 0);
    /* a second file gets another token */
    char path2[PATH_MAX];
    snprintf(path2, sizeof path2, "%s/other.token", dir);
    ck_assert_int_eq(admin_token_load(&b, NULL, path2, &created, &err), 0);
    ck_assert(memcmp(a.value, b.value, a.len) != 0);
    stm_rmtree(dir);
    free(dir);
}
END_TEST

static void write_mode(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fchmod(fd, mode), 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
}

START_TEST(test_token_file_refused_when_loose_short_or_a_symlink)
{
    char *dir = stm_tempdir();
    char path[PATH_MAX], link[PATH_MAX];
    snprintf(path, sizeof path, "%s/t", dir);
    snprintf(link, sizeof link, "%s/l", dir);
    struct admin_token t;
    struct cnn_err err = {0};
    write_mode(path, "abcdefghijklmnopqrstuvwxyz\n", 0644);
    ck_assert_int_eq(admin_token_load(&t, NULL, path, NULL, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "chmod 600") && !strstr(err.msg, "abcdefgh"), "%s", err.msg);
    write_mode(path, "short\n", 0600);
    ck_assert_int_eq(admin_token_load(&t, NULL, path, NULL, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "16..256"));
    write_mode(path, "has a space in the middle\n", 0600);
    ck_assert_int_eq(admin_token_load(&t, NULL, path, NULL, &err), CNN_EINVAL);
    write_mode(path, "abcdefghijklmnopqrstuvwxyz  \r\nsecond line\n", 0600);
    ck_assert_msg(admin_token_load(&t, NULL, path, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(admin_token_equal(&t, "abcdefghijklmnopqrstuvwxyz", 26), 1);
    ck_assert_int_eq(symlink(path, link), 0);
    ck_assert_int_ne(admin_token_load(&t, NULL, link, NULL, &err), 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "symlink"));
    /* the environment wins and no file is made */
    char none[PATH_MAX];
    snprintf(none, sizeof none, "%s/none", dir);
    int created = 5;
    ck_assert_int_eq(admin_token_load(&t, "env-token-0123456789", none, &created, &err), 0);
    ck_assert_int_eq(created, 0);
    ck_assert_int_ne(access(none, F_OK), 0);
    ck_assert_int_eq(admin_token_equal(&t, "env-token-0123456789", 20), 1);
    ck_assert_int_eq(admin_token_load(&t, "too-short", none, NULL, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "CNND_ADMIN_TOKEN"));
    /* a missing folder is an error naming the file */
    char bad[PATH_MAX];
    snprintf(bad, sizeof bad, "%s/no/such/folder/t", dir);
    ck_assert_int_eq(admin_token_load(&t, NULL, bad, NULL, &err), CNN_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, bad));
    stm_rmtree(dir);
    free(dir);
}
END_TEST

/* Which token files are trusted: mode 0600 or stricter (any owner, any mount), or root's file
 * without group/other write on a read-only mount (a Kubernetes Secret volume: 0644 by
 * default, 0440 with defaultMode + fsGroup).  Everything else is refused, naming the mode. */
START_TEST(test_token_file_check_accepts_root_read_only_mounts_only)
{
    struct cnn_err err = {0};
    struct stat st = {0};
    st.st_mode = S_IFREG | 0600;
    st.st_uid = 1000;
    ck_assert_int_eq(admin_token_file_check("f", &st, 0, &err), 0);
    st.st_mode = S_IFREG | 0400;
    ck_assert_int_eq(admin_token_file_check("f", &st, 1, &err), 0);
    /* a Secret: root's, 0644 or 0440, read-only mount */
    st.st_uid = 0;
    st.st_mode = S_IFREG | 0644;
    ck_assert_msg(admin_token_file_check("f", &st, 1, &err) == 0, "%s", err.msg);
    st.st_mode = S_IFREG | 0440;
    ck_assert_int_eq(admin_token_file_check("f", &st, 1, &err), 0);
    /* the same file on a writable mount: refused */
    st.st_mode = S_IFREG | 0644;
    ck_assert_int_eq(admin_token_file_check("f", &st, 0, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "644") && strstr(err.msg, "read-only"), "%s", err.msg);
    /* not root's, or writable by group or others: refused even on a read-only mount */
    st.st_uid = 1000;
    ck_assert_int_eq(admin_token_file_check("f", &st, 1, &err), CNN_EINVAL);
    st.st_uid = 0;
    st.st_mode = S_IFREG | 0664;
    ck_assert_int_eq(admin_token_file_check("f", &st, 1, &err), CNN_EINVAL);
    st.st_mode = S_IFREG | 0646;
    ck_assert_int_eq(admin_token_file_check("f", &st, 1, &err), CNN_EINVAL);
    /* not a regular file */
    st.st_mode = S_IFDIR | 0600;
    ck_assert_int_eq(admin_token_file_check("f", &st, 1, &err), CNN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
}
END_TEST

Suite *admin_auth_suite(void)
{
    Suite *s = suite_create("admin_auth");
    TCase *tc = tcase_create("admin_auth");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_token_equal_only_for_the_exact_token);
    tcase_add_test(tc, test_token_header_needs_bearer_scheme);
    tcase_add_test(tc, test_token_compare_time_does_not_depend_on_where_or_how_long);
    tcase_add_test(tc, test_token_file_created_0600_and_read_back);
    tcase_add_test(tc, test_token_file_refused_when_loose_short_or_a_symlink);
    tcase_add_test(tc, test_token_file_check_accepts_root_read_only_mounts_only);
    suite_add_tcase(s, tc);
    return s;
}

/* ---- safepath ----------------------------------------------------------------------- */

struct tree {
    char *base;         /* temp folder */
    char root[1024];    /* base/data: the data root */
    char outside[1024]; /* base/secret: a folder outside it */
    char sibling[1024]; /* base/data2: shares the root's name as a prefix */
};

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    fclose(f);
}

/* base/data/{sets/fm/file, inlink -> sets, out -> ../secret, sib -> ../data2,
 *            chain -> inlink2 -> ../secret, sets/bad/evil -> ../../../secret/file}
 * base/secret/file, base/data2/file */
static void make_tree(struct tree *t)
{
    t->base = stm_tempdir();
    char p[PATH_MAX];
    snprintf(t->root, sizeof t->root, "%s/data", t->base);
    snprintf(t->outside, sizeof t->outside, "%s/secret", t->base);
    snprintf(t->sibling, sizeof t->sibling, "%s/data2", t->base);
    ck_assert_int_eq(mkdir(t->root, 0755), 0);
    ck_assert_int_eq(mkdir(t->outside, 0755), 0);
    ck_assert_int_eq(mkdir(t->sibling, 0755), 0);
    snprintf(p, sizeof p, "%s/file", t->outside);
    touch(p);
    snprintf(p, sizeof p, "%s/file", t->sibling);
    touch(p);
    snprintf(p, sizeof p, "%s/sets", t->root);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/sets/fm", t->root);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/sets/fm/file", t->root);
    touch(p);
    snprintf(p, sizeof p, "%s/inlink", t->root);
    ck_assert_int_eq(symlink("sets", p), 0);
    snprintf(p, sizeof p, "%s/out", t->root);
    ck_assert_int_eq(symlink("../secret", p), 0);
    snprintf(p, sizeof p, "%s/sib", t->root);
    ck_assert_int_eq(symlink("../data2", p), 0);
    snprintf(p, sizeof p, "%s/inlink2", t->root);
    ck_assert_int_eq(symlink("../secret", p), 0);
    snprintf(p, sizeof p, "%s/chain", t->root);
    ck_assert_int_eq(symlink("inlink2", p), 0);
    snprintf(p, sizeof p, "%s/sets/bad", t->root);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/sets/bad/evil", t->root);
    ck_assert_int_eq(symlink("../../../secret/file", p), 0);
}

static void free_tree(struct tree *t)
{
    stm_rmtree(t->base);
    free(t->base);
}

/* resolve(rel) must fail with `code` and a message containing `why`. */
static void expect_refused(const struct tree *t, const char *rel, size_t len, int code,
                           const char *why)
{
    char out[PATH_MAX] = "";
    struct cnn_err err = {0};
    int rc = safepath_resolve(t->root, rel, len, out, sizeof out, &err);
    ck_assert_msg(rc == code, "'%.40s': rc %d, expected %d (%s)", rel, rc, code, err.msg);
    ck_assert_msg(strstr(err.msg, why) != NULL, "'%.40s': '%s' lacks '%s'", rel, err.msg, why);
    ck_assert_str_eq(out, "");
}

START_TEST(test_path_escape_attempts_are_refused)
{
    struct tree t;
    make_tree(&t);
    char abs[PATH_MAX];
    snprintf(abs, sizeof abs, "%s/file", t.outside);
    expect_refused(&t, abs, strlen(abs), CNN_EINVAL, "absolute");                  /* 1 */
    expect_refused(&t, "..", 2, CNN_EINVAL, "'..'");                               /* 2 */
    expect_refused(&t, "../secret/file", 14, CNN_EINVAL, "'..'");                  /* 3 */
    expect_refused(&t, "sets/../../secret", 17, CNN_EINVAL, "'..'");               /* 4 */
    expect_refused(&t, "%2e%2e/secret", 13, CNN_EINVAL, "after percent-decoding"); /* 5 */
    expect_refused(&t, "sets/%2E%2e%2F%2e%2e%2fsecret", 29, CNN_EINVAL, "'..'");   /* 6 */
    expect_refused(&t, "%2fetc/passwd", 13, CNN_EINVAL, "absolute");               /* 7 */
    expect_refused(&t, "sets\0/../../secret", 18, CNN_EINVAL, "NUL");              /* 8 */
    expect_refused(&t, "sets%00x", 8, CNN_EINVAL, "NUL");                          /* 9 */
    expect_refused(&t, "sets/fm\n", 8, CNN_EINVAL, "control");                     /* 10 */
    expect_refused(&t, "out/file", 8, CNN_EINVAL, "outside the data root");        /* 11 */
    expect_refused(&t, "out", 3, CNN_EINVAL, "outside the data root");             /* 12 */
    expect_refused(&t, "chain/file", 10, CNN_EINVAL, "outside the data root");     /* 13 */
    expect_refused(&t, "sib/file", 8, CNN_EINVAL, "outside the data root");        /* 14 */
    expect_refused(&t, "./sets", 6, CNN_EINVAL, "'.'");                            /* 15 */
    expect_refused(&t, "sets%2ffm", 9, CNN_EINVAL, "percent-encoded");             /* 16 */
    expect_refused(&t, "", 0, CNN_EINVAL, "empty");                                /* 17 */
    char *longp = malloc(5000);
    memset(longp, 'a', 5000);
    for (int i = 100; i < 5000; i += 100)
        longp[i] = '/';
    expect_refused(&t, longp, 5000, CNN_EINVAL, "longer than 1024"); /* 18 */
    memset(longp, 'b', 300);
    expect_refused(&t, longp, 300, CNN_EINVAL, "longer than 255"); /* 19: one component */
    free(longp);
    expect_refused(&t, "missing/x", 9, CNN_ENOENT, "not found"); /* 20 */
    free_tree(&t);
}
END_TEST

START_TEST(test_paths_inside_the_root_resolve)
{
    struct tree t;
    make_tree(&t);
    char out[PATH_MAX], want[PATH_MAX + 64], root_real[PATH_MAX];
    struct cnn_err err = {0};
    ck_assert_ptr_nonnull(realpath(t.root, root_real));
    ck_assert_msg(safepath_resolve(t.root, "sets/fm", 7, out, sizeof out, &err) == 0, "%s",
                  err.msg);
    snprintf(want, sizeof want, "%s/sets/fm", root_real);
    ck_assert_str_eq(out, want);
    /* a symlink that stays inside is refused too: the job opens with openat2 and
     * RESOLVE_NO_SYMLINKS (core/fsroot.h), so it could not be read */
    out[0] = '\0';
    ck_assert_int_eq(safepath_resolve(t.root, "inlink/fm/file", 14, out, sizeof out, &err),
                     CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "symlink"), "%s", err.msg);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(safepath_resolve(t.root, "sets/fm/file", 12, out, sizeof out, &err), 0);
    snprintf(want, sizeof want, "%s/sets/fm/file", root_real);
    ck_assert_str_eq(out, want);
    /* '%' not followed by two hex digits is an ordinary character */
    ck_assert_int_eq(safepath_check("50%_off", 7, &err), 0);
    ck_assert_int_eq(safepath_check("a//b/", 5, &err), 0);
    ck_assert_int_eq(safepath_check("..a/b..", 7, &err), 0);
    free_tree(&t);
}
END_TEST

START_TEST(test_inside_checks_component_boundaries)
{
    ck_assert_int_eq(safepath_inside("/data", "/data"), 1);
    ck_assert_int_eq(safepath_inside("/data", "/data/x"), 1);
    ck_assert_int_eq(safepath_inside("/data/", "/data/x"), 1);
    ck_assert_int_eq(safepath_inside("/data", "/data2/x"), 0);
    ck_assert_int_eq(safepath_inside("/data", "/dat"), 0);
    ck_assert_int_eq(safepath_inside("/data", "/"), 0);
    ck_assert_int_eq(safepath_inside("/", "/anything"), 1);
}
END_TEST

START_TEST(test_tree_walk_refuses_symlinks_leading_out_and_inside)
{
    struct tree t;
    make_tree(&t);
    char root_real[PATH_MAX], dir[PATH_MAX + 64];
    struct cnn_err err = {0};
    ck_assert_ptr_nonnull(realpath(t.root, root_real));
    snprintf(dir, sizeof dir, "%s/sets", root_real);
    /* sets/bad/evil points outside: found at depth 2, not at depth 1 */
    ck_assert_int_eq(safepath_check_tree(root_real, dir, 1, 1000, &err), 0);
    ck_assert_int_eq(safepath_check_tree(root_real, dir, 2, 1000, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "evil") && strstr(err.msg, "outside"), "%s", err.msg);
    snprintf(dir, sizeof dir, "%s/sets/fm", root_real);
    ck_assert_int_eq(safepath_check_tree(root_real, dir, 2, 1000, &err), 0);
    snprintf(dir, sizeof dir, "%s/sets/fm/file", root_real); /* a file: nothing to walk */
    ck_assert_int_eq(safepath_check_tree(root_real, dir, 2, 1000, &err), 0);
    snprintf(dir, sizeof dir, "%s/sets", root_real); /* fm and bad: over a limit of 1 */
    ck_assert_int_eq(safepath_check_tree(root_real, dir, 1, 1, &err), CNN_ELIMIT);
    /* a symlink that stays inside (inlink -> sets) is refused as well */
    ck_assert_int_eq(safepath_check_tree(root_real, root_real, 1, 1000, &err), CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "symlink"), "%s", err.msg);
    free_tree(&t);
}
END_TEST

START_TEST(test_open_dirs_creates_and_never_follows_symlinks)
{
    struct tree t;
    make_tree(&t);
    struct cnn_err err = {0};
    const char *ok[] = {"examples", "fashion", "Bag"};
    int fd = safepath_open_dirs(t.root, ok, 3, &err);
    ck_assert_msg(fd >= 0, "%s", err.msg);
    close(fd);
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/examples/fashion/Bag", t.root);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    /* "inlink" stays inside, but is a symlink: refused all the same */
    const char *via_link[] = {"inlink", "fm"};
    ck_assert_int_eq(safepath_open_dirs(t.root, via_link, 2, &err), CNN_EINVAL);
    const char *out[] = {"out", "x"};
    ck_assert_int_eq(safepath_open_dirs(t.root, out, 2, &err), CNN_EINVAL);
    snprintf(p, sizeof p, "%s/x", t.outside);
    ck_assert_int_ne(access(p, F_OK), 0); /* nothing made outside */
    const char *dots[] = {".."};
    ck_assert_int_eq(safepath_open_dirs(t.root, dots, 1, &err), CNN_EINVAL);
    const char *slash[] = {"a/b"};
    ck_assert_int_eq(safepath_open_dirs(t.root, slash, 1, &err), CNN_EINVAL);
    free_tree(&t);
}
END_TEST

Suite *safepath_suite(void)
{
    Suite *s = suite_create("safepath");
    TCase *tc = tcase_create("safepath");
    tcase_add_test(tc, test_path_escape_attempts_are_refused);
    tcase_add_test(tc, test_paths_inside_the_root_resolve);
    tcase_add_test(tc, test_inside_checks_component_boundaries);
    tcase_add_test(tc, test_tree_walk_refuses_symlinks_leading_out_and_inside);
    tcase_add_test(tc, test_open_dirs_creates_and_never_follows_symlinks);
    suite_add_tcase(s, tc);
    return s;
}

/* ---- job_spec ----------------------------------------------------------------------- */

static int parse(const char *body, struct job_spec *s, struct cnn_err *err)
{
    return job_spec_parse(body, strlen(body), s, err);
}

START_TEST(test_spec_defaults_from_a_minimal_body)
{
    struct job_spec s;
    struct cnn_err err = {0};
    ck_assert_msg(parse("{\"dataset\":{\"format\":\"idx\",\"path\":\"fm/small\"}}", &s, &err) == 0,
                  "%s", err.msg);
    ck_assert_int_eq(s.format, CNN_DATASET_IDX);
    ck_assert_str_eq(s.path, "fm/small");
    ck_assert_str_eq(s.split, "train");
    ck_assert_ptr_null(s.classes);
    ck_assert_int_eq(s.epochs, 1);
    ck_assert_int_eq(s.batch_size, 32);
    ck_assert(s.learning_rate == 0.003 && s.momentum == 0.9 && s.weight_decay == 5e-4);
    ck_assert_int_eq(s.schedule, CNN_LR_COSINE);
    ck_assert_int_eq(s.gate, JOB_GATE_PARENT);
    ck_assert_str_eq(s.freeze, "");
    ck_assert_ptr_null(s.labels);
    ck_assert(s.validation_split == 0.05 && s.min_accuracy == 0);
    ck_assert(s.seed == 1);
    job_spec_free(&s);
}
END_TEST

static const char FULL[] =
    "{\"dataset\":{\"format\":\"folder\",\"path\":\"ex/three\"},\"epochs\":3,\"batch_size\":16,"
    "\"learning_rate\":0.05,\"momentum\":0,\"weight_decay\":5e-4,\"schedule\":\"cosine\","
    "\"freeze\":\"conv2\",\"labels\":[\"Trouser\",\"Bag\",\"Ankle boot\"],"
    "\"validation_split\":0.2,\"min_accuracy\":1.01,\"gate\":\"min_accuracy\","
    "\"seed\":12345678901}";

START_TEST(test_spec_every_field_and_json_round_trip)
{
    struct job_spec s, t;
    struct cnn_err err = {0};
    ck_assert_msg(parse(FULL, &s, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(s.format, CNN_DATASET_FOLDER);
    ck_assert_str_eq(s.path, "ex/three");
    ck_assert_int_eq(s.epochs, 3);
    ck_assert_int_eq(s.batch_size, 16);
    ck_assert(s.learning_rate == 0.05 && s.momentum == 0 && s.weight_decay == 5e-4);
    ck_assert_int_eq(s.schedule, CNN_LR_COSINE);
    ck_assert_str_eq(s.freeze, "conv2");
    ck_assert_int_eq(s.n_labels, 3);
    ck_assert_str_eq(s.labels[2], "Ankle boot");
    ck_assert(s.validation_split == 0.2 && s.min_accuracy == 1.01); /* an unmeetable gate */
    ck_assert(s.seed == 12345678901ULL);
    ck_assert_int_eq(s.gate, JOB_GATE_MIN_ACCURACY);
    json_t *j = job_spec_json(&s);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    ck_assert_msg(parse(text, &t, &err) == 0, "%s: %s", text, err.msg);
    free(text);
    ck_assert(t.format == s.format && t.epochs == s.epochs && t.batch_size == s.batch_size &&
              t.learning_rate == s.learning_rate && t.schedule == s.schedule && t.seed == s.seed &&
              t.n_labels == s.n_labels && t.min_accuracy == s.min_accuracy && t.gate == s.gate);
    ck_assert_str_eq(t.freeze, s.freeze);
    ck_assert_str_eq(t.labels[1], "Bag");
    job_spec_free(&t);
    job_spec_free(&s);
    ck_assert_ptr_null(s.labels);
    /* dataset.classes and split for IDX */
    ck_assert_int_eq(parse("{\"dataset\":{\"format\":\"idx\",\"path\":\"fm\",\"split\":\"t10k\","
                           "\"classes\":[1,8,9]},\"labels\":[\"a\",\"b\",\"c\"]}",
                           &s, &err),
                     0);
    ck_assert_str_eq(s.split, "t10k");
    ck_assert_int_eq(s.n_classes, 3);
    ck_assert_int_eq(s.classes[1], 8);
    job_spec_free(&s);
}
END_TEST

START_TEST(test_spec_bad_fields_are_named)
{
    static const char *const cases[][2] = {
        {"{}", "dataset:"},
        {"{\"dataset\":\"fm\"}", "dataset:"},
        {"{\"dataset\":{\"path\":\"fm\"}}", "dataset.format:"},
        {"{\"dataset\":{\"format\":\"csv\",\"path\":\"fm\"}}", "dataset.format:"},
        {"{\"dataset\":{\"format\":\"idx\"}}", "dataset.path:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":7}}", "dataset.path:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"/etc\"}}", "dataset.path: absolute"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a/../../b\"}}", "dataset.path: '.' and"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\\u0000b\"}}",
         "dataset.path: contains a NUL"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"%2e%2e\"}}", "dataset.path:"},
        {"{\"dataset\":{\"format\":\"folder\",\"path\":\"a\",\"split\":\"x\"}}", "dataset.split:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\",\"split\":\"../x\"}}", "dataset.split:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\",\"classes\":[1,1]},\"labels\":[\"a\","
         "\"b\"]}",
         "dataset.classes:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\",\"classes\":[]}}", "dataset.classes:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\",\"classes\":[-1]}}", "dataset.classes:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\",\"extra\":1}}", "dataset.extra:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\",\"classes\":[1,2]}}",
         "dataset.classes: needs labels"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"epochs\":0}", "epochs:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"epochs\":1.5}", "epochs:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"epochs\":\"2\"}", "epochs:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"epochs\":1001}", "epochs:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"batch_size\":1}", "batch_size:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"learning_rate\":0}", "learning_rate:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"learning_rate\":true}",
         "learning_rate:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"momentum\":1}", "momentum:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"weight_decay\":-0.1}",
         "weight_decay:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"schedule\":\"linear\"}", "schedule:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"freeze\":5}", "freeze:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"labels\":\"a\"}", "labels:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"labels\":[\"a\"]}", "labels:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"labels\":[\"a\",\"a\"]}", "labels:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"labels\":[1,2]}", "labels:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"labels\":[\"a\",\"\"]}", "labels:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\",\"classes\":[1,2]},\"labels\":[\"a\","
         "\"b\",\"c\"]}",
         "labels:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"validation_split\":0.95}",
         "validation_split:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"validation_split\":0,"
         "\"min_accuracy\":0.5}",
         "validation_split:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"min_accuracy\":-1}", "min_accuracy:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"gate\":\"better\"}", "gate: must be"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"gate\":1}", "gate: must be"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"validation_split\":0}",
         "validation_split: must be > 0 for gate \"parent\""},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"seed\":-1}", "seed:"},
        {"{\"dataset\":{\"format\":\"idx\",\"path\":\"a\"},\"epoch\":2}", "epoch: unknown field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct job_spec s;
        struct cnn_err err = {0};
        int rc = parse(cases[i][0], &s, &err);
        ck_assert_msg(rc == CNN_EINVAL, "%s: rc %d", cases[i][0], rc);
        ck_assert_msg(strncmp(err.msg, cases[i][1], strlen(cases[i][1])) == 0,
                      "%s: '%s' does not start with '%s'", cases[i][0], err.msg, cases[i][1]);
        ck_assert_ptr_null(s.labels);
        ck_assert_ptr_null(s.classes);
    }
}
END_TEST

START_TEST(test_spec_garbage_and_oversized_bodies)
{
    struct job_spec s;
    struct cnn_err err = {0};
    ck_assert_int_eq(parse("", &s, &err), CNN_EINVAL);
    ck_assert_int_eq(parse("{\"dataset\":", &s, &err), CNN_EINVAL);
    ck_assert_int_eq(parse("[1,2]", &s, &err), CNN_EINVAL);
    ck_assert_int_eq(parse("{\"a\":1,\"a\":2}", &s, &err), CNN_EINVAL); /* duplicate keys */
    ck_assert_int_eq(parse("{\"x\":[[[[[[[[[[[[1]]]]]]]]]]]}", &s, &err), CNN_ELIMIT);
    char *big = malloc(JOB_BODY_MAX + 2);
    memset(big, ' ', JOB_BODY_MAX + 1);
    big[JOB_BODY_MAX + 1] = '\0';
    ck_assert_int_eq(parse(big, &s, &err), CNN_ELIMIT);
    free(big);
}
END_TEST

Suite *job_spec_suite(void)
{
    Suite *s = suite_create("job_spec");
    TCase *tc = tcase_create("job_spec");
    tcase_add_test(tc, test_spec_defaults_from_a_minimal_body);
    tcase_add_test(tc, test_spec_every_field_and_json_round_trip);
    tcase_add_test(tc, test_spec_bad_fields_are_named);
    tcase_add_test(tc, test_spec_garbage_and_oversized_bodies);
    suite_add_tcase(s, tc);
    return s;
}
