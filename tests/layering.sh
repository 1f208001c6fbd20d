#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/layering.sh ROOT — fails when a dependency points up (STYLE.md §1):
#   core/ may not include "net/..." or "broker/...", net/ may not include "broker/...".
#   (tools/ and bench/ may use core/ only: no "net/" or "broker/" either.)
#   Inside net/, the rooms are floors too (a file may include net/ headers of its own floor
#   or below, never above), so the layers cannot call each other in a loop:
#     0 op.h opts.h   1 mailbox   2 conn   3 tls jwriter   4 ws   5 xport   6 auth   7 client
#     8 will trace overload marks   9 publish subscribe   10 connect   11 proto persist   12 worker
#     13 server
# tests/layering.sh --selftest — builds a tree with each violation and checks it is caught.
set -u

# floor NAME: the floor of a net/ file (by its base name without extension)
floor() {
  case $1 in
    op|opts) echo 0 ;;
    mailbox) echo 1 ;;
    conn) echo 2 ;;
    tls|jwriter) echo 3 ;;
    ws) echo 4 ;;
    xport) echo 5 ;;
    auth) echo 6 ;;
    client) echo 7 ;;
    will|trace|overload|marks) echo 8 ;;
    publish|subscribe) echo 9 ;;
    connect) echo 10 ;;
    proto|persist) echo 11 ;;
    worker) echo 12 ;;
    server) echo 13 ;;
    *) echo 99 ;;
  esac
}

floors() {
  froot=$1
  fbad=0
  [ -d "$froot/net" ] || return 0
  for f in "$froot"/net/*.c "$froot"/net/*.h; do
    [ -f "$f" ] || continue
    base=$(basename "$f"); me=$(floor "${base%.*}")
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"net\/\([a-z_]*\)\.h".*/\1/p' "$f"); do
      up=$(floor "$inc")
      if [ "$up" -gt "$me" ]; then
        echo "layering: net/$base (floor $me) must not include net/$inc.h (floor $up)" >&2
        fbad=1
      fi
    done
  done
  return $fbad
}

check() {
  root=$1
  bad=0
  scan() { # dir pattern
    [ -d "$root/$1" ] || return 0
    hits=$(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<]($2)/" "$root/$1" \
           --include='*.c' --include='*.h' 2>/dev/null)
    if [ -n "$hits" ]; then
      echo "layering: $1/ must not include $2/:" >&2
      echo "$hits" >&2
      bad=1
    fi
  }
  scan core 'net|broker'
  scan net 'broker'
  scan tools 'net|broker'
  scan bench 'net|broker'
  floors "$root" || bad=1
  return $bad
}

if [ "${1:-}" = "--selftest" ]; then
  tmp=$(mktemp -d) || exit 1
  trap 'rm -rf "$tmp"' EXIT
  fails=0
  for case in 'core:net/ring.h' 'core:broker/config.h' 'net:broker/sys.h' 'tools:net/server.h'; do
    dir=${case%%:*} inc=${case#*:}
    rm -rf "$tmp/t"; mkdir -p "$tmp/t/$dir"
    printf '#include "%s"\n' "$inc" > "$tmp/t/$dir/x.c"
    if check "$tmp/t" 2>/dev/null; then
      echo "selftest: $dir including $inc was not caught" >&2; fails=1
    fi
  done
  for case in 'conn.c:proto.h' 'auth.c:client.h' 'mailbox.c:conn.h' 'proto.c:worker.h' 'worker.c:server.h'; do
    file=${case%%:*} inc=${case#*:}
    rm -rf "$tmp/t"; mkdir -p "$tmp/t/net"
    printf '#include "net/%s"\n' "$inc" > "$tmp/t/net/$file"
    if check "$tmp/t" 2>/dev/null; then
      echo "selftest: net/$file including net/$inc was not caught" >&2; fails=1
    fi
  done
  rm -rf "$tmp/t"; mkdir -p "$tmp/t/core" "$tmp/t/net"
  printf '#include "core/buf.h"\n' > "$tmp/t/net/ok.c"
  printf '#include "net/conn.h"\n#include "net/mailbox.h"\n' > "$tmp/t/net/proto.c"
  printf '#include "core/rc.h"\n' > "$tmp/t/core/ok.c"
  if ! check "$tmp/t"; then echo "selftest: a clean tree was rejected" >&2; fails=1; fi
  exit $fails
fi

check "${1:-.}"
