"""PyTorch's fused cross-entropy forward + backward, mirroring bench/bench_ce.c:
logits [ROWS, CLASSES] float32 drawn from N(0, 1) with requires_grad, class
targets; per call F.cross_entropy(x, y) (mean) and loss.backward(), which
accumulates into x.grad as tg_backward does. Blocks of equal call counts of
about S seconds after a 0.1 s warm-up; one sample (seconds per call) per block.

usage: torch_ce.py ROWS CLASSES --threads N [--blocks B] [--block-seconds S]
"""
import argparse
import time

import torch
import torch.nn.functional as F

from peers import emit

p = argparse.ArgumentParser()
p.add_argument("rows", type=int)
p.add_argument("classes", type=int)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--blocks", type=int, default=15)
p.add_argument("--block-seconds", type=float, default=0.02)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(7)
x = torch.randn(args.rows, args.classes, requires_grad=True)
y = torch.randint(args.classes, (args.rows,))


def call():
    F.cross_entropy(x, y).backward()


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
