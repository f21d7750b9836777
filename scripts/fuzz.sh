#!/usr/bin/env bash
# Fuzzes the five loaders (docs/fuzzing.md): builds the libFuzzer targets with
# clang, AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz, then
# runs each over a copy of its seed corpus (build-fuzz/corpus-work/<target>;
# the repository's corpus is never written) plus its regression inputs.
#
#   scripts/fuzz.sh                   bounded run, as CI does: 100000 executions per target
#   scripts/fuzz.sh --runs N          N executions per target
#   scripts/fuzz.sh --seconds S       S seconds per target: the deeper search; the
#                                     working corpus is kept between such runs
#   scripts/fuzz.sh ... --jobs J      J targets at a time (default 2)
#   scripts/fuzz.sh ... --seed N      libFuzzer's random seed (default: a new one each run)
#   scripts/fuzz.sh ... TARGET...     only these targets (config csv idx safetensors libsvm)
#   scripts/fuzz.sh ... -- FLAG...    more libFuzzer flags, e.g. -- -use_value_profile=1
#
# Any crash, leak, timeout (10 s), sanitizer report or single allocation over
# 128 MB (inputs are at most 4 KiB, so a loader that sizes a buffer from a
# declared count rather than the bytes present is caught) fails the run (exit
# status 1); the input that caused it is saved in build-fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(config csv idx safetensors libsvm)
runs=100000
seconds=""
jobs=2
seed=""
targets=()
extra=()
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=${2:?}; seconds=""; shift 2 ;;
    --seconds) seconds=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    --) shift; extra=("$@"); break ;;
    config|csv|idx|safetensors|libsvm) targets+=("$1"); shift ;;
    *) echo "fuzz.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

if ! grep -q 'cmake/fuzz.cmake' CMakeLists.txt; then
  echo "fuzz.sh: CMakeLists.txt does not include cmake/fuzz.cmake (option TAPEGRAD_FUZZ)" >&2
  exit 2
fi
bash scripts/install-deps.sh clang libclang-rt-14-dev

build="build-fuzz"
echo "== building the fuzz targets (clang, ASan + UBSan, libFuzzer) in $build"
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_FUZZ=ON -DTAPEGRAD_BLAS=OFF \
  -DTAPEGRAD_OPENMP=OFF -DTAPEGRAD_SANITIZE= -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target tapegrad_fuzz >/dev/null

# The targets write each input to files: on a tmpfs that costs nothing.
scratch=$build/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && scratch=/dev/shm/tapegrad-fuzz-$$
mkdir -p "$scratch" "$build/logs"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch
export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# One target: its log in $build/logs/<target>.log, its exit status in .rc.
run_target() {
  local t=$1 work=$build/corpus-work/$1 artifacts=$build/artifacts/$1
  local log=$build/logs/$t.log limit
  if [ -n "$seconds" ]; then
    limit=-max_total_time=$seconds
  else
    limit=-runs=$runs
    rm -rf "$work"
  fi
  mkdir -p "$work" "$artifacts"
  cp -n tests/fuzz/corpus/"$t"/* "$work"/
  # New inputs go to the first folder only: the regressions are read, never written.
  local folders=("$work") status=0
  [ -d tests/fuzz/regressions/"$t" ] && folders+=(tests/fuzz/regressions/"$t")
  "$build/fuzz_$t" "$limit" ${seed:+-seed=$seed} -dict=tests/fuzz/"$t".dict -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=128 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    ${extra[@]+"${extra[@]}"} "${folders[@]}" >"$log" 2>&1 || status=$?
  # A sanitizer that reports without stopping the process still fails the run.
  if [ $status -eq 0 ] && grep -qE '^SUMMARY: |runtime error:|ERROR: (Address|Leak)Sanitizer' "$log"; then
    status=1
  fi
  echo $status >"$build/logs/$t.rc"
}

mode=${seconds:+$seconds seconds}
echo "== fuzzing ${targets[*]}: ${mode:-$runs executions} each, $jobs at a time"
start=$(date +%s)
stamp=$build/logs/started
touch "$stamp"
running=0
for t in "${targets[@]}"; do
  rm -f "$build/logs/$t.rc"
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_target "$t" &
  running=$((running + 1))
done
wait || true

passed=0
failed=0
for t in "${targets[@]}"; do
  log=$build/logs/$t.log
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [ "$(cat "$build/logs/$t.rc" 2>/dev/null)" = 0 ]; then
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) .*/\1 s/p' "$log")
    inputs=$(find "$build/corpus-work/$t" -type f | wc -l)
    echo "fuzz $t: ${executions:-?} executions, no crash ($took, corpus $inputs inputs)"
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "fuzz $t: FAILED after ${executions:-?} executions; the end of $log:"
    grep -vE '^(#[0-9]+|INFO:|MS:|stat::)' "$log" | tail -n 40 | sed 's/^/    /'
    find "$build/artifacts/$t" -type f -newer "$stamp" | while read -r input; do
      echo "    input: $input"
      echo "    replay: $build/fuzz_$t $input"
      echo "    minimise: $build/fuzz_$t -minimize_crash=1 -runs=20000 -artifact_prefix=$build/artifacts/$t/min- $input"
    done
  fi
done
echo "fuzzing took $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
