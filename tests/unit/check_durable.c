/* Durable-write suite (core/durable.h): content written, an existing file replaced whole,
 * failures leave the old file and no temp behind, concurrent writers never mix, no-replace
 * commits, and stale-temp cleanup that removes only old temp files. */
#include "durable.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void make_tmpdir(char *dir, size_t n)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, n, "%s/cnn_durable_XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static int count_temps(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += cnn_durable_is_temp(e->d_name);
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
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/pin", dir);
    struct cnn_err err = {0};
    mode_t old_mask = umask(077); /* the mode is exact, whatever the umask */
    ck_assert_int_eq(cnn_durable_write(path, "42\n", 3, 0644, 0, &err), 0);
    umask(old_mask);
    check_content(path, "42\n");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0644);
    ck_assert_int_eq(count_entries(dir), 1);
    ck_assert_int_eq(cnn_durable_write(path, "", 0, 0600, 0, &err), 0); /* empty is fine */
    check_content(path, "");
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    rm_tree(dir);
}
END_TEST

START_TEST(test_write_replaces_an_existing_file_as_a_new_inode)
{
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.cnn", dir);
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
    ck_assert_int_eq(count_entries(dir), 1);
    rm_tree(dir);
}
END_TEST

START_TEST(test_noreplace_keeps_an_existing_target)
{
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/token", dir);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_write(path, "first", 5, 0600, CNN_DURABLE_NOREPLACE, &err), 0);
    check_content(path, "first");
    ck_assert_int_eq(cnn_durable_write(path, "second", 6, 0600, CNN_DURABLE_NOREPLACE, &err),
                     CNN_EBUSY);
    check_content(path, "first");
    ck_assert_int_eq(count_entries(dir), 1);
    rm_tree(dir);
}
END_TEST

START_TEST(test_commit_tries_further_names_after_a_taken_one)
{
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/000001.png", dir);
    put_file(path, "taken");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(dfd, 0);
    struct cnn_durable d;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_begin_at(&d, dfd, "upload", 0644, &err), 0);
    ck_assert_int_eq(count_temps(dir), 1);
    ck_assert_int_eq(cnn_durable_put(&d, "img", 3, &err), 0);
    ck_assert_int_eq(cnn_durable_commit(&d, "000001.png", CNN_DURABLE_NOREPLACE, &err), CNN_EBUSY);
    ck_assert_ptr_nonnull(strstr(err.msg, "000001.png"));
    ck_assert_int_eq(cnn_durable_commit(&d, "000002.png", CNN_DURABLE_NOREPLACE, &err), 0);
    close(dfd);
    check_content(path, "taken");
    snprintf(path, sizeof path, "%s/000002.png", dir);
    check_content(path, "img");
    ck_assert_int_eq(count_entries(dir), 2);
    ck_assert_int_eq(count_temps(dir), 0);
    rm_tree(dir);
}
END_TEST

START_TEST(test_abort_removes_the_temp_file)
{
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x", dir);
    struct cnn_durable d;
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_begin(&d, path, 0644, &err), 0);
    ck_assert_int_eq(write(d.fd, "abc", 3), 3);
    ck_assert_int_eq(count_temps(dir), 1);
    cnn_durable_abort(&d);
    cnn_durable_abort(&d); /* a second abort is a no-op */
    ck_assert_int_eq(count_entries(dir), 0);
    rm_tree(dir);
}
END_TEST

START_TEST(test_folder_at_the_target_fails_and_leaves_no_temp)
{
    char dir[256], path[320], inner[400];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/live_version", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(inner, sizeof inner, "%s/keep", path);
    put_file(inner, "kept");
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_write(path, "7\n", 2, 0644, 0, &err), CNN_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "live_version"));
    ck_assert_ptr_nonnull(strstr(err.msg, "rename"));
    ck_assert_ptr_null(strstr(err.msg, dir)); /* the file is named, not its folder */
    ck_assert_int_eq(count_entries(dir), 1);
    ck_assert_int_eq(count_entries(path), 1);
    check_content(inner, "kept");
    rm_tree(dir);
}
END_TEST

static int fill_then_fail(int fd, void *ctx)
{
    (void)ctx;
    return write(fd, "partial", 7) == 7 ? ENOSPC : errno;
}

START_TEST(test_failed_stream_keeps_the_old_file)
{
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.cnn", dir);
    put_file(path, "complete old model");
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_stream(path, 0644, fill_then_fail, NULL, &err), CNN_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "write failed"));
    check_content(path, "complete old model");
    ck_assert_int_eq(count_entries(dir), 1);
    rm_tree(dir);
}
END_TEST

START_TEST(test_missing_folder_is_enoent)
{
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/nowhere/pin", dir);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_write(path, "1", 1, 0644, 0, &err), CNN_ENOENT);
    ck_assert_ptr_nonnull(strstr(err.msg, "temp file"));
    snprintf(path, sizeof path, "%s/", dir);
    ck_assert_int_eq(cnn_durable_write(path, "1", 1, 0644, 0, &err), CNN_EINVAL);
    ck_assert_int_eq(count_entries(dir), 0);
    rm_tree(dir);
}
END_TEST

START_TEST(test_read_only_folder_fails_and_keeps_the_old_file)
{
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/pin", dir);
    put_file(path, "3\n");
    ck_assert_int_eq(chmod(dir, 0555), 0);
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_write(path, "4\n", 2, 0644, 0, &err), CNN_EIO);
    ck_assert_int_eq(cnn_durable_remove(path, &err), CNN_EIO);
    check_content(path, "3\n");
    ck_assert_int_eq(count_entries(dir), 1);
    rm_tree(dir);
}
END_TEST

START_TEST(test_remove_deletes_and_accepts_an_absent_file)
{
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/live_version", dir);
    put_file(path, "2\n");
    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_remove(path, &err), 0);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(cnn_durable_remove(path, &err), 0);
    ck_assert_int_eq(cnn_durable_sync_dir(dir, &err), 0);
    snprintf(path, sizeof path, "%s/none", dir);
    ck_assert_int_eq(cnn_durable_sync_dir(path, &err), CNN_ENOENT);
    rm_tree(dir);
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
    char dir[256], path[320];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/shared.bin", dir);
    struct racer a = {path, 'A', 0}, b = {path, 'B', 0};
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, race_writer, &a), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, race_writer, &b), 0);
    int reads = 0, mixed = 0;
    for (int i = 0; i < 200; i++) {
        if (access(path, F_OK) != 0)
            continue; /* before the first commit */
        reads++;
        mixed += !whole_file(path);
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ck_assert_int_eq(a.failures + b.failures, 0);
    ck_assert_int_eq(mixed, 0);
    ck_assert(whole_file(path));
    ck_assert_int_eq(count_entries(dir), 1); /* no temp left */
    (void)reads;
    rm_tree(dir);
}
END_TEST

/* ---- stale temps --------------------------------------------------------------------- */

static void age_file(const char *dir, const char *name, int seconds)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= seconds;
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
}
END_TEST

START_TEST(test_clean_removes_old_temps_only)
{
    char dir[256], p[512];
    make_tmpdir(dir, sizeof dir);
    const char *old_tmp = ".live_version.tmp-4242-0123456789abcdef";
    const char *fresh_tmp = ".model.cnn.tmp-4243-fedcba9876543210";
    const char *keep[] = {"live_version", "model.cnn", ".hidden", ".model.cnn.tmp-123456",
                          "x.tmp-1-0123456789abcdef"};
    snprintf(p, sizeof p, "%s/%s", dir, old_tmp);
    put_file(p, "half");
    age_file(dir, old_tmp, CNN_DURABLE_STALE_S + 60);
    snprintf(p, sizeof p, "%s/%s", dir, fresh_tmp);
    put_file(p, "being written");
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, keep[i]);
        put_file(p, "x");
        age_file(dir, keep[i], CNN_DURABLE_STALE_S + 60);
    }
    /* a folder with a temp's name is not a temp file */
    snprintf(p, sizeof p, "%s/.old.tmp-1-0123456789abcdef", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    age_file(dir, ".old.tmp-1-0123456789abcdef", CNN_DURABLE_STALE_S + 60);

    struct cnn_err err = {0};
    ck_assert_int_eq(cnn_durable_clean(dir, CNN_DURABLE_STALE_S, &err), 1);
    snprintf(p, sizeof p, "%s/%s", dir, old_tmp);
    ck_assert_int_ne(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/%s", dir, fresh_tmp);
    ck_assert_int_eq(access(p, F_OK), 0);
    ck_assert_int_eq(count_entries(dir), 7);
    ck_assert_int_eq(cnn_durable_clean(dir, 0, &err), 1); /* age 0: the fresh one too */
    ck_assert_int_eq(count_entries(dir), 6);
    snprintf(p, sizeof p, "%s/missing", dir);
    ck_assert_int_eq(cnn_durable_clean(p, 0, &err), CNN_ENOENT);
    rm_tree(dir);
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
    tcase_add_test(tc, test_write_creates_the_file_with_its_content_and_mode);
    tcase_add_test(tc, test_write_replaces_an_existing_file_as_a_new_inode);
    tcase_add_test(tc, test_noreplace_keeps_an_existing_target);
    tcase_add_test(tc, test_commit_tries_further_names_after_a_taken_one);
    tcase_add_test(tc, test_abort_removes_the_temp_file);
    tcase_add_test(tc, test_remove_deletes_and_accepts_an_absent_file);
    tcase_add_test(tc, test_unique_parts_differ);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_test(tc, test_folder_at_the_target_fails_and_leaves_no_temp);
    tcase_add_test(tc, test_failed_stream_keeps_the_old_file);
    tcase_add_test(tc, test_missing_folder_is_enoent);
    if (geteuid() != 0) /* root ignores folder permissions: not run (not counted) as root;
                         * the folder-at-the-target and failed-stream tests cover cleanup */
        tcase_add_test(tc, test_read_only_folder_fails_and_keeps_the_old_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_two_threads_writing_one_path_never_mix);
    suite_add_tcase(s, tc);

    tc = tcase_create("stale");
    tcase_add_test(tc, test_temp_names_are_recognized_and_nothing_else);
    tcase_add_test(tc, test_clean_removes_old_temps_only);
    suite_add_tcase(s, tc);
    return s;
}
