/* memtrim suite: the malloc policy cnnd sets (server/memtrim.c), read back from glibc's own
 * counters (mallinfo2): blocks from 1 MiB on get their own mapping; an environment that sets
 * glibc's thresholds is left alone; a thread that frees ~900 KB of small blocks (under the
 * trim threshold, as a trainer's last buffers) and calls memtrim_thread leaves its arena no
 * bigger than before, and so does a thread that frees another thread's blocks between
 * memtrim_begin and memtrim_end, while without those calls glibc keeps the free top (what
 * the soak saw).
 * Each test runs in its own forked process (check's default).  glibc's malloc only: under a
 * sanitizer, malloc is the sanitizer's and the suite has no tests. */
#include "memtrim.h"

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)

#define BLOCKS 9
#define BLOCK (100 << 10) /* 9 x 100 KiB: under both thresholds */

static void clear_env(void)
{
    unsetenv("GLIBC_TUNABLES");
    unsetenv("MALLOC_MMAP_THRESHOLD_");
    unsetenv("MALLOC_TRIM_THRESHOLD_");
}

START_TEST(big_blocks_mapped)
{
    clear_env();
    ck_assert_int_eq(memtrim_setup(), 1);
    size_t maps = mallinfo2().hblks;
    void *volatile small = malloc(MEMTRIM_MMAP_THRESHOLD / 2);
    ck_assert_uint_eq(mallinfo2().hblks, maps);
    void *volatile big = malloc(MEMTRIM_MMAP_THRESHOLD);
    ck_assert_uint_eq(mallinfo2().hblks, maps + 1);
    free(big);
    ck_assert_uint_eq(mallinfo2().hblks, maps); /* unmapped at once */
    /* glibc would now raise its threshold to 1 MiB; fixed, it stays */
    big = malloc(MEMTRIM_MMAP_THRESHOLD);
    ck_assert_uint_eq(mallinfo2().hblks, maps + 1);
    free(big);
    free(small);
}
END_TEST

START_TEST(environment_wins)
{
    clear_env();
    setenv("MALLOC_TRIM_THRESHOLD_", "4194304", 1);
    ck_assert_int_eq(memtrim_setup(), 0);
    clear_env();
    setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=4194304", 1);
    ck_assert_int_eq(memtrim_setup(), 0);
    clear_env();
    setenv("GLIBC_TUNABLES", "glibc.rtld.optional_static_tls=512", 1); /* not malloc's */
    ck_assert_int_eq(memtrim_setup(), 1);
}
END_TEST

/* A worker that allocates and touches BLOCKS blocks; with keep it hands them over in
 * w->b, else it frees them newest first (they merge into its arena's free top) and then
 * calls memtrim_thread when w->trim. */
struct work {
    int keep, trim;
    char *b[BLOCKS];
};

static void *worker(void *arg)
{
    struct work *w = arg;
    for (int i = 0; i < BLOCKS; i++) {
        w->b[i] = malloc(BLOCK);
        if (w->b[i])
            memset(w->b[i], i + 1, BLOCK);
    }
    if (w->keep)
        return NULL;
    for (int i = BLOCKS - 1; i >= 0; i--)
        free(w->b[i]);
    if (w->trim)
        memtrim_thread();
    return NULL;
}

/* Bytes the arenas hold from the system (not counting mapped blocks) after one worker; with
 * keep, this thread frees the worker's blocks afterwards, between memtrim_begin and
 * memtrim_end when trim (as the registry's janitor frees a model a job thread loaded). */
static long arena_growth(int keep, int trim)
{
    clear_env();
    ck_assert_int_eq(memtrim_setup(), 1);
    size_t before = mallinfo2().arena;
    struct work w = {.keep = keep, .trim = trim};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, worker, &w), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    if (keep) {
        if (trim)
            memtrim_begin();
        for (int i = BLOCKS - 1; i >= 0; i--)
            free(w.b[i]);
        if (trim)
            memtrim_end();
    }
    return (long)mallinfo2().arena - (long)before;
}

/* given back: a new arena's first heap and the kept pad (M_TOP_PAD, 128 KiB) at most;
 * kept: the blocks' 900 KiB less a pad an earlier worker's arena may have left */
#define SMALL (400 << 10)
#define KEPT (700 << 10)

START_TEST(thread_top_given_back)
{
    long grew = arena_growth(0, 1);
    ck_assert_msg(grew < SMALL, "arenas grew by %ld bytes", grew);
}
END_TEST

START_TEST(thread_top_kept_without)
{
    long grew = arena_growth(0, 0);
    ck_assert_msg(grew >= KEPT, "arenas grew by %ld bytes", grew);
}
END_TEST

START_TEST(other_thread_free_given_back)
{
    long grew = arena_growth(1, 1);
    ck_assert_msg(grew < SMALL, "arenas grew by %ld bytes", grew);
    /* the threshold is back: a later free keeps a top under it */
    ck_assert_msg(arena_growth(0, 0) >= KEPT, "trim threshold not restored");
}
END_TEST

START_TEST(other_thread_free_kept_without)
{
    long grew = arena_growth(1, 0);
    ck_assert_msg(grew >= KEPT, "arenas grew by %ld bytes", grew);
}
END_TEST

#endif

Suite *memtrim_suite(void)
{
    Suite *s = suite_create("memtrim");
    TCase *tc = tcase_create("memtrim");
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    tcase_add_test(tc, big_blocks_mapped);
    tcase_add_test(tc, environment_wins);
    tcase_add_test(tc, thread_top_given_back);
    tcase_add_test(tc, thread_top_kept_without);
    tcase_add_test(tc, other_thread_free_given_back);
    tcase_add_test(tc, other_thread_free_kept_without);
#endif
    suite_add_tcase(s, tc);
    return s;
}
