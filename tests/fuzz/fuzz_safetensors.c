/* libFuzzer target for the checkpoint loader: tg_model_load; a model it accepts
 * runs forward, saves, and loads back unchanged. */
#include "fuzz_target.h"

FUZZ_TARGET(fuzz_safetensors)
