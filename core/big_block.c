/* Large blocks on huge pages (big_block.h).  From CNN_BIG_BLOCK_MIN a block is its own
 * anonymous mapping, so its pages are first touched after the huge-page hint: a block that
 * malloc served from memory an earlier phase had touched (the ONNX importer's buffers, say)
 * kept that memory's 4 KB pages. */
#include "big_block.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

/* bytes rounded up to whole huge pages; 0 past SIZE_MAX. */
static size_t rounded_len(size_t bytes)
{
    return bytes > SIZE_MAX - 2 * HUGE_PAGE ? 0 : (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

void *cnn_big_block(size_t bytes)
{
    if (bytes < CNN_BIG_BLOCK_MIN)
        return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    const size_t len = rounded_len(bytes);
    if (!len)
        return NULL;
    /* a huge page more than asked, then the ends cut so the block starts on a boundary */
    unsigned char *map =
        mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    unsigned char *p = (unsigned char *)(((uintptr_t)map + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
    if (p > map)
        munmap(map, (size_t)(p - map));
    munmap(p + len, (size_t)(map + HUGE_PAGE - p)); /* p - map < HUGE_PAGE: never empty */
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE); /* a hint: failure leaves plain pages */
#endif
    return p;
}

void cnn_big_block_free(void *p, size_t bytes)
{
    if (!p)
        return;
    if (bytes < CNN_BIG_BLOCK_MIN)
        free(p);
    else
        munmap(p, rounded_len(bytes));
}
