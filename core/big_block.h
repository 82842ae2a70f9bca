/* Large blocks that a forward pass streams through every time -- a compiled model's packed
 * weights and Winograd U (tens of MB), a session's activations and scratch -- on 2 MB pages
 * where the kernel allows them (transparent huge pages in "madvise" mode, as on Debian 12):
 * with 4 KB pages a batch-1 ResNet-50 pass walks the page tables for every 4 KB of its ~100
 * MB of weights.  ResNet-50 .onnx batch 1, one core of the AVX-512 Xeon: median 47.8-48.2 ->
 * 45.6-47.9 ms (three alternated runs); batch 8 and teams of 2 within noise. */
#ifndef CNN_BIG_BLOCK_H
#define CNN_BIG_BLOCK_H

#include <stddef.h>

/* bytes (> 0) of memory aligned to 64 bytes, released with cnn_big_block_free(p, bytes)
 * (the same bytes); blocks from CNN_BIG_BLOCK_MIN bytes are fresh mappings that start on a
 * 2 MB boundary, rounded up to whole 2 MB pages and asked for huge pages (a hint: without
 * them they are plain pages).  NULL when out of memory.  (Through malloc's aligned_alloc a
 * block could reuse heap pages already touched as 4 KB pages: `cnn bench` on ResNet-18
 * `.onnx`, whose importer had freed its buffers there, ran its 10 MB session block on them;
 * its huge pages 78 -> 88 MB.  The pass's speed did not move beyond noise.) */
#define CNN_BIG_BLOCK_MIN ((size_t)4 << 20)
void *cnn_big_block(size_t bytes);
void cnn_big_block_free(void *p, size_t bytes);

#endif
