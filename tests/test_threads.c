/* Models trained on separate threads, each with its own tape, give the same
 * bits as the same runs one after the other: the library keeps no shared
 * mutable state (the allocator hooks are only read). scripts/test.sh also
 * runs this scenario under ThreadSanitizer through tests/tsan_threads.c. */
#include <criterion/criterion.h>

#include "threads_scenario.h"

Test(threads, concurrent_training_is_bit_identical_to_sequential)
{
    char why[512] = "";
    cr_assert_eq(threads_scenario(TAPEGRAD_SOURCE_DIR "/examples/iris_mlp.json", why, sizeof why), 0, "%s", why);
}
