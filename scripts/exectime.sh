#!/usr/bin/env bash
# Cold and warm exec -> register (or exec -> exit) latency of a binary.
#
#   scripts/exectime.sh [-n runs] BINARY [args...]
#   EXECTIME_MODES="cold warm" (default), EXECTIME_WRAPPER=qemu-aarch64-static for arm64
#
# Prints, per mode: mode what runs min p10 median p90 max (microseconds).
# The helper (scripts/exectime.c) is compiled on first use into $XTC (needs gcc).
# Cold runs evict the binary from the page cache with posix_fadvise(DONTNEED) and check
# with mincore() that nothing of it stays resident; on this VM readahead then reads the
# whole file on exec. The harness is a fake Extensions API on 127.0.0.1 that answers
# `register` (AWS_LAMBDA_RUNTIME_API is set for the child), then kills the child.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
XTC=${SLIMCAP_XTC:-${XTC:-$HOME/.cache/slimcap-xtc}}
RUNS=50
if [ "${1:-}" = -n ]; then RUNS=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: $0 [-n runs] BINARY [args...]" >&2; exit 2; }

SRC=$ROOT/scripts/exectime.c
H=$(sha256sum "$SRC" | cut -c1-12)
EXE=$XTC/exectime-$H
if [ ! -x "$EXE" ]; then
  mkdir -p "$XTC"
  gcc -O2 -Wall -o "$EXE.tmp" "$SRC" && mv "$EXE.tmp" "$EXE"
fi
BIN=$(readlink -f "$1"); shift
W=()
[ -n "${EXECTIME_WRAPPER:-}" ] && W=(-p "$(command -v "$EXECTIME_WRAPPER")")
for m in ${EXECTIME_MODES:-cold warm}; do
  f=-w; [ "$m" = cold ] && f=-c
  # one untimed warm-up run so the harness itself is in cache
  "$EXE" -q -n 1 -w "${W[@]}" -- "$BIN" "$@" >/dev/null
  "$EXE" -q -n "$RUNS" $f "${W[@]}" -- "$BIN" "$@"
done
