/* Giving freed memory back (see memtrim.h).  glibc's defaults raise the mmap threshold to
 * the largest block freed so far (up to 32 MiB) and the trim threshold to twice that; the
 * soak showed where that leads: after the first fine-tune job the trainer's 11 MB buffer
 * came from the job thread's arena, whose free top no malloc_trim gives back (it madvises
 * the free chunks inside an arena, and trims only the main arena's top; a thread arena's top
 * is trimmed by free(), when it frees a block >= 64 KiB and the top is over the trim
 * threshold), and RSS stepped between 20.6 and 24.2 MB with the jobs.
 * DESIGN: `fixed` is written by main before any thread of ours starts; mu (owned here)
 * guards n_open, the count of bulk frees under way, so the first one lowers the trim
 * threshold and the last one restores it. */
#include "memtrim.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int fixed; /* main set the thresholds, so memtrim_begin may move the trim threshold */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int n_open;

int memtrim_setup(void)
{
    const char *t = getenv("GLIBC_TUNABLES");
    if ((t && strstr(t, "glibc.malloc.")) || getenv("MALLOC_MMAP_THRESHOLD_") ||
        getenv("MALLOC_TRIM_THRESHOLD_"))
        return 0;
    fixed = mallopt(M_MMAP_THRESHOLD, MEMTRIM_MMAP_THRESHOLD) == 1 &&
            mallopt(M_TRIM_THRESHOLD, MEMTRIM_TRIM_THRESHOLD) == 1;
    return fixed;
}

void memtrim_all(void)
{
    malloc_trim(0);
}

void memtrim_begin(void)
{
    if (!fixed)
        return;
    pthread_mutex_lock(&mu);
    if (n_open++ == 0)
        mallopt(M_TRIM_THRESHOLD, 0);
    pthread_mutex_unlock(&mu);
}

void memtrim_end(void)
{
    if (!fixed)
        return;
    pthread_mutex_lock(&mu);
    if (--n_open == 0)
        mallopt(M_TRIM_THRESHOLD, MEMTRIM_TRIM_THRESHOLD);
    pthread_mutex_unlock(&mu);
}

void memtrim_thread(void)
{
    memtrim_all();
    memtrim_begin(); /* one block >= 64 KiB from this thread's arena, freed */
    void *volatile p = malloc(64 << 10);
    free(p);
    memtrim_end();
}
