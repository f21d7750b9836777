#include <criterion/criterion.h>

#include "helpers.h"

Test(tape, chain_rule_by_hand)
{
    /* L = sum((a * b) + a) with a = [1, 2], b = [3, 4]: dL/da = b + 1, dL/db = a */
    tg_tensor *a = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 1, 2 });
    tg_tensor *b = tg_tensor_from(TG_F64, 1, (int64_t[]){ 2 }, (double[]){ 3, 4 });
    tg_set_requires_grad(a, 1);
    tg_set_requires_grad(b, 1);
    tg_tape *tape = tg_tape_new();
    tg_tensor *loss = tg_sum(tape, tg_add(tape, tg_mul(tape, a, b), a), TG_ALL);
    cr_assert_not_null(loss, "%s", tg_last_error());
    cr_assert_float_eq(tg_get(loss, 0), 1 * 3 + 2 * 4 + 1 + 2, 1e-12);
    cr_assert_eq(tg_backward(tape, loss), 0, "%s", tg_last_error());
    cr_assert_float_eq(tg_get(tg_grad(a), 0), 4.0, 1e-12);
    cr_assert_float_eq(tg_get(tg_grad(a), 1), 5.0, 1e-12);
    cr_assert_float_eq(tg_get(tg_grad(b), 0), 1.0, 1e-12);
    cr_assert_float_eq(tg_get(tg_grad(b), 1), 2.0, 1e-12);
    tg_tape_free(tape);
    tg_tensor_free(a);
    tg_tensor_free(b);
}
