#!/usr/bin/python3
"""Logistic regression to the optimum (issue 14): `tapegrad train` with
optimizer lbfgs against scikit-learn's LogisticRegression fit and
liblinear-train -s 0, on digits and Fashion-MNIST, standardized the way
tapegrad standardizes, C = 1, L2.

Times: tapegrad and liblinear as whole processes (load, train, test, save);
scikit-learn's fit alone (data already loaded and standardized). Each row also
gives the CPU time (user + system over all threads: the machine may be shared,
so wall times can be inflated by other load), the objective C * sum loss + |W|^2 / 2 (scikit-learn's, multinomial;
liblinear's is one-vs-rest with a penalized bias, so only its accuracy is
comparable) and the test accuracy. The optimum is scikit-learn's newton-cg
with tol 1e-10 (its time is shown too). Prints a Markdown table.

usage: bench/solver.py [--quick] [--repeats N] [--cli PATH] [--fashion-newton] [--C C] [--fashion-only]
  --quick           digits only
  --fashion-only    Fashion-MNIST only
  --repeats N       run each digits row N times and report the median wall and CPU times (default 1)
  --fashion-newton  also run newton-cg on Fashion-MNIST (slow at C = 1) for its optimum
  --C C             inverse regularization strength (default 1; the stored
                    Fashion-MNIST optimum is for C = 1 only)
"""
import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
# scikit-learn 1.2's newton-cg, tol 1e-10, on this machine (bench/solver.py --fashion-newton): the exact optimum
# at C = 1 on standardized Fashion-MNIST, its test accuracy, and the CPU seconds it took (3598 s of wall time).
FASHION_OPTIMUM, FASHION_OPTIMUM_ACCURACY, FASHION_NEWTON_CPU = 19388.502407028565, 0.8346, 1421.5


def standardize(train, test):
    """tapegrad's: float32 moments from double sums, (x - mean) / std in float32."""
    mean = train.astype(np.float64).mean(axis=0)
    std = np.sqrt(((train.astype(np.float64) - mean) ** 2).mean(axis=0))
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    std32[std32 == 0] = 1
    return [((x - mean32) / std32).astype(np.float32) for x in (train, test)]


def idx(images, labels):
    with gzip.open(images, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols)
    x = (x.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)
    with gzip.open(labels, "rb") as f:
        y = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(np.int64)
    return x, y


def objective(W, b, X, y, C):
    Z = X.astype(np.float64) @ W.T + b
    Z -= Z.max(axis=1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
    return C * -logp[np.arange(len(y)), y].sum() + 0.5 * np.sum(W * W)


def write_svm(path, X, y):
    with open(path, "w") as f:
        for row, label in zip(X, y):
            f.write(str(label) + " " + " ".join(f"{j + 1}:{v:.9g}" for j, v in enumerate(row) if v != 0) + "\n")


def children_cpu():
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd):
    """Wall and CPU seconds (user + system, every thread) of a whole process."""
    started, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(cmd, capture_output=True, text=True)
    took = (time.perf_counter() - started, children_cpu() - cpu)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return took, done.stdout


def repeated(repeats, run):
    """run() `repeats` times, interleaved with nothing else: its last result with the median wall and CPU times."""
    results = [run() for _ in range(repeats)]
    took = tuple(statistics.median(r[0][i] for r in results) for i in range(2))
    return (took,) + tuple(results[-1][1:])


def run_tapegrad(cli, config, tmp, name):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(config, f)
    took, out = timed([cli, "train", path, "--json", "--quiet", "--out", os.path.join(tmp, name + ".safetensors")])
    report = json.loads(out)
    solver = report["solver"]
    note = f"{solver['iterations']} iterations, {solver['status']}"
    return took, solver["objective"], report["test"]["accuracy"], note


def run_sklearn(Xtr, ytr, Xte, yte, C, **kw):
    from sklearn.linear_model import LogisticRegression
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        started, cpu = time.perf_counter(), time.process_time()
        m = LogisticRegression(C=C, multi_class="multinomial", **kw).fit(Xtr, ytr)
        took = (time.perf_counter() - started, time.process_time() - cpu)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    note = f"{int(m.n_iter_[0])} iterations" + (", ConvergenceWarning" if warned else "")
    return took, objective(m.coef_, m.intercept_, Xtr, ytr, C), m.score(Xte, yte), note


def run_liblinear(Xtr, ytr, Xte, yte, C, tmp, name):
    train, test = os.path.join(tmp, name + ".train.svm"), os.path.join(tmp, name + ".test.svm")
    model, out = os.path.join(tmp, name + ".liblinear"), os.path.join(tmp, name + ".out")
    if not os.path.exists(train):
        write_svm(train, Xtr, ytr)
        write_svm(test, Xte, yte)
    took, _ = timed(["liblinear-train", "-q", "-s", "0", "-c", str(C), "-B", "1", train, model])
    _, printed = timed(["liblinear-predict", test, model, out])
    accuracy = float(printed.split("Accuracy = ")[1].split("%")[0]) / 100
    return took, float("nan"), accuracy, "one-vs-rest, penalized bias (-B 1)"


def digits_files(tmp):
    raw = np.genfromtxt(os.path.join(ROOT, "data", "digits.csv"), delimiter=",", skip_header=1)
    test = np.arange(len(raw)) % 5 == 4  # every fifth row is a test row
    header = ",".join([f"p{j}" for j in range(64)] + ["digit"])
    paths = []
    for part, rows in (("train", raw[~test]), ("test", raw[test])):
        path = os.path.join(tmp, f"digits_{part}.csv")
        np.savetxt(path, rows, delimiter=",", fmt="%d", header=header, comments="")
        paths.append(path)
    x = raw[:, :-1].astype(np.float32)
    y = raw[:, -1].astype(np.int64)
    return paths, (x[~test], y[~test]), (x[test], y[test])


def workloads(args, tmp):
    (dtrain, dtest), (xtr, ytr), (xte, yte) = digits_files(tmp)
    data = {"train": dtrain, "test": dtest, "standardize": True, "validation_split": 0}
    if not args.fashion_only:
        yield "digits (1438 x 64)", data, xtr, ytr, xte, yte, True
    if args.quick:
        return
    files = [os.path.join(FASHION_DIR, f) for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                                    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")]
    xtr, ytr = idx(files[0], files[1])
    xte, yte = idx(files[2], files[3])
    data = {"format": "idx", "train": files[0], "train_labels": files[1], "test": files[2], "test_labels": files[3],
            "standardize": True, "validation_split": 0}
    yield "Fashion-MNIST (60000 x 784)", data, xtr, ytr, xte, yte, args.fashion_newton


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--fashion-newton", action="store_true")
    p.add_argument("--fashion-only", action="store_true")
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--cli", default=None)
    args = p.parse_args()
    cli = args.cli or next(c for c in (os.path.join(ROOT, "build-bench", "tapegrad"),
                                       os.path.join(ROOT, "build-release", "tapegrad")) if os.path.exists(c))
    C = args.C
    lines = ["| workload | system | wall (s) | CPU (s) | objective | rel. to best | test accuracy | note |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, data, xtr, ytr, xte, yte, newton in workloads(args, tmp):
            Xtr, Xte = standardize(xtr, xte)
            k = args.repeats if name.startswith("digits") else 1

            def rerun(run, *a, **kw):
                return repeated(k, lambda: run(*a, **kw))

            print(f"{name}: tapegrad", file=sys.stderr)
            config = {"data": data, "model": {"dtype": "float64", "layers": [{"type": "linear", "out": 10}]},
                      "loss": {"penalty": "l2", "C": C}, "optimizer": {"type": "lbfgs"}}
            rows = [("tapegrad train (lbfgs), whole process", rerun(run_tapegrad, cli, config, tmp, "tg"))]
            print(f"  {rows[0][1][3]}", file=sys.stderr)
            if name.startswith("Fashion"):  # as many iterations as scikit-learn's default max_iter
                config["optimizer"]["max_iter"] = 100
                rows.append(("tapegrad train (lbfgs, max_iter 100), whole process",
                             run_tapegrad(cli, config, tmp, "tg100")))
            print(f"{name}: scikit-learn", file=sys.stderr)
            rows.append(("scikit-learn lbfgs (defaults), fit only", rerun(run_sklearn, Xtr, ytr, Xte, yte, C)))
            if not name.startswith("Fashion"):
                rows.append(("scikit-learn lbfgs max_iter 10000 tol 1e-10, fit only",
                             rerun(run_sklearn, Xtr, ytr, Xte, yte, C, max_iter=10000, tol=1e-10)))
            if newton:
                rows.append(("scikit-learn newton-cg tol 1e-10 (the optimum), fit only",
                             rerun(run_sklearn, Xtr, ytr, Xte, yte, C, solver="newton-cg", tol=1e-10, max_iter=10000)))
            print(f"{name}: liblinear", file=sys.stderr)
            rows.append(("liblinear-train -s 0 -B 1, whole process",
                         rerun(run_liblinear, Xtr, ytr, Xte, yte, C, tmp, "ll")))
            if name.startswith("Fashion") and not newton and C == 1.0:  # its optimum, measured once: newton-cg takes ~25 CPU-minutes
                rows.append(("scikit-learn newton-cg tol 1e-10 (the optimum), measured 2026-12-03, not rerun",
                             ((float("nan"), FASHION_NEWTON_CPU), FASHION_OPTIMUM, FASHION_OPTIMUM_ACCURACY,
                              "77 iterations; rerun with --fashion-newton")))
            best = min(r[1] for _, r in rows if not np.isnan(r[1]))
            for system, (took, obj, acc, note) in rows:
                rel = "" if np.isnan(obj) else f"{(obj - best) / best:.1e}"
                wall = "" if np.isnan(took[0]) else f"{took[0]:.3f}"
                lines.append(f"| {name} | {system} | {wall} | {took[1]:.3f} | {'' if np.isnan(obj) else f'{obj:.8g}'} | {rel} "
                             f"| {acc:.4f} | {note} |")
    times = "times: one run"
    if args.repeats > 1:
        times = f"times: medians of {args.repeats} runs on digits" + ("" if args.quick else ", one run on Fashion-MNIST")
    print(f"load average {os.getloadavg()[0]:.2f}; C = {C}; threads: the machine's ({os.cpu_count()}); {times}\n")
    print("\n".join(lines))


main()
