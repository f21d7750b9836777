/* libFuzzer target for the JSON config loader: tg_config_parse on the text, tg_config_load on the file. */
#include "fuzz_target.h"

FUZZ_TARGET(fuzz_config)
