/* Durable-write suite (core/durable.h): content written, an existing file replaced whole,
 * failures leave the old file and no temp behind, concurrent writers never mix, no-replace
 * commits, and stale-temp cleanup that removes only old temp files. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "durable.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char g_dir[256]; /* a fresh folder per test (fixture) */

static void setup(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/cnn_durable_XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void teardown(void)
{
    chmod(g_dir, 0700);
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* g_dir/name (4 rotating buffers). */
static const char *at(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", g_dir, name);
    return p;
}

/* Entries of folder dir (all, or only durable temp names). */
static int entries(const char *dir, int temps_only)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (temps_only ? cnn_durable_is_temp(e->d_name)
                       : strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* The whole file; *n gets its size.  NULL when it cannot be read. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    buf[len] = '\0';
    *n = len;
    return buf;
}

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void check_content(const char *path, const char *want)
{
    size_t n;
    char *got = slurp(path, &n);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(test_write_creates_the_file_with_its_content_and_mode)
{
    const char *path = at("pin");
    struct cnn_err err = {0};
    mode_t old_mask = umask(077); /* the mode is exact, whatever the umask */
    ck_assert_int_eq(cnn_durable_write(path, "42\n", 3, 0644, 0, &err), 0);
    umask(old_mask);
    check_content(path, "42\n");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0644);
    ck_assert_int_eq(entries(g_dir, 0), 1);
    ck_assert_int_eq(cnn_durable_write(path, "", 0, 0600, 0, &err), 0); /* empty is fine */
    check_content(path, "");
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
}
END_TEST

START_TEST(test_write_replaces_an_existing_file_as_a_new_inode)
{
    const char *path = at("model.cnn");
    put_file(path, "old content");
    int old_fd = open(path, O_RDONLY);
    ck_assert_int_ge(old_fd, 0);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_write(path, "new", 3, 0644, 0, &err), 0);
    check_content(path, "new");
    /* a reader holding the old file still sees all of it: it was replaced, not rewritten */
    char buf[32] = {0};
    ck_assert_int_eq(read(old_fd, buf, sizeof buf - 1), 11);
    ck_assert_str_eq(buf, "old content");
    close(old_fd);
    ck_assert_int_eq(entries(g_dir, 0), 1);
}
END_TEST

START_TEST(test_noreplace_keeps_an_existing_target)
{
    const char *path = at("token");
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_write(path, "first", 5, 0600, CNN_DURABLE_NOREPLACE, &err), 0);
    check_content(path, "first");
    ck_assert_int_eq(cnn_durable_write(path, "second", 6, 0600, CNN_DURABLE_NOREPLACE, &err),
                     CNN_EBUSY);
    check_content(path, "first");
    ck_assert_int_eq(entries(g_dir, 0), 1);
}
END_TEST

START_TEST(test_commit_tries_further_names_after_a_taken_one)
{
    put_file(at("000001.png"), "taken");
    int dfd = open(g_dir, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(dfd, 0);
    struct cnn_durable d;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_begin_at(&d, dfd, "upload", 0644, &err), 0);
    ck_assert_int_eq(entries(g_dir, 1), 1);
    ck_assert_int_eq(cnn_durable_put(&d, "img", 3, &err), 0);
    ck_assert_int_eq(cnn_durable_commit(&d, "000001.png", CNN_DURABLE_NOREPLACE, &err), CNN_EBUSY);
    ck_assert_ptr_nonnull(strstr(err.msg, "000001.png"));
    ck_assert_int_eq(cnn_durable_commit(&d, "000002.png", CNN_DURABLE_NOREPLACE, &err), 0);
    close(dfd);
    check_content(at("000001.png"), "taken");
    check_content(at("000002.png"), "img");
    ck_assert_int_eq(entries(g_dir, 0), 2);
    ck_assert_int_eq(entries(g_dir, 1), 0);
}
END_TEST

START_TEST(test_abort_removes_the_temp_file)
{
    struct cnn_durable d;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_begin(&d, at("x"), 0644, &err), 0);
    ck_assert_int_eq(write(d.fd, "abc", 3), 3);
    ck_assert_int_eq(entries(g_dir, 1), 1);
    cnn_durable_abort(&d);
    cnn_durable_abort(&d); /* a second abort is a no-op */
    ck_assert_int_eq(entries(g_dir, 0), 0);
}
END_TEST

START_TEST(test_folder_at_the_target_fails_and_leaves_no_temp)
{
    const char *path = at("live_version");
    ck_assert_int_eq(mkdir(path, 0755), 0);
    put_file(at("live_version/keep"), "kept");
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_write(path, "7\n", 2, 0644, 0, &err), CNN_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "live_version"));
    ck_assert_ptr_nonnull(strstr(err.msg, "rename"));
    ck_assert_ptr_null(strstr(err.msg, g_dir)); /* the file is named, not its folder */
    ck_assert_int_eq(entries(g_dir, 0), 1);
    ck_assert_int_eq(entries(path, 0), 1);
    check_content(at("live_version/keep"), "kept");
}
END_TEST

static int fill_then_fail(int fd, void *ctx)
{
    (void)ctx;
    return write(fd, "partial", 7) == 7 ? ENOSPC : errno;
}

START_TEST(test_failed_stream_keeps_the_old_file)
{
    const char *path = at("model.cnn");
    put_file(path, "complete old model");
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_stream(path, 0644, fill_then_fail, NULL, &err), CNN_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "write failed"));
    check_content(path, "complete old model");
    ck_assert_int_eq(entries(g_dir, 0), 1);
}
END_TEST

START_TEST(test_missing_folder_is_enoent)
{
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_write(at("nowhere/pin"), "1", 1, 0644, 0, &err), CNN_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "temp file"));
    ck_assert_int_eq(cnn_durable_write(at(""), "1", 1, 0644, 0, &err), CNN_EINVAL);
    ck_assert_int_eq(entries(g_dir, 0), 0);
}
END_TEST

START_TEST(test_read_only_folder_fails_and_keeps_the_old_file)
{
    const char *path = at("pin");
    put_file(path, "3\n");
    ck_assert_int_eq(chmod(g_dir, 0555), 0);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_write(path, "4\n", 2, 0644, 0, &err), CNN_EIO);
    ck_assert_int_eq(cnn_durable_remove(path, &err), CNN_EIO);
    check_content(path, "3\n");
    ck_assert_int_eq(entries(g_dir, 0), 1);
}
END_TEST

START_TEST(test_remove_deletes_and_accepts_an_absent_file)
{
    const char *path = at("live_version");
    put_file(path, "2\n");
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_remove(path, &err), 0);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(cnn_durable_remove(path, &err), 0);
    ck_assert_int_eq(cnn_durable_sync_dir(g_dir, &err), 0);
    ck_assert_int_eq(cnn_durable_sync_dir(at("none"), &err), CNN_ENOENT);
}
END_TEST

/* ---- two writers --------------------------------------------------------------------- */

#define RACE_BYTES (256 * 1024)
#define RACE_ROUNDS 40

struct racer {
    const char *path;
    char fill;
    int failures;
};

static void *race_writer(void *arg)
{
    struct racer *w = arg;
    char *buf = malloc(RACE_BYTES);
    memset(buf, w->fill, RACE_BYTES);
    for (int i = 0; i < RACE_ROUNDS; i++) {
        struct cnn_err err = {0};
        if (cnn_durable_write(w->path, buf, RACE_BYTES, 0644, 0, &err) != 0)
            w->failures++;
    }
    free(buf);
    return NULL;
}

/* 1 when the file is RACE_BYTES of one writer's byte. */
static int whole_file(const char *path)
{
    size_t n;
    char *buf = slurp(path, &n);
    if (!buf)
        return 0;
    int ok = n == RACE_BYTES && (buf[0] == 'A' || buf[0] == 'B');
    for (size_t i = 1; ok && i < n; i++)
        ok = buf[i] == buf[0];
    free(buf);
    return ok;
}

START_TEST(test_two_threads_writing_one_path_never_mix)
{
    char path[512];
    snprintf(path, sizeof path, "%s", at("shared.bin"));
    struct racer a = {path, 'A', 0}, b = {path, 'B', 0};
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, race_writer, &a), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, race_writer, &b), 0);
    int mixed = 0;
    for (int i = 0; i < 200; i++)
        if (access(path, F_OK) == 0) /* else: before the first commit */
            mixed += !whole_file(path);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_int_eq(a.failures + b.failures, 0);
    ck_assert_int_eq(mixed, 0);
    ck_assert(whole_file(path));
    ck_assert_int_eq(entries(g_dir, 0), 1); /* no temp left */
}
END_TEST

/* ---- stale temps --------------------------------------------------------------------- */

/* Creates g_dir/name (a file, or a folder) last modified `age_s` seconds ago. */
static void make_aged(const char *name, int folder, int age_s)
{
    const char *p = at(name);
    if (folder)
        ck_assert_int_eq(mkdir(p, 0755), 0);
    else
        put_file(p, "x");
    /* time(NULL), as cnn_durable_clean() reads the clock: it can lag CLOCK_REALTIME by a tick,
     * and a file stamped from the finer clock just past a second's start was then "in the
     * future" and kept (the age-0 check failed once in a clean-clone run) */
    struct timespec ts[2] = {{.tv_sec = time(NULL) - age_s}};
    ts[1] = ts[0];
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

START_TEST(test_temp_names_are_recognized_and_nothing_else)
{
    ck_assert(cnn_durable_is_temp(".model.cnn.tmp-123-0123456789abcdef"));
    ck_assert(cnn_durable_is_temp(".live_version.tmp-1-ffffffffffffffff"));
    ck_assert(cnn_durable_is_temp(".a.tmp-b.tmp-77-0000000000000000"));
    ck_assert(!cnn_durable_is_temp("model.cnn.tmp-123-0123456789abcdef")); /* no dot */
    ck_assert(!cnn_durable_is_temp(".tmp-123-0123456789abcdef"));          /* no base */
    ck_assert(!cnn_durable_is_temp(".model.cnn.tmp-123456"));              /* mkstemp style */
    ck_assert(!cnn_durable_is_temp(".model.cnn.tmp--0123456789abcdef"));
    ck_assert(!cnn_durable_is_temp(".model.cnn.tmp-1-0123456789abcde"));   /* 15 hex */
    ck_assert(!cnn_durable_is_temp(".model.cnn.tmp-1-0123456789abcdef0")); /* 17 hex */
    ck_assert(!cnn_durable_is_temp(".model.cnn.tmp-1-0123456789ABCDEF"));
    ck_assert(!cnn_durable_is_temp(".publish-job1-12-0123456789abcdef"));
    ck_assert(!cnn_durable_is_temp("live_version"));
    ck_assert(!cnn_durable_is_temp("."));
    ck_assert(!cnn_durable_is_temp(".."));
    /* the names begin makes are recognized */
    struct cnn_durable d;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_begin(&d, at("model.cnn"), 0644, &err), 0);
    ck_assert(cnn_durable_is_temp(d.tmp));
    cnn_durable_abort(&d);
}
END_TEST

START_TEST(test_clean_removes_old_temps_only)
{
    const int old = CNN_DURABLE_STALE_S + 60;
    make_aged(".live_version.tmp-4242-0123456789abcdef", 0, old); /* the one to remove */
    make_aged(".model.cnn.tmp-4243-fedcba9876543210", 0, 0);      /* a writer at work */
    const char *keep[] = {"live_version", "model.cnn", ".hidden", ".model.cnn.tmp-123456",
                          "x.tmp-1-0123456789abcdef"};
    for (int i = 0; i < 5; i++)
        make_aged(keep[i], 0, old);
    make_aged(".old.tmp-1-0123456789abcdef", 1, old); /* a folder is not a temp file */

    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_clean(g_dir, CNN_DURABLE_STALE_S, &err), 1);
    ck_assert_int_ne(access(at(".live_version.tmp-4242-0123456789abcdef"), F_OK), 0);
    ck_assert_int_eq(access(at(".model.cnn.tmp-4243-fedcba9876543210"), F_OK), 0);
    ck_assert_int_eq(entries(g_dir, 0), 7);
    ck_assert_int_eq(cnn_durable_clean(g_dir, 0, &err), 1); /* age 0: the fresh one too */
    ck_assert_int_eq(entries(g_dir, 0), 6);
    ck_assert_int_eq(cnn_durable_clean(at("missing"), 0, &err), CNN_ENOENT);
}
END_TEST

START_TEST(test_unique_parts_differ)
{
    char a[48], b[48];
    cnn_durable_unique(a, sizeof a);
    cnn_durable_unique(b, sizeof b);
    ck_assert_str_ne(a, b);
    char pid[16];
    snprintf(pid, sizeof pid, "%d-", (int)getpid());
    ck_assert_int_eq(strncmp(a, pid, strlen(pid)), 0);
}
END_TEST

Suite *durable_suite(void)
{
    Suite *s = suite_create("durable");
    TCase *tc = tcase_create("write");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_write_creates_the_file_with_its_content_and_mode);
    tcase_add_test(tc, test_write_replaces_an_existing_file_as_a_new_inode);
    tcase_add_test(tc, test_noreplace_keeps_an_existing_target);
    tcase_add_test(tc, test_commit_tries_further_names_after_a_taken_one);
    tcase_add_test(tc, test_abort_removes_the_temp_file);
    tcase_add_test(tc, test_remove_deletes_and_accepts_an_absent_file);
    tcase_add_test(tc, test_unique_parts_differ);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_folder_at_the_target_fails_and_leaves_no_temp);
    tcase_add_test(tc, test_failed_stream_keeps_the_old_file);
    tcase_add_test(tc, test_missing_folder_is_enoent);
    if (geteuid() != 0) /* root ignores folder permissions: not run (not counted) as root;
                         * the folder-at-the-target and failed-stream tests cover cleanup */
        tcase_add_test(tc, test_read_only_folder_fails_and_keeps_the_old_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_two_threads_writing_one_path_never_mix);
    suite_add_tcase(s, tc);

    tc = tcase_create("stale");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_temp_names_are_recognized_and_nothing_else);
    tcase_add_test(tc, test_clean_removes_old_temps_only);
    suite_add_tcase(s, tc);
    return s;
}
