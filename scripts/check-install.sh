#!/usr/bin/env bash
# Installs tapegrad into a private prefix, as a user without root would, and checks
# that everything works from there with no LD_LIBRARY_PATH and no hand-set RPATH:
# the installed command, its man page and bash completion; consumers built with
# find_package (shared and static, from their build tree and installed) and with
# pkg-config (whose --libs carries -Wl,-rpath for a private prefix), also after the
# whole prefix has been moved elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
prefix="$root/prefix"
unset LD_LIBRARY_PATH
cmake --install "$build" --prefix "$prefix" >/dev/null

# The command: statically linked against the library, so it needs nothing of the prefix.
"$prefix/bin/tapegrad" --version >/dev/null
if ldd "$prefix/bin/tapegrad" | grep -q libtapegrad; then
  echo "check-install: the installed tapegrad needs libtapegrad.so" >&2
  exit 1
fi
man -M "$prefix/share/man" -w tapegrad >/dev/null
man -M "$prefix/share/man" tapegrad 2>/dev/null | grep -q -- '--threads'
test -f "$prefix/share/bash-completion/completions/tapegrad"

# find_package: the build tree's RPATH, then the installed consumer's (INSTALL_RPATH_USE_LINK_PATH).
cmake -S tests/consumer -B "$root/consumer" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_INSTALL_PREFIX="$root/app" >/dev/null
cmake --build "$root/consumer" >/dev/null
"$root/consumer/consumer_cmake" >/dev/null
"$root/consumer/consumer_static" >/dev/null
cmake --install "$root/consumer" >/dev/null
"$root/app/bin/consumer_cmake" >/dev/null

# pkg-config, as the README shows it.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 tests/consumer/consumer.c -o "$root/consumer_pc" $(pkg-config --cflags --libs tapegrad)
"$root/consumer_pc" >/dev/null

# The prefix moved: tapegrad.pc's paths follow its own location.
mv "$prefix" "$root/moved"
export PKG_CONFIG_PATH="$root/moved/lib/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 tests/consumer/consumer.c -o "$root/consumer_moved" $(pkg-config --cflags --libs tapegrad)
"$root/consumer_moved" >/dev/null
echo "install check: from a private prefix, without LD_LIBRARY_PATH: tapegrad, man tapegrad, completion;" \
  "find_package (shared, static, installed) and pkg-config consumers built and ran, also after moving the prefix"
