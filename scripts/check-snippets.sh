#!/usr/bin/env bash
# Every C block in README.md and docs/*.md, compiled against the installed library.
#
# The convention for C blocks in README.md and docs/*.md:
#   ```c             a complete program: compiled with -std=c11 -Wall -Wextra -Wpedantic
#                    -Werror and `pkg-config --cflags --libs tapegrad` against an install
#                    in a private prefix, then run (in a scratch folder where the
#                    repository's data/ and examples/ are reachable) and must exit 0
#   ```c fragment    part of a program (declarations, a loop body): shown, not compiled
# An HTML comment on the line just before a complete program changes how it runs:
#   <!-- snippet: args A B -->      run it with these arguments
#   <!-- snippet: compile-only -->  compile and link it, do not run it
# Any other info string on a C block (```C, ```c++, ```c something) is an error, so a
# block cannot escape the check by accident.
#
# usage: scripts/check-snippets.sh [BUILD_DIR]   (default build-release, already built)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build-release}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
unset LD_LIBRARY_PATH

# One file per block: NNN.c, and a line "NNN<TAB>file:line<TAB>mode<TAB>args" in the manifest.
awk -v out="$work" '
  FNR == 1 { inblock = 0; directive = "" }
  !inblock && /^```/ {
    info = substr($0, 4); sub(/[ \t]+$/, "", info)
    if (info ~ /^[cC]([ +]|$)/ || info ~ /^[cC]$/) {
      if (info == "c fragment") { skip = 1 }
      else if (info == "c") { skip = 0 }
      else { printf "%s:%d: unknown C block marker \"```%s\" (use ```c or ```c fragment)\n", FILENAME, FNR, info > "/dev/stderr"; bad = 1; skip = 1 }
      inblock = 1; n++
      name = sprintf("%s/%03d.c", out, n)
      mode = "run"; args = ""
      if (directive ~ /compile-only/) mode = "compile"
      else if (directive ~ /args /) { args = directive; sub(/.*args /, "", args); sub(/[ \t]*-->.*/, "", args) }
      if (!skip) printf "%03d\t%s:%d\t%s\t%s\n", n, FILENAME, FNR, mode, args >> (out "/manifest")
      directive = ""
      next
    }
    inblock = 2; next   # a block in another language: skip to its end
  }
  inblock && /^```[ \t]*$/ { inblock = 0; next }
  inblock == 1 && !skip { print > name; next }
  inblock { next }
  /^<!-- snippet:/ { directive = $0; next }
  NF { directive = "" }
  END { exit bad }
' README.md docs/*.md

mkdir -p "$work/run"
ln -s "$root/data" "$work/run/data"
ln -s "$root/examples" "$work/run/examples"
compiled=0 ran=0 failed=0
while IFS=$'\t' read -r n where mode args; do
  src="$work/$n.c"
  # shellcheck disable=SC2046
  if ! cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$src" -o "$work/$n" $(pkg-config --cflags --libs tapegrad) \
      2>"$work/$n.log"; then
    echo "check-snippets: $where does not compile:" >&2
    cat "$work/$n.log" >&2
    failed=$((failed + 1))
    continue
  fi
  compiled=$((compiled + 1))
  [ "$mode" = run ] || continue
  # shellcheck disable=SC2086
  if ! (cd "$work/run" && timeout 60 "$work/$n" $args >"$work/$n.out" 2>&1); then
    echo "check-snippets: $where failed when run (${args:-no arguments}):" >&2
    cat "$work/$n.out" >&2
    failed=$((failed + 1))
    continue
  fi
  ran=$((ran + 1))
done <"$work/manifest"
if [ "$failed" -gt 0 ]; then
  echo "check-snippets: $failed of the C programs in README.md and docs/*.md failed" >&2
  exit 1
fi
echo "check-snippets: $compiled complete programs in README.md and docs/*.md compiled against the install, $ran ran"
