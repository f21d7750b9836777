#!/usr/bin/python3
"""Peak memory of `tapegrad train` on a CSV larger than memory (data.stream, docs/data.md).

usage: /usr/bin/python3 bench/stream.py [--quick] [--format csv|libsvm] [--tapegrad PATH] [--dir DIR]
                                       [--sizes-mb A,B] [--limit-mb N]

Writes training CSVs of the given sizes (20 float features, 3 classes; a
200,000-row chunk drawn once with numpy and repeated, so writing is fast) and a
20,000-row test file into DIR, then trains logistic regression (one linear
layer, SGD, one epoch, batch 256) on each file with "stream": true under an
address-space limit (prlimit --as, single-threaded so the limit counts data,
not thread stacks), then without streaming under the same limit, where the
largest file must fail. Prints one Markdown table: file size, rows, mode,
peak RSS (the child's ru_maxrss), CPU and wall seconds (wall time counts
other load on a shared machine; CPU time does not), outcome. --quick: 64 and 256 MB
files under a 200 MB limit. The files are left in DIR (default
/tmp/tapegrad-stream-bench) for a rerun; delete them when done. Figures only:
nothing is asserted and the exit status does not depend on them.

--format libsvm: the same with libsvm files (50,000 features, about 30
stored values a row, 3 classes; a 50,000-row chunk repeated), "standardize":
"scale" and lazy SGD, so the rows stay sparse from the file to the step.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

FEATURES = 20
CHUNK_ROWS = 200_000
SVM_FEATURES = 50_000
SVM_STORED = 30
SVM_CHUNK_ROWS = 50_000


def chunk_text(rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    w = np.random.default_rng(0).normal(size=(3, FEATURES))  # one model for the training and test files
    y = np.argmax(x @ w.T + rng.gumbel(size=(rows, 3)), axis=1)
    lines = [",".join(f"{v:.5g}" for v in row) + f",{c}\n" for row, c in zip(x.tolist(), y.tolist())]
    return "".join(lines).encode()


def svm_chunk_text(rows, seed):
    """rows libsvm lines: SVM_STORED distinct sorted indices a row (duplicates dropped), normal values."""
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(0).normal(size=(3, SVM_FEATURES + 1))
    idx = np.sort(rng.integers(1, SVM_FEATURES + 1, size=(rows, SVM_STORED)), axis=1)
    val = rng.normal(size=(rows, SVM_STORED)).astype(np.float32)
    keep = np.ones_like(idx, dtype=bool)
    keep[:, 1:] = idx[:, 1:] != idx[:, :-1]
    scores = np.stack([(w[c][idx] * val * keep).sum(axis=1) for c in range(3)], axis=1)
    y = np.argmax(scores + rng.gumbel(size=(rows, 3)), axis=1)
    lines = []
    for r in range(rows):
        k = keep[r]
        pairs = " ".join(f"{i}:{v:.4g}" for i, v in zip(idx[r][k].tolist(), val[r][k].tolist()))
        lines.append(f"{y[r]} {pairs}\n")
    return "".join(lines).encode()


def write_file(path, target_bytes, chunk, header):
    """The header, then the chunk repeated until the file holds at least target_bytes; its row count."""
    if os.path.exists(path) and os.path.getsize(path) >= target_bytes:
        with open(path, "rb") as f:
            return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 24), b"")) - (1 if header else 0)
    rows, per_chunk = 0, chunk.count(b"\n")
    with open(path, "wb") as f:
        f.write(header)
        written = len(header)
        while rows == 0 or written < target_bytes:
            f.write(chunk)
            written += len(chunk)
            rows += per_chunk
    return rows


def run_measured(cmd, limit_bytes):
    """Runs cmd under the limit; (exit status, stdout, stderr, wall seconds, CPU seconds, peak RSS in MiB). /usr/bin/time
    measures: a child forked from this interpreter would count the interpreter's pages in its peak."""
    env = dict(os.environ, TAPEGRAD_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    full = ["/usr/bin/time", "-f", "peak-kib %M %U %S", "prlimit", f"--as={limit_bytes}", "--"] + cmd
    start = time.monotonic()
    p = subprocess.run(full, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - start
    lines = p.stderr.strip().splitlines()
    timing = next((l.split()[1:] for l in reversed(lines) if l.startswith("peak-kib ")), ["0", "0", "0"])
    peak, cpu = int(timing[0]), float(timing[1]) + float(timing[2])
    stderr = "\n".join(l for l in lines if not l.startswith("peak-kib ") and not l.startswith("Command exited"))
    return p.returncode, p.stdout, stderr, seconds, cpu, peak / 1024.0


def config(train, test, stream, libsvm=False):
    data = {"train": train, "test": test, "header": True}
    optimizer = {"type": "sgd", "lr": 0.05, "momentum": 0.9}
    if libsvm:
        data = {"format": "libsvm", "train": train, "test": test, "standardize": "scale", "features": SVM_FEATURES}
        optimizer = {"type": "sgd", "lr": 0.05, "lazy": True}
    if stream:
        data.update({"stream": True, "block_rows": 16384, "shuffle_window": 4})
    else:
        data["validation_split"] = 0
    return {
        "data": data,
        "model": {"layers": [{"type": "linear", "out": 3}]},
        "optimizer": optimizer,
        "train": {"epochs": 1, "batch_size": 256},
        "seed": 1,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--format", choices=["csv", "libsvm"], default="csv")
    ap.add_argument("--tapegrad", default=os.path.join(os.path.dirname(__file__), "..", "build-release", "tapegrad"))
    ap.add_argument("--dir", default="/tmp/tapegrad-stream-bench")
    ap.add_argument("--sizes-mb", default=None)
    ap.add_argument("--limit-mb", type=int, default=None)
    a = ap.parse_args()
    sizes = [int(s) for s in (a.sizes_mb or ("64,256" if a.quick else "256,1100")).split(",")]
    limit_mb = a.limit_mb or (200 if a.quick else 300)
    limit = limit_mb << 20
    os.makedirs(a.dir, exist_ok=True)
    libsvm = a.format == "libsvm"
    ext = "svm" if libsvm else "csv"
    header = b"" if libsvm else (",".join(f"f{j}" for j in range(FEATURES)) + ",label\n").encode()
    print(f"generating files in {a.dir}", file=sys.stderr)
    chunk = svm_chunk_text(SVM_CHUNK_ROWS, 1) if libsvm else chunk_text(CHUNK_ROWS, 1)
    test = os.path.join(a.dir, f"test.{ext}")
    write_file(test, 1, svm_chunk_text(20_000, 2) if libsvm else chunk_text(20_000, 2), header)
    rows = {}
    for mb in sizes:
        path = os.path.join(a.dir, f"train-{mb}MB.{ext}")
        rows[mb] = write_file(path, mb << 20, chunk, header)

    results = []
    plan = [(mb, True) for mb in sizes] + [(mb, False) for mb in sizes]
    for mb, stream in plan:
        path = os.path.join(a.dir, f"train-{mb}MB.{ext}")
        cfg_path = os.path.join(a.dir, f"{'stream' if stream else 'memory'}-{mb}-{ext}.json")
        with open(cfg_path, "w") as f:
            json.dump(config(path, test, stream, libsvm), f)
        print(f"training on {path} ({'stream' if stream else 'in memory'}) under {limit_mb} MiB", file=sys.stderr)
        cmd = [a.tapegrad, "train", cfg_path, "--out", os.path.join(a.dir, "model.safetensors"), "--quiet"]
        code, out, err, seconds, cpu, rss = run_measured(cmd, limit)
        if code == 0:
            acc = next((l.split()[2] for l in out.splitlines() if l.startswith("test accuracy")), "?")
            outcome = f"trained, test accuracy {acc}"
        else:
            outcome = "failed: " + (err.strip().splitlines() or ["(no message)"])[-1][:170]
        mode = "stream" if stream else "in memory"
        results.append((os.path.getsize(path) / 1e6, rows[mb], mode, rss, cpu, seconds, outcome))

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; one thread; "
          f"limit `prlimit --as={limit}` ({limit_mb} MiB of address space); "
          f"`tapegrad train` one epoch, block_rows 16384, shuffle_window 4, batch 256; "
          + (f"libsvm, {SVM_FEATURES:,} features, ~{SVM_STORED} stored a row, scale-only, lazy SGD.\n" if libsvm
             else f"CSV, {FEATURES} features.\n"))
    print("| file (MB) | rows | mode | peak RSS (MiB) | CPU seconds | wall seconds | outcome |")
    print("|---:|---:|---|---:|---:|---:|---|")
    for size, n, mode, rss, cpu, seconds, outcome in results:
        print(f"| {size:.0f} | {n:,} | {mode} | {rss:.1f} | {cpu:.1f} | {seconds:.1f} | {outcome} |")


if __name__ == "__main__":
    main()
