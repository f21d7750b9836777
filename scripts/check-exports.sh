#!/usr/bin/env bash
# The shared library exports exactly the functions include/tapegrad.h declares with TG_API:
# nothing internal can become API by accident, and nothing public goes missing.
# Usage: scripts/check-exports.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
lib=$(ls "${1:?build dir}"/libtapegrad.so.* 2>/dev/null | head -n 1)
[ -n "$lib" ] || { echo "check-exports: no libtapegrad.so.* in $1" >&2; exit 1; }
header=$(mktemp); exported=$(mktemp)
trap 'rm -f "$header" "$exported"' EXIT
# TG_API may sit before a multi-line declaration: the name is the identifier before the first '('.
grep -E '^TG_API ' include/tapegrad.h | sed -E 's/TG_DEPRECATED\("[^"]*"\) //; s/\(.*//; s/.*[ *]//' | sort -u >"$header"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sort -u >"$exported"
if ! diff -u --label header "$header" --label "nm -D $(basename "$lib")" "$exported"; then
  echo "check-exports: the library's exported symbols differ from the header's TG_API functions" >&2
  exit 1
fi
# The static library cannot hide its internal symbols: they all carry the tg_ prefix, so none can
# collide with a name in the program that links it.
archive="${1}/libtapegrad.a"
if [ -f "$archive" ]; then
  stray=$(nm --defined-only "$archive" 2>/dev/null | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | grep -v '^tg_' | sort -u || true)
  if [ -n "$stray" ]; then
    echo "check-exports: libtapegrad.a defines symbols without the tg_ prefix:" >&2
    echo "$stray" >&2
    exit 1
  fi
fi
echo "check-exports: $(wc -l <"$exported") symbols, exactly the header's; every static-library symbol is tg_"
