/* The libFuzzer entry points of one target: FUZZ_TARGET(fuzz_csv) runs each
 * input through fuzz_csv (fuzz_inputs.c) in a scratch folder made once. */
#ifndef TAPEGRAD_FUZZ_TARGET_H
#define TAPEGRAD_FUZZ_TARGET_H

#include "fuzz_inputs.h"

#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TARGET(run)                                                                                               \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                                                                  \
    {                                                                                                                  \
        (void)argc;                                                                                                    \
        (void)argv;                                                                                                    \
        fuzz_scratch_open();                                                                                           \
        atexit(fuzz_scratch_close);                                                                                    \
        return 0;                                                                                                      \
    }                                                                                                                  \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                                                       \
    {                                                                                                                  \
        run(data, size);                                                                                               \
        return 0;                                                                                                      \
    }

#endif
