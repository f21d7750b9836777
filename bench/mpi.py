#!/usr/bin/python3
"""Training across processes (issue 12, docs/distributed.md): a full-batch
L-BFGS fit of Fashion-MNIST softmax regression (bench/solver.py's problem:
60000 x 784, standardized, float64, L2 with C = 1) by `mpirun -np 1` and
`mpirun -np 2` of an MPI build, one thread per rank, and by the same binary
without mpirun at the machine's full thread budget (what a user gets today).

Times are whole processes (load, fit, test, save), the minimum and median over
the repeats, with the CPU time (user + system) of the fastest run's busiest
rank: the machine may be shared, and a wall time is then inflated by other
load, for N ranks that wait for each other at every evaluation more than for
one. The last column divides np 1's CPU time by each row's busiest rank's: the
speed-up when every rank has its core to itself.
Each row gives the objective reached, so "same optimum" is checked in the
same run. Prints a Markdown table; skips (with a note, exit 0) when there is
no MPI build.

usage: bench/mpi.py [--quick] [--cli PATH] [--repeats N] [--max-iter N]
  --quick      digits (1438 x 64) instead of Fashion-MNIST, one repeat
  --cli        the MPI build's tapegrad (default build-mpi/tapegrad)
  --max-iter   the solver's max_iter (default 100, scikit-learn's default)
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"
MPIRUN = ["mpirun", "--allow-run-as-root", "--bind-to", "core"]


def timed(cmd, env, cpu_prefix):
    """Wall seconds, and the CPU seconds of the busiest process (each rank runs under /usr/bin/time, which
    writes to a file of its own: two ranks' lines on one stderr can interleave)."""
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    cpu = []
    for path in glob.glob(cpu_prefix + ".*"):
        with open(path) as f:
            cpu += [float(a) + float(b) for _, a, b in
                    (line.split() for line in f.read().splitlines() if line.startswith("rank-cpu "))]
        os.remove(path)
    if not cpu:
        sys.exit(f"{' '.join(cmd)}: no CPU time in {cpu_prefix}.*:\n{done.stderr[-2000:]}")
    return (wall, max(cpu)), json.loads(done.stdout)


def config(quick, max_iter):
    if quick:
        data = {"train": os.path.join(ROOT, "data", "digits.csv"), "label": "digit", "test_split": 0.2}
    else:
        data = {"format": "idx", "train": f"{FASHION}/train-images-idx3-ubyte.gz",
                "train_labels": f"{FASHION}/train-labels-idx1-ubyte.gz",
                "test": f"{FASHION}/t10k-images-idx3-ubyte.gz", "test_labels": f"{FASHION}/t10k-labels-idx1-ubyte.gz"}
    data.update({"standardize": True, "validation_split": 0})
    return {"data": data, "model": {"dtype": "float64", "layers": [{"type": "linear", "out": 10}]},
            "loss": {"penalty": "l2", "C": 1.0}, "optimizer": {"type": "lbfgs", "max_iter": max_iter}, "seed": 42}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cli", default=os.path.join(ROOT, "build-mpi", "tapegrad"))
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--max-iter", type=int, default=100)
    args = p.parse_args()
    if not os.path.exists(args.cli) or not shutil.which("mpirun"):
        print(f"skipped: no MPI build at {os.path.relpath(args.cli, ROOT)} (build one with scripts/test-mpi.sh, "
              "which installs Open MPI; docs/distributed.md)")
        return
    repeats = args.repeats or (1 if args.quick else 3)
    cores = os.cpu_count()
    name = "digits (1438 x 64)" if args.quick else "Fashion-MNIST (60000 x 784)"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fit.json")
        with open(path, "w") as f:
            json.dump(config(args.quick, args.max_iter), f)
        env = dict(os.environ)
        env.pop("TAPEGRAD_NUM_THREADS", None)
        cpu_prefix = os.path.join(tmp, "cpu")
        rank_cpu = ["bash", "-c", 'exec /usr/bin/time -o "$0.${OMPI_COMM_WORLD_RANK:-0}" -f "rank-cpu %U %S" "$@"',
                    cpu_prefix, args.cli]
        out = ["train", path, "--json", "--quiet", "--out", os.path.join(tmp, "fit.safetensors")]
        systems = [("mpirun -np 1, 1 thread", MPIRUN + ["-np", "1"] + rank_cpu + out + ["--threads", "1"]),
                   ("mpirun -np 2, 1 thread per rank", MPIRUN + ["-np", "2"] + rank_cpu + out + ["--threads", "1"]),
                   (f"one process (no mpirun), {cores} threads", rank_cpu + out + ["--threads", str(cores)])]
        results = {label: [] for label, _ in systems}
        for r in range(repeats):  # interleaved, so a burst of other load does not hit one system only
            for label, cmd in systems:
                print(f"{name}: {label} ({r + 1}/{repeats})", file=sys.stderr, flush=True)
                results[label].append(timed(cmd, env, cpu_prefix))
    base = min(t[0][0] for t in results[systems[0][0]])
    base_cpu = min(results[systems[0][0]], key=lambda t: t[0][0])[0][1]
    lines = ["| workload | system | wall min (s) | wall median (s) | speed-up vs np 1 (wall min) | busiest rank's "
             "CPU (s) | objective | iterations | test accuracy | speed-up, a core per rank (CPU) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for label, _ in systems:
        runs = results[label]
        (wall, cpu), report = min(runs, key=lambda t: t[0][0])
        solver = report["solver"]
        projected = f"{base_cpu / cpu:.2f}x" if label.startswith("mpirun") else ""
        lines.append(f"| {name} | {label} | {wall:.2f} | {statistics.median(t[0][0] for t in runs):.2f} | "
                     f"{base / wall:.2f}x | {cpu:.2f} | {solver['objective']:.10g} | {solver['iterations']} | "
                     f"{report['test']['accuracy']:.4f} | {projected} |")
    print(f"{repeats} repeat(s); max_iter {args.max_iter}; load average {os.getloadavg()[0]:.2f} at the end; "
          f"{cores} cores; mpirun binds each rank to a core (--bind-to core)\n")
    print("\n".join(lines))


main()
