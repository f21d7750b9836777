/* The reductions every loss shares (cross_entropy, nll_loss and the binary
 * losses): how the positions' losses become one value, and what gradient
 * each position receives back. PyTorch's rule: the mean divides by the summed
 * weights of the positions not ignored, and 0/0 is NaN. */
#include "elementwise.h"

#include <math.h>

void tg_loss_reduce(tg_tensor *loss, tg_reduction reduction, double total, double denominator)
{
    if (reduction == TG_SUM)
        tg_set(loss, 0, total);
    else if (reduction == TG_MEAN)
        tg_set(loss, 0, denominator == 0 ? NAN : total / denominator);
}

double tg_loss_grad_scale(const tg_tensor *g, tg_reduction reduction, int64_t p, double denominator)
{
    switch (reduction) {
    case TG_NONE: return tg_get(g, p);
    case TG_SUM: return tg_get(g, 0);
    case TG_MEAN: break;
    }
    return tg_get(g, 0) / denominator;
}
