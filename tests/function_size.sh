#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/function_size.sh ROOT BUILD — fails when a function of the broker, its tools or the
# bench is over 80 lines (STYLE.md; .clang-tidy's readability-function-size, warnings as
# errors). Tables are data and are not counted. BUILD holds compile_commands.json.
set -u
root=$1 build=$2
if ! command -v clang-tidy >/dev/null 2>&1; then
  echo "function_size: clang-tidy is not installed (tools/setup installs it)" >&2
  exit 1
fi
bad=0
for f in "$root"/core/*.c "$root"/net/*.c "$root"/broker/*.c "$root"/tools/*.c "$root"/bench/*.c; do
  [ -f "$f" ] || continue
  out=$(clang-tidy -p "$build" --quiet --config-file="$root/.clang-tidy" "$f" 2>/dev/null)
  if printf '%s\n' "$out" | grep -q "readability-function-size"; then
    printf '%s\n' "$out" | grep "readability-function-size" >&2
    bad=1
  fi
done
exit $bad
