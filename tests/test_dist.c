/* The processes a run spans, as one process sees them (src/dist/dist.c): a
 * program not started by mpirun, in any build, is rank 0 of 1 and every call is
 * a no-op, so training runs exactly as it always has. The runs across ranks
 * are tested by scripts/test-mpi.sh under mpirun. */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "dist/dist.h"

Test(dist, one_process_is_rank_0_of_1_and_every_call_is_a_no_op)
{
    unsetenv("OMPI_COMM_WORLD_SIZE"); /* not started by mpirun, whatever started the suite */
    unsetenv("PMI_SIZE");
    unsetenv("PMIX_RANK");
    cr_assert_eq(tg_dist_init(), 0, "%s", tg_last_error());
    cr_assert_eq(tg_dist_rank(), 0);
    cr_assert_eq(tg_dist_size(), 1);
    cr_assert(!tg_dist_parallel());
    int64_t first = -1, end = -1;
    tg_dist_share(10, &first, &end); /* the whole range */
    cr_assert_eq(first, 0);
    cr_assert_eq(end, 10);
    double sums[3] = { 1.5, -2.25, 1e300 };
    cr_assert_eq(tg_dist_sum(sums, 3, TG_F64), 0);
    cr_assert_eq(sums[0], 1.5);
    cr_assert_eq(sums[1], -2.25);
    cr_assert_eq(sums[2], 1e300);
    float one = 3.0f;
    cr_assert_eq(tg_dist_sum(&one, 1, TG_F32), 0);
    cr_assert_eq(one, 3.0f);
    cr_assert_eq(tg_dist_broadcast(sums, sizeof sums, 0), 0);
    cr_assert_eq(sums[1], -2.25);
    tg_dist_abort(1); /* returns: there is no job to end */
    tg_dist_finalize();
    cr_assert_eq(tg_dist_size(), 1);
}
