#!/usr/bin/python3
"""Peak memory of `tapegrad train` on a CSV larger than memory (data.stream, docs/data.md).

usage: /usr/bin/python3 bench/stream.py [--quick] [--tapegrad PATH] [--dir DIR] [--sizes-mb A,B] [--limit-mb N]

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


def chunk_text(rows, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    w = np.random.default_rng(0).normal(size=(3, FEATURES))  # one model for the training and test files
    y = np.argmax(x @ w.T + rng.gumbel(size=(rows, 3)), axis=1)
    lines = [",".join(f"{v:.5g}" for v in row) + f",{c}\n" for row, c in zip(x.tolist(), y.tolist())]
    return "".join(lines).encode()


def write_file(path, target_bytes, chunk, header):
    """The header, then the chunk repeated until the file holds at least target_bytes; its row count."""
    if os.path.exists(path) and os.path.getsize(path) >= target_bytes:
        with open(path, "rb") as f:
            return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 24), b"")) - 1
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


def config(train, test, stream):
    data = {"train": train, "test": test, "header": True}
    if stream:
        data.update({"stream": True, "block_rows": 16384, "shuffle_window": 4})
    else:
        data["validation_split"] = 0
    return {
        "data": data,
        "model": {"layers": [{"type": "linear", "out": 3}]},
        "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9},
        "train": {"epochs": 1, "batch_size": 256},
        "seed": 1,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tapegrad", default=os.path.join(os.path.dirname(__file__), "..", "build-release", "tapegrad"))
    ap.add_argument("--dir", default="/tmp/tapegrad-stream-bench")
    ap.add_argument("--sizes-mb", default=None)
    ap.add_argument("--limit-mb", type=int, default=None)
    a = ap.parse_args()
    sizes = [int(s) for s in (a.sizes_mb or ("64,256" if a.quick else "256,1100")).split(",")]
    limit_mb = a.limit_mb or (200 if a.quick else 300)
    limit = limit_mb << 20
    os.makedirs(a.dir, exist_ok=True)
    header = (",".join(f"f{j}" for j in range(FEATURES)) + ",label\n").encode()
    print(f"generating files in {a.dir}", file=sys.stderr)
    chunk = chunk_text(CHUNK_ROWS, 1)
    test = os.path.join(a.dir, "test.csv")
    write_file(test, 1, chunk_text(20_000, 2), header)
    rows = {}
    for mb in sizes:
        path = os.path.join(a.dir, f"train-{mb}MB.csv")
        rows[mb] = write_file(path, mb << 20, chunk, header)

    results = []
    plan = [(mb, True) for mb in sizes] + [(mb, False) for mb in sizes]
    for mb, stream in plan:
        path = os.path.join(a.dir, f"train-{mb}MB.csv")
        cfg_path = os.path.join(a.dir, f"{'stream' if stream else 'memory'}-{mb}.json")
        with open(cfg_path, "w") as f:
            json.dump(config(path, test, stream), f)
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
          f"`tapegrad train` one epoch, block_rows 16384, shuffle_window 4, batch 256.\n")
    print("| file (MB) | rows | mode | peak RSS (MiB) | CPU seconds | wall seconds | outcome |")
    print("|---:|---:|---|---:|---:|---:|---|")
    for size, n, mode, rss, cpu, seconds, outcome in results:
        print(f"| {size:.0f} | {n:,} | {mode} | {rss:.1f} | {cpu:.1f} | {seconds:.1f} | {outcome} |")


if __name__ == "__main__":
    main()
