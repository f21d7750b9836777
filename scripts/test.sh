#!/usr/bin/env bash
# The whole test suite. Installs what is missing, then:
#   1. gcc, Release, BLAS on: the Criterion suite (its plot tests render SVGs with
#      rsvg-convert and validate them with xmllint), the examples, an install check
#      from a private prefix, every C program in README.md and docs/ compiled and run
#      against that install, the Debian packages built, installed, checked and purged,
#      the exported-symbol check (only the header's TG_API functions), the one-way include
#      order (scripts/check-layers.sh), the formatting (scripts/check-format.sh),
#      and checkpoints through PyTorch and back (Debian's python3-torch)
#   2. clang, Debug, AddressSanitizer + UndefinedBehaviorSanitizer, plain-C kernels
#      (TAPEGRAD_BLAS=OFF, so both matrix-product paths are tested)
#   3. clang, ThreadSanitizer: the concurrent-training test (OpenMP off: libgomp is
#      not instrumented, so TSan would report its internals)
#   4. valgrind memcheck: a 1000-step training loop and the CLI training on iris
#      (a generic x86-64 build: valgrind cannot run AVX-512)
#   5. the four loaders' libFuzzer targets, a bounded number of executions each
#      (scripts/fuzz.sh; docs/fuzzing.md has the longer search)
# Every build uses -Wall -Wextra -Wpedantic -Werror.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh clang libclang-rt-14-dev valgrind locales dataset-fashion-mnist python3-torch \
  librsvg2-bin libxml2-utils man-db
jobs=$(nproc)

# A locale whose decimal separator is a comma, so the CSV test can show
# numbers are read the same whatever the process locale is.
export LOCPATH="$PWD/build-locale"
if [ ! -d "$LOCPATH/de_DE.UTF-8" ]; then
  mkdir -p "$LOCPATH"
  localedef -i de_DE -f UTF-8 "$LOCPATH/de_DE.UTF-8"
fi

configure_build() { # dir, cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_C_FLAGS="-Werror" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
}

echo "== 1. gcc Release (BLAS)"
CC=gcc configure_build build-release -DCMAKE_BUILD_TYPE=Release
(cd build-release && ctest --output-on-failure -j"$jobs" -E '^tapegrad_tests$')
bash scripts/check-install.sh build-release
bash scripts/check-snippets.sh build-release
if [ "$(id -u)" -eq 0 ]; then bash scripts/check-deb.sh build-deb; else echo "check-deb: skipped (dpkg -i needs root)"; fi
bash scripts/check-exports.sh build-release
bash scripts/check-layers.sh
bash scripts/check-format.sh
bash scripts/torch-roundtrip.sh build-release
summary=$(mktemp)
./build-release/tapegrad_tests --jobs "$jobs" 2>&1 | tee "$summary"

echo "== 2. clang Debug, ASan + UBSan, plain-C kernels"
CC=clang configure_build build-sanitize -DCMAKE_BUILD_TYPE=Debug -DTAPEGRAD_SANITIZE=address,undefined -DTAPEGRAD_BLAS=OFF
# Criterion reports a test's result before its process exits, so a leak found at exit fails nothing by
# itself: the log is searched for LeakSanitizer's reports instead (tests/lsan.supp says why use_tls=0).
asan_log=$(mktemp)
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  LSAN_OPTIONS="use_tls=0:print_suppressions=0:suppressions=$PWD/tests/lsan.supp" \
  ./build-sanitize/tapegrad_tests --jobs "$jobs" 2>&1 | tee "$asan_log"
if grep -q "LeakSanitizer" "$asan_log"; then
  echo "ASan + UBSan: LeakSanitizer reported a leak or failed (above)" >&2
  exit 1
fi
rm -f "$asan_log"

echo "== 3. clang, ThreadSanitizer: concurrent training"
CC=clang configure_build build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_SANITIZE=thread -DTAPEGRAD_BLAS=OFF -DTAPEGRAD_OPENMP=OFF
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./build-tsan/tsan_threads

echo "== 4. valgrind memcheck"
# valgrind 3.19 cannot execute AVX-512, and OpenBLAS's thread pool keeps its stacks to exit
# ("possibly lost"): this build is the same code for a generic x86-64, with the plain-C kernels.
CC=gcc configure_build build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_NATIVE=OFF -DTAPEGRAD_BLAS=OFF -DTAPEGRAD_BUILD_TESTS=OFF
vg="valgrind --quiet --error-exitcode=3 --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible"
$vg ./build-valgrind/softmax_classifier 1000 >/dev/null
out=$(mktemp -d)
$vg ./build-valgrind/tapegrad train examples/iris.json --out "$out/iris.safetensors" --quiet >/dev/null
$vg ./build-valgrind/tapegrad eval "$out/iris.safetensors" examples/iris.json >/dev/null
rm -rf "$out"
echo "valgrind: no errors, no leaks"

echo "== 5. fuzzing the loaders (bounded)"
bash scripts/fuzz.sh

echo "== the suite (configuration 1):"
tail -n 1 "$summary"
rm -f "$summary"
