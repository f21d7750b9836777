#!/usr/bin/env bash
# The whole test suite: install what is missing, then build and run the
# Criterion tests twice: once with gcc in Release, once with clang under
# AddressSanitizer + UndefinedBehaviorSanitizer in Debug. Both compilers build
# with -Wall -Wextra -Wpedantic -Werror, so a warning fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh clang libclang-rt-14-dev
jobs=$(nproc)

run_suite() { # name, cmake args...
  local name=$1; shift
  echo "== $name"
  cmake -S . -B "build-$name" -DCMAKE_C_FLAGS="-Werror" "$@" >/dev/null
  cmake --build "build-$name" -j"$jobs" >/dev/null
  (cd "build-$name" && ctest --output-on-failure -j"$jobs" -E '^tapegrad_tests$')
  "./build-$name/tapegrad_tests" --jobs "$jobs"
}

CC=gcc run_suite release -DCMAKE_BUILD_TYPE=Release
CC=clang ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  run_suite sanitize -DCMAKE_BUILD_TYPE=Debug -DTAPEGRAD_SANITIZE=ON
