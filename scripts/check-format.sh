#!/usr/bin/env bash
# Every C file in the tree is formatted as .clang-format says (Debian's
# clang-format 14). With --fix, formats them in place instead of checking.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || bash scripts/install-deps.sh clang-format
mode=(--dry-run --Werror)
[ "${1:-}" = "--fix" ] && mode=(-i)
# Headers written by the reference scripts (tests/ref/, tests/*_reference.h) stay as their scripts write
# them: a test compares them with a fresh run of the script.
mapfile -t files < <(git ls-files '*.c' '*.h' | grep -v -e '^tests/ref/' -e '_reference\.h$')
if ! clang-format --style=file "${mode[@]}" "${files[@]}" 2>/tmp/check-format.$$; then
  grep -E '^[^ ].*: (error|warning):' /tmp/check-format.$$ | cut -d: -f1 | sort -u | sed 's/^/check-format: not formatted: /' >&2
  rm -f /tmp/check-format.$$
  echo "check-format: run scripts/check-format.sh --fix" >&2
  exit 1
fi
rm -f /tmp/check-format.$$
[ "${1:-}" = "--fix" ] && echo "check-format: formatted ${#files[@]} files" || echo "check-format: ${#files[@]} files formatted as .clang-format says"
