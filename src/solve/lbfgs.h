/* The L-BFGS solver's state between iterations, for a caller that saves a run
 * and continues it (src/train/: training checkpoints of optimizer.type lbfgs).
 * tg_lbfgs_minimize is tg_lbfgs_run on a fresh state. */
#ifndef TAPEGRAD_SOLVE_LBFGS_H
#define TAPEGRAD_SOLVE_LBFGS_H

#include "core/core.h"

/* Everything the next iteration reads besides w and the options: the history
 * ring (s, y, rho: slot newest holds the latest of the stored pairs, the older
 * ones before it, wrapping), the objective and gradient at w, the previous
 * iteration's objective (tolerance_change) and the counters. OWL-QN keeps
 * nothing else: its pseudo-gradient and orthant follow from w and g. The
 * line search starts each iteration afresh (t = 1, or 1 / |d| without pairs),
 * so no step size carries over. The solver works in these buffers, so after
 * it returns (or inside the progress callback) they hold the run as it stands. */
typedef struct {
    int64_t n;
    int m; /* history_size */
    int started; /* f, F and g hold the values at w: a continued run does not evaluate w again */
    int iterations, evaluations;
    int stored, newest;
    double f, F, F_before; /* the smooth objective, with the L1 term, and F of the iteration before (NaN at 0) */
    double *s, *y; /* [m * n] each */
    double *rho; /* [m] */
    double *g; /* [n] */
} tg_lbfgs_state;

/* A fresh state for n variables and history m (buffers zeroed). 0, or -1 with the error set. */
int tg_lbfgs_state_init(tg_lbfgs_state *st, int64_t n, int m);
void tg_lbfgs_state_free(tg_lbfgs_state *st);
/* tg_lbfgs_minimize from st: from its iteration on when st->started, else from the start. st's n and
 * m must match n and opts->history_size. */
int tg_lbfgs_run(int64_t n, double *w, tg_lbfgs_fn fg, void *ctx, const tg_lbfgs_opts *opts, tg_lbfgs_state *st,
                 tg_lbfgs_result *result);

#endif
