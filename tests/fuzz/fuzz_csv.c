/* libFuzzer target for the CSV loader: tg_csv_load with six option sets. */
#include "fuzz_target.h"

FUZZ_TARGET(fuzz_csv)
