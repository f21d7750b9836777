/* The gradient checker: analytic vector-Jacobian products against central
 * differences, (f(x + eps) - f(x - eps)) / 2 eps, in float64. Checking
 * v^T J for one random v per call instead of all of J costs one backward
 * plus two forwards per input element, and a wrong entry of J shows up
 * unless v happens to be orthogonal to its error (probability zero). */
#include "autograd/tape.h"

#include <math.h>

/* <v, fn(inputs)> in long double, with the tape recording nothing. */
static int evaluate(tg_fn fn, tg_tape *tape, tg_tensor *const *inputs, void *ctx, const tg_tensor *v,
                    long double *value)
{
    tg_tape_reset(tape);
    tg_tensor *out = fn(tape, inputs, ctx);
    if (!out)
        return -1;
    if (!tg_same_shape(out, v) || out->dtype != TG_F64) {
        tg_error("tg_gradcheck: fn's output changed shape or dtype between calls");
        return -1;
    }
    long double sum = 0;
    const double *o = out->data, *w = v->data;
    for (int64_t i = 0; i < out->numel; i++)
        sum += (long double)o[i] * w[i];
    *value = sum;
    return 0;
}

/* Every argument the check needs, refused with a message before anything runs. */
static int check_arguments(tg_fn fn, int n_inputs, tg_tensor *const *inputs, const tg_gradcheck_opts *o)
{
    if (!fn || !inputs || n_inputs < 1 || n_inputs > 64) {
        tg_error("tg_gradcheck: fn, inputs and 1 to 64 inputs are required");
        return -1;
    }
    if (!(o->eps > 0) || !(o->atol >= 0) || !(o->rtol >= 0)) {
        tg_error("tg_gradcheck: eps %g, atol %g, rtol %g; expected eps > 0 and tolerances >= 0", o->eps, o->atol,
                 o->rtol);
        return -1;
    }
    int checked_inputs = 0;
    for (int i = 0; i < n_inputs; i++) {
        if (!inputs[i]) {
            tg_error("tg_gradcheck: input %d is NULL", i);
            return -1;
        }
        if (inputs[i]->owner != TG_OWNED_BY_CALLER) {
            tg_error("tg_gradcheck: input %d belongs to a tape; pass tensors made with tg_tensor_new", i);
            return -1;
        }
        if (inputs[i]->requires_grad && inputs[i]->dtype != TG_F64) {
            tg_error("tg_gradcheck: input %d is %s; finite differences need float64", i,
                     tg_dtype_name(inputs[i]->dtype));
            return -1;
        }
        checked_inputs += inputs[i]->requires_grad;
    }
    if (!checked_inputs) {
        tg_error("tg_gradcheck: no input requires a gradient (call tg_set_requires_grad on those to check)");
        return -1;
    }
    return 0;
}

/* Runs fn once with recording on and fills the analytic v^T J into the inputs' gradients; *v is
 * the random direction (all ones for a scalar output), caller-owned. */
static int analytic_pass(tg_fn fn, tg_tape *tape, tg_tensor *const *inputs, void *ctx, tg_tensor **v)
{
    tg_tensor *out = fn(tape, inputs, ctx);
    if (!out)
        return -1;
    if (out->dtype != TG_F64) {
        tg_error("tg_gradcheck: fn returned %s, expected float64", tg_dtype_name(out->dtype));
        return -1;
    }
    if (!(*v = tg_tensor_new(TG_F64, out->ndim, out->shape)))
        return -1;
    tg_rng rng;
    tg_rng_seed(&rng, 0x67726164ull);
    if (out->numel == 1)
        tg_fill(*v, 1.0);
    else
        tg_rng_fill_uniform(&rng, *v, -1.0, 1.0);
    return out->requires_grad ? tg_backward_with(tape, out, *v) : 0;
}

/* Central differences for every element of input i against its analytic gradient; the report
 * keeps the element furthest past its tolerance (score > 1 fails; NaN is worst of all). */
static int numeric_pass(tg_fn fn, tg_tape *tape, tg_tensor *const *inputs, int i, void *ctx, const tg_tensor *v,
                        const tg_gradcheck_opts *o, tg_gradcheck_report *r, double *worst_score)
{
    tg_tensor *x = inputs[i];
    double *xs = x->data;
    for (int64_t j = 0; j < x->numel; j++) {
        long double plus, minus;
        double saved = xs[j];
        xs[j] = saved + o->eps;
        int err = evaluate(fn, tape, inputs, ctx, v, &plus);
        xs[j] = saved - o->eps;
        err = err ? err : evaluate(fn, tape, inputs, ctx, v, &minus);
        xs[j] = saved;
        if (err)
            return -1;
        double numeric = (double)((plus - minus) / (2.0L * o->eps));
        double analytic = x->grad ? ((const double *)x->grad->data)[j] : 0.0;
        double abs_err = fabs(analytic - numeric);
        double allowed = o->atol + o->rtol * fabs(numeric);
        double score = isnan(abs_err) ? INFINITY : allowed > 0 ? abs_err / allowed : (abs_err > 0 ? INFINITY : 0);
        if (!(score <= 1))
            r->passed = 0;
        if (r->worst_input < 0 || score > *worst_score) {
            *worst_score = score;
            *r = (tg_gradcheck_report){ .passed = r->passed,
                                        .checked = r->checked,
                                        .worst_input = i,
                                        .worst_index = j,
                                        .analytic = analytic,
                                        .numeric = numeric,
                                        .abs_err = abs_err };
        }
        r->checked++;
    }
    return 0;
}

int tg_gradcheck(tg_fn fn, int n_inputs, tg_tensor *const *inputs, void *ctx, const tg_gradcheck_opts *opts,
                 tg_gradcheck_report *report)
{
    tg_gradcheck_opts o = opts ? *opts : TG_GRADCHECK_OPTS_DEFAULT;
    tg_gradcheck_report r = { .passed = 1, .worst_input = -1, .worst_index = -1 };
    if (check_arguments(fn, n_inputs, inputs, &o))
        return -1;
    int status = -1;
    tg_tensor *saved_grads[64] = { 0 };
    tg_tensor *v = NULL;
    tg_tape *tape = tg_tape_new();
    if (!tape)
        return -1;
    /* The caller's gradients are set aside so the check neither reads nor changes them. */
    for (int i = 0; i < n_inputs; i++) {
        saved_grads[i] = inputs[i]->grad;
        inputs[i]->grad = NULL;
    }
    if (analytic_pass(fn, tape, inputs, ctx, &v))
        goto done;
    double worst_score = 0;
    int failed = 0, was_recording = tg_tape_set_recording(tape, 0);
    for (int i = 0; i < n_inputs && !failed; i++)
        if (inputs[i]->requires_grad)
            failed = numeric_pass(fn, tape, inputs, i, ctx, v, &o, &r, &worst_score);
    tg_tape_set_recording(tape, was_recording);
    if (failed)
        goto done;
    status = r.passed ? 0 : 1;
    if (!r.passed)
        tg_error("tg_gradcheck: gradient of input %d, element %lld: analytic %.10g, numeric %.10g (|diff| %.3g > "
                 "atol %g + rtol %g * |numeric|)",
                 r.worst_input, (long long)r.worst_index, r.analytic, r.numeric, r.abs_err, o.atol, o.rtol);
done:
    /* Two passes: one tensor may be passed as several inputs. */
    for (int i = 0; i < n_inputs; i++) {
        tg_tensor_free(inputs[i]->grad);
        inputs[i]->grad = NULL;
    }
    for (int i = 0; i < n_inputs; i++)
        if (saved_grads[i])
            inputs[i]->grad = saved_grads[i];
    tg_tensor_free(v);
    tg_tape_free(tape);
    if (report)
        *report = r;
    return status;
}
