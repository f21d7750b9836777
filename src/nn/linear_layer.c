/* Parameters of a linear layer, initialised from a caller's generator so the
 * same seed gives the same weights on every platform. */
#include "nn/nn_internal.h"

#include <math.h>

int tg_linear_layer_init(tg_linear_layer *layer, tg_dtype dtype, int64_t in, int64_t out, int bias, int he, tg_rng *rng)
{
    if (!layer) {
        tg_error("linear layer: layer is NULL");
        return -1;
    }
    layer->weight = layer->bias = NULL;
    if (!tg_is_float(dtype) || in <= 0 || out <= 0) {
        tg_error("linear layer: %s [%lld -> %lld], expected a float dtype and positive sizes", tg_dtype_name(dtype),
                 (long long)in, (long long)out);
        return -1;
    }
    layer->weight = tg_tensor_new(dtype, 2, (int64_t[]){ out, in });
    layer->bias = bias ? tg_tensor_new(dtype, 1, (int64_t[]){ out }) : NULL;
    if (!layer->weight || (bias && !layer->bias)) {
        tg_linear_layer_free(layer);
        return -1;
    }
    /* Glorot keeps activations' variance for tanh/sigmoid/logits; He doubles it for ReLU's half-zero output. */
    double bound = he ? sqrt(6.0 / (double)in) : sqrt(6.0 / (double)(in + out));
    if (rng)
        tg_rng_fill_uniform(rng, layer->weight, -bound, bound);
    tg_set_requires_grad(layer->weight, 1);
    tg_set_requires_grad(layer->bias, 1);
    return 0;
}

void tg_linear_layer_free(tg_linear_layer *layer)
{
    if (!layer)
        return;
    tg_tensor_free(layer->weight);
    tg_tensor_free(layer->bias);
    layer->weight = layer->bias = NULL;
}
