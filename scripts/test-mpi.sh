#!/usr/bin/env bash
# The MPI build (-DTAPEGRAD_MPI=ON, Debian's Open MPI) and its tests, on one machine
# (docs/distributed.md). Installs what is missing, builds in its own folder, then:
#   1. equivalence: each config trained by mpirun -np 1, 2 and 3 (--oversubscribe: more ranks than
#      cores is fine for a test) gives np 1's weights within the stated bound; -np 1 gives the same
#      bits as the same binary run without mpirun; rank 0 alone prints (one JSON object on stdout)
#   2. bit-reproducibility: two runs with -np 2 give the same bits
#   3. each rank holds its part: np 2's ranks peak well below np 1's on Fashion-MNIST
#   4. faults: a rank that cannot load its data, was given another config, runs out of memory or is
#      killed mid-run stops every rank within seconds with a message naming the rank; the last
#      training checkpoint on disk still loads, and a run stopped by SIGTERM resumes with -np 2 to
#      the bits of an uninterrupted run, and Ctrl-C (SIGINT to mpirun) saves a training checkpoint that
#      resumes to the same bits
# usage: scripts/test-mpi.sh [BUILD_DIR]   (default build-mpi)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh libopenmpi-dev openmpi-bin
build=${1:-build-mpi}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_MPI=ON -DTAPEGRAD_BUILD_TESTS=OFF \
  -DTAPEGRAD_BUILD_EXAMPLES=OFF -DCMAKE_C_FLAGS="-Werror" >/dev/null
cmake --build "$build" -j"$(nproc)" --target tapegrad_cli >/dev/null
cli=$PWD/$build/tapegrad
py=/usr/bin/python3
mpi=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
# One thread per rank: a rank's own sums then do not depend on the machine's core count.
export TAPEGRAD_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
bad() { echo "test-mpi: FAIL: $*" >&2; failed=1; }

# Weight bounds |np N - np 1| (measured: docs/distributed.md): float32 SGD after one epoch, the solver's
# float64 optimum.
sgd_bound=1e-5
lbfgs_bound=1e-6

echo "== 1. equivalence: np 1, 2, 3"
equivalence() { # name bound example (in examples/, or a path) overrides...
  local name=$1 bound=$2 example=$3
  shift 3
  [[ $example == */* ]] || example=examples/$example
  $py tests/mpi/config.py "$example" "$tmp/$name.json" "$@"
  "$cli" train "$tmp/$name.json" --quiet --out "$tmp/$name.serial.safetensors" >/dev/null 2>"$tmp/$name.serial.err"
  local np line="$name:"
  for np in 1 2 3; do
    "${mpi[@]}" -np $np "$cli" train "$tmp/$name.json" --quiet --json --out "$tmp/$name.np$np.safetensors" \
      >"$tmp/$name.np$np.out" 2>"$tmp/$name.np$np.err" || { bad "$name -np $np: $(cat "$tmp/$name.np$np.err")"; return; }
    $py -c 'import json, sys; json.load(open(sys.argv[1]))' "$tmp/$name.np$np.out" ||
      bad "$name -np $np: stdout is not one JSON object (did a rank other than 0 print?)"
    grep -q "(rank [1-9]" "$tmp/$name.np$np.err" && bad "$name -np $np: a rank other than 0 printed: $(cat "$tmp/$name.np$np.err")"
  done
  cmp -s "$tmp/$name.serial.safetensors" "$tmp/$name.np1.safetensors" ||
    bad "$name: mpirun -np 1 differs from the same command without mpirun"
  for np in 2 3; do
    local diff
    diff=$($py tests/mpi/weights_diff.py "$tmp/$name.np1.safetensors" "$tmp/$name.np$np.safetensors")
    line+=" |np$np - np1| $diff"
    $py -c "import sys; sys.exit(not float('$diff') <= float('$bound'))" || bad "$name: |np$np - np1| = $diff > $bound"
  done
  echo "$line (bound $bound; np 1 = no mpirun, bit for bit)"
}
equivalence digits_sgd $sgd_bound digits.json train.epochs=1
equivalence digits_weighted $sgd_bound digits.json train.epochs=1 loss.class_weight='"balanced"'
equivalence digits_batch2 $sgd_bound digits.json train.epochs=1 train.batch_size=2 # np 3: a slice is empty
equivalence breast_cancer_binary $sgd_bound breast_cancer_binary.json train.epochs=1
equivalence breast_cancer_balanced $sgd_bound breast_cancer_cv.json train.epochs=1
equivalence iris_mlp_adam $sgd_bound iris_mlp.json train.epochs=1
equivalence digits_lbfgs $lbfgs_bound digits_lbfgs.json
equivalence iris_l1_owlqn $lbfgs_bound iris_l1.json
# Sparse rows (libsvm, written from digits.csv) through the full-batch solver: 3 iterations, far from the
# optimum, where np N must still follow np 1's path.
$py - "$tmp/digits.svm" <<'PY'
import sys
with open("data/digits.csv") as f, open(sys.argv[1], "w") as out:
    next(f)
    for line in f:
        *x, y = line.strip().split(",")
        out.write(y + "".join(f" {j + 1}:{v}" for j, v in enumerate(x) if float(v) != 0) + "\n")
PY
cat >"$tmp/sparse_lbfgs.src.json" <<JSON
{"data": {"format": "libsvm", "train": "$tmp/digits.svm", "test_split": 0.2, "validation_split": 0,
          "standardize": "scale"},
 "model": {"dtype": "float64", "layers": [{"type": "linear", "out": 10}]},
 "loss": {"penalty": "l2", "C": 1.0}, "optimizer": {"type": "lbfgs", "max_iter": 3}, "seed": 3}
JSON
equivalence sparse_lbfgs $lbfgs_bound "$tmp/sparse_lbfgs.src.json"
# The same rows through minibatch SGD with momentum: each rank's slice a CSR batch, the dense gradients summed.
cat >"$tmp/sparse_sgd.src.json" <<JSON
{"data": {"format": "libsvm", "train": "$tmp/digits.svm", "test_split": 0.2, "validation_split": 0,
          "standardize": "scale"},
 "model": {"layers": [{"type": "linear", "out": 10}]},
 "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9}, "train": {"epochs": 1, "batch_size": 32}, "seed": 3}
JSON
equivalence sparse_sgd $sgd_bound "$tmp/sparse_sgd.src.json"
# Text labels that first appear in a later rank's part of the file (the ranks' label tables merged in rank
# order must give one process's order of first appearance), blank lines, CRLF line ends and a header: the
# first third of the rows has classes 0-4 only, named in an order that is not sorted.
$py - "$tmp/late_labels.csv" <<'PY'
import random, sys
names = ["kilo", "alpha", "zulu", "echo", "bravo", "tango", "delta", "mike", "golf", "oscar"]
rows = [line.strip().split(",") for line in open("data/digits.csv")][1:]
early = [r for r in rows if int(r[-1]) < 5][:400]
rest = [r for r in rows if r not in early]
random.Random(5).shuffle(rest)
with open(sys.argv[1], "w", newline="") as out:
    out.write(",".join(f"p{j}" for j in range(64)) + ",digit\r\n\r\n")
    for k, r in enumerate(early + rest):
        out.write(",".join(r[:-1]) + "," + names[int(r[-1])] + "\r\n" + ("\n" if k % 97 == 0 else ""))
PY
equivalence late_labels $sgd_bound digits.json data.train="\"$tmp/late_labels.csv\"" train.epochs=1
# Streamed files (data.stream): every rank reads the same blocks and takes its slice of each batch, dense
# (a CSV) and sparse (libsvm); the test rows are a file of their own.
$py - "$tmp" <<'PY'
import sys
lines = open("data/digits.csv").read().splitlines()
train, test = [lines[0]], [lines[0]]
for k, line in enumerate(lines[1:]):
    (test if k % 5 == 4 else train).append(line)
for name, rows in (("stream_train.csv", train), ("stream_test.csv", test)):
    open(f"{sys.argv[1]}/{name}", "w").write("\n".join(rows) + "\n")
for name, rows in (("stream_train.svm", train[1:]), ("stream_test.svm", test[1:])):
    with open(f"{sys.argv[1]}/{name}", "w") as out:
        for line in rows:
            *x, y = line.split(",")
            out.write(y + "".join(f" {j + 1}:{v}" for j, v in enumerate(x) if float(v) != 0) + "\n")
PY
cat >"$tmp/stream_csv.src.json" <<JSON
{"data": {"train": "$tmp/stream_train.csv", "test": "$tmp/stream_test.csv", "label": "digit", "standardize": true,
          "stream": true, "block_rows": 100, "shuffle_window": 3},
 "model": {"layers": [{"type": "linear", "out": 10}]},
 "optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.9}, "train": {"epochs": 1, "batch_size": 32}, "seed": 3}
JSON
equivalence stream_csv $sgd_bound "$tmp/stream_csv.src.json"
cat >"$tmp/stream_libsvm.src.json" <<JSON
{"data": {"format": "libsvm", "train": "$tmp/stream_train.svm", "test": "$tmp/stream_test.svm",
          "standardize": "scale", "stream": true, "block_rows": 100, "shuffle_window": 3},
 "model": {"layers": [{"type": "linear", "out": 10}]},
 "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9}, "train": {"epochs": 1, "batch_size": 32}, "seed": 3}
JSON
equivalence stream_libsvm $sgd_bound "$tmp/stream_libsvm.src.json"
# IDX files read by row ranges: Fashion-MNIST through a few iterations of the full-batch solver.
if [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  equivalence fashion_lbfgs $lbfgs_bound fashion_mnist_lbfgs.json optimizer.max_iter=3 model.dtype='"float64"'
else
  echo "fashion_lbfgs: skipped (apt-get install dataset-fashion-mnist)"
fi

echo "== 2. bit-reproducibility: np 2 twice"
for name in digits_sgd digits_lbfgs; do
  "${mpi[@]}" -np 2 "$cli" train "$tmp/$name.json" --quiet --out "$tmp/$name.again.safetensors" >/dev/null
  if cmp -s "$tmp/$name.np2.safetensors" "$tmp/$name.again.safetensors"; then
    echo "$name: two -np 2 runs give the same bits"
  else
    bad "$name: two -np 2 runs differ"
  fi
done

echo "== 3. each rank holds its own part of the data"
# The peak memory of each rank (its resident set, /usr/bin/time) training Fashion-MNIST for one epoch:
# with np 2 a rank other than 0 (which alone holds the test set) must need at least 60 MiB less than
# np 1's one rank, which holds all 188 MB of training pixels (a rank holding everything would not).
if [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  $py tests/mpi/config.py examples/fashion_mnist.json "$tmp/fashion_rss.json" train.epochs=1
  for np in 1 2; do
    "${mpi[@]}" -np $np bash -c "/usr/bin/time -o $tmp/rss$np.\$OMPI_COMM_WORLD_RANK -f %M $cli train \
      $tmp/fashion_rss.json --quiet --out $tmp/rss$np.safetensors >/dev/null"
  done
  one=$(cat "$tmp/rss1.0")
  other=$(cat "$tmp/rss2.1")
  lead=$(cat "$tmp/rss2.0")
  if [ -n "$one" ] && [ -n "$other" ] && [ "$other" -lt $((one - 61440)) ]; then
    echo "Fashion-MNIST peak RSS: np 1 $((one / 1024)) MiB; np 2 rank 0 $((lead / 1024)) MiB, rank 1 $((other / 1024)) MiB"
  else
    bad "np 2's rank 1 peaked at ${other:-?} KiB, np 1's rank at ${one:-?} KiB: the ranks do not split the data"
  fi
else
  echo "memory: skipped (apt-get install dataset-fashion-mnist)"
fi

echo "== 4. faults"
# Rank 1's node lacks the data file, then holds another copy of it: the same config text in two folders
# (its data path is relative to the config's folder), the file in the first only, then a copy with one
# value changed (mpirun's MPMD form: one program per rank).
mkdir -p "$tmp/node0" "$tmp/node1"
cp data/digits.csv "$tmp/node0/digits.csv"
$py tests/mpi/config.py examples/digits.json "$tmp/node0/run.json" train.epochs=1
$py - "$tmp/node0/run.json" "$tmp/node1/run.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["data"]["train"] = "digits.csv"
for path in sys.argv[1:]:
    json.dump(config, open(path, "w"), indent=1)
PY
node_fault() { # name expected-message
  local started rc=0 took
  started=$(date +%s)
  timeout 60 "${mpi[@]}" -np 1 "$cli" train "$tmp/node0/run.json" --quiet --out "$tmp/fault.safetensors" : \
    -np 1 "$cli" train "$tmp/node1/run.json" --quiet --out "$tmp/fault.safetensors" >"$tmp/fault.out" 2>&1 || rc=$?
  took=$(($(date +%s) - started))
  if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
    bad "$1: exit status $rc (0: it went on; 124: it hung)"
  elif ! grep -q "rank 1 of 2.*$2" "$tmp/fault.out"; then
    bad "$1: no message naming rank 1 and the file: $(cat "$tmp/fault.out")"
  else
    echo "$1: every rank stopped after ${took}s (exit $rc): $(grep -m1 'rank 1 of 2' "$tmp/fault.out")"
  fi
}
node_fault "a rank without its data" "node1/digits.csv: cannot open"
cp data/digits.csv "$tmp/node1/digits.csv"
$py - "$tmp/node1/digits.csv" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines(True)
cells = lines[-1].split(",")
cells[0] = "9" if cells[0] != "9" else "8"
lines[-1] = ",".join(cells)
open(sys.argv[1], "w").write("".join(lines))
PY
node_fault "a rank with another copy of the data" "rank 1's copy is not rank 0's"
[ -e "$tmp/fault.safetensors" ] && bad "a failed run saved a model"

# A bad cell near the end of a CSV and of a libsvm file (in rank 2's part of 3): the error names the file's
# own line and column, as one process's does (each rank counts the lines of its own bytes; the counts add up).
$py - "$tmp" <<'PY'
import sys
lines = open("data/digits.csv").read().splitlines()
cells = lines[-7].split(",")
cells[1] = "oops"
lines[-7] = ",".join(cells)
open(f"{sys.argv[1]}/badcell.csv", "w").write("\n".join(lines) + "\n")
with open(f"{sys.argv[1]}/badcell.svm", "w") as out:
    for k, line in enumerate(lines[1:]):
        *x, y = line.split(",")
        out.write(y + "".join(f" {j + 1}:{v}" for j, v in enumerate(x) if v != "0") + "\n")
PY
for kind in csv svm; do
  if [ $kind = csv ]; then
    $py tests/mpi/config.py examples/digits.json "$tmp/badcell.json" data.train="\"$tmp/badcell.csv\"" train.epochs=1
  else
    $py tests/mpi/config.py "$tmp/sparse_sgd.src.json" "$tmp/badcell.json" data.train="\"$tmp/badcell.svm\""
  fi
  one=$("$cli" train "$tmp/badcell.json" --quiet --out "$tmp/bad.safetensors" 2>&1 | grep -o "badcell\.$kind:[0-9]*:[0-9]*:.*" || true)
  three=$(timeout 60 "${mpi[@]}" -np 3 "$cli" train "$tmp/badcell.json" --quiet --out "$tmp/bad.safetensors" 2>&1 |
    grep -o "badcell\.$kind:[0-9]*:[0-9]*:.*" | head -1 || true)
  if [ -n "$one" ] && [ "$one" = "$three" ]; then
    echo "a bad cell in rank 2's part ($kind): the same message as one process: $(echo "$three" | cut -c1-70)"
  else
    bad "a bad cell in rank 2's part ($kind): one process says '$one', -np 3 '$three'"
  fi
done

# Rank 1 is given another config (another seed): it says so and ends the job instead of training apart.
$py tests/mpi/config.py examples/digits.json "$tmp/other.json" train.epochs=1 seed=7
rc=0
timeout 60 "${mpi[@]}" -np 1 "$cli" train "$tmp/digits_sgd.json" --quiet --out "$tmp/fault.safetensors" : \
  -np 1 "$cli" train "$tmp/other.json" --quiet --out "$tmp/fault.safetensors" >"$tmp/other.out" 2>&1 || rc=$?
if [ $rc -eq 0 ] || [ $rc -eq 124 ] || ! grep -q "rank 1 of 2.*another config than rank 0" "$tmp/other.out"; then
  bad "a rank with another config: exit status $rc, without the message: $(cat "$tmp/other.out")"
else
  echo "a rank with another config: stopped (exit $rc): $(grep -m1 'rank 1 of 2' "$tmp/other.out")"
fi

# Rank 1 runs out of memory (ulimit -v) loading its half of Fashion-MNIST, while rank 0 loads its own and
# waits on it.
fashion=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ -e $fashion ]; then
  $py tests/mpi/config.py examples/fashion_mnist.json "$tmp/fashion.json" train.epochs=1
  started=$(date +%s)
  rc=0
  timeout 60 "${mpi[@]}" -np 1 "$cli" train "$tmp/fashion.json" --quiet --out "$tmp/oom.safetensors" : \
    -np 1 bash -c "ulimit -v 250000; exec $cli train $tmp/fashion.json --quiet --out $tmp/oom.safetensors" \
    >"$tmp/oom.out" 2>&1 || rc=$?
  took=$(($(date +%s) - started))
  if [ $rc -eq 0 ] || [ $rc -eq 124 ] || ! grep -q "rank 1 of 2.*out of memory" "$tmp/oom.out"; then
    bad "a rank out of memory: exit status $rc, without a message naming rank 1: $(cat "$tmp/oom.out")"
  else
    echo "a rank out of memory: every rank stopped after ${took}s (exit $rc): $(grep -m1 'rank 1 of 2' "$tmp/oom.out")"
  fi
else
  echo "a rank out of memory: skipped ($fashion missing: apt-get install dataset-fashion-mnist)"
fi

# A rank killed mid-run (as the out-of-memory killer would): the job ends, the last checkpoint loads.
$py tests/mpi/config.py examples/digits.json "$tmp/long.json" train.epochs=100000
"${mpi[@]}" -np 2 "$cli" train "$tmp/long.json" --quiet --checkpoint-every 1 --out "$tmp/long.safetensors" \
  >"$tmp/long.out" 2>&1 &
job=$!
for _ in $(seq 100); do [ -e "$tmp/long.safetensors" ] && break; sleep 0.1; done
sleep 0.5
victim=""
for pid in $(pgrep -P $job); do
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$pid
done
if [ -z "$victim" ]; then
  bad "a killed rank: rank 1's process not found under mpirun ($job)"
  kill $job
else
  started=$(date +%s)
  kill -9 "$victim"
  rc=0
  timeout 30 tail --pid=$job -f /dev/null || bad "a killed rank: mpirun still running 30 s later"
  wait $job || rc=$?
  took=$(($(date +%s) - started))
  [ $rc -ne 0 ] || bad "a killed rank: mpirun exited 0"
  if "$cli" eval "$tmp/long.safetensors" "$tmp/long.json" >"$tmp/eval.out" 2>&1; then
    echo "a killed rank: every rank stopped after ${took}s (exit $rc); the last checkpoint loads:" \
      "$(grep -m1 accuracy "$tmp/eval.out")"
  else
    bad "a killed rank: the checkpoint does not load: $(cat "$tmp/eval.out")"
  fi
fi

# SIGTERM to mpirun mid-run ends the job; --resume of the last checkpoint with -np 2 then gives the bits
# of an uninterrupted -np 2 run.
$py tests/mpi/config.py examples/digits.json "$tmp/resume.json" train.epochs=10000 # ~3 s: the SIGTERM lands mid-run
"${mpi[@]}" -np 2 "$cli" train "$tmp/resume.json" --quiet --out "$tmp/whole.safetensors" >/dev/null
"${mpi[@]}" -np 2 "$cli" train "$tmp/resume.json" --quiet --checkpoint-every 1 --out "$tmp/part.safetensors" \
  >/dev/null 2>&1 &
job=$!
# Up to a minute for the first checkpoint: on a loaded machine mpirun takes seconds to start the ranks, and
# a SIGTERM that reaches mpirun before they run is lost (the run then finishes and leaves a plain model).
for _ in $(seq 1200); do [ -e "$tmp/part.safetensors" ] && break; sleep 0.05; done
[ -e "$tmp/part.safetensors" ] || bad "--checkpoint-every 1 under -np 2: no checkpoint after 60 s"
kill -TERM $job
wait $job || true
if "${mpi[@]}" -np 2 "$cli" train "$tmp/resume.json" --quiet --resume "$tmp/part.safetensors" \
  --out "$tmp/resumed.safetensors" >/dev/null 2>"$tmp/resume.err" &&
  cmp -s "$tmp/whole.safetensors" "$tmp/resumed.safetensors"; then
  echo "SIGTERM mid-run, then --resume with -np 2: the bits of an uninterrupted -np 2 run"
else
  bad "--resume with -np 2 after SIGTERM: $(cat "$tmp/resume.err") (or the weights differ)"
fi

# A checkpoint of a run across 2 ranks (each holding its part of the data) resumes across 2, and says so when
# resumed in one process.
if "$cli" train "$tmp/resume.json" --quiet --resume "$tmp/part.safetensors" --out "$tmp/one.safetensors" \
  >/dev/null 2>"$tmp/one.err"; then
  bad "an -np 2 checkpoint resumed in one process"
elif grep -q "trained across 2 MPI ranks.*mpirun -np 2" "$tmp/one.err"; then
  echo "an -np 2 checkpoint resumed in one process: refused, $(grep -o 'resume it across.*' "$tmp/one.err")"
else
  bad "an -np 2 checkpoint resumed in one process: $(cat "$tmp/one.err")"
fi

# Ctrl-C: SIGINT to mpirun, which passes SIGTERM to every rank; the ranks agree to stop after the same step,
# rank 0 writes a training checkpoint to --out (no --checkpoint-every), and --resume gives the bits of an
# uninterrupted -np 2 run.
# Not --quiet: rank 0 prints a line an epoch, and mpirun stops reading the ranks' output once it has the
# signal, so a rank that blocked in a write would never save.
"${mpi[@]}" -np 2 "$cli" train "$tmp/resume.json" --out "$tmp/int.safetensors" >"$tmp/int.out" 2>"$tmp/int.err" &
job=$!
for _ in $(seq 600); do [ "$(pgrep -c -P $job)" -ge 2 ] && break; sleep 0.1; done
sleep 1
kill -INT $job
rc=0
wait $job || rc=$?
if ! grep -q "(rank 0 of 2): interrupted by SIGTERM .*saved a training checkpoint" "$tmp/int.err"; then
  bad "Ctrl-C under mpirun (exit $rc): rank 0 did not save a training checkpoint: $(cat "$tmp/int.err")"
elif "${mpi[@]}" -np 2 "$cli" train "$tmp/resume.json" --quiet --resume "$tmp/int.safetensors" \
  --out "$tmp/int_resumed.safetensors" >/dev/null 2>"$tmp/int_resume.err" &&
  cmp -s "$tmp/whole.safetensors" "$tmp/int_resumed.safetensors"; then
  echo "Ctrl-C under mpirun (exit $rc): $(grep -m1 -o 'interrupted by SIGTERM [^:]*' "$tmp/int.err"): saved; resumed to the bits of an uninterrupted run"
else
  bad "--resume after Ctrl-C under mpirun: $(cat "$tmp/int_resume.err") (or the weights differ)"
fi

[ $failed -eq 0 ] && echo "test-mpi: all passed"
exit $failed
