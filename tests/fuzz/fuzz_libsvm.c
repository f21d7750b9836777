/* libFuzzer target for the libsvm loader: tg_libsvm_load with four option sets. */
#include "fuzz_target.h"

FUZZ_TARGET(fuzz_libsvm)
