/* Optimizers: three steps of SGD (plain, momentum with and without dampening,
 * nesterov, weight decay), Adam and AdamW on a small parameter whose gradients
 * are set by hand, each checked against torch.optim's documented update rules
 * evaluated in long double and against the values PyTorch 1.13 itself prints;
 * gradient clipping; and the option errors.
 *
 * The PyTorch values below were printed by Debian's /usr/bin/python3 (torch 1.13):
 *
 *   import torch
 *   P0 = [0.5, -1.0, 2.0]
 *   C = [[0.3, -0.2, 1.5], [-0.1, 0.4, 0.25], [0.7, 0.05, -0.6]]
 *   def run(make, dtype=torch.float64):
 *       p = torch.tensor(P0, dtype=dtype, requires_grad=True)
 *       opt = make([p]); out = []
 *       for c in C:
 *           opt.zero_grad()
 *           (p * torch.tensor(c, dtype=dtype)).sum().backward()
 *           opt.step(); out.append(p.detach().clone())
 *       return out
 *   cases = {
 *    'sgd': lambda ps: torch.optim.SGD(ps, lr=0.1),
 *    'sgd_mom': lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
 *    'sgd_mom_damp': lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5),
 *    'sgd_nesterov': lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
 *    'sgd_wd': lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
 *    'adam': lambda ps: torch.optim.Adam(ps, lr=0.01),
 *    'adam_wd': lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1),
 *    'adamw': lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.01),
 *   }
 *   for name, make in cases.items():
 *       for dt in (torch.float64, torch.float32):
 *           print(name, dt, [[format(float(v), '.17g') for v in s] for s in run(make, dt)])
 */
#include <criterion/criterion.h>

#include <math.h>
#include <string.h>

#include "helpers.h"

enum { N = 3, STEPS = 3 };

static const double P0[N] = { 0.5, -1.0, 2.0 };
/* The gradient of step t is C[t]: the loss of step t is sum(p * C[t]). */
static const double C[STEPS][N] = { { 0.3, -0.2, 1.5 }, { -0.1, 0.4, 0.25 }, { 0.7, 0.05, -0.6 } };

typedef struct {
    const char *name;
    tg_optim_opts opts;
    double torch64[STEPS][N]; /* the parameter after each step, float64 */
    double torch32[STEPS][N]; /* the same in float32 */
} optim_case;

/* torch.optim's documented rules (SGD, Adam and AdamW pages of the 1.13 docs),
 * step by step in long double. For float32 the gradients are the float32
 * values of C, as PyTorch's would be. */
static void reference(const tg_optim_opts *o, int float32, long double out[STEPS][N])
{
    long double p[N], buf[N] = { 0 }, m[N] = { 0 }, v[N] = { 0 };
    for (int k = 0; k < N; k++)
        p[k] = P0[k];
    for (int t = 1; t <= STEPS; t++) {
        for (int k = 0; k < N; k++) {
            long double g = float32 ? (long double)(float)C[t - 1][k] : (long double)C[t - 1][k];
            if (o->type == TG_OPTIM_SGD) {
                /* g += wd p; b = g (t = 1) or mu b + (1 - tau) g; g = g + mu b (nesterov) or b; p -= lr g */
                g += (long double)o->weight_decay * p[k];
                if (o->momentum != 0) {
                    buf[k] = t == 1 ? g : (long double)o->momentum * buf[k] + (1 - (long double)o->dampening) * g;
                    g = o->nesterov ? g + (long double)o->momentum * buf[k] : buf[k];
                }
                p[k] -= (long double)o->lr * g;
            } else {
                /* AdamW: p *= 1 - lr wd; Adam: g += wd p; then m, v, bias corrections and the step */
                if (o->type == TG_OPTIM_ADAMW)
                    p[k] *= 1 - (long double)o->lr * (long double)o->weight_decay;
                else
                    g += (long double)o->weight_decay * p[k];
                long double b1 = o->beta1, b2 = o->beta2;
                m[k] = b1 * m[k] + (1 - b1) * g;
                v[k] = b2 * v[k] + (1 - b2) * g * g;
                long double m_hat = m[k] / (1 - powl(b1, t)), v_hat = v[k] / (1 - powl(b2, t));
                p[k] -= (long double)o->lr * m_hat / (sqrtl(v_hat) + (long double)o->eps);
            }
            out[t - 1][k] = p[k];
        }
    }
}

/* Fills tg_grad(p) with c through a backward of sum(p * c) (after zeroing it). */
static void set_gradient(tg_optimizer *opt, tg_tape *tape, tg_tensor *p, const double *c)
{
    tg_tensor *ct = tg_tensor_new(tg_dtype_of(p), 1, (int64_t[]){ N });
    cr_assert_not_null(ct);
    for (int k = 0; k < N; k++)
        tg_set(ct, k, c[k]);
    tg_optimizer_zero_grad(opt);
    tg_tape_reset(tape);
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, p, ct), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    for (int k = 0; k < N; k++)
        cr_assert_eq(tg_get(tg_grad(p), k), tg_get(ct, k), "the gradient is not the one set by hand");
    tg_tensor_free(ct);
}

static void check_case(const optim_case *c, tg_dtype dtype)
{
    int float32 = dtype == TG_F32;
    /* float64 follows the formula to rounding; float32 parameters are rounded
     * each step (PyTorch also computes the update in float32): a few ulps. */
    double tol = float32 ? 1e-6 : 1e-14;
    long double want[STEPS][N];
    reference(&c->opts, float32, want);
    tg_tensor *p = tg_tensor_new(dtype, 1, (int64_t[]){ N });
    cr_assert_not_null(p);
    for (int k = 0; k < N; k++)
        tg_set(p, k, P0[k]); /* exact in float32 too */
    tg_set_requires_grad(p, 1);
    tg_tape *tape = tg_tape_new();
    tg_optimizer *opt = tg_optimizer_new(&c->opts, 1, &p);
    cr_assert_not_null(opt, "%s: %s", c->name, tg_last_error());
    for (int t = 0; t < STEPS; t++) {
        set_gradient(opt, tape, p, C[t]);
        cr_assert_eq(tg_optimizer_step(opt), 0, "%s", tg_last_error());
        for (int k = 0; k < N; k++) {
            double got = tg_get(p, k);
            double torch = float32 ? c->torch32[t][k] : c->torch64[t][k];
            cr_assert(close_enough(got, (double)want[t][k], tol), "%s %s step %d [%d]: %.17g, long double %.17Lg",
                      c->name, tg_dtype_name(dtype), t + 1, k, got, want[t][k]);
            cr_assert(close_enough(got, torch, tol), "%s %s step %d [%d]: %.17g, PyTorch %.17g", c->name,
                      tg_dtype_name(dtype), t + 1, k, got, torch);
        }
    }
    tg_optimizer_free(opt);
    tg_tape_free(tape);
    tg_tensor_free(p);
}

/* Each optimizer setting with PyTorch 1.13's parameters after three steps (torch.optim, float64 and float32). */
static const optim_case optim_cases[] = {
    /* sgd_plain */
    {
        "sgd",
        { .type = TG_OPTIM_SGD, .lr = 0.1 },
        { { 0.46999999999999997, -0.97999999999999998, 1.8500000000000001 },
          { 0.47999999999999998, -1.02, 1.8250000000000002 },
          { 0.40999999999999998, -1.0249999999999999, 1.8850000000000002 } },
        { { 0.4699999988079071, -0.98000001907348633, 1.8500000238418579 },
          { 0.47999998927116394, -1.0199999809265137, 1.8250000476837158 },
          { 0.40999999642372131, -1.0249999761581421, 1.8850001096725464 } },
    },
    /* sgd_momentum */
    {
        "sgd momentum 0.9",
        { .type = TG_OPTIM_SGD, .lr = 0.1, .momentum = 0.9 },
        { { 0.46999999999999997, -0.97999999999999998, 1.8500000000000001 },
          { 0.45299999999999996, -1.002, 1.6900000000000002 },
          { 0.36769999999999997, -1.0267999999999999, 1.6060000000000001 } },
        { { 0.4699999988079071, -0.98000001907348633, 1.8500000238418579 },
          { 0.45300000905990601, -1.0019999742507935, 1.690000057220459 },
          { 0.3677000105381012, -1.0267999172210693, 1.6060000658035278 } },
    },
    /* sgd_dampening */
    {
        "sgd momentum 0.9 dampening 0.5",
        { .type = TG_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .dampening = 0.5 },
        { { 0.46999999999999997, -0.97999999999999998, 1.8500000000000001 },
          { 0.44799999999999995, -0.98199999999999998, 1.7025000000000001 },
          { 0.39319999999999994, -0.98629999999999995, 1.59975 } },
        { { 0.4699999988079071, -0.98000001907348633, 1.8500000238418579 },
          { 0.4479999840259552, -0.98199999332427979, 1.7024999856948853 },
          { 0.39319998025894165, -0.98629999160766602, 1.5997500419616699 } },
    },
    /* sgd_nesterov */
    {
        "sgd nesterov",
        { .type = TG_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .nesterov = 1 },
        { { 0.443, -0.96199999999999997, 1.7150000000000001 },
          { 0.43769999999999998, -1.0218, 1.546 },
          { 0.29092999999999997, -1.0491200000000001, 1.5304 } },
        { { 0.44299998879432678, -0.96200001239776611, 1.7150000333786011 },
          { 0.43769997358322144, -1.0218000411987305, 1.5460000038146973 },
          { 0.29092997312545776, -1.0491200685501099, 1.5304000377655029 } },
    },
    /* sgd_weight_decay */
    {
        "sgd momentum 0.9 weight_decay 0.1",
        { .type = TG_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .weight_decay = 0.1 },
        { { 0.46500000000000002, -0.96999999999999997, 1.8300000000000001 },
          { 0.43885000000000002, -0.97329999999999994, 1.6337000000000002 },
          { 0.34092650000000002, -0.97153699999999998, 1.5006930000000001 } },
        { { 0.46500000357627869, -0.96999996900558472, 1.8300000429153442 },
          { 0.43884998559951782, -0.97329998016357422, 1.6337000131607056 },
          { 0.34092649817466736, -0.97153699398040771, 1.5006929636001587 } },
    },
    /* adam */
    {
        "adam",
        { .type = TG_OPTIM_ADAM, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8 }, /* TG_ADAM_DEFAULT(0.01) */
        { { 0.4900000003333333, -0.99000000050000003, 1.9900000000666667 },
          { 0.48599781479280807, -0.99366103565460373, 1.9821667266569332 },
          { 0.47890257503390987, -0.99718369601785839, 1.9788814993377339 } },
        { { 0.49000000953674316, -0.99000000953674316, 1.9900000095367432 },
          { 0.48599782586097717, -0.99366104602813721, 1.9821667671203613 },
          { 0.47890257835388184, -0.99718368053436279, 1.9788815975189209 } },
    },
    /* adam_weight_decay */
    {
        "adam weight_decay 0.1",
        { .type = TG_OPTIM_ADAM, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1 },
        { { 0.49000000028571428, -0.99000000033333335, 1.9900000000588236 },
          { 0.48444301749677032, -0.99054295383576552, 1.9816206574207635 },
          { 0.47683242993536384, -0.990226828228018, 1.9767310569382097 } },
        { { 0.49000000953674316, -0.99000000953674316, 1.9900000095367432 },
          { 0.48444303870201111, -0.9905429482460022, 1.9816206693649292 },
          { 0.47683244943618774, -0.99022680521011353, 1.9767310619354248 } },
    },
    /* adamw */
    {
        "adamw weight_decay 0.01",
        { .type = TG_OPTIM_ADAMW, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01 },
        { { 0.4899500003333333, -0.98990000050000004, 1.9898000000666667 },
          { 0.48589881979277477, -0.99346204565455376, 1.9817677466569266 },
          { 0.47875499015189732, -0.996885359813243, 1.9782843425630616 } },
        { { 0.48995000123977661, -0.98989999294281006, 1.989799976348877 },
          { 0.48589882254600525, -0.99346202611923218, 1.9817677736282349 },
          { 0.47875496745109558, -0.99688529968261719, 1.9782843589782715 } },
    },
};

/* ---- three steps against torch.optim, float64 and float32 ---- */

/* SGD (plain, momentum, dampening, Nesterov, weight decay), Adam (weight decay as L2 on the
 * gradient) and AdamW (decay on the weights directly): each against PyTorch and long double. */
Test(optim, every_setting_matches_torch_in_both_dtypes)
{
    for (size_t i = 0; i < sizeof optim_cases / sizeof *optim_cases; i++) {
        check_case(&optim_cases[i], TG_F64);
        check_case(&optim_cases[i], TG_F32);
    }
}

/* The first Adam step moves every element by lr (times sign(g)), whatever |g|:
 * m_hat = g and v_hat = g^2 after one step. A check that needs no formula. */
Test(optim, first_adam_step_moves_each_element_by_lr)
{
    tg_tensor *p = tg_tensor_from(TG_F64, 1, (int64_t[]){ N }, P0);
    tg_set_requires_grad(p, 1);
    tg_tape *tape = tg_tape_new();
    tg_optim_opts o = TG_ADAM_DEFAULT(0.01);
    tg_optimizer *opt = tg_optimizer_new(&o, 1, &p);
    cr_assert_not_null(opt, "%s", tg_last_error());
    set_gradient(opt, tape, p, C[0]);
    tg_optimizer_step(opt);
    for (int k = 0; k < N; k++) {
        double moved = P0[k] - tg_get(p, k), sign = C[0][k] > 0 ? 1 : -1;
        /* lr |g| / (|g| + eps): 1e-8 / |g| relative below lr */
        cr_assert(close_enough(moved, sign * 0.01 * fabs(C[0][k]) / (fabs(C[0][k]) + 1e-8), 1e-15), "[%d] moved %.17g",
                  k, moved);
    }
    tg_optimizer_free(opt);
    tg_tape_free(tape);
    tg_tensor_free(p);
}

/* ---- learning rate, zero_grad, parameters without a gradient ---- */

Test(optim, set_lr_applies_to_the_next_step)
{
    tg_tensor *p = tg_tensor_from(TG_F64, 1, (int64_t[]){ N }, P0);
    tg_set_requires_grad(p, 1);
    tg_tape *tape = tg_tape_new();
    tg_optim_opts o = TG_SGD_DEFAULT(0.1);
    tg_optimizer *opt = tg_optimizer_new(&o, 1, &p);
    cr_assert_not_null(opt);
    cr_assert_eq(tg_optimizer_lr(opt), 0.1);
    set_gradient(opt, tape, p, C[0]);
    tg_optimizer_step(opt);
    tg_optimizer_set_lr(opt, 0.05);
    cr_assert_eq(tg_optimizer_lr(opt), 0.05);
    set_gradient(opt, tape, p, C[1]);
    tg_optimizer_step(opt);
    for (int k = 0; k < N; k++) {
        long double want = (long double)P0[k] - 0.1L * C[0][k] - 0.05L * C[1][k];
        cr_assert(close_enough(tg_get(p, k), (double)want, 1e-15), "[%d] %.17g", k, tg_get(p, k));
    }
    tg_optimizer_free(opt);
    tg_tape_free(tape);
    tg_tensor_free(p);
}

Test(optim, zero_grad_zeroes_every_gradient)
{
    tg_tensor *p = tg_tensor_from(TG_F64, 1, (int64_t[]){ N }, P0);
    tg_set_requires_grad(p, 1);
    tg_tape *tape = tg_tape_new();
    tg_optim_opts o = TG_SGD_DEFAULT(0.1);
    tg_optimizer *opt = tg_optimizer_new(&o, 1, &p);
    set_gradient(opt, tape, p, C[0]);
    tg_optimizer_zero_grad(opt);
    cr_assert_not_null(tg_grad(p));
    for (int k = 0; k < N; k++)
        cr_assert_eq(tg_get(tg_grad(p), k), 0.0);
    /* a step with zero gradients leaves plain SGD's parameter as it was */
    tg_optimizer_step(opt);
    for (int k = 0; k < N; k++)
        cr_assert_eq(tg_get(p, k), P0[k]);
    tg_optimizer_free(opt);
    tg_tape_free(tape);
    tg_tensor_free(p);
}

Test(optim, a_parameter_without_a_gradient_is_left_alone)
{
    tg_tensor *used = tg_tensor_from(TG_F64, 1, (int64_t[]){ N }, P0);
    tg_tensor *unused = tg_tensor_from(TG_F64, 1, (int64_t[]){ N }, P0);
    tg_set_requires_grad(used, 1);
    tg_set_requires_grad(unused, 1);
    tg_tensor *params[2] = { used, unused };
    tg_tape *tape = tg_tape_new();
    tg_optim_opts o = TG_ADAM_DEFAULT(0.01);
    tg_optimizer *opt = tg_optimizer_new(&o, 2, params);
    cr_assert_not_null(opt);
    set_gradient(opt, tape, used, C[0]);
    cr_assert_null(tg_grad(unused));
    cr_assert_eq(tg_optimizer_step(opt), 0);
    for (int k = 0; k < N; k++) {
        cr_assert_eq(tg_get(unused, k), P0[k]);
        cr_assert_neq(tg_get(used, k), P0[k]);
    }
    tg_optimizer_free(opt);
    tg_tape_free(tape);
    tg_tensor_free(used);
    tg_tensor_free(unused);
}

/* In torch.optim the state is per parameter: a parameter's step count (Adam's
 * bias correction) and SGD's momentum buffer start at its first update, not at
 * the optimizer's. Here b has no gradient at step 1 and the constant gradient
 * 0.5 at steps 2 and 3; a has 0.5 at all three. PyTorch 1.13:
 *
 *   for name, make in [('adam', lambda ps: torch.optim.Adam(ps, lr=0.01)),
 *       ('sgd_damp', lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.5))]:
 *       a = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
 *       b = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
 *       opt = make([a, b])
 *       (a * 0.5).sum().backward(); opt.step()
 *       opt.zero_grad(); ((a + b) * 0.5).sum().backward(); opt.step()
 *       opt.zero_grad(); ((a + b) * 0.5).sum().backward(); opt.step()
 *       print(name, format(a.item(), '.17g'), format(b.item(), '.17g'))
 *   -> adam 0.97000000060000013 0.98000000040000013
 *   -> sgd_damp 0.79200000000000004 0.88
 *
 * By hand: Adam with a constant gradient moves lr g/(|g| + eps) per step, so b
 * ends at 1 - 2 (0.01 * 0.5 / (0.5 + 1e-8)); SGD's b gets buf = 0.5 (its first
 * update copies the gradient), then buf = 0.9 * 0.5 + 0.5 * 0.5 = 0.7:
 * b = 1 - 0.1 * 0.5 - 0.1 * 0.7 = 0.88. */
static void late_parameter(const tg_optim_opts *o, double want_a, double want_b)
{
    tg_tensor *a = tg_tensor_from(TG_F64, 1, (int64_t[]){ 1 }, (double[]){ 1.0 });
    tg_tensor *b = tg_tensor_from(TG_F64, 1, (int64_t[]){ 1 }, (double[]){ 1.0 });
    tg_tensor *half = tg_tensor_from(TG_F64, 1, (int64_t[]){ 1 }, (double[]){ 0.5 });
    tg_set_requires_grad(a, 1);
    tg_set_requires_grad(b, 1);
    tg_tensor *params[2] = { a, b };
    tg_tape *tape = tg_tape_new();
    tg_optimizer *opt = tg_optimizer_new(o, 2, params);
    cr_assert_not_null(opt, "%s", tg_last_error());
    for (int t = 0; t < 3; t++) {
        tg_optimizer_zero_grad(opt);
        tg_tape_reset(tape);
        tg_tensor *x = t == 0 ? a : tg_add(tape, a, b);
        cr_assert_eq(tg_backward(tape, tg_sum(tape, tg_mul(tape, x, half), TG_ALL)), 0, "%s", tg_last_error());
        tg_optimizer_step(opt);
    }
    cr_expect(close_enough(tg_get(a, 0), want_a, 1e-14), "a: %.17g, PyTorch %.17g", tg_get(a, 0), want_a);
    cr_expect(close_enough(tg_get(b, 0), want_b, 1e-14),
              "b (no gradient at step 1): %.17g, PyTorch %.17g (its state must start at its first update)",
              tg_get(b, 0), want_b);
    tg_optimizer_free(opt);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
    tg_tensor_free(half);
}

Test(optim, adam_counts_steps_per_parameter_like_torch)
{
    tg_optim_opts o = TG_ADAM_DEFAULT(0.01);
    late_parameter(&o, 0.97000000060000013, (double)(1 - 2 * (0.01L * 0.5L / (0.5L + 1e-8L))));
    /* the hand value and PyTorch's agree */
    cr_assert(close_enough((double)(1 - 2 * (0.01L * 0.5L / (0.5L + 1e-8L))), 0.98000000040000013, 1e-15));
}

Test(optim, sgd_momentum_buffer_starts_at_a_parameters_first_update_like_torch)
{
    tg_optim_opts o = { .type = TG_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .dampening = 0.5 };
    late_parameter(&o, 0.79200000000000004, 0.88);
}

/* ---- tg_clip_grad_norm: torch.nn.utils.clip_grad_norm_ ---- */

/* Two float64 parameters whose gradients are {3, 4} and {12}: global norm 13. */
typedef struct {
    tg_tensor *a, *b, *idle;
    tg_tape *tape;
} clip_fixture;

static clip_fixture clip_setup(tg_dtype dtype)
{
    clip_fixture f;
    f.a = tg_tensor_new(dtype, 1, (int64_t[]){ 2 });
    f.b = tg_tensor_new(dtype, 1, (int64_t[]){ 1 });
    f.idle = tg_tensor_new(dtype, 1, (int64_t[]){ 2 }); /* never gets a gradient */
    tg_tensor *ca = tg_tensor_new(dtype, 1, (int64_t[]){ 2 }), *cb = tg_tensor_new(dtype, 1, (int64_t[]){ 1 });
    tg_set(ca, 0, 3);
    tg_set(ca, 1, 4);
    tg_set(cb, 0, 12);
    tg_set_requires_grad(f.a, 1);
    tg_set_requires_grad(f.b, 1);
    tg_set_requires_grad(f.idle, 1);
    f.tape = tg_tape_new();
    tg_tensor *loss = tg_add(f.tape, tg_sum(f.tape, tg_mul(f.tape, f.a, ca), TG_ALL),
                             tg_sum(f.tape, tg_mul(f.tape, f.b, cb), TG_ALL));
    cr_assert_eq(tg_backward(f.tape, loss), 0, "%s", tg_last_error());
    tg_tensor_free(ca);
    tg_tensor_free(cb);
    return f;
}

static void clip_teardown(clip_fixture *f)
{
    tg_tensor_free(f->a);
    tg_tensor_free(f->b);
    tg_tensor_free(f->idle);
    tg_tape_free(f->tape);
}

/* tol is relative to the expected value */
static void expect_grads(const clip_fixture *f, long double scale, double tol)
{
    const double base[3] = { 3, 4, 12 };
    double got[3] = { tg_get(tg_grad(f->a), 0), tg_get(tg_grad(f->a), 1), tg_get(tg_grad(f->b), 0) };
    for (int k = 0; k < 3; k++)
        cr_assert(close_enough(got[k], (double)(base[k] * scale), tol * base[k]), "gradient %d: %.17g, expected %.17Lg",
                  k, got[k], base[k] * scale);
    cr_assert_null(tg_grad(f->idle));
}

Test(optim, clip_grad_norm_scales_down_to_max_norm)
{
    clip_fixture f = clip_setup(TG_F64);
    tg_tensor *params[3] = { f.a, f.idle, f.b };
    double norm = tg_clip_grad_norm(params, 3, 6.5);
    cr_assert_eq(norm, 13.0, "returns the norm before clipping: %.17g", norm);
    /* clip_coef = max_norm / (total_norm + 1e-6) */
    expect_grads(&f, 6.5L / (13.0L + 1e-6L), 1e-15);
    /* the clipped gradients' norm is max_norm, up to the 1e-6 */
    double after = tg_clip_grad_norm(params, 3, 1e9);
    cr_assert(close_enough(after, 6.5, 1e-6), "%.17g", after);
    clip_teardown(&f);
}

Test(optim, clip_grad_norm_leaves_gradients_below_max_norm_unchanged)
{
    clip_fixture f = clip_setup(TG_F64);
    tg_tensor *params[3] = { f.a, f.b, f.idle };
    cr_assert_eq(tg_clip_grad_norm(params, 3, 20.0), 13.0);
    expect_grads(&f, 1.0L, 0.0); /* bit for bit */
    clip_teardown(&f);
}

/* PyTorch clamps clip_coef = max_norm / (norm + 1e-6) to at most 1, so a norm
 * equal to max_norm is still scaled by 13 / 13.000001. */
Test(optim, clip_grad_norm_at_max_norm_uses_torchs_coefficient)
{
    clip_fixture f = clip_setup(TG_F64);
    tg_tensor *params[2] = { f.a, f.b };
    cr_assert_eq(tg_clip_grad_norm(params, 2, 13.0), 13.0);
    expect_grads(&f, 13.0L / (13.0L + 1e-6L), 1e-15);
    clip_teardown(&f);
}

Test(optim, clip_grad_norm_float32)
{
    clip_fixture f = clip_setup(TG_F32);
    tg_tensor *params[3] = { f.a, f.b, f.idle };
    cr_assert_eq(tg_clip_grad_norm(params, 3, 1.3), 13.0);
    expect_grads(&f, 1.3L / (13.0L + 1e-6L), 2e-7);
    clip_teardown(&f);
}

Test(optim, clip_grad_norm_of_zero_gradients_is_zero_and_changes_nothing)
{
    clip_fixture f = clip_setup(TG_F64);
    tg_zero_grad(f.a);
    tg_zero_grad(f.b);
    tg_tensor *params[3] = { f.a, f.b, f.idle };
    cr_assert_eq(tg_clip_grad_norm(params, 3, 1.0), 0.0);
    for (int k = 0; k < 2; k++)
        cr_assert_eq(tg_get(tg_grad(f.a), k), 0.0);
    cr_assert_eq(tg_get(tg_grad(f.b), 0), 0.0);
    clip_teardown(&f);
}

/* ---- option errors: NULL and a message naming the option ---- */

static void refused(tg_optim_opts o, const char *fragment)
{
    tg_tensor *p = tg_tensor_from(TG_F64, 1, (int64_t[]){ N }, P0);
    tg_set_requires_grad(p, 1);
    tg_clear_error();
    tg_optimizer *opt = tg_optimizer_new(&o, 1, &p);
    cr_expect_null(opt, "accepted options meant to fail on \"%s\"", fragment);
    tg_optimizer_free(opt);
    const char *error = tg_last_error();
    cr_expect(strstr(error, "optimizer") && strstr(error, fragment), "\"%s\" not in the message \"%s\"", fragment,
              error);
    tg_tensor_free(p);
}

Test(optim, bad_learning_rates_are_refused)
{
    refused(TG_SGD_DEFAULT(0.0), "lr");
    refused(TG_SGD_DEFAULT(-0.1), "lr");
    refused(TG_SGD_DEFAULT(NAN), "lr");
    refused(TG_SGD_DEFAULT(INFINITY), "lr");
    refused(TG_ADAM_DEFAULT(0.0), "lr");
    refused(TG_ADAMW_DEFAULT(-1e-3), "lr");
}

Test(optim, nesterov_needs_momentum_and_no_dampening)
{
    refused((tg_optim_opts){ .type = TG_OPTIM_SGD, .lr = 0.1, .nesterov = 1 }, "nesterov");
    refused((tg_optim_opts){ .type = TG_OPTIM_SGD, .lr = 0.1, .nesterov = 1, .momentum = 0.9, .dampening = 0.5 },
            "nesterov");
}

Test(optim, betas_out_of_range_are_refused)
{
    tg_optim_opts o = TG_ADAM_DEFAULT(0.01);
    o.beta1 = 1.0;
    refused(o, "betas");
    o = TG_ADAM_DEFAULT(0.01);
    o.beta2 = 1.0;
    refused(o, "betas");
    o = TG_ADAMW_DEFAULT(0.01);
    o.beta1 = -0.1;
    refused(o, "betas");
    o = TG_ADAMW_DEFAULT(0.01);
    o.beta2 = NAN;
    refused(o, "betas");
}

Test(optim, other_bad_options_are_refused)
{
    tg_optim_opts o = TG_ADAM_DEFAULT(0.01);
    o.eps = 0;
    refused(o, "eps");
    refused((tg_optim_opts){ .type = TG_OPTIM_SGD, .lr = 0.1, .weight_decay = -0.1 }, "weight_decay");
    refused((tg_optim_opts){ .type = TG_OPTIM_SGD, .lr = 0.1, .momentum = -0.9 }, "momentum");
    refused((tg_optim_opts){ .type = (tg_optim_type)7, .lr = 0.1 }, "type");
}

Test(optim, a_label_tensor_is_not_a_parameter)
{
    tg_tensor *labels = tg_tensor_new(TG_I64, 1, (int64_t[]){ 3 });
    tg_optim_opts o = TG_SGD_DEFAULT(0.1);
    cr_assert_null(tg_optimizer_new(&o, 1, &labels));
    cr_assert(strstr(tg_last_error(), "parameter 0"), "%s", tg_last_error());
    tg_tensor_free(labels);
}
