/* Suite workers: a team round runs every part exactly once and returns only when all are
 * done, whoever runs them -- with rounds far apart the helpers are asleep when a round
 * starts and the caller, done with part 0 at once, takes their parts; a helper that wakes
 * late must then take nothing, not even in the next round (its fn and ctx are stale). */
#include "workers.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

enum { THREADS = 3, ROUNDS = 400 };

/* One round's context: on the caller's stack, dead once cnn_workers_run returns. */
struct round {
    atomic_int runs[THREADS]; /* times each part ran */
    atomic_int busy[THREADS]; /* 1 while part i runs */
    atomic_int *stale;        /* parts that ran after their round was closed */
    atomic_int *by_caller;    /* parts other than 0 the caller ran */
    atomic_int closed;
    pthread_t caller;
};

static void part_work(void *arg, int part, int parts)
{
    struct round *r = arg;
    ck_assert_int_eq(parts, THREADS);
    if (atomic_load(&r->closed))
        atomic_fetch_add(r->stale, 1);
    ck_assert_msg(atomic_exchange(&r->busy[part], 1) == 0, "part %d runs twice at once", part);
    atomic_fetch_add(&r->runs[part], 1);
    if (part != 0 && pthread_equal(pthread_self(), r->caller))
        atomic_fetch_add(r->by_caller, 1);
    atomic_store(&r->busy[part], 0);
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

START_TEST(test_every_part_runs_once_whoever_runs_it)
{
    struct cnn_err err = {0};
    struct cnn_workers *w = cnn_workers_create(THREADS, &err);
    ck_assert_msg(w != NULL, "%s", err.msg);
    ck_assert_int_eq(cnn_workers_count(w), THREADS);
    atomic_int stale, by_caller;
    atomic_init(&stale, 0);
    atomic_init(&by_caller, 0);
    int stolen_rounds = 0;
    for (int k = 0; k < ROUNDS; k++) {
        if (k % 20 == 0)
            sleep_us(3000); /* longer than the helpers spin: they sleep on the condvar */
        struct round r = {.stale = &stale, .by_caller = &by_caller, .caller = pthread_self()};
        for (int i = 0; i < THREADS; i++) {
            atomic_init(&r.runs[i], 0);
            atomic_init(&r.busy[i], 0);
        }
        atomic_init(&r.closed, 0);
        const int before = atomic_load(&by_caller);
        cnn_workers_run(w, part_work, &r);
        atomic_store(&r.closed, 1);
        for (int i = 0; i < THREADS; i++)
            ck_assert_msg(atomic_load(&r.runs[i]) == 1, "round %d: part %d ran %d times", k, i,
                          atomic_load(&r.runs[i]));
        stolen_rounds += atomic_load(&by_caller) > before;
        /* give a late helper the chance to (wrongly) run this round's part now */
        if (k % 20 == 0)
            sleep_us(200);
    }
    cnn_workers_destroy(w);
    printf("workers: %d rounds of %d parts, %d rounds with parts taken by the caller, %d stale\n",
           ROUNDS, THREADS, stolen_rounds, atomic_load(&stale));
    ck_assert_int_eq(atomic_load(&stale), 0);
    /* after each 3 ms pause the helpers wake on a futex while the caller's part 0 is empty */
    ck_assert_msg(stolen_rounds > 0, "the caller never ran a helper's part");
}
END_TEST

static void count_work(void *arg, int part, int parts)
{
    ck_assert_int_eq(part, 0);
    ck_assert_int_eq(parts, 1);
    (*(int *)arg)++;
}

/* A NULL team and a team of 1 run part 0 of 1 in the caller; sizes outside 1..256 fail. */
START_TEST(test_no_team_runs_one_part_in_the_caller)
{
    struct cnn_err err = {0};
    struct cnn_workers *one = cnn_workers_create(1, &err);
    ck_assert_msg(one != NULL, "%s", err.msg);
    ck_assert_int_eq(cnn_workers_count(NULL), 1);
    ck_assert_int_eq(cnn_workers_count(one), 1);
    int runs = 0;
    cnn_workers_run(NULL, count_work, &runs);
    cnn_workers_run(one, count_work, &runs);
    ck_assert_int_eq(runs, 2);
    ck_assert_ptr_null(cnn_workers_create(0, &err));
    ck_assert_ptr_null(cnn_workers_create(257, &err));
    cnn_workers_destroy(one);
}
END_TEST

Suite *workers_suite(void)
{
    Suite *s = suite_create("workers");
    TCase *tc = tcase_create("rounds");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_part_runs_once_whoever_runs_it);
    tcase_add_test(tc, test_no_team_runs_one_part_in_the_caller);
    suite_add_tcase(s, tc);
    return s;
}
