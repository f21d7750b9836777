/* Full-batch quasi-Newton minimisation of f(w) over a flat float64 vector:
 * L-BFGS (the two-loop recursion, Nocedal & Wright 7.4) with a strong-Wolfe
 * line search (N&W algorithms 3.5 and 3.6), and OWL-QN (Andrew & Gao 2007)
 * when an L1 term is added: the pseudo-gradient, the direction kept in its
 * orthant, and a backtracking search whose points are projected onto it, so
 * that coordinates reach exactly zero. Models never appear here: the caller's
 * callback returns f and its gradient. Every buffer is allocated once before
 * the first iteration. */
#include "solve/lbfgs.h"

#include <math.h>
#include <string.h>

#define ARMIJO 1e-4 /* c1: sufficient decrease */
#define CURVATURE 0.9 /* c2: strong Wolfe, as quasi-Newton methods use */
/* Near the optimum f's changes fall to its rounding: a step that keeps f within
 * this relative band and meets the curvature condition is accepted (Hager &
 * Zhang's approximate Wolfe test), so the gradient test, not rounding, ends the run. */
#define F_ROUNDING 1e-13

typedef struct {
    int64_t n;
    tg_lbfgs_fn fg;
    void *ctx;
    const tg_lbfgs_opts *o;
    int m, stored, newest; /* history: capacity, pairs held, slot of the newest */
    double *s, *y, *rho, *alpha; /* [m * n], [m * n], [m], [m] */
    double *x0, *g0, *d, *pg; /* the iteration's start point, its gradient, the direction, the pseudo-gradient */
    double *x, *g; /* the current point (the caller's w) and gradient */
    double f, F; /* smooth part, and with the L1 term */
    int evaluations;
    bool not_finite; /* a point of this line search had a NaN or Inf objective or gradient */
} solver;

/* Eight partial sums (maxima) in a fixed order, so that the loops vectorise: a single running sum paid an
 * add's latency per element, a twentieth of digits' whole run in the two-loop recursion alone. */
#define PARTS 8

static double dot(int64_t n, const double *a, const double *b)
{
    double part[PARTS] = { 0 }, tail = 0;
    int64_t i = 0;
    for (; i + PARTS <= n; i += PARTS)
        for (int k = 0; k < PARTS; k++)
            part[k] += a[i + k] * b[i + k];
    for (; i < n; i++)
        tail += a[i] * b[i];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7])) + tail;
}

/* max |a_i|, NaNs skipped (as fmax does) */
static double max_abs(int64_t n, const double *a)
{
    double part[PARTS] = { 0 }, m = 0;
    int64_t i = 0;
    for (; i + PARTS <= n; i += PARTS)
        for (int k = 0; k < PARTS; k++)
            part[k] = fabs(a[i + k]) > part[k] ? fabs(a[i + k]) : part[k];
    for (; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    for (int k = 0; k < PARTS; k++)
        m = part[k] > m ? part[k] : m;
    return m;
}

static bool penalized(const solver *sv, int64_t j) { return sv->o->l1 > 0 && (!sv->o->l1_mask || sv->o->l1_mask[j]); }

static double l1_term(const solver *sv, const double *x)
{
    if (!(sv->o->l1 > 0))
        return 0;
    double s = 0;
    for (int64_t j = 0; j < sv->n; j++)
        if (penalized(sv, j))
            s += fabs(x[j]);
    return sv->o->l1 * s;
}

/* f and g at x through the callback; F = f + the L1 term. 0, or the status that stops the run. */
static tg_lbfgs_status evaluate(solver *sv, const double *x, double *f, double *g, double *F)
{
    sv->evaluations++;
    if (sv->fg(sv->n, x, f, g, sv->ctx))
        return TG_LBFGS_CALLBACK_FAILED;
    *F = *f + l1_term(sv, x);
    if (!isfinite(*F))
        return TG_LBFGS_NOT_FINITE;
    for (int64_t j = 0; j < sv->n; j++)
        if (!isfinite(g[j]))
            return TG_LBFGS_NOT_FINITE;
    return TG_LBFGS_RUNNING;
}

/* The minimum-norm subgradient of F (Andrew & Gao's pseudo-gradient); g itself without L1. */
static void pseudo_gradient(const solver *sv, const double *x, const double *g, double *pg)
{
    double l1 = sv->o->l1;
    for (int64_t j = 0; j < sv->n; j++) {
        if (!penalized(sv, j))
            pg[j] = g[j];
        else if (x[j] > 0)
            pg[j] = g[j] + l1;
        else if (x[j] < 0)
            pg[j] = g[j] - l1;
        else if (g[j] + l1 < 0)
            pg[j] = g[j] + l1;
        else if (g[j] - l1 > 0)
            pg[j] = g[j] - l1;
        else
            pg[j] = 0;
    }
}

/* d = -H pg by the two-loop recursion over the stored pairs, H0 = (s'y / y'y) I. */
static void direction(solver *sv)
{
    int64_t n = sv->n;
    double *d = sv->d;
    for (int64_t j = 0; j < n; j++)
        d[j] = -sv->pg[j];
    int k = sv->newest;
    for (int i = 0; i < sv->stored; i++, k = (k + sv->m - 1) % sv->m) {
        sv->alpha[k] = sv->rho[k] * dot(n, sv->s + k * n, d);
        const double *yk = sv->y + k * n;
        for (int64_t j = 0; j < n; j++)
            d[j] -= sv->alpha[k] * yk[j];
    }
    if (sv->stored) {
        const double *yk = sv->y + sv->newest * n;
        double gamma = 1.0 / (sv->rho[sv->newest] * dot(n, yk, yk));
        for (int64_t j = 0; j < n; j++)
            d[j] *= gamma;
    }
    k = (sv->newest + sv->m - sv->stored + 1) % sv->m;
    for (int i = 0; i < sv->stored; i++, k = (k + 1) % sv->m) {
        double beta = sv->rho[k] * dot(n, sv->y + k * n, d);
        const double *sk = sv->s + k * n;
        for (int64_t j = 0; j < n; j++)
            d[j] += (sv->alpha[k] - beta) * sk[j];
    }
    if (sv->o->l1 > 0) /* OWL-QN: keep the direction in the orthant the pseudo-gradient points into */
        for (int64_t j = 0; j < n; j++)
            if (d[j] * sv->pg[j] >= 0)
                d[j] = 0;
}

/* x = x0 + t d (projected onto the orthant of x0, or of -pg where x0 is 0, under OWL-QN). */
static void step_to(solver *sv, double t)
{
    for (int64_t j = 0; j < sv->n; j++) {
        double v = sv->x0[j] + t * sv->d[j];
        if (penalized(sv, j)) {
            double orthant = sv->x0[j] != 0 ? sv->x0[j] : -sv->pg[j];
            if (v * orthant <= 0)
                v = 0;
        }
        sv->x[j] = v;
    }
}

/* A cubic's minimiser between a (value fa, slope da) and b, kept in the middle
 * 80% of the interval; the midpoint when the cubic has none there. */
static double cubic_min(double a, double fa, double da, double b, double fb, double db)
{
    double d1 = da + db - 3 * (fa - fb) / (a - b);
    double disc = d1 * d1 - da * db;
    double t = 0.5 * (a + b);
    if (disc >= 0) {
        double d2 = (b > a ? 1 : -1) * sqrt(disc);
        double c = b - (b - a) * ((db + d2 - d1) / (db - da + 2 * d2));
        if (isfinite(c))
            t = c;
    }
    double lo = fmin(a, b), hi = fmax(a, b), margin = 0.1 * (hi - lo);
    return fmin(fmax(t, lo + margin), hi - margin);
}

typedef struct {
    double t, F, slope; /* step, objective, directional derivative */
} trial;

static bool sufficient(const trial *p, const trial *at0)
{
    return p->F <= at0->F + ARMIJO * p->t * at0->slope || p->F <= at0->F + F_ROUNDING * fabs(at0->F);
}

/* Evaluates the point t; a non-finite objective reads as "too far" (F = +inf). */
static tg_lbfgs_status probe(solver *sv, double t, trial *p)
{
    step_to(sv, t);
    tg_lbfgs_status st = evaluate(sv, sv->x, &sv->f, sv->g, &sv->F);
    p->t = t;
    sv->not_finite |= st == TG_LBFGS_NOT_FINITE;
    p->F = st == TG_LBFGS_NOT_FINITE ? INFINITY : sv->F;
    p->slope = st == TG_LBFGS_NOT_FINITE ? NAN : dot(sv->n, sv->g, sv->d);
    return st == TG_LBFGS_NOT_FINITE ? TG_LBFGS_RUNNING : st;
}

/* Strong Wolfe: N&W 3.5 brackets a step, 3.6 zooms into the bracket [lo, hi]. */
static tg_lbfgs_status wolfe_search(solver *sv, double t, const trial *at0)
{
    trial prev = *at0, cur, lo, hi;
    int budget = sv->o->max_linesearch;
    tg_lbfgs_status st;
    for (;;) {
        if (budget-- <= 0)
            return TG_LBFGS_LINESEARCH_FAILED;
        if ((st = probe(sv, t, &cur)))
            return st;
        if (!sufficient(&cur, at0) || (prev.t > 0 && cur.F >= prev.F) || !isfinite(cur.F)) {
            lo = prev, hi = cur;
            break;
        }
        if (fabs(cur.slope) <= -CURVATURE * at0->slope)
            return TG_LBFGS_RUNNING;
        if (cur.slope >= 0) {
            lo = cur, hi = prev;
            break;
        }
        prev = cur;
        t *= 4;
    }
    for (;;) {
        if (budget-- <= 0 || fabs(hi.t - lo.t) <= 1e-16 * fmax(1, fabs(lo.t)))
            return TG_LBFGS_LINESEARCH_FAILED;
        double next = isfinite(hi.F) ? cubic_min(lo.t, lo.F, lo.slope, hi.t, hi.F, hi.slope) : 0.5 * (lo.t + hi.t);
        if ((st = probe(sv, next, &cur)))
            return st;
        if (!sufficient(&cur, at0) || cur.F >= lo.F || !isfinite(cur.F)) {
            hi = cur;
        } else {
            if (fabs(cur.slope) <= -CURVATURE * at0->slope)
                return TG_LBFGS_RUNNING;
            if (cur.slope * (hi.t - lo.t) >= 0)
                hi = lo;
            lo = cur;
        }
    }
}

/* OWL-QN's backtracking: halve t until F(x(t)) <= F0 + c1 pg'(x(t) - x0). */
static tg_lbfgs_status backtracking_search(solver *sv, double t, const trial *at0)
{
    for (int i = 0; i < sv->o->max_linesearch; i++, t *= 0.5) {
        trial cur;
        tg_lbfgs_status st = probe(sv, t, &cur);
        if (st)
            return st;
        double decrease = 0;
        for (int64_t j = 0; j < sv->n; j++)
            decrease += sv->pg[j] * (sv->x[j] - sv->x0[j]);
        if (cur.F <= at0->F + ARMIJO * decrease ||
            (isfinite(cur.F) && cur.F <= at0->F + F_ROUNDING * fabs(at0->F) && decrease < 0))
            return TG_LBFGS_RUNNING;
    }
    return TG_LBFGS_LINESEARCH_FAILED;
}

/* Stores s = x - x0, y = g - g0 when y's = curvature is positive (else the pair is skipped). */
static void remember(solver *sv)
{
    int64_t n = sv->n;
    int k = (sv->newest + 1) % sv->m;
    double *s = sv->s + k * n, *y = sv->y + k * n;
    for (int64_t j = 0; j < n; j++) {
        s[j] = sv->x[j] - sv->x0[j];
        y[j] = sv->g[j] - sv->g0[j];
    }
    double ys = dot(n, y, s);
    if (!(ys > 1e-300) || !(dot(n, y, y) > 0))
        return;
    sv->rho[k] = 1.0 / ys;
    sv->newest = k;
    if (sv->stored < sv->m)
        sv->stored++;
}

/* One iteration from (x, g, F): direction, line search, history. */
static tg_lbfgs_status iterate(solver *sv)
{
    int64_t n = sv->n;
    direction(sv);
    double slope = dot(n, sv->pg, sv->d);
    if (!(slope < 0)) { /* not a descent direction (rounding in H): restart from steepest descent */
        sv->stored = 0;
        direction(sv);
        slope = dot(n, sv->pg, sv->d);
        if (!(slope < 0))
            return TG_LBFGS_LINESEARCH_FAILED;
    }
    memcpy(sv->x0, sv->x, (size_t)n * sizeof *sv->x);
    memcpy(sv->g0, sv->g, (size_t)n * sizeof *sv->g);
    trial at0 = { 0, sv->F, slope };
    double f0 = sv->f;
    /* Without curvature pairs the direction is -pg: a first step of unit length. */
    double t = sv->stored ? 1.0 : fmin(1.0, 1.0 / sqrt(dot(n, sv->d, sv->d)));
    sv->not_finite = false;
    tg_lbfgs_status st = sv->o->l1 > 0 ? backtracking_search(sv, t, &at0) : wolfe_search(sv, t, &at0);
    if (st == TG_LBFGS_LINESEARCH_FAILED && sv->not_finite)
        st = TG_LBFGS_NOT_FINITE; /* the search failed because it met NaN or Inf: say so */
    else if (st == TG_LBFGS_LINESEARCH_FAILED && sv->stored && -slope * t <= F_ROUNDING * fabs(at0.F))
        st = TG_LBFGS_CONVERGED_ROUNDING; /* the step's predicted decrease is below F's rounding: as far as float64 goes
                                           */
    if (st) { /* back to the start point, which is the last good one (the best, when converged) */
        memcpy(sv->x, sv->x0, (size_t)n * sizeof *sv->x);
        memcpy(sv->g, sv->g0, (size_t)n * sizeof *sv->g);
        sv->f = f0;
        sv->F = at0.F;
        return st;
    }
    remember(sv);
    pseudo_gradient(sv, sv->x, sv->g, sv->pg);
    return TG_LBFGS_RUNNING;
}

static int check_opts(int64_t n, const double *w, tg_lbfgs_fn fg, const tg_lbfgs_opts *o)
{
    const char *why = NULL;
    if (n <= 0 || !w || !fg)
        why = "n must be > 0 and w and fg given";
    else if (o->history_size < 1)
        why = "history_size must be >= 1";
    else if (o->max_iter < 0)
        why = "max_iter must be >= 0";
    else if (o->max_linesearch < 1)
        why = "max_linesearch must be >= 1";
    else if (!(o->tolerance_grad >= 0) || !(o->tolerance_change >= 0))
        why = "tolerance_grad and tolerance_change must be >= 0";
    else if (!(o->l1 >= 0) || !isfinite(o->l1))
        why = "l1 must be a finite number >= 0";
    if (why)
        tg_error("lbfgs: %s", why);
    return why ? -1 : 0;
}

const char *tg_lbfgs_status_text(tg_lbfgs_status status)
{
    switch (status) {
    case TG_LBFGS_RUNNING: return "running";
    case TG_LBFGS_CONVERGED_GRAD: return "converged: gradient norm below tolerance_grad";
    case TG_LBFGS_CONVERGED_CHANGE: return "converged: objective change below tolerance_change";
    case TG_LBFGS_CONVERGED_ROUNDING:
        return "converged: the next step's predicted decrease is below the objective's rounding";
    case TG_LBFGS_MAX_ITER: return "stopped at max_iter without converging";
    case TG_LBFGS_LINESEARCH_FAILED: return "line search failed to find a lower objective";
    case TG_LBFGS_NOT_FINITE: return "the objective or its gradient became NaN or infinite";
    case TG_LBFGS_CALLBACK_FAILED: return "the objective callback failed";
    case TG_LBFGS_STOPPED: return "stopped by the progress callback";
    }
    return "unknown status";
}

static int finish(solver *sv, tg_lbfgs_status st, int iterations, tg_lbfgs_result *result)
{
    tg_lbfgs_result r = { .status = st,
                          .iterations = iterations,
                          .evaluations = sv->evaluations,
                          .objective = sv->F,
                          .grad_norm = sv->pg ? max_abs(sv->n, sv->pg) : NAN };
    if (result)
        *result = r;
    if (st == TG_LBFGS_LINESEARCH_FAILED || st == TG_LBFGS_NOT_FINITE)
        tg_error("lbfgs: %s at iteration %d (objective %.17g, gradient norm %.3g); the weights are the last good ones",
                 tg_lbfgs_status_text(st), iterations + 1, r.objective, r.grad_norm);
    if (st == TG_LBFGS_CALLBACK_FAILED && !tg_last_error()[0])
        tg_error("lbfgs: the objective callback failed at iteration %d", iterations + 1);
    return st == TG_LBFGS_LINESEARCH_FAILED || st == TG_LBFGS_NOT_FINITE || st == TG_LBFGS_CALLBACK_FAILED ? -1 : 0;
}

int tg_lbfgs_state_init(tg_lbfgs_state *st, int64_t n, int m)
{
    memset(st, 0, sizeof *st);
    if (n <= 0 || m < 1 || (uint64_t)n > SIZE_MAX / sizeof(double) / (2 * (uint64_t)m + 6))
        return tg_error("lbfgs: %lld variables with history_size %d do not fit in memory", (long long)n, m), -1;
    size_t vec = (size_t)n * sizeof(double);
    st->n = n;
    st->m = m;
    st->newest = m - 1;
    st->F_before = NAN;
    st->s = tg_alloc_zeroed(vec * (size_t)m);
    st->y = tg_alloc_zeroed(vec * (size_t)m);
    st->rho = tg_alloc_zeroed((size_t)m * sizeof(double));
    st->g = tg_alloc_zeroed(vec);
    if (st->s && st->y && st->rho && st->g)
        return 0;
    tg_lbfgs_state_free(st);
    return -1;
}

void tg_lbfgs_state_free(tg_lbfgs_state *st)
{
    tg_dealloc(st->s);
    tg_dealloc(st->y);
    tg_dealloc(st->rho);
    tg_dealloc(st->g);
    st->s = st->y = st->rho = st->g = NULL;
}

/* The run as it stands, into st (before the progress callback sees it, and at the end). */
static void keep(const solver *sv, tg_lbfgs_state *st, int iterations, double F_before)
{
    st->started = 1;
    st->iterations = iterations;
    st->evaluations = sv->evaluations;
    st->stored = sv->stored;
    st->newest = sv->newest;
    st->f = sv->f;
    st->F = sv->F;
    st->F_before = F_before;
}

static bool change_converged(const tg_lbfgs_opts *o, double before, double F)
{
    return o->tolerance_change > 0 && fabs(before - F) <= o->tolerance_change * fmax(fmax(fabs(before), fabs(F)), 1.0);
}

/* The iterations from st's position: each one, then the progress callback, then the change test. */
static tg_lbfgs_status run_iterations(solver *sv, tg_lbfgs_state *st, int *k)
{
    const tg_lbfgs_opts *o = sv->o;
    int64_t n = sv->n;
    tg_lbfgs_status status = TG_LBFGS_RUNNING;
    /* Continued after a stop by the callback: the change test that followed it comes first. */
    if (*k > 0 && change_converged(o, st->F_before, sv->F))
        return TG_LBFGS_CONVERGED_CHANGE;
    for (;;) {
        if (max_abs(n, sv->pg) <= o->tolerance_grad)
            return TG_LBFGS_CONVERGED_GRAD;
        if (*k >= o->max_iter)
            return TG_LBFGS_MAX_ITER;
        double before = sv->F;
        status = iterate(sv);
        if ((status == TG_LBFGS_LINESEARCH_FAILED || status == TG_LBFGS_NOT_FINITE) && sv->stored) {
            sv->stored = 0; /* the quasi-Newton model misled the search: once more from steepest descent */
            status = iterate(sv);
        }
        if (status)
            return status;
        ++*k;
        keep(sv, st, *k, before);
        if (o->progress && o->progress(*k, sv->F, max_abs(n, sv->pg), sv->ctx))
            return TG_LBFGS_STOPPED;
        if (change_converged(o, before, sv->F))
            return TG_LBFGS_CONVERGED_CHANGE;
    }
}

int tg_lbfgs_run(int64_t n, double *w, tg_lbfgs_fn fg, void *ctx, const tg_lbfgs_opts *opts, tg_lbfgs_state *st,
                 tg_lbfgs_result *result)
{
    tg_lbfgs_opts o = opts ? *opts : TG_LBFGS_OPTS_DEFAULT;
    if (result)
        *result = (tg_lbfgs_result){ .status = TG_LBFGS_CALLBACK_FAILED, .objective = NAN, .grad_norm = NAN };
    if (check_opts(n, w, fg, &o))
        return -1;
    if (!st || st->n != n || st->m != o.history_size || !st->s || !st->y || !st->rho || !st->g)
        return tg_error("lbfgs: the solver state is not one for %lld variables with history_size %d", (long long)n,
                        o.history_size),
               -1;
    size_t vec = (size_t)n * sizeof(double);
    solver sv = { .n = n,
                  .fg = fg,
                  .ctx = ctx,
                  .o = &o,
                  .m = st->m,
                  .stored = st->stored,
                  .newest = st->newest,
                  .s = st->s,
                  .y = st->y,
                  .rho = st->rho,
                  .g = st->g,
                  .x = w,
                  .evaluations = st->evaluations };
    sv.alpha = tg_alloc((size_t)o.history_size * sizeof(double));
    sv.x0 = tg_alloc(vec);
    sv.g0 = tg_alloc(vec);
    sv.d = tg_alloc(vec);
    sv.pg = tg_alloc(vec);
    int status = -1;
    if (!sv.alpha || !sv.x0 || !sv.g0 || !sv.d || !sv.pg)
        goto done;
    int k = st->started ? st->iterations : 0;
    tg_lbfgs_status why = TG_LBFGS_RUNNING;
    if (st->started) {
        sv.f = st->f;
        sv.F = st->F;
    } else {
        why = evaluate(&sv, sv.x, &sv.f, sv.g, &sv.F);
        if (!why)
            keep(&sv, st, 0, NAN);
    }
    if (!why) {
        pseudo_gradient(&sv, sv.x, sv.g, sv.pg);
        why = run_iterations(&sv, st, &k);
    }
    if (st->started) /* a failed iteration went back to its start point: st is the run's last good state */
        keep(&sv, st, k, st->F_before);
    status = finish(&sv, why, k, result);
done:
    tg_dealloc(sv.alpha);
    tg_dealloc(sv.x0);
    tg_dealloc(sv.g0);
    tg_dealloc(sv.d);
    tg_dealloc(sv.pg);
    return status;
}

int tg_lbfgs_minimize(int64_t n, double *w, tg_lbfgs_fn fg, void *ctx, const tg_lbfgs_opts *opts,
                      tg_lbfgs_result *result)
{
    tg_lbfgs_opts o = opts ? *opts : TG_LBFGS_OPTS_DEFAULT;
    if (result)
        *result = (tg_lbfgs_result){ .status = TG_LBFGS_CALLBACK_FAILED, .objective = NAN, .grad_norm = NAN };
    if (check_opts(n, w, fg, &o))
        return -1;
    tg_lbfgs_state st;
    if (tg_lbfgs_state_init(&st, n, o.history_size))
        return -1;
    int status = tg_lbfgs_run(n, w, fg, ctx, &o, &st, result);
    tg_lbfgs_state_free(&st);
    return status;
}
