#!/usr/bin/python3
"""Issue 12's targets on sparse data: a real text corpus, and lazy updates at
1,000,000 features.

1. The Debian package corpus (scripts/make-debian-corpus.py, built offline from
   `apt-cache dumpavail` into data/debian/ on first use and kept there):
   `tapegrad train examples/debian_text.json` as a whole process (load both
   files, train, evaluate the test file, save) against `liblinear-train -s 0
   -c 1` + `liblinear-predict`, and against scikit-learn's
   LogisticRegression(C=1) (load_svmlight_files + fit + predict). Wall and CPU
   time (user + system, from wait4), test accuracy and peak RSS, the RSS beside
   the issue's budget: 1.5 x the CSR bytes of both files at float32 values
   (row offsets int64, columns int32, values float32) + the optimizer's state at
   float32 (Adam: two moments per weight) + 64 MiB. Every process runs on one
   thread (liblinear has no other).
2. bench_sparse (build-bench/bench): per-step CPU time of lazy Adam at 1M
   features as the batch's non-zeros grow, and at a fixed 4,096 non-zeros as
   the feature count grows, dense Adam beside it.

Prints a Markdown section on stdout (progress on stderr). Figures only: the
target lines say met / MISSED and the exit status is 0 unless a command fails.

usage: bench/sparse_text.py [--quick] [--cli PATH] [--bench-bin DIR] [--rounds N]
  --quick  one round, fewer bench_sparse steps, and scikit-learn's fit
           skipped (about two CPU minutes on this corpus)
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "data", "debian")
TRAIN = os.path.join(CORPUS, "debian-train.svm")
TEST = os.path.join(CORPUS, "debian-test.svm")
CONFIG = os.path.join(ROOT, "examples", "debian_text.json")
PY = "/usr/bin/python3"
MIB = 1024 * 1024

SKLEARN = r"""
import json, sys
from sklearn.datasets import load_svmlight_files
from sklearn.linear_model import LogisticRegression
Xtr, ytr, Xte, yte = load_svmlight_files([sys.argv[1], sys.argv[2]])
clf = LogisticRegression(C=1.0, max_iter=1000).fit(Xtr, ytr)
print(json.dumps({"accuracy": float((clf.predict(Xte) == yte).mean()), "iterations": int(clf.n_iter_[0])}))
"""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def one_thread():
    env = dict(os.environ)
    env.update(TAPEGRAD_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def run(cmd):
    """A whole process: wall seconds, CPU seconds (user + system), peak RSS in bytes, stdout."""
    log("  " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=one_thread(), stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{text}{err.read().decode(errors='replace')}")
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, text


def ensure_corpus():
    if os.path.exists(TRAIN) and os.path.exists(TEST):
        return
    log(f"building the Debian corpus into {os.path.relpath(CORPUS, ROOT)}/ (scripts/make-debian-corpus.py)")
    subprocess.run([PY, os.path.join(ROOT, "scripts", "make-debian-corpus.py"), CORPUS], check=True,
                   stdout=sys.stderr)


def shape(path):
    """Rows, non-zeros and the largest index of a libsvm file."""
    rows = nnz = largest = 0
    with open(path) as f:
        for line in f:
            tokens = line.split("#", 1)[0].split()
            if tokens:
                rows += 1
                nnz += len(tokens) - 1
                if len(tokens) > 1:
                    largest = max(largest, int(tokens[-1].split(":", 1)[0]))
    return rows, nnz, largest


class Runs:
    def __init__(self, name):
        self.name, self.wall, self.cpu, self.rss, self.accuracy, self.note = name, [], [], [], [], ""

    def add(self, wall, cpu, rss, accuracy):
        self.wall.append(wall)
        self.cpu.append(cpu)
        self.rss.append(rss)
        self.accuracy.append(accuracy)

    def median(self, xs):
        return statistics.median(xs)


def tapegrad_run(cli, runs, model):
    wall, cpu, rss, text = run([cli, "train", CONFIG, "--quiet", "--threads", "1", "--out", model])
    m = re.search(r"test accuracy ([0-9.]+)", text)
    runs.add(wall, cpu, rss, float(m.group(1)) if m else float("nan"))


def liblinear_run(runs, model, predictions):
    w1, c1, r1, _ = run(["liblinear-train", "-s", "0", "-c", "1", "-q", TRAIN, model])
    w2, c2, r2, text = run(["liblinear-predict", TEST, model, predictions])
    m = re.search(r"Accuracy = ([0-9.]+)%", text)
    runs.add(w1 + w2, c1 + c2, max(r1, r2), float(m.group(1)) / 100 if m else float("nan"))
    runs.note = "train + predict, two processes: times added, the larger peak"


def sklearn_run(runs, script):
    wall, cpu, rss, text = run([PY, script, TRAIN, TEST])
    result = json.loads(text.strip().splitlines()[-1])
    runs.add(wall, cpu, rss, result["accuracy"])
    runs.note = f"load_svmlight_files + fit (lbfgs, {result['iterations']} iterations) + predict, one process"


def corpus_section(cli, rounds, quick):
    ensure_corpus()
    train_rows, train_nnz, features = shape(TRAIN)
    test_rows, test_nnz, _ = shape(TEST)
    with open(CONFIG) as f:
        config = json.load(f)
    classes = config["model"]["layers"][-1]["out"]
    csr = (train_nnz + test_nnz) * (4 + 4) + (train_rows + 1 + test_rows + 1) * 8
    weights = features * classes + classes
    state = 2 * 4 * weights if config["optimizer"]["type"] in ("adam", "adamw") else 0
    budget = 1.5 * csr + state + 64 * MIB
    tg, ll, sk = Runs("tapegrad `train examples/debian_text.json`"), \
        Runs("`liblinear-train -s 0 -c 1` + `liblinear-predict`"), Runs("scikit-learn `LogisticRegression(C=1)`")
    tg.note = "load both files + 5 epochs of lazy Adam (batch 256) + test + save, one process"
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "sklearn_lr.py")
        with open(script, "w") as f:
            f.write(SKLEARN)
        for r in range(rounds):
            log(f"Debian corpus, round {r + 1} of {rounds}")
            tapegrad_run(cli, tg, os.path.join(tmp, "model.safetensors"))
            liblinear_run(ll, os.path.join(tmp, "model.liblinear"), os.path.join(tmp, "predictions"))
        if not quick:
            log("Debian corpus: scikit-learn (once: its fit takes minutes)")
            sklearn_run(sk, script)
    rows = ["| system | wall s (median; min) | CPU s (median) | test accuracy | peak RSS MiB | budget MiB | note |",
            "|---|---:|---:|---:|---:|---:|---|"]
    for r in (tg, ll, sk):
        if not r.wall:
            rows.append(f"| {r.name} | skipped | | | | | --quick: its fit alone takes about two CPU minutes on "
                        f"this corpus; the full run measures it once |")
            continue
        rows.append(f"| {r.name} | {statistics.median(r.wall):.2f}; {min(r.wall):.2f} | "
                    f"{statistics.median(r.cpu):.2f} | {statistics.median(r.accuracy) * 100:.2f} % | "
                    f"{max(r.rss) / MIB:.0f} | {budget / MIB:.0f} | {r.note} |")
    head = (f"Data: {train_rows:,} training and {test_rows:,} test documents, {features:,} features, {classes} "
            f"classes, {train_nnz:,} + {test_nnz:,} non-zeros; CSR at float32 values {csr / MIB:.1f} MiB; Adam's "
            f"two moments at float32 {state / MIB:.1f} MiB; budget 1.5 × {csr / MIB:.1f} + {state / MIB:.1f} + 64 = "
            f"{budget / MIB:.0f} MiB. {rounds} round(s), tapegrad and liblinear alternating; one thread each.")
    targets = []

    def line(ok, text):
        targets.append(f"- {'met' if ok else 'MISSED'}: {text}")

    gap = (statistics.median(tg.accuracy) - statistics.median(ll.accuracy)) * 100
    line(abs(gap) <= 0.5, f"test accuracy {statistics.median(tg.accuracy) * 100:.2f} % against liblinear's "
                          f"{statistics.median(ll.accuracy) * 100:.2f} %: {gap:+.2f} points (target within 0.5)")
    for what, xs, ys in (("wall", tg.wall, ll.wall), ("CPU", tg.cpu, ll.cpu)):
        s = statistics.median(ys) / statistics.median(xs)
        line(s > 1, f"whole process against liblinear's train + predict, {what} time: {statistics.median(xs):.2f} s "
                    f"vs {statistics.median(ys):.2f} s, {s:.1f}× as fast (target > 1×)")
    if sk.wall:
        s = statistics.median(sk.cpu) / statistics.median(tg.cpu)
        line(s > 1, f"whole process against scikit-learn's load + fit + predict, CPU time: "
                    f"{statistics.median(tg.cpu):.2f} s vs {statistics.median(sk.cpu):.2f} s, {s:.0f}× as fast "
                    f"(wall {statistics.median(sk.wall):.0f} s; target > 1×)")
    else:
        targets.append("- not measured under --quick: the speed against scikit-learn (run without --quick)")
    line(max(tg.rss) <= budget, f"tapegrad's peak RSS {max(tg.rss) / MIB:.0f} MiB against the budget "
                                f"{budget / MIB:.0f} MiB (liblinear peaks at {max(ll.rss) / MIB:.0f} MiB)")
    return "\n".join([head, "", *rows, "", *targets])


def floats(row):
    return [float(c) for c in row.strip().strip("|").split("|")]


def lazy_section(bench_bin, steps):
    binary = os.path.join(bench_bin, "bench_sparse")
    if not os.path.exists(binary):
        return f"{binary} is missing (build the drivers: cmake -S bench -B build-bench/bench ...)"
    log(f"1M sparse features: bench_sparse {steps}")
    done = subprocess.run([binary, str(steps)], env=one_thread(), capture_output=True, text=True, check=True)
    text = done.stdout.strip()
    tables, current = [], None
    for row in text.splitlines():
        if row.startswith("## "):
            current = []
            tables.append(current)
        elif current is not None and re.match(r"\| [0-9]", row):
            current.append(floats(row))
    targets = []
    if len(tables) == 2 and tables[0] and tables[1]:
        per_nnz = [r[3] for r in tables[0]] + [r[6] for r in tables[0]]
        nnz_range = tables[0][-1][1] / tables[0][0][1]
        by_features = {int(r[0]): r for r in tables[1]}
        small, large = min(by_features), max(by_features)
        lazy = by_features[large][3] / by_features[small][3]
        dense = by_features[large][5] / by_features[small][5]
        ok = max(per_nnz) / min(per_nnz) <= 2.5 and lazy < dense / 4
        targets.append(
            f"- {'met' if ok else 'MISSED'}: at 1,000,000 features the CPU time per non-zero stays between "
            f"{min(per_nnz):.0f} and {max(per_nnz):.0f} ns over {nnz_range:.0f}× as many non-zeros per batch (both "
            f"layouts; the step follows the non-zeros); at 4,096 non-zeros per batch, {large // small}× the features "
            f"costs the lazy step (W [F, 10]) {lazy:.1f}× and dense Adam {dense:.0f}× (the step does not follow the "
            f"feature count; what growth there is comes from cache misses, not from work)")
    return text.replace("# bench_sparse", "bench_sparse", 1).replace("\n## ", "\n### ") + "\n\n" + "\n".join(targets)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--cli", default=os.path.join(ROOT, "build-bench", "tapegrad"))
    p.add_argument("--bench-bin", default=os.path.join(ROOT, "build-bench", "bench"))
    p.add_argument("--rounds", type=int, default=0, help="rounds on the corpus (default 3, 1 under --quick)")
    args = p.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    print("### The Debian package corpus: whole process against liblinear and scikit-learn\n")
    print(corpus_section(args.cli, rounds, args.quick))
    print("\n### 1,000,000 sparse features, 10 classes, lazy Adam: per-step cost\n")
    print(lazy_section(args.bench_bin, 20 if args.quick else 100))


main()
