#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/layering.sh ROOT — fails when a dependency points up (STYLE.md §1):
#   core/ may not include "net/..." or "broker/...", net/ may not include "broker/...".
#   (tools/ and bench/ may use core/ only: no "net/" or "broker/" either.)
# tests/layering.sh --selftest — builds a tree with each violation and checks it is caught.
set -u

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
  rm -rf "$tmp/t"; mkdir -p "$tmp/t/core" "$tmp/t/net"
  printf '#include "core/buf.h"\n' > "$tmp/t/net/ok.c"
  printf '#include "core/rc.h"\n' > "$tmp/t/core/ok.c"
  if ! check "$tmp/t"; then echo "selftest: a clean tree was rejected" >&2; fails=1; fi
  exit $fails
fi

check "${1:-.}"
