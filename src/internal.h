/* Every internal header at once, for the tests that check internal kernels
 * directly. The library's own files include only their folder's header:
 * core/core.h <- tensor/tensor_internal.h <- autograd/tape.h <- ops/ops.h
 * <- nn/nn_internal.h <- io/io_internal.h <- train (src/train/). */
#ifndef TAPEGRAD_INTERNAL_H
#define TAPEGRAD_INTERNAL_H

#include "dist/dist.h"
#include "io/io_internal.h"

#endif
