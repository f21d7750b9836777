/* tg_lbfgs_minimize on objectives whose minimisers are known by hand:
 * Rosenbrock's (all ones), a separable quadratic with an L1 term (soft
 * thresholding, with exact zeros), and the ways a run ends: max_iter, NaN, a
 * failing callback, bad options. Also: no allocation per iteration, and the
 * same bits from run to run. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Extended Rosenbrock: sum over pairs of 100 (w2k+1 - w2k^2)^2 + (1 - w2k)^2; minimum 0 at all ones. */
static int rosenbrock(int64_t n, const double *w, double *f, double *g, void *ctx)
{
    (void)ctx;
    *f = 0;
    for (int64_t k = 0; k + 1 < n; k += 2) {
        double a = w[k + 1] - w[k] * w[k], b = 1 - w[k];
        *f += 100 * a * a + b * b;
        g[k] = -400 * w[k] * a - 2 * b;
        g[k + 1] = 200 * a;
    }
    return 0;
}

Test(lbfgs, rosenbrock_reaches_all_ones)
{
    double w[10];
    for (int k = 0; k < 10; k++)
        w[k] = k % 2 ? 1.0 : -1.2; /* the classic start */
    tg_lbfgs_opts o = TG_LBFGS_OPTS_DEFAULT;
    o.tolerance_grad = 1e-9;
    tg_lbfgs_result r;
    cr_assert_eq(tg_lbfgs_minimize(10, w, rosenbrock, NULL, &o, &r), 0, "%s", tg_last_error());
    cr_expect_eq(r.status, TG_LBFGS_CONVERGED_GRAD, "%s", tg_lbfgs_status_text(r.status));
    cr_expect_leq(r.grad_norm, 1e-9);
    cr_expect_leq(r.objective, 1e-18);
    for (int k = 0; k < 10; k++)
        cr_expect(close_enough(w[k], 1.0, 1e-9), "w[%d] = %.17g", k, w[k]);
    cr_expect_lt(r.iterations, 200);
}

/* f = sum_j a_j (w_j - c_j)^2 / 2; with l1 * sum |w_j| the minimiser is
 * sign(c_j) max(|c_j| - l1 / a_j, 0) (soft thresholding). */
typedef struct {
    double a[6], c[6];
    int calls, nan_after;
    int fail_after;
} quadratic;

static int quadratic_fg(int64_t n, const double *w, double *f, double *g, void *ctx)
{
    quadratic *q = ctx;
    if (q->fail_after && q->calls >= q->fail_after)
        return -1;
    q->calls++;
    *f = 0;
    for (int64_t j = 0; j < n; j++) {
        double d = w[j] - q->c[j];
        *f += 0.5 * q->a[j] * d * d;
        g[j] = q->a[j] * d;
    }
    if (q->nan_after && q->calls > q->nan_after)
        *f = NAN;
    return 0;
}

static quadratic example(void)
{
    return (quadratic){ .a = { 1, 2, 4, 0.5, 3, 1 }, .c = { 3, -0.2, 0.1, -2, 0.3, -0.45 } };
}

Test(lbfgs, owlqn_soft_thresholds_with_exact_zeros)
{
    quadratic q = example();
    double w[6] = { 0 };
    unsigned char mask[6] = { 1, 1, 1, 1, 1, 0 }; /* the last coordinate is free, like a bias */
    tg_lbfgs_opts o = TG_LBFGS_OPTS_DEFAULT;
    o.l1 = 0.5;
    o.l1_mask = mask;
    o.tolerance_grad = 1e-12;
    tg_lbfgs_result r;
    cr_assert_eq(tg_lbfgs_minimize(6, w, quadratic_fg, &q, &o, &r), 0, "%s", tg_last_error());
    double objective = 0;
    for (int j = 0; j < 6; j++) {
        double expect = j == 5 ? q.c[j] : copysign(fmax(fabs(q.c[j]) - o.l1 / q.a[j], 0.0), q.c[j]);
        if (expect == 0)
            cr_expect_eq(w[j], 0.0, "w[%d] = %.17g should be exactly 0", j, w[j]);
        else
            cr_expect(close_enough(w[j], expect, 1e-9), "w[%d] = %.17g, expected %.17g", j, w[j], expect);
        objective += 0.5 * q.a[j] * (expect - q.c[j]) * (expect - q.c[j]) + (j < 5 ? o.l1 * fabs(expect) : 0);
    }
    cr_expect(close_enough(r.objective, objective, 1e-12), "%.17g vs %.17g", r.objective, objective);
}

Test(lbfgs, stops_at_max_iter_with_a_warning_status)
{
    double w[10] = { -1.2, 1, -1.2, 1, -1.2, 1, -1.2, 1, -1.2, 1 };
    tg_lbfgs_opts o = TG_LBFGS_OPTS_DEFAULT;
    o.max_iter = 3;
    tg_lbfgs_result r;
    cr_assert_eq(tg_lbfgs_minimize(10, w, rosenbrock, NULL, &o, &r), 0);
    cr_expect_eq(r.status, TG_LBFGS_MAX_ITER);
    cr_expect_eq(r.iterations, 3);
}

Test(lbfgs, nan_stops_and_keeps_the_last_good_point)
{
    quadratic q = example();
    q.nan_after = 3;
    double w[6] = { 0 };
    tg_lbfgs_result r;
    cr_assert_eq(tg_lbfgs_minimize(6, w, quadratic_fg, &q, NULL, &r), -1);
    cr_expect_eq(r.status, TG_LBFGS_NOT_FINITE, "%s", tg_lbfgs_status_text(r.status));
    cr_expect(strstr(tg_last_error(), "NaN") != NULL, "%s", tg_last_error());
    cr_expect(isfinite(r.objective));
    double f = 0;
    for (int j = 0; j < 6; j++) {
        cr_expect(isfinite(w[j]));
        f += 0.5 * q.a[j] * (w[j] - q.c[j]) * (w[j] - q.c[j]);
    }
    cr_expect(close_enough(f, r.objective, 1e-15), "the weights are those of the reported objective");
}

Test(lbfgs, failing_callback_is_an_error)
{
    quadratic q = example();
    q.fail_after = 2;
    double w[6] = { 0 };
    tg_lbfgs_result r;
    cr_assert_eq(tg_lbfgs_minimize(6, w, quadratic_fg, &q, NULL, &r), -1);
    cr_expect_eq(r.status, TG_LBFGS_CALLBACK_FAILED);
}

Test(lbfgs, refuses_bad_options)
{
    double w[2] = { 0 };
    tg_lbfgs_opts o = TG_LBFGS_OPTS_DEFAULT;
    o.history_size = 0;
    cr_expect_eq(tg_lbfgs_minimize(2, w, rosenbrock, NULL, &o, NULL), -1);
    cr_expect(strstr(tg_last_error(), "history_size") != NULL, "%s", tg_last_error());
    o = TG_LBFGS_OPTS_DEFAULT;
    o.l1 = -1;
    cr_expect_eq(tg_lbfgs_minimize(2, w, rosenbrock, NULL, &o, NULL), -1);
    cr_expect_eq(tg_lbfgs_minimize(0, w, rosenbrock, NULL, NULL, NULL), -1);
    cr_expect_eq(tg_lbfgs_minimize(2, w, NULL, NULL, NULL, NULL), -1);
}

static long allocations;
static void *counting_malloc(size_t n)
{
    allocations++;
    return malloc(n);
}
static void *counting_realloc(void *p, size_t n)
{
    allocations++;
    return realloc(p, n);
}

static long allocations_for(int max_iter)
{
    double w[10] = { -1.2, 1, -1.2, 1, -1.2, 1, -1.2, 1, -1.2, 1 };
    tg_lbfgs_opts o = TG_LBFGS_OPTS_DEFAULT;
    o.max_iter = max_iter;
    allocations = 0;
    tg_set_allocator(counting_malloc, counting_realloc, free);
    int status = tg_lbfgs_minimize(10, w, rosenbrock, NULL, &o, NULL);
    tg_set_allocator(NULL, NULL, NULL);
    cr_assert_eq(status, 0);
    return allocations;
}

Test(lbfgs, allocates_nothing_per_iteration)
{
    long few = allocations_for(2), many = allocations_for(30);
    cr_expect_eq(few, many, "%ld allocations for 2 iterations, %ld for 30", few, many);
}

Test(lbfgs, same_bits_every_run)
{
    double a[10], b[10];
    for (int k = 0; k < 10; k++)
        a[k] = b[k] = k % 2 ? 1.0 : -1.2;
    cr_assert_eq(tg_lbfgs_minimize(10, a, rosenbrock, NULL, NULL, NULL), 0);
    cr_assert_eq(tg_lbfgs_minimize(10, b, rosenbrock, NULL, NULL, NULL), 0);
    cr_expect_eq(memcmp(a, b, sizeof a), 0);
}

/* ---- continuing a stopped run from the solver's state (src/solve/lbfgs.h: training checkpoints) ---- */

#include "solve/lbfgs.h"

static int stop_at(int iteration, double objective, double grad_norm, void *ctx)
{
    (void)objective, (void)grad_norm;
    return iteration == *(int *)ctx;
}

/* Rosenbrock with an L1 term (OWL-QN) on 10 variables, history 3 so the ring wraps: stopped after
 * iteration `at` and continued on a copy of the state (as a checkpoint would restore it), it ends with
 * the bits, report and iteration count of the run that never stopped. */
static void expect_continued_run_exact(double l1, int at)
{
    tg_lbfgs_opts o = TG_LBFGS_OPTS_DEFAULT;
    o.history_size = 3;
    o.l1 = l1;
    o.tolerance_change = 1e-12;
    double whole[10], part[10];
    for (int k = 0; k < 10; k++)
        whole[k] = part[k] = k % 2 ? 1.0 : -1.2;
    tg_lbfgs_result a, b;
    cr_assert_eq(tg_lbfgs_minimize(10, whole, rosenbrock, NULL, &o, &a), 0, "%s", tg_last_error());
    cr_assert_gt(a.iterations, at, "the run ends after %d iterations", a.iterations);
    tg_lbfgs_state st, copy;
    cr_assert_eq(tg_lbfgs_state_init(&st, 10, 3), 0);
    cr_assert_eq(tg_lbfgs_state_init(&copy, 10, 3), 0);
    tg_lbfgs_opts stopping = o;
    stopping.progress = stop_at;
    cr_assert_eq(tg_lbfgs_run(10, part, rosenbrock, &at, &stopping, &st, &b), 0);
    cr_assert_eq(b.status, TG_LBFGS_STOPPED);
    cr_assert_eq(st.iterations, at);
    /* what a checkpoint restores: the buffers and scalars, into another state */
    double *s = copy.s, *y = copy.y, *rho = copy.rho, *g = copy.g;
    memcpy(s, st.s, sizeof(double) * 30);
    memcpy(y, st.y, sizeof(double) * 30);
    memcpy(rho, st.rho, sizeof(double) * 3);
    memcpy(g, st.g, sizeof(double) * 10);
    copy = st;
    copy.s = s, copy.y = y, copy.rho = rho, copy.g = g;
    tg_lbfgs_state_free(&st);
    cr_assert_eq(tg_lbfgs_run(10, part, rosenbrock, NULL, &o, &copy, &b), 0, "%s", tg_last_error());
    tg_lbfgs_state_free(&copy);
    cr_expect_eq(memcmp(whole, part, sizeof whole), 0, "l1 %g, stopped at %d: other weights", l1, at);
    cr_expect_eq(a.status, b.status, "%s against %s", tg_lbfgs_status_text(a.status), tg_lbfgs_status_text(b.status));
    cr_expect_eq(a.iterations, b.iterations);
    cr_expect_eq(a.evaluations, b.evaluations);
    cr_expect_eq(memcmp(&a.objective, &b.objective, sizeof a.objective), 0);
}

Test(lbfgs, a_run_continued_from_its_state_ends_with_the_same_bits)
{
    for (int at = 1; at <= 25; at += 4) {
        expect_continued_run_exact(0, at);
        expect_continued_run_exact(0.05, at);
    }
}

Test(lbfgs, a_state_of_another_size_is_refused)
{
    double w[4] = { 0 };
    tg_lbfgs_state st;
    cr_assert_eq(tg_lbfgs_state_init(&st, 4, 2), 0);
    tg_lbfgs_opts o = TG_LBFGS_OPTS_DEFAULT; /* history 10 */
    cr_expect_eq(tg_lbfgs_run(4, w, rosenbrock, NULL, &o, &st, NULL), -1);
    cr_expect(strstr(tg_last_error(), "history_size 10") != NULL, "%s", tg_last_error());
    tg_lbfgs_state_free(&st);
}
