/* libFuzzer target for the IDX loader: an images and a labels file cut from one input, raw and gzipped. */
#include "fuzz_target.h"

FUZZ_TARGET(fuzz_idx)
