/* TCase `fsroot` of suite `dataset`: opens confined to a root folder (core/fsroot.h), both
 * through openat2 and through the component walk used where openat2 is missing: a path
 * inside opens, every symlink (leading out or staying inside), '..' escapes and absolute
 * paths are refused; and a dataset opened under a root cannot be redirected by a folder
 * swapped for a symlink after a check, which a plain open by path would follow. */
#include "dataset.h"
#include "fsroot.h"
#include "test_util.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[64];

static void put_file(const char *rel, const void *b, size_t n)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    write_all(p, b, n);
}

static void make_dir(const char *rel)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    ck_assert_int_eq(mkdir(p, 0755), 0);
}

static void make_link(const char *target, const char *rel)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    ck_assert_int_eq(symlink(target, p), 0);
}

/* An IDX pair of n 2x2 images with labels i % 2 in base/rel (train split). */
static void put_idx(const char *rel, int n)
{
    unsigned char img[16 + 64] = {0, 0, 8, 3, 0, 0, 0, (unsigned char)n, 0, 0, 0, 2, 0, 0, 0, 2};
    unsigned char lab[8 + 16] = {0, 0, 8, 1, 0, 0, 0, (unsigned char)n};
    for (int i = 0; i < n; i++) {
        memset(img + 16 + 4 * i, 10 * i, 4);
        lab[8 + i] = (unsigned char)(i % 2);
    }
    char p[128];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", rel);
    put_file(p, img, 16 + 4 * (size_t)n);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", rel);
    put_file(p, lab, 8 + (size_t)n);
}

/* base/root/{sets/fm/file, inlink -> sets, out -> ../secret, sets/up -> ..}
 * base/secret/file; returns an open descriptor of base/root. */
static int make_tree(void)
{
    make_tmpdir(base, sizeof base);
    make_dir("root");
    make_dir("root/sets");
    make_dir("root/sets/fm");
    put_file("root/sets/fm/file", "inside", 6);
    make_dir("secret");
    put_file("secret/file", "secret", 6);
    make_link("sets", "root/inlink");
    make_link("../secret", "root/out");
    make_link("..", "root/sets/up");
    char p[128];
    snprintf(p, sizeof p, "%s/root", base);
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    return fd;
}

/* Opens path under dirfd: walk 0 through openat2 (cnn_fsroot_open), 1 the walk. */
static int open_under(int walk, int dirfd, const char *path, struct cnn_err *err)
{
    struct cnn_fsroot root = {dirfd};
    return walk ? cnn_fsroot_open_walk(dirfd, path, O_RDONLY, err)
                : cnn_fsroot_open(&root, path, O_RDONLY, err);
}

START_TEST(test_fsroot_refuses_symlinks_escapes_and_absolute_paths)
{
    int dirfd = make_tree();
    struct cnn_err err = {0};
    int fd = open_under(_i, dirfd, "sets/fm/file", &err);
    ck_assert_msg(fd >= 0, "%s", err.msg);
    char buf[16] = {0};
    ck_assert_int_eq(read(fd, buf, sizeof buf), 6);
    ck_assert_str_eq(buf, "inside");
    close(fd);
    fd = open_under(_i, dirfd, "sets//fm/file", &err); /* repeated slashes are one */
    ck_assert_int_ge(fd, 0);
    close(fd);
    static const struct {
        const char *path;
        int code;
        const char *why;
    } refused[] = {
        {"inlink/fm/file", CNN_EINVAL, "symlink"}, /* a symlink staying inside */
        {"inlink", CNN_EINVAL, "symlink"},         /* the symlink itself */
        {"out/file", CNN_EINVAL, "symlink"},       /* a symlink leading out */
        {"out", CNN_EINVAL, "symlink"},
        {"sets/up/secret/file", CNN_EINVAL, "symlink"}, /* a symlink to ".." */
        {"../secret/file", CNN_EINVAL, "leaves"},       /* '..' out of the root */
        {"sets/../../secret/file", CNN_EINVAL, "leaves"},
        {"/etc/passwd", CNN_EINVAL, "leaves"}, /* absolute */
        {"sets/missing", CNN_ENOENT, "missing"},
        {"sets/fm/file/x", CNN_ENOENT, "file/x"}, /* a file used as a folder */
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        memset(&err, 0, sizeof err);
        fd = open_under(_i, dirfd, refused[k].path, &err);
        ck_assert_msg(fd == refused[k].code, "%s (%s): got %d, %s", refused[k].path,
                      _i ? "walk" : "openat2", fd, err.msg);
        ck_assert_msg(strstr(err.msg, refused[k].why) && strstr(err.msg, refused[k].path),
                      "%s: '%s' lacks '%s'", refused[k].path, err.msg, refused[k].why);
    }
    /* no root: a path is opened as given, symlinks followed (the cnn tool) */
    char p[160];
    snprintf(p, sizeof p, "%s/root/inlink/fm/file", base);
    fd = cnn_fsroot_open(NULL, p, O_RDONLY, &err);
    ck_assert_msg(fd >= 0, "%s", err.msg);
    close(fd);
    close(dirfd);
    rm_tree(base);
}
END_TEST

/* The race the old check-then-open left open: a dataset folder checked, then swapped for a
 * symlink to a dataset outside.  Opened by path, the outside data would be read; opened
 * under the root, the swap is refused. */
START_TEST(test_dataset_under_a_root_refuses_a_folder_swapped_for_a_symlink)
{
    int dirfd = make_tree();
    put_idx("root/sets/fm", 4);
    make_dir("secret/fm");
    put_idx("secret/fm", 6);
    struct cnn_fsroot root = {dirfd};
    const struct cnn_preproc pp = {.c = 1, .h = 2, .w = 2, .std = {1, 1, 1}};
    struct cnn_dataset *d = NULL;
    struct cnn_err err = {0};
    ck_assert_msg(cnn_dataset_open_at(&root, "sets/fm", CNN_DATASET_IDX, "train", &pp, &d, &err) ==
                      0,
                  "%s", err.msg);
    ck_assert_int_eq(cnn_dataset_count(d), 4);
    cnn_dataset_destroy(d);
    /* the swap */
    char from[160], to[160];
    snprintf(from, sizeof from, "%s/root/sets/fm", base);
    snprintf(to, sizeof to, "%s/root/sets/fm.old", base);
    ck_assert_int_eq(rename(from, to), 0);
    make_link("../../secret/fm", "root/sets/fm");
    d = NULL;
    ck_assert_int_eq(cnn_dataset_open(from, CNN_DATASET_IDX, "train", &pp, &d, &err), 0);
    ck_assert_int_eq(cnn_dataset_count(d), 6); /* by path: the outside dataset */
    cnn_dataset_destroy(d);
    d = NULL;
    ck_assert_int_eq(cnn_dataset_open_at(&root, "sets/fm", CNN_DATASET_IDX, "train", &pp, &d, &err),
                     CNN_EINVAL);
    ck_assert_ptr_null(d);
    ck_assert_msg(strstr(err.msg, "symlink"), "%s", err.msg);
    /* a folder dataset whose class folder is a symlink (even inside) is refused too */
    make_dir("root/cls");
    make_dir("root/cls/a");
    make_link("../sets/fm.old", "root/cls/b");
    ck_assert_int_eq(cnn_dataset_open_at(&root, "cls", CNN_DATASET_FOLDER, NULL, &pp, &d, &err),
                     CNN_EINVAL);
    ck_assert_msg(strstr(err.msg, "cls/b") && strstr(err.msg, "symlink"), "%s", err.msg);
    close(dirfd);
    rm_tree(base);
}
END_TEST

TCase *fsroot_tcase(void)
{
    TCase *tc = tcase_create("fsroot");
    tcase_add_loop_test(tc, test_fsroot_refuses_symlinks_escapes_and_absolute_paths, 0, 2);
    tcase_add_test(tc, test_dataset_under_a_root_refuses_a_folder_swapped_for_a_symlink);
    return tc;
}
