/* Byte-buffer helpers shared by the HTTP-side server suites (check_http.c, check_infer.c):
 * a growing buffer with a NUL after its bytes, little-endian u32 in and out, deeply nested
 * JSON, and a seeded generator for random inputs.  Test code only. */
#ifndef TEST_BYTES_H
#define TEST_BYTES_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char *p;
    size_t n, cap;
};

/* Appends n bytes of d to b (which stays NUL-terminated); a failed realloc fails the test. */
void put(struct buf *b, const void *d, size_t n);
void puts_(struct buf *b, const char *s);
void put_le32(struct buf *b, uint32_t v);
uint32_t get_le32(const unsigned char *p);

/* depth '[' then depth ']' (malloc'd, NUL-terminated): JSON nested depth deep. */
char *nested(int depth);

/* A 64-bit LCG: set rng_state to seed it, rng() for the next 32 bits. */
extern uint64_t rng_state;
uint32_t rng(void);

#endif
