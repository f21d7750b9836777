#!/usr/bin/env bash
# Builds the Debian packages (cpack -G DEB: libtapegrad0, libtapegrad-dev, tapegrad)
# from a build configured for /usr and for any x86-64 (no -march=native), installs
# them with dpkg -i, checks them the way a user would (a consumer compiled with
# pkg-config against /usr runs; find_package finds the CMake package; the command
# runs; man -w tapegrad finds the page; the completion file is in place), then
# purges them (dpkg -P) so the machine is left as it was. Needs root (CI runs
# as root). usage: scripts/check-deb.sh [BUILD_DIR]   (default build-deb)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-deb}
if [ "$(id -u)" -ne 0 ]; then
  echo "check-deb: needs root (dpkg -i)" >&2
  exit 1
fi
for p in libtapegrad0 libtapegrad-dev tapegrad; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    echo "check-deb: $p is already installed; remove it first (dpkg -r $p)" >&2
    exit 1
  fi
done
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="-Werror" -DCMAKE_INSTALL_PREFIX=/usr \
  -DTAPEGRAD_NATIVE=OFF -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >cpack.log 2>&1) || { cat "$build/cpack.log" >&2; exit 1; }
debs=("$build"/libtapegrad0_*.deb "$build"/libtapegrad-dev_*.deb "$build"/tapegrad_*.deb)
for deb in "${debs[@]}"; do
  test -f "$deb" || { echo "check-deb: $deb was not built" >&2; exit 1; }
done

work=$(mktemp -d)
cleanup() {
  dpkg -P tapegrad libtapegrad-dev libtapegrad0 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
dpkg -i "${debs[@]}" >/dev/null

unset LD_LIBRARY_PATH PKG_CONFIG_PATH
# shellcheck disable=SC2046
cc -std=c11 tests/consumer/consumer.c -o "$work/consumer" $(pkg-config --cflags --libs tapegrad)
"$work/consumer" >/dev/null
if pkg-config --libs tapegrad | grep -q rpath; then
  echo "check-deb: tapegrad.pc in /usr carries an RPATH" >&2
  exit 1
fi
cmake -S tests/consumer -B "$work/cmake" >/dev/null
cmake --build "$work/cmake" >/dev/null
"$work/cmake/consumer_cmake" >/dev/null
tapegrad --version >/dev/null
man -w tapegrad >/dev/null
test -f /usr/share/bash-completion/completions/tapegrad
# The library package alone is a runtime: the shared library and its SONAME link.
dpkg -L libtapegrad0 | grep -q 'libtapegrad\.so\.0$'
if dpkg -L libtapegrad0 | grep -q 'tapegrad\.h\|\.a$\|libtapegrad\.so$'; then
  echo "check-deb: libtapegrad0 holds development files" >&2
  exit 1
fi
dpkg -P tapegrad libtapegrad-dev libtapegrad0 >/dev/null
echo "check-deb: $(basename -a "${debs[@]}" | tr '\n' ' ')installed; pkg-config and find_package" \
  "consumers built against /usr and ran; tapegrad, man -w tapegrad, completion; purged"
