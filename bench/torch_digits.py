"""PyTorch's side of the digits logistic regression, the same settings as
tapegrad's (64 -> 10, batch 32, SGD lr 0.1 momentum 0.9, 30 epochs).

  loop   the step loop alone, mirroring bench/bench_train.c --pregather: every
         batch of the run gathered before the clock starts; one sample per run.
  whole  the whole script as a user writes it, timed from outside as a process
         (import torch included): load the split, standardize, train with a
         fresh shuffle and gather per epoch, a validation pass per epoch (as
         `tapegrad train` makes), then test accuracy.

usage: torch_digits.py loop TRAIN.csv TEST.csv --threads N [--reps R] [--seed S]
       torch_digits.py whole TRAIN.csv VALIDATION.csv TEST.csv --threads N
"""
import argparse
import time

import torch
import torch.nn.functional as F

from peers import emit, load_csv, peak_rss_kib, standardize

EPOCHS, BATCH, LR, MOMENTUM = 30, 32, 0.1, 0.9


def new_model(features, classes):
    model = torch.nn.Linear(features, classes)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).double().mean().item()


def loop(args):
    (xtr, ytr), (xte, yte) = load_csv(args.files[0]), load_csv(args.files[1])
    xtr, xte = standardize(xtr, xte)
    xtr, ytr, xte, yte = map(torch.from_numpy, (xtr, ytr, xte, yte))
    n, classes = len(ytr), int(ytr.max()) + 1
    for rep in range(args.reps):
        torch.manual_seed(args.seed + rep)
        model, opt = new_model(xtr.shape[1], classes)
        g = torch.Generator().manual_seed(1000003 * (args.seed + rep))
        batches = []
        for _ in range(EPOCHS):
            perm = torch.randperm(n, generator=g)
            for start in range(0, n, BATCH):
                idx = perm[start:start + BATCH]
                batches.append((xtr[idx], ytr[idx]))
        t0 = time.perf_counter()
        for xb, yb in batches:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - t0
        emit(sample="run", rep=rep, seconds=seconds, steps=len(batches))
        emit(result="run", rep=rep, steps=len(batches), train_rows=n, test_accuracy=accuracy(model, xte, yte),
             peak_rss_train_kib=peak_rss_kib())


def whole(args):
    (xtr, ytr), (xva, yva), (xte, yte) = (load_csv(f) for f in args.files)
    xtr, xva, xte = standardize(xtr, xva, xte)
    xtr, ytr, xva, yva, xte, yte = map(torch.from_numpy, (xtr, ytr, xva, yva, xte, yte))
    n = len(ytr)
    model, opt = new_model(xtr.shape[1], int(ytr.max()) + 1)
    for epoch in range(EPOCHS):
        perm = torch.randperm(n)
        for start in range(0, n, BATCH):
            idx = perm[start:start + BATCH]
            opt.zero_grad()
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(xva), yva).item()
        val_acc = accuracy(model, xva, yva)
    print(f"validation loss {val_loss:.4f} accuracy {val_acc:.4f}")
    print(f"test accuracy {accuracy(model, xte, yte):.4f}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["loop", "whole"])
    p.add_argument("files", nargs="+")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seed", type=int, default=1, help="run r uses seed + r")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    loop(args) if args.mode == "loop" else whole(args)


main()
