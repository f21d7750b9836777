"""PyTorch's binary cross-entropy with logits, forward + backward, mirroring bench/bench_bce.c:
logits [N, 1] float32 from N(0, 2^2) with requires_grad, targets in {0, 1}; per call
F.binary_cross_entropy_with_logits(x, y) (mean) and loss.backward(). Blocks of equal call counts
of about S seconds after a 0.1 s warm-up; one sample (seconds per call) per block.

usage: torch_bce.py N --threads T [--blocks B] [--block-seconds S]
"""
import argparse
import time

import torch
import torch.nn.functional as F

from peers import emit

p = argparse.ArgumentParser()
p.add_argument("n", type=int)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--blocks", type=int, default=15)
p.add_argument("--block-seconds", type=float, default=0.02)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(7)
x = (2 * torch.randn(args.n, 1)).requires_grad_(True)
y = torch.randint(2, (args.n, 1)).float()


def call():
    F.binary_cross_entropy_with_logits(x, y).backward()


call()
warm, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < 0.1 or warm < 3:
    call()
    warm += 1
per_block = int(args.block_seconds / ((time.perf_counter() - t0) / warm)) + 1
for block in range(args.blocks):
    t0 = time.perf_counter()
    for _ in range(per_block):
        call()
    emit(sample="call", block=block, calls=per_block, seconds=(time.perf_counter() - t0) / per_block)
