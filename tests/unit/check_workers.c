/* Suite workers: a team round runs every part exactly once and returns only when all are
 * done, whoever runs them -- with rounds far apart the helpers are asleep when a round
 * starts and the caller, done with part 0 at once, takes their parts; a helper that wakes
 * late must then take nothing, not even in the next round (its fn and ctx are stale).
 * And a helper put on the caller's CPU runs its part on another one. */
#define _GNU_SOURCE /* sched_getcpu, cpu_set_t, gettid */
#include "workers.h"

#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

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

/* A round whose part 0 waits until part 1 has started: part 1 can then only be the helper's,
 * and it notes its thread id. */
struct handshake {
    atomic_int started;
    pid_t helper;
};

static void handshake_work(void *arg, int part, int parts)
{
    struct handshake *h = arg;
    ck_assert_int_eq(parts, 2);
    if (part == 1) {
        h->helper = gettid();
        atomic_store(&h->started, 1);
        return;
    }
    for (int i = 0; i < 100000 && !atomic_load(&h->started); i++) /* up to ~10 s */
        sleep_us(100);
    ck_assert_msg(atomic_load(&h->started), "the helper never started part 1");
}

struct placed {
    pid_t caller, ran_by; /* part 1 */
    int cpu;              /* the CPU part 1 ran on */
};

static void busy_ms(int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

/* Part 0 keeps the caller busy long enough for the helper to take part 1, which notes where
 * it ran. */
static void placed_work(void *arg, int part, int parts)
{
    struct placed *p = arg;
    ck_assert_int_eq(parts, 2);
    if (part == 1) {
        p->ran_by = gettid();
        p->cpu = sched_getcpu();
    }
    busy_ms(part == 0 ? 40 : 5);
}

static void pin_to(pid_t tid, int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ck_assert_int_eq(sched_setaffinity(tid, sizeof one, &one), 0);
}

/* The caller pinned to one CPU and its team's helper pinned to the same one (as the
 * scheduler may leave them): the round moves the helper off it, then off the other CPU
 * when the caller moves there. */
START_TEST(test_a_helper_runs_off_the_callers_cpu)
{
    cpu_set_t mine;
    ck_assert_int_eq(sched_getaffinity(0, sizeof mine, &mine), 0);
    int cpus[2], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &mine))
            cpus[n++] = c;
    ck_assert_int_eq(n, 2); /* the suite adds this test only then */
    struct cnn_err err = {0};
    struct cnn_workers *w = cnn_workers_create(2, &err);
    ck_assert_msg(w != NULL, "%s", err.msg);
    struct handshake hs = {.helper = 0};
    atomic_init(&hs.started, 0);
    pin_to(0, cpus[0]); /* the masks now leave out cpus[0]: the pin below bypasses them */
    cnn_workers_run(w, handshake_work, &hs);
    const pid_t helper = hs.helper;
    ck_assert(helper != 0 && helper != gettid());
    pin_to(helper, cpus[1]);
    for (int k = 1; k >= 0; k--) { /* the caller on the helper's CPU, then on the other */
        const int cpu = cpus[k];
        pin_to(0, cpu);
        struct placed p = {.caller = gettid(), .cpu = -1};
        cnn_workers_run(w, placed_work, &p);
        printf("workers: caller on CPU %d, part 1 ran on CPU %d by the %s\n", cpu, p.cpu,
               p.ran_by == p.caller ? "caller" : "helper");
        ck_assert_msg(p.ran_by == helper, "part 1 ran by thread %d, not the helper %d", p.ran_by,
                      helper);
        ck_assert_msg(p.cpu != cpu, "the helper ran part 1 on the caller's CPU %d", cpu);
    }
    ck_assert_int_eq(sched_setaffinity(0, sizeof mine, &mine), 0);
    cnn_workers_destroy(w);
}
END_TEST

Suite *workers_suite(void)
{
    Suite *s = suite_create("workers");
    TCase *tc = tcase_create("rounds");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_part_runs_once_whoever_runs_it);
    tcase_add_test(tc, test_no_team_runs_one_part_in_the_caller);
    cpu_set_t mine;
    if (sched_getaffinity(0, sizeof mine, &mine) == 0 && CPU_COUNT(&mine) >= 2)
        tcase_add_test(tc, test_a_helper_runs_off_the_callers_cpu);
    else
        printf("workers: one CPU: the placement test is not run\n");
    suite_add_tcase(s, tc);
    return s;
}
