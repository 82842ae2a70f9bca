/* How cnnd gives freed memory back to the system (glibc malloc; docs/server.md, "Memory").
 * The calls are for the moments memory is freed in bulk (a model version freed, a fine-tune
 * job ended), never per request.  DESIGN note in memtrim.c. */
#ifndef MEMTRIM_H
#define MEMTRIM_H

/* blocks from this size on get their own mapping; an arena's free top over this is trimmed */
#define MEMTRIM_MMAP_THRESHOLD (1 << 20)
#define MEMTRIM_TRIM_THRESHOLD (4 << 20)

/* Fixed malloc thresholds instead of glibc's sliding ones, unless the environment sets
 * glibc's (GLIBC_TUNABLES glibc.malloc.*, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_).
 * Returns 1 when set.  Call once, first thing in main. */
int memtrim_setup(void);
/* After a bulk free anywhere: the free pages between live blocks back (malloc_trim). */
void memtrim_all(void);
/* Around a bulk free (a model version's memory): while open, every block >= 64 KiB freed
 * also trims the free top of the arena it came from, whichever thread allocated it.  (Other
 * threads freeing big blocks meanwhile trim their arenas too: harmless, once.)  No-ops
 * unless memtrim_setup set the thresholds. */
void memtrim_begin(void);
void memtrim_end(void);
/* After a bulk free on the calling thread (a job thread's trainer): memtrim_all, and the
 * free top of this thread's arena back too, which malloc_trim leaves. */
void memtrim_thread(void);

#endif
