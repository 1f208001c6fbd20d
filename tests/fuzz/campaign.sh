#!/bin/bash
# SPDX-License-Identifier: MIT
# tests/fuzz/campaign.sh BUILD_DIR OUT_DIR — the long fuzzing runs outside the test command:
# each libFuzzer target of BUILD_DIR (an ASan+UBSan build with -Dfuzz=true) runs until it has
# used CPU_LIMIT seconds of CPU in all (default 3600: issue 12's CPU-hour), across restarts,
# SLOTS at a time (default 2), at nice 19, on its own corpus in OUT_DIR/TARGET/corpus (started
# from tests/fuzz/corpus/TARGET). OUT_DIR/cum keeps the CPU seconds of every run, OUT_DIR/status
# what happened, OUT_DIR/TARGET/log libFuzzer's output (executions: its stat:: lines), and
# OUT_DIR/TARGET/art any finding; a target that exits on its own has found something.
#
#   setsid nohup tests/fuzz/campaign.sh build-asan /var/tmp/fz > /dev/null 2>&1 &
#   touch /var/tmp/fz/PAUSE    # before a benchmark: the fuzzers stop (SIGINT), their time kept
#   rm /var/tmp/fz/PAUSE       # they start again on their corpora
#
# A fuzzer is never stopped with SIGSTOP: libFuzzer's wall-clock -timeout would report the
# input it held when it resumes. TARGETS="decode topic" limits the run to those targets.

[ $# -eq 2 ] || { sed -n '3,17p' "$0" >&2; exit 2; }
B=$(cd "$1" && pwd)/tests/fuzz
S=$(cd "$(dirname "$0")" && pwd)/corpus
D=$2
mkdir -p "$D" && D=$(cd "$D" && pwd) && touch "$D/cum"
CPU_LIMIT=${CPU_LIMIT:-3600}
SLOTS=${SLOTS:-2}
TK=$(getconf CLK_TCK)
read -r -a queue <<< "${TARGETS:-decode topic config ws_frame ws_http journal acl passwd broker}"
declare -A pids
cum() { awk -v t="$1" '$1==t{s+=$2} END{print s+0}' "$D/cum"; }
cpu() { awk -v tk="$TK" '{print int(($14+$15)/tk)}' "/proc/$1/stat" 2>/dev/null || echo 0; }
log() { echo "$(date +%T) $*" >> "$D/status"; }
start() {
  local t=$1
  mkdir -p "$D/$t/corpus" "$D/$t/art"
  [ -n "$(ls -A "$D/$t/corpus")" ] || cp "$S/$t"/* "$D/$t/corpus/" 2>/dev/null
  [ -x "$D/$t/bin" ] || cp "$B/fuzz_$t" "$D/$t/bin" # a copy: a rebuild does not change what runs
  nice -n 19 "$D/$t/bin" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
     -artifact_prefix="$D/$t/art/" "$D/$t/corpus" "$S/$t" >> "$D/$t/log" 2>&1 &
  pids[$t]=$!
  log "start $t pid $! (cpu so far $(cum "$t"))"
}
stop() {
  local t=$1 p=${pids[$1]}
  kill -INT "$p"; wait "$p"
  echo "$t $(cat "$D/$t/cpu" 2>/dev/null || echo 0)" >> "$D/cum"
  rm -f "$D/$t/cpu"; unset "pids[$t]"
}
while :; do
  for t in "${!pids[@]}"; do
    p=${pids[$t]}
    if ! kill -0 "$p" 2>/dev/null; then
      wait "$p"; rc=$?
      echo "$t $(cat "$D/$t/cpu" 2>/dev/null || echo 0)" >> "$D/cum"; rm -f "$D/$t/cpu"
      log "$t exited rc=$rc: a finding, see $D/$t/art"; unset "pids[$t]"; continue
    fi
    cpu "$p" > "$D/$t/cpu"
    if [ $(( $(cum "$t") + $(cat "$D/$t/cpu") )) -ge "$CPU_LIMIT" ]; then
      stop "$t"; log "$t done, cpu $(cum "$t")"
    fi
  done
  if [ -e "$D/PAUSE" ]; then
    for t in "${!pids[@]}"; do stop "$t"; queue=("$t" "${queue[@]}"); log "paused $t"; done
  else
    while [ ${#pids[@]} -lt "$SLOTS" ] && [ ${#queue[@]} -gt 0 ]; do
      t=${queue[0]}; queue=("${queue[@]:1}")
      [ "$(cum "$t")" -ge "$CPU_LIMIT" ] || start "$t"
    done
  fi
  [ ${#pids[@]} = 0 ] && [ ${#queue[@]} = 0 ] && { log "all done"; exit 0; }
  sleep 5
done
