/* d/dx sum(x * x) = 2x, through an installed tapegrad. */
#include <tapegrad.h>

#include <stdio.h>

int main(void)
{
    tg_tensor *x = tg_tensor_from(TG_F64, 1, (int64_t[]){ 3 }, (double[]){ 1, 2, 3 });
    tg_tape *tape = tg_tape_new();
    tg_set_requires_grad(x, 1);
    tg_tensor *loss = tg_sum(tape, tg_mul(tape, x, x), TG_ALL);
    if (!loss || tg_backward(tape, loss)) {
        fprintf(stderr, "consumer: %s\n", tg_last_error());
        return 1;
    }
    int ok = tg_get(tg_grad(x), 0) == 2 && tg_get(tg_grad(x), 1) == 4 && tg_get(tg_grad(x), 2) == 6;
    printf("consumer: gradient %s\n", ok ? "ok" : "WRONG");
    tg_tape_free(tape);
    tg_tensor_free(x);
    return ok ? 0 : 1;
}
