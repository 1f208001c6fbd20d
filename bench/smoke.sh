#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/smoke.sh BROKER BENCH - starts the built broker on a free loopback port, runs a 2 s
# QoS 1 'pairs' benchmark against it and checks the RESULT line: recv > 0, lost = 0.
set -u
broker=${1:?usage: smoke.sh BROKER BENCH}
bench=${2:?usage: smoke.sh BROKER BENCH}

tmp=$(mktemp -d) || exit 1
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $((20000 + $$ % 30000))
}

# The port may be taken between free_port and the broker's bind: try a few.
for attempt in 1 2 3 4 5; do
  port=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$tmp/starling.conf"
  "$broker" -c "$tmp/starling.conf" > "$tmp/broker.log" 2>&1 &
  pid=$!
  up=
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    if "$bench" conn -p "$port" -c 1 -d 0 --quiet > /dev/null 2>&1; then up=1; break; fi
    sleep 0.1
  done
  [ -n "$up" ] && break
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
done 2>/dev/null
if [ -z "$pid" ]; then
  echo "smoke: the broker did not start; its log:" >&2
  cat "$tmp/broker.log" >&2
  exit 1
fi

"$bench" pairs -p "$port" -c 4 -d 2 -q 1 --quiet > "$tmp/out" 2> "$tmp/err"
rc=$?
cat "$tmp/out"
cat "$tmp/err" >&2
result=$(grep '^RESULT ' "$tmp/out")
if [ -z "$result" ]; then
  echo "smoke: no RESULT line (exit $rc)" >&2
  exit 1
fi
field() { printf '%s\n' "$result" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
recv=$(field recv)
lost=$(field lost)
if [ "${recv:-0}" -gt 0 ] && [ "$lost" = 0 ] && [ "$rc" = 0 ]; then
  echo "smoke: ok (recv=$recv lost=$lost)"
  exit 0
fi
echo "smoke: FAILED: exit=$rc recv=$recv lost=$lost" >&2
exit 1
