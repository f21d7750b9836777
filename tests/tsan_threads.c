/* The concurrent-training scenario as a plain program, for ThreadSanitizer
 * (Criterion's own runtime cannot start under TSan). */
#include <stdio.h>

#include "threads_scenario.h"

int main(void)
{
    char why[512] = "";
    int failed = threads_scenario(TAPEGRAD_SOURCE_DIR "/examples/iris_mlp.json", why, sizeof why) != 0;
    if (failed)
        fprintf(stderr, "threads: %s\n", why);
    printf("threads: %d passed, %d failed\n", !failed, failed);
    return failed;
}
