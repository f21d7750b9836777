"""PyTorch's side of Fashion-MNIST, mirroring bench/bench_train.c without
--pregather: data preloaded as float32 in [0, 1]; per epoch a permutation made
before the clock starts, then per step the batch gathered (x[idx]) and one
step of Adam (lr 1e-3) on the cross-entropy; one sample per epoch; test
accuracy after the last epoch.

usage: torch_fashion.py TRAIN_IMAGES TRAIN_LABELS TEST_IMAGES TEST_LABELS --model lr|mlp [--model ...]
                        --threads N [--epochs E] [--batch B] [--reps R] [--seed S]
"""
import argparse
import time

import torch
import torch.nn.functional as F

from peers import emit, load_idx, peak_rss_kib


def build(model, features, classes):
    if model == "lr":
        return torch.nn.Linear(features, classes)
    return torch.nn.Sequential(torch.nn.Linear(features, 256), torch.nn.ReLU(), torch.nn.Linear(256, classes))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("files", nargs=4)
    p.add_argument("--model", action="append", choices=["lr", "mlp"], required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--seed", type=int, default=1, help="run r uses seed + r")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    xtr, ytr = map(torch.from_numpy, load_idx(args.files[0], args.files[1]))
    xte, yte = map(torch.from_numpy, load_idx(args.files[2], args.files[3]))
    n, classes = len(ytr), int(ytr.max()) + 1
    for name in args.model:
        for rep in range(args.reps):
            torch.manual_seed(args.seed + rep)
            model = build(name, xtr.shape[1], classes)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            g = torch.Generator().manual_seed(1000003 * (args.seed + rep))
            for epoch in range(args.epochs):
                perm = torch.randperm(n, generator=g)
                t0 = time.perf_counter()
                for start in range(0, n, args.batch):
                    idx = perm[start:start + args.batch]
                    xb, yb = xtr[idx], ytr[idx]
                    opt.zero_grad()
                    loss = F.cross_entropy(model(xb), yb)
                    loss.backward()
                    opt.step()
                seconds = time.perf_counter() - t0
                emit(sample="epoch", model=name, rep=rep, epoch=epoch + 1, seconds=seconds,
                     steps=(n + args.batch - 1) // args.batch)
            with torch.no_grad():
                acc = (model(xte).argmax(dim=1) == yte).double().mean().item()
            emit(result="run", model=name, rep=rep, train_rows=n, test_accuracy=acc, peak_rss_kib=peak_rss_kib())


main()
