#!/usr/bin/env bash
# Installs tapegrad into a temporary prefix and builds a consumer against it
# with find_package (shared and static) and with pkg-config.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
cmake -S tests/consumer -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer" >/dev/null
LD_LIBRARY_PATH="$prefix/lib" "$prefix/consumer/consumer_cmake"
"$prefix/consumer/consumer_static"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 tests/consumer/consumer.c -o "$prefix/consumer_pc" $(pkg-config --cflags --libs tapegrad)
LD_LIBRARY_PATH="$prefix/lib" "$prefix/consumer_pc"
echo "install check: find_package (shared, static) and pkg-config consumers built and ran"
