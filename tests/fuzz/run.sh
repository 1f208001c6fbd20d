#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/fuzz/run.sh TARGET SEED_DIR SECONDS — runs a libFuzzer target for a bounded time on a
# scratch copy of its seed corpus (the source tree is never written), and fails on a finding.
set -eu
target=$1 seeds=$2 secs=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$work/artifacts"
cp "$seeds"/* "$work/corpus/" 2>/dev/null || true
# -rss_limit_mb bounds memory; -timeout flags a hang; findings land in $work/artifacts
"$target" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "$work/corpus" 2>"$work/log" || {
  tail -n 60 "$work/log" >&2
  for f in "$work/artifacts"/*; do
    [ -e "$f" ] && { echo "finding: $f" >&2; od -A x -t x1z "$f" | head -20 >&2; }
  done
  exit 1
}
grep -E "^stat::number_of_executed_units|^Done" "$work/log" || tail -n 3 "$work/log"
