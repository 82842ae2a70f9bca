/* The entry points every fuzz target defines (libFuzzer's names), shared by the libFuzzer
 * build (`make fuzz`, clang -fsanitize=fuzzer) and by replay.c, the plain main() that
 * `make test` links instead to run the committed corpora and crash inputs through them. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* One input; returns 0.  Any failure is a crash (ASan, UBSan, abort). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional one-time setup (the HTTP target starts its daemon here). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
