"""Runs the workloads of issue 5 for tapegrad and its peers with identical
data, split, model, batch size, optimizer, epochs and thread counts, and prints
one table (Markdown) with the machine it ran on. bench/compare builds
everything first and then runs this with Debian's /usr/bin/python3.

The machine is shared and noisy, so each workload's processes run in rounds:
every system and thread count once per round, the rounds one after another,
so that a busy neighbour slows every system alike rather than one of them.

Figures only: nothing here asserts a time; the target lines at the end say
what this run measured against the issue's targets and the exit status stays 0.
Progress goes to stderr; the report goes to stdout and to
build-bench/compare-report.md.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-bench")
BIN = os.path.join(BUILD, "bench")
DATA = os.path.join(BUILD, "data")
CLI = os.path.join(BUILD, "tapegrad")
PY = "/usr/bin/python3"
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
FASHION = [os.path.join(FASHION_DIR, f) for f in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")]
DATA_BYTES = 60000 * 784 * 4  # Fashion-MNIST's training images as float32
MEMORY_BOUND = DATA_BYTES + 64 * 1024 * 1024
MIB = 1024 * 1024


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def thread_env(threads, blas=None):
    """One thread budget for everything in the process: tapegrad's own loops
    (TAPEGRAD_NUM_THREADS), OpenMP pools (OMP_NUM_THREADS: libgomp, PyTorch's
    intra-op pool) and OpenBLAS (OPENBLAS_NUM_THREADS, unless blas says otherwise)."""
    env = dict(os.environ)
    env.update(TAPEGRAD_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(blas or threads), MKL_NUM_THREADS=str(threads))
    return env


def show(cmd, env):
    threads = "" if "TAPEGRAD_NUM_THREADS" not in env else \
        f"[threads {env['TAPEGRAD_NUM_THREADS']}, BLAS {env['OPENBLAS_NUM_THREADS']}] "
    return threads + " ".join(shlex.quote(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c) for c in cmd)


def run_json(cmd, env):
    """Runs a driver and returns its JSON lines."""
    log("  " + show(cmd, env))
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def timed_process(cmd, env):
    """Wall time of a whole process (fork to exit), its peak RSS (KiB) and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
        seconds = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(errors="replace")
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{text}{err.read().decode(errors='replace')}")
        return seconds, usage.ru_maxrss, text


def samples_of(records, kind=None, **match):
    return [r["seconds"] for r in records if "sample" in r and (kind is None or r["sample"] == kind)
            and all(r.get(k) == v for k, v in match.items())]


def results_of(records, **match):
    return [r for r in records if "result" in r and all(r.get(k) == v for k, v in match.items())]


# ---------------------------------------------------------------------------
# The table

G_LOOP = "digits LR training loop (64→10, batch 32, SGD m 0.9, 30 epochs)"
G_WHOLE = "digits LR whole process (train split → test accuracy)"
G_FLR = "Fashion-MNIST LR 784→10, one epoch (batch 128, Adam 1e-3)"
G_MLP = "Fashion-MNIST MLP 784→256→ReLU→10, one epoch (batch 128, Adam 1e-3)"
G_CE_SMALL = "cross-entropy fwd+bwd f32 32×10, per call"
G_CE_LARGE = "cross-entropy fwd+bwd f32 4096×1000, per call"
# per-position (N-D) logits [N, C, d] against the 2-D kernel over the same elements, [N·d, C]
CE_ND = ((32, 10, 1024), (4, 1000, 1024))
G_CE_ND = {s: f"cross-entropy N-D fwd+bwd f32 [{s[0]}, {s[1]}, {s[2]}] (vs 2-D {s[0] * s[2]}×{s[1]}), per call"
           for s in CE_ND}
G_F64 = "float64 (tapegrad)"
G_STEP = "one step forward + backward, written two ways (tapegrad; CPU time per step)"
G_MEM = "memory"
GROUPS = [G_LOOP, G_WHOLE, G_FLR, G_MLP, G_CE_SMALL, G_CE_LARGE] + list(G_CE_ND.values()) + [G_F64, G_STEP, G_MEM]
TEXTBOOK = "textbook form: tg_matmul + tg_add, W [in, out]"


class Row:
    """One line of the table: a system at a thread setting on a workload."""

    def __init__(self, group, system, threads, kind, budget=None, note="", value=None, unit="s"):
        self.group, self.system, self.threads, self.kind = group, system, str(threads), kind
        self.samples, self.accuracy = [], []
        self.budget = budget if budget is not None else (threads if isinstance(threads, int) else None)
        self.note, self.value, self.unit = note, value, unit
        self.ratio_text = ""  # for rows compared with something other than tapegrad's same-budget row
        self.bound_ratio = None  # for rows whose bound is not a row of the same budget
        self.steps = None
        self.flops = None

    def add(self, samples, accuracy=()):
        self.samples += samples
        self.accuracy += [a for a in accuracy if a is not None]

    @property
    def median(self):
        return statistics.median(self.samples) if self.samples else self.value

    @property
    def min(self):
        return min(self.samples) if self.samples else self.value

    @property
    def acc(self):
        return statistics.median(self.accuracy) if self.accuracy else None


def fmt_time(s):
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_value(row, v):
    if v is None:
        return "—"
    if row.unit == "s":
        return fmt_time(v)
    if row.unit == "MiB":
        return f"{v / MIB:.1f} MiB"
    return f"{v:g}"


def fmt_ratio(r):
    return "—" if r is None else (f"{r:.3g}" if r < 10 else f"{r:.0f}")


def fmt_ratios(by_median, by_min):
    if by_median is None:
        return "—"
    return f"{fmt_ratio(by_median)} ({fmt_ratio(by_min)})" if by_min is not None else fmt_ratio(by_median)


class Table:
    def __init__(self):
        self.rows = []

    def add(self, row):
        self.rows.append(row)
        return row

    def find(self, group, kind, budget=None, system=None):
        for r in self.rows:
            if r.group == group and r.kind == kind and (budget is None or r.budget == budget) and \
                    (system is None or r.system == system):
                return r
        return None

    def best(self, group, kind, system_prefix=""):
        rows = [r for r in self.rows if r.group == group and r.kind == kind and r.system.startswith(system_prefix)
                and r.median is not None]
        return min(rows, key=lambda r: r.median) if rows else None

    def vs_peer(self, row):
        """(median ratio, minimum ratio) of tapegrad at the same budget to this peer row."""
        if row.kind != "peer":
            return None, None
        tg = self.find(row.group, "tapegrad", row.budget)
        if not tg or not row.median:
            return None, None
        return tg.median / row.median, (tg.min / row.min if tg.min and row.min else None)

    def vs_bound(self, row):
        if row.bound_ratio is not None:
            return row.bound_ratio, None
        if row.kind != "tapegrad":
            return None, None
        bound = self.find(row.group, "bound", row.budget)
        if not bound or not bound.median:
            return None, None
        return row.median / bound.median, (row.min / bound.min if bound.min else None)

    def markdown(self):
        head = ["workload", "system", "threads", "median", "min", "accuracy", "tapegrad / peer", "tapegrad / bound",
                "notes"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        previous = None
        for r in sorted(self.rows, key=lambda r: GROUPS.index(r.group)):  # stable: each group keeps its order
            cells = [r.group if r.group != previous else "", r.system, r.threads, fmt_value(r, r.median),
                     fmt_value(r, r.min) if r.samples else "—", "—" if r.acc is None else f"{r.acc:.4f}",
                     r.ratio_text or fmt_ratios(*self.vs_peer(r)), fmt_ratios(*self.vs_bound(r)), r.note]
            previous = r.group
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# The workloads

class Bench:
    def __init__(self, quick):
        self.quick = quick
        self.threads = [1] if quick else [1, 2]
        # (label, torch threads, OpenBLAS threads, core budget): PyTorch's two pools, also set apart as the
        # issue measured them (its best MLP setting was 1 torch thread with 2 BLAS threads).
        self.torch_settings = [(str(t), t, t, t) for t in self.threads]
        if not quick:
            self.torch_settings.append(("1 torch + 2 BLAS", 1, 2, 2))
        self.rounds = 1 if quick else 3
        self.reps = 3  # in-process repeats per round: digits loops
        self.whole_reps = 3 if quick else 10
        self.whole_reps_python = 3 if quick else 5
        self.fashion_epochs = 1 if quick else 5
        self.fashion_runs = 1  # 5-epoch runs per process and round
        self.ce_blocks = 5
        self.bound_reps = 3
        self.table = Table()
        self.allocs = {}  # driver run -> most allocator calls after the first step
        self.jobs = []
        self.split = {}
        self.peak_rows = {}
        self.rss = {}

    def bin(self, name):
        return os.path.join(BIN, name)

    def script(self, name):
        return os.path.join(ROOT, "bench", name)

    def schedule(self, cmd, env, parse, seeded=False):
        """A job to run once per round; a seeded one trains from new seeds in every round."""
        self.jobs.append((cmd, env, parse, seeded))

    def run_rounds(self, what):
        for r in range(self.rounds):
            log(f"{what}: round {r + 1} of {self.rounds}")
            for cmd, env, parse, seeded in self.jobs:
                parse(run_json(cmd + (["--seed", str(1 + 100 * r)] if seeded else []), env))
        self.jobs = []

    def note_allocs(self, what, records):
        calls = [r["allocator_calls_after_first_step"] for r in results_of(records)]
        if calls:
            self.allocs[what] = max(calls + [self.allocs.get(what, 0)])

    def collect(self, row, kind, allocs=None, **match):
        """A parser that adds a driver's samples and accuracies to row."""
        def parse(records):
            row.add(samples_of(records, kind, **match), [r.get("test_accuracy") for r in results_of(records, **match)])
            res = results_of(records, **match)
            if res and "steps" in res[0]:
                row.steps = res[0]["steps"]
            if allocs:
                self.note_allocs(allocs, records)
            return records
        return parse

    def peak(self, t):
        """The row of OpenBLAS's large-sgemm rate at t threads (not shown; it sizes FLOP bounds)."""
        if t not in self.peak_rows:
            row = self.peak_rows[t] = Row("", "peak", t, "hidden")
            row.gflops = []
            self.schedule([self.bin("gemm_bound"), "--threads", str(t), "--reps", str(self.bound_reps), "peak"],
                          thread_env(t), lambda rec: row.gflops.extend(r["gflops"] for r in rec))
        return self.peak_rows[t]

    @staticmethod
    def plural(t):
        return f"{t} thread{'s' if t > 1 else ''}"

    # -- data ----------------------------------------------------------------
    def export_digits(self):
        os.makedirs(DATA, exist_ok=True)
        cfg = os.path.join(ROOT, "examples", "digits.json")
        self.split["whole"] = run_json([self.bin("export_split"), cfg, os.path.join(DATA, "digits")], os.environ)[0]
        # The loop trains on every non-test row (the 1438 rows: 45 steps an epoch, 1350 in all).
        self.split["loop"] = run_json([self.bin("export_split"), cfg, os.path.join(DATA, "digits_all"),
                                       "--validation-split", "0"], os.environ)[0]

    # -- a. digits, and its float64 run (e) ----------------------------------
    def digits_loop(self):
        train, test = (os.path.join(DATA, f"digits_all_{p}.csv") for p in ("train", "test"))
        self.f32_loop, bounds = {}, []
        for t in self.threads:
            for dtype in ("f32", "f64") if not self.quick else ("f32",):
                row = self.table.add(Row(G_LOOP if dtype == "f32" else G_F64, "tapegrad C loop" if dtype == "f32"
                                         else "tapegrad digits loop float64", t, "tapegrad"))
                if dtype == "f32":
                    self.f32_loop[t] = row
                else:
                    row.f32 = self.f32_loop[t]
                self.schedule([self.bin("bench_train"), "--csv", train, test, "--sgd", "0.1", "0.9", "--epochs", "30",
                               "--batch", "32", "--reps", str(self.reps), "--dtype", dtype, "--pregather"],
                              thread_env(t), self.collect(row, "run", f"digits loop {dtype} ({self.plural(t)})"),
                              seeded=True)
            row = self.table.add(Row(G_LOOP, f"tapegrad C loop, {TEXTBOOK}", t, "tapegrad"))
            row.linear = self.f32_loop[t]
            self.schedule([self.bin("bench_train"), "--csv", train, test, "--sgd", "0.1", "0.9", "--epochs", "30",
                           "--batch", "32", "--reps", str(self.reps), "--dtype", "f32", "--pregather", "--textbook"],
                          thread_env(t), self.collect(row, "run", f"digits loop textbook ({self.plural(t)})"),
                          seeded=True)
            row = self.table.add(Row(G_LOOP, "PyTorch loop", t, "peer"))
            self.schedule([PY, self.script("torch_digits.py"), "loop", train, test, "--threads", str(t), "--reps",
                           str(self.reps)], thread_env(t), self.collect(row, "run"), seeded=True)
            bounds.append((t, self.table.add(Row(G_LOOP, "bound: FLOPs at peak sgemm rate", t, "bound")),
                           self.peak(t)))
        self.run_rounds("digits loop")
        for t, bound, peak in bounds:
            steps = self.f32_loop[t].steps
            flops = steps * 32 * 64 * 10 * 2 * 2  # forward and dW products of every step
            gflops = statistics.median(peak.gflops)
            bound.value = flops / (gflops * 1e9)
            bound.note = f"{flops / 1e6:.0f} MFLOP at {gflops:.0f} GFLOP/s (sgemm 1024³)"
            self.f32_loop[t].note = f"{steps} steps, {self.split['loop']['train']} rows; tg_linear, W [out, in]"
            torch = self.table.find(G_LOOP, "peer", t)
            torch.note = f"{torch.steps} steps, the same rows"
        for r in self.table.rows:
            if r.group == G_F64 and hasattr(r, "f32"):
                r.note = self.f32_loop[r.budget].note

    def digits_whole(self):
        d = {p: os.path.join(DATA, f"digits_{p}") for p in ("train", "validation", "test")}
        model_out = os.path.join(BUILD, "digits.safetensors")
        ll_model, ll_out = os.path.join(BUILD, "digits.liblinear"), os.path.join(BUILD, "digits.liblinear.out")
        split = self.split["whole"]
        systems = []  # (row, reps, commands, accuracy pattern, accuracy scale, threads)
        for t in self.threads:
            row = Row(G_WHOLE, "tapegrad train examples/digits.json --quiet", t, "tapegrad",
                      note=f"trains on {split['train']} rows, validates on {split['validation']} each epoch")
            systems.append((row, self.whole_reps, [[CLI, "train", os.path.join(ROOT, "examples", "digits.json"),
                                                    "--quiet", "--out", model_out]], r"test accuracy ([0-9.]+)", 1, t))
        row = Row(G_WHOLE, "liblinear train -s 0 -B 1 + predict", 1, "peer",
                  note="one-vs-rest L2-regularised LR, C = 1, single-threaded; input standardized as tapegrad's")
        systems.append((row, self.whole_reps,
                        [["liblinear-train", "-q", "-s", "0", "-B", "1", d["train"] + ".svm", ll_model],
                         ["liblinear-predict", d["test"] + ".svm", ll_model, ll_out]], r"Accuracy = ([0-9.]+)%", 100,
                        1))
        for t in self.threads:
            row = Row(G_WHOLE, "PyTorch script (import included)", t, "peer",
                      note="same split, loop and validation pass as tapegrad train")
            systems.append((row, self.whole_reps_python, [[PY, self.script("torch_digits.py"), "whole",
                                                           d["train"] + ".csv", d["validation"] + ".csv",
                                                           d["test"] + ".csv", "--threads", str(t)]],
                            r"test accuracy ([0-9.]+)", 1, t))
        for t in self.threads:
            row = Row(G_WHOLE, "scikit-learn LogisticRegression lbfgs script", t, "peer",
                      note="multinomial, C = 1, max_iter 1000")
            systems.append((row, self.whole_reps_python, [[PY, self.script("sklearn_digits.py"), d["train"] + ".csv",
                                                           d["test"] + ".csv"]], r"test accuracy ([0-9.]+)", 1, t))
        for row, *_ in systems:
            self.table.add(row)
        # Round-robin, one process (or pair) at a time, so a noisy neighbour slows every system alike.
        for rep in range(max(s[1] for s in systems)):
            log(f"digits whole processes: round {rep + 1}")
            for row, reps, cmds, pattern, scale, t in systems:
                if rep >= reps:
                    continue
                total, text = 0.0, ""
                for cmd in cmds:
                    seconds, _, out = timed_process(cmd, thread_env(t))
                    total += seconds
                    text += out
                m = re.search(pattern, text)
                row.add([total], [float(m.group(1)) / scale if m else None])

    # -- b, c. Fashion-MNIST, and LR in float64 (e) --------------------------
    def fashion(self):
        group_of = {"lr": G_FLR, "mlp": G_MLP}
        tg = {}
        for t in self.threads:
            runs = (("lr", "f32", ""), ("lr", "f32", "textbook"), ("mlp", "f32", ""))
            if not self.quick:
                runs += (("mlp", "f32", "textbook"), ("lr", "f64", ""), ("lr", "f64", "textbook"))
            for model, dtype, form in runs:
                name = "tapegrad C loop" if dtype == "f32" else "tapegrad Fashion LR epoch float64"
                row = Row(group_of[model] if dtype == "f32" else G_F64, f"{name}, {TEXTBOOK}" if form else name, t,
                          "tapegrad")
                tg[(model, dtype, t) + ((form,) if form else ())] = self.table.add(row)
                cmd = [self.bin("bench_train"), "--idx", *FASHION, "--adam", "1e-3", "--batch", "128", "--epochs",
                       str(self.fashion_epochs), "--reps", str(self.fashion_runs), "--dtype", dtype]
                if model == "mlp":
                    cmd += ["--hidden", "256"]
                if form:
                    cmd += ["--textbook"]
                    row.linear = tg[(model, dtype, t)]
                collect = self.collect(row, "epoch", f"Fashion {model} {dtype}{' ' + form if form else ''} "
                                                     f"({self.plural(t)})")

                def parse(records, collect=collect, key=(model, dtype, t) + ((form,) if form else ())):
                    collect(records)
                    rss = max(r["peak_rss_train_kib"] for r in results_of(records)) * 1024
                    self.rss[key] = max(rss, self.rss.get(key, 0))
                self.schedule(cmd, thread_env(t), parse, seeded=True)
        for label, t, blas, budget in self.torch_settings:
            rows = {m: self.table.add(Row(group_of[m], "PyTorch loop", label, "peer", budget=budget))
                    for m in ("lr", "mlp")}
            # One process per model outside --quick, so its peak RSS is the model's.
            for models in (("lr", "mlp"),) if self.quick else (("lr",), ("mlp",)):
                cmd = [PY, self.script("torch_fashion.py"), *FASHION, "--threads", str(t), "--epochs",
                       str(self.fashion_epochs), "--reps", str(self.fashion_runs)]
                for m in models:
                    cmd += ["--model", m]

                def parse(records, models=models, rows=rows):
                    for m in models:
                        self.collect(rows[m], "epoch", model=m)(records)
                    self.rss["torch mlp"] = max([self.rss.get("torch mlp", 0)] + [
                        r["peak_rss_kib"] * 1024 for r in results_of(records, model="mlp")])
                self.schedule(cmd, thread_env(t, blas), parse, seeded=True)
        lr_bounds = {}
        for t in self.threads:
            stream = Row(G_FLR, "bound: stream the data once", t, "bound")
            self.schedule([self.bin("gemm_bound"), "--threads", str(t), "--reps", str(self.bound_reps), "stream",
                           str(DATA_BYTES)], thread_env(t), self.collect(stream, "stream"))
            lr_bounds[t] = (stream, self.peak(t))
            ref = self.table.add(Row(G_FLR, "reference: OpenBLAS sgemm at the step's shapes", t, "reference",
                                     note="[128,784]·[784,10]ᵀ and dW [10,128]·[128,784]"))
            self.schedule([self.bin("gemm_bound"), "--threads", str(t), "--reps", str(self.bound_reps), "sgemm",
                           "784,10", "128", "60000"], thread_env(t), self.collect(ref, "sgemm_epoch"))
            mlp = self.table.add(Row(G_MLP, "bound: OpenBLAS sgemm at the step's shapes", t, "bound",
                                     note="49.1 GFLOP: X·W1ᵀ, H·W2ᵀ, dW1, dW2, dH over 469 steps"))
            self.schedule([self.bin("gemm_bound"), "--threads", str(t), "--reps", str(self.bound_reps), "sgemm",
                           "784,256,10", "128", "60000"], thread_env(t), self.collect(mlp, "sgemm_epoch"))
        self.run_rounds("Fashion-MNIST")

        epochs = f"accuracy after {self.fashion_epochs} epoch{'s' if self.fashion_epochs > 1 else ''}"
        for r in self.table.rows:
            if r.group in (G_FLR, G_MLP, G_F64) and r.kind in ("tapegrad", "peer") and "digits" not in r.system:
                r.note = f"{len(r.samples)} epoch{'s' if len(r.samples) > 1 else ''} timed; {epochs}"
        for t, (stream, peak) in lr_bounds.items():
            # LR's epoch must at least read the data once, and do its FLOPs: the larger of the two is the bound.
            flops = 60000 * 784 * 10 * 2 * 2
            compute = flops / (statistics.median(peak.gflops) * 1e9)
            if stream.median >= compute:
                stream.note = f"{DATA_BYTES / 1e6:.0f} MB read; its FLOPs at peak sgemm rate: {fmt_time(compute)}"
                self.table.add(stream)
            else:
                self.table.add(Row(G_FLR, "bound: FLOPs at peak sgemm rate", t, "bound", value=compute,
                                   note=f"{flops / 1e9:.2f} GFLOP; streaming the data {fmt_time(stream.median)}"))
            for form in ((), ("textbook",)):
                row = tg.get(("lr", "f64", t) + form)
                if row:
                    row.ratio_text = f"f64/f32 {fmt_ratio(row.median / tg[('lr', 'f32', t) + form].median)}"
        for group in (G_FLR, G_MLP):
            self.summary(group, "the issue's comparison")
        self.mlp_tg = {t: tg[("mlp", "f32", t)] for t in self.threads}

    def summary(self, group, note=""):
        tg, torch = self.table.best(group, "tapegrad"), self.table.best(group, "peer", "PyTorch")
        row = self.table.add(Row(group, "tapegrad best / PyTorch best", f"{tg.threads} / {torch.threads}",
                                 "summary", note=note))
        row.ratio_text = fmt_ratios(tg.median / torch.median, tg.min / torch.min)

    # -- d. cross-entropy ----------------------------------------------------
    def cross_entropy(self):
        for (rows, classes), group in (((32, 10), G_CE_SMALL), ((4096, 1000), G_CE_LARGE)):
            for t in self.threads:
                row = self.table.add(Row(group, "tapegrad tg_cross_entropy + tg_backward", t, "tapegrad",
                                         note="blocks of ≈ 20 ms, median per call"))
                self.schedule([self.bin("bench_ce"), str(rows), str(classes), "--blocks", str(self.ce_blocks)],
                              thread_env(t), self.collect(row, "call", f"cross-entropy {rows}×{classes} "
                                                                        f"({self.plural(t)})"))
                row = self.table.add(Row(group, "PyTorch F.cross_entropy + backward", t, "peer"))
                self.schedule([PY, self.script("torch_ce.py"), str(rows), str(classes), "--threads", str(t),
                               "--blocks", str(self.ce_blocks)], thread_env(t), self.collect(row, "call"))
                if rows * classes >= 1 << 20:
                    row = self.table.add(Row(group, "bound: g += a·x over the logits", t, "bound",
                                             note=f"{3 * rows * classes * 4 / 1e6:.0f} MB moved"))
                    self.schedule([self.bin("gemm_bound"), "--threads", str(t), "--reps", str(self.bound_reps),
                                   "axpy", str(rows), str(classes)], thread_env(t), self.collect(row, "axpy"))
        self.run_rounds("cross-entropy")
        for group in (G_CE_SMALL, G_CE_LARGE):
            self.summary(group)

    def cross_entropy_nd(self):
        """Logits [N, C, d] (class axis 1, walked with its stride) against the 2-D kernel over [N·d, C] in the
        same rounds: the 2-D row is the N-D row's bound, so the ratio column holds N-D / 2-D."""
        for n, c, d in CE_ND:
            group = G_CE_ND[(n, c, d)]
            for t in self.threads:
                row = self.table.add(Row(group, f"tapegrad tg_cross_entropy [{n}, {c}, {d}] + tg_backward", t,
                                         "tapegrad", note="blocks of ≈ 20 ms, median per call"))
                self.schedule([self.bin("bench_ce"), str(n), str(c), "--spatial", str(d), "--blocks",
                               str(self.ce_blocks)], thread_env(t),
                              self.collect(row, "call", f"cross-entropy [{n}, {c}, {d}] ({self.plural(t)})"))
                row = self.table.add(Row(group, f"reference: the 2-D kernel over {n * d}×{c}", t, "bound",
                                         note="same elements, contiguous rows"))
                self.schedule([self.bin("bench_ce"), str(n * d), str(c), "--blocks", str(self.ce_blocks)],
                              thread_env(t), self.collect(row, "call", f"cross-entropy {n * d}×{c} "
                                                                        f"({self.plural(t)})"))
        self.run_rounds("cross-entropy N-D")

    # -- e. float64 ratios (the runs were interleaved with float32's) ---------
    def float64(self):
        for r in self.table.rows:
            if r.group == G_F64 and hasattr(r, "f32"):
                r.ratio_text = f"f64/f32 {fmt_ratio(r.median / r.f32.median)}"
        for r in self.table.rows:
            if hasattr(r, "linear") and r.group != G_STEP and r.median and r.linear.median:
                r.note = (r.note + "; " if r.note else "") + \
                    f"textbook / tg_linear {fmt_ratio(r.median / r.linear.median)}"

    # -- g. one step written two ways (bench_step) ---------------------------
    def steps(self):
        shapes = [("128×784→10", [])] + ([] if self.quick else [("128×784→256→ReLU→10", ["--hidden", "256"])])
        dtypes = ("f32",) if self.quick else ("f32", "f64")
        for t in self.threads:
            for label, extra in shapes:
                for dtype in dtypes:
                    rows = {}
                    for form in ("linear", "textbook"):
                        system = f"{label} {'float32' if dtype == 'f32' else 'float64'}, " + \
                            ("tg_linear, W [out, in]" if form == "linear" else TEXTBOOK)
                        rows[form] = self.table.add(Row(G_STEP, system, t, "step"))

                        def parse(records, row=rows[form], what=f"step {label} {dtype} {form} ({self.plural(t)})"):
                            row.add([r["cpu_seconds"] for r in records if r.get("sample") == "step"])
                            self.note_allocs(what, records)
                        self.schedule([self.bin("bench_step"), "--form", form, "--dtype", dtype, "--blocks",
                                       str(self.ce_blocks)] + extra, thread_env(t), parse)
                    rows["textbook"].linear = rows["linear"]
        self.run_rounds("one step, two forms")
        for r in self.table.rows:
            if r.group == G_STEP and hasattr(r, "linear"):
                r.ratio_text = f"textbook / linear {fmt_ratio(r.median / r.linear.median)}"
                r.note = f"{fmt_ratio(r.min / r.linear.min)} by minimums"

    # -- f. memory -----------------------------------------------------------
    def memory(self):
        log("memory")
        for t in self.threads:
            rss = self.rss[("mlp", "f32", t)]
            row = self.table.add(Row(G_MEM, "tapegrad C loop, Fashion MLP: peak RSS", t, "memory", value=rss,
                                     unit="MiB", note="when training ends, before the test set is loaded"))
            row.bound_ratio = rss / MEMORY_BOUND
        if not self.quick:
            t = self.threads[-1]
            seconds, rss_kib, text = timed_process(
                [CLI, "train", os.path.join(ROOT, "examples", "fashion_mnist_mlp.json"), "--quiet", "--out",
                 os.path.join(BUILD, "fashion_mnist_mlp.safetensors")], thread_env(t))
            m = re.search(r"test accuracy ([0-9.]+)", text)
            row = self.table.add(Row(G_MEM, "tapegrad train examples/fashion_mnist_mlp.json: peak RSS", t, "memory",
                                     value=rss_kib * 1024, unit="MiB",
                                     note=f"whole process ({seconds:.1f} s): also holds the test set and the "
                                          f"validation split"))
            row.add([], [float(m.group(1)) if m else None])
            row.bound_ratio = rss_kib * 1024 / MEMORY_BOUND
        if self.rss.get("torch mlp"):
            self.table.add(Row(G_MEM, "PyTorch Fashion MLP script: peak RSS", "", "reference",
                               value=self.rss["torch mlp"], unit="MiB", note="whole process, for reference"))
        self.table.add(Row(G_MEM, "bound: training data as float32 + 64 MiB", "", "bound", value=MEMORY_BOUND,
                           unit="MiB", note="60000·784·4 bytes + 64 MiB"))
        self.table.add(Row(G_MEM, "tapegrad allocator calls after the first step", "", "allocs",
                           value=max(self.allocs.values()), unit="count",
                           note="the most over every driver run: "
                                + "; ".join(f"{k} {v}" for k, v in self.allocs.items())))


# ---------------------------------------------------------------------------
# Machine, targets, report

def sh(cmd, env=None):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, env=env, shell=isinstance(cmd, str)).stdout.strip()
    except OSError:
        return ""


def machine(bench):
    keep = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)", "CPU max MHz",
            "L1d cache", "L2 cache", "L3 cache", "Hypervisor vendor", "Flags")
    cpu = []
    for line in sh(["lscpu"]).splitlines():
        key, _, value = (s.strip() for s in line.partition(":"))
        if key in keep:
            if key == "Flags":
                key, value = "SIMD flags", " ".join(f for f in value.split() if f in (
                    "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"))
            cpu.append(f"{key}: {value}")
    info = run_json([bench.bin("gemm_bound"), "info"], os.environ)[0]
    torch_info = sh([PY, "-c", "import torch; print('torch', torch.__version__); "
                               "print('\\n'.join(torch.__config__.parallel_info().splitlines()[:5]))"])
    sk = sh([PY, "-c", "import sklearn; print('scikit-learn', sklearn.__version__)"])
    liblinear = sh("dpkg-query -W -f='liblinear-tools ${Version}' liblinear-tools")
    torch_deb = sh("dpkg-query -W -f='Debian python3-torch ${Version}' python3-torch")
    blas_env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("OPENBLAS"))
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "include", "CMakeLists.txt"])
    compiler = sh("cc --version | head -1")
    return "\n".join([
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- command: `bench/compare{' --quick' if bench.quick else ''}`",
        f"- tapegrad: commit {commit}{' with uncommitted changes in src/, include/ or CMakeLists.txt' if dirty else ''}"
        f", Release build ({compiler})",
        "- CPU: " + "; ".join(cpu),
        f"- OpenBLAS: {info['openblas_config']}; kernel (openblas_get_corename) {info['openblas_corename']}"
        + (f"; environment {blas_env}" if blas_env else ""),
        f"- {torch_deb}: " + "; ".join(torch_info.splitlines()).replace("\t", "").replace(":;", ":"),
        f"- {sk}; {liblinear}",
        f"- load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores",
    ])


def targets(bench):
    t = bench.table
    out = []

    def line(ok, text):
        out.append(f"- {'met' if ok else 'MISSED'}: {text}")

    def speedups(tg, peer):
        """'Nx (Mx by minimums)': how many times faster tapegrad is."""
        return peer.median / tg.median, f"{peer.median / tg.median:.1f}× ({peer.min / tg.min:.1f}× by minimums)"

    def short(s, want):
        return "" if s >= want else f"; {want / s:.2f}× short"

    if bench.quick:
        out.append("- (--quick: 1 thread, few repeats and one Fashion epoch, so these lines are indicative only; "
                   "the accuracy targets are for 5 epochs)")
    tg, pt = t.best(G_LOOP, "tapegrad"), t.best(G_LOOP, "peer", "PyTorch")
    s, text = speedups(tg, pt)
    line(s >= 20, f"digits loop, tapegrad's best ({tg.threads} thread{'s' if tg.threads != '1' else ''}) against PyTorch's best ({pt.threads}): "
                  f"{text} faster (target ≥ 20×{short(s, 20)})")
    tg_whole = t.best(G_WHOLE, "tapegrad")
    test_rows = bench.split["whole"]["test"]
    for system, name, want in (("liblinear", "liblinear", 1), ("PyTorch", "the PyTorch script", 10)):
        peer = t.best(G_WHOLE, "peer", system)
        s, text = speedups(tg_whole, peer)
        ok = s > 1 if want == 1 else s >= want
        line(ok, f"`tapegrad train examples/digits.json` against {name}: {text} as fast "
                 f"(target {'> 1×' if want == 1 else f'≥ {want}×'})")
        a, b = tg_whole.acc, peer.acc
        line(a >= b, f"... at the same or better test accuracy than {name}: {a:.4f} vs {b:.4f}"
                     + ("" if a >= b else f", {round((b - a) * test_rows)} of {test_rows} test rows fewer"))

    def pooled(group, kind, prefix=""):
        accs = [a for r in t.rows if r.group == group and r.kind == kind and r.system.startswith(prefix)
                for a in r.accuracy]
        return statistics.median(accs) if accs else float("nan")

    def same_accuracy(group, what):
        a, b = pooled(group, "tapegrad"), pooled(group, "peer", "PyTorch")
        ok = abs(a - b) <= 0.005
        text = f"{what} test accuracy after {bench.fashion_epochs} epoch(s), median over runs: {a:.4f} vs " \
               f"PyTorch {b:.4f} (target ±0.005)"
        if not ok and a > b:
            text += ": outside the band, above PyTorch"
        line(ok or a > b, text)

    for group, what, want in ((G_FLR, "Fashion LR epoch", 3), (G_MLP, "Fashion MLP epoch", 1)):
        tg, pt = t.best(group, "tapegrad"), t.best(group, "peer", "PyTorch")
        s, text = speedups(tg, pt)
        line(s >= want if want > 1 else s > 1,
             f"{what}, tapegrad's best ({tg.threads} thread{'s' if tg.threads != '1' else ''}) against PyTorch's best "
             f"({pt.threads}): {text} as fast "
             f"(target {'≥ 3×' if want > 1 else '> 1×'}{short(s, want) if want > 1 else ''})")
        if group == G_MLP:
            bound = t.find(G_MLP, "bound", tg.budget)
            r = tg.median / bound.median
            line(r <= 1.25, f"{what} at {tg.threads} thread(s): {r:.2f}× the GEMM bound at the same thread count "
                            f"({tg.min / bound.min:.2f}× by minimums; target ≤ 1.25×)")
        same_accuracy(group, what.replace(" epoch", ""))
    for group, want, label in ((G_CE_SMALL, 20, "32×10"), (G_CE_LARGE, 2, "4096×1000")):
        tg, pt = t.best(group, "tapegrad"), t.best(group, "peer", "PyTorch")
        s, text = speedups(tg, pt)
        line(s >= want, f"cross-entropy {label}, best against best ({tg.threads} / {pt.threads} threads): {text} "
                        f"faster (target ≥ {want}×{short(s, want)})")
    for group in G_CE_ND.values():
        for tg in (r for r in t.rows if r.group == group and r.kind == "tapegrad"):
            ref = t.find(group, "bound", tg.budget)
            ratio = tg.median / ref.median
            line(ratio <= 1.3, f"{group.split(' (')[0].replace('fwd+bwd f32 ', '')} at {tg.threads} thread(s): "
                               f"{ratio:.2f}× the 2-D kernel over the same elements ({tg.min / ref.min:.2f}× by "
                               f"minimums; target ≤ 1.3×)")
    for r in t.rows:
        if r.group == G_F64 and r.ratio_text:
            ratio = float(r.ratio_text.split()[-1])
            line(ratio <= 2, f"{r.system} at {r.threads} thread(s): {r.ratio_text} (target ≤ 2)")
    for r in t.rows:
        if r.group == G_STEP and hasattr(r, "linear"):
            ratio = r.median / r.linear.median
            line(ratio <= 1.1, f"one step {r.system.split(',')[0]} at {r.threads} thread(s), textbook form against "
                               f"tg_linear: {ratio:.2f}× (target ≤ 1.1×)")
    calls = t.find(G_MEM, "allocs")
    line(calls.value == 0, f"allocator calls after the first step, most over every driver run: {calls.value:g} "
                           f"(target 0)")
    for r in t.rows:
        if r.group == G_MEM and r.kind == "memory":
            line(r.bound_ratio <= 1, f"{r.system} at {r.threads} thread(s): {r.value / MIB:.0f} MiB, "
                                     f"{MEMORY_BOUND / MIB:.0f} MiB allowed")
    return "\n".join(out)


def solver_section(quick):
    """Issue 14's rows: logistic regression to the optimum (bench/solver.py, its own table)."""
    log("logistic regression to the optimum: bench/solver.py")
    cmd = [PY, os.path.join(ROOT, "bench", "solver.py"), "--cli", CLI] + (["--quick"] if quick else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return f"bench/solver.py failed:\n\n```\n{done.stderr[-2000:]}\n```"
    return done.stdout.strip()


def sparse_section(quick):
    """Issue 12's rows: the Debian text corpus and 1M lazy features (bench/sparse_text.py, its own tables)."""
    log("sparse data: bench/sparse_text.py")
    cmd = [PY, os.path.join(ROOT, "bench", "sparse_text.py"), "--cli", CLI, "--bench-bin", BIN] + \
        (["--quick"] if quick else [])
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # its progress goes to our stderr
    if done.returncode != 0:
        return f"bench/sparse_text.py failed (exit {done.returncode}); its messages are above on stderr"
    return done.stdout.strip()


def mpi_section(quick):
    """Issue 12's rows: mpirun -np 1 against -np 2 (bench/mpi.py; a note when there is no MPI build)."""
    log("training across processes: bench/mpi.py")
    # a default-length fit (max_iter 1000): over 100 iterations the undivided load weighs on the ratio
    cmd = [PY, os.path.join(ROOT, "bench", "mpi.py")] + (["--quick"] if quick else ["--max-iter", "1000", "--repeats", "2"])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return f"bench/mpi.py failed:\n\n```\n{done.stderr[-2000:]}\n```"
    return done.stdout.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a subset in under a minute: 1 thread, few repeats")
    args = p.parse_args()
    for f in FASHION:
        if not os.path.exists(f):
            sys.exit(f"{f} is missing: install dataset-fashion-mnist")
    bench = Bench(args.quick)
    started = time.perf_counter()
    head = machine(bench)
    bench.export_digits()
    bench.digits_loop()
    bench.digits_whole()
    bench.cross_entropy()
    bench.cross_entropy_nd()
    bench.fashion()
    bench.float64()
    bench.steps()
    bench.memory()
    solver = solver_section(args.quick)
    sparse = sparse_section(args.quick)
    mpi = mpi_section(args.quick)
    took = time.perf_counter() - started
    report = "\n\n".join([
        f"# tapegrad benchmark{' (--quick)' if args.quick else ''}",
        head + f"\n- load average at end: {os.getloadavg()[0]:.2f}; the run took {took:.0f} s",
        "Each time is for the unit the workload names (a whole loop, an epoch, a call, a process): median and "
        "minimum over every repeat of every round. Ratios divide medians, and minimums in brackets: "
        "`tapegrad / peer` < 1 means tapegrad is faster. A peer is compared with tapegrad at the same thread "
        "budget (liblinear, single-threaded, with tapegrad at 1; PyTorch's \"1 torch + 2 BLAS\" with tapegrad "
        "at 2); the \"best / best\" rows compare each system at its fastest setting. Accuracy is on the test set, "
        "the median over runs.",
        bench.table.markdown(),
        "## Targets of issue 5, as measured in this run\n\n" + targets(bench),
        "## Logistic regression to the optimum (issue 14, bench/solver.py)\n\n" + solver,
        "## Sparse data (issue 12, bench/sparse_text.py)\n\n" + sparse,
        "## Training across processes with MPI (issue 12, bench/mpi.py)\n\n" + mpi,
    ])
    print(report)
    with open(os.path.join(BUILD, "compare-report.md"), "w") as f:
        f.write(report + "\n")
    log(f"done in {took:.0f} s; the report is also in build-bench/compare-report.md")


main()
