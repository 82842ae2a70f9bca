/* Large blocks on huge pages (big_block.h). */
#include "big_block.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

void *cnn_big_block(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < CNN_BIG_BLOCK_MIN || bytes > SIZE_MAX - huge)
        return aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    const size_t rounded = (bytes + huge - 1) & ~(huge - 1);
    void *p = aligned_alloc(huge, rounded);
#ifdef MADV_HUGEPAGE
    if (p)
        (void)madvise(p, rounded, MADV_HUGEPAGE); /* a hint: failure leaves plain pages */
#endif
    return p;
}
