#!/usr/bin/env bash
# The library's include graph runs one way: a folder includes its own header
# and those of the folders below it, never one above. The order:
#   core <- dist (the processes: MPI or one) <- tensor <- autograd (the tape) <- ops <- solve <- nn <- io <- train
# (src/internal.h includes every header, for the tests only; tools/ sees only
# include/tapegrad.h.) Prints each include that runs back up, and fails on any.
set -euo pipefail
cd "$(dirname "$0")/.."
layers=(core dist tensor autograd ops solve nn io train)
rank() { local i; for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }; done; echo -1; }
bad=0
for f in $(git ls-files 'src/*/*.c' 'src/*/*.h'); do
  folder=$(echo "$f" | cut -d/ -f2)
  own=$(rank "$folder")
  [ "$own" -ge 0 ] || { echo "check-layers: $f is in src/$folder, which has no place in the order" >&2; bad=1; continue; }
  while IFS= read -r inc; do
    case $inc in
      */*) target=${inc%%/*} ;;
      internal.h) echo "check-layers: $f includes internal.h (every layer): include its folder's header" >&2; bad=1; continue ;;
      *) target=$folder ;;
    esac
    theirs=$(rank "$target")
    if [ "$theirs" -gt "$own" ]; then
      echo "check-layers: $f (src/$folder) includes $inc from src/$target, a layer above it" >&2
      bad=1
    fi
  done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done
for f in $(git ls-files 'tools/*.c' 'tools/*.h'); do
  if grep -qE '^#include "(internal\.h|(core|dist|tensor|autograd|ops|solve|nn|io|train)/)' "$f"; then
    echo "check-layers: $f includes a library-internal header: tools use include/tapegrad.h only" >&2
    bad=1
  fi
done
[ "$bad" -eq 0 ] && echo "check-layers: every include runs down (${layers[*]})"
exit "$bad"
