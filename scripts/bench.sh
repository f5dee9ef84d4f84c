#!/usr/bin/env bash
# Cold-start A/B: the lean build against the tokio build (and any other extension binary),
# next to a reference floor, plus the subscribe-mode comparison and the subscribe-race verdict.
#
#   scripts/bench.sh [-n RUNS] [--race-runs N] [--no-build] [--no-race] [--arch x86_64|arm64] [BINARY...]
#
# Run scripts/toolchain.sh first (static builds). Steps:
#  1. builds the lean and the tokio binaries and the registration stage, static musl, through
#     scripts/build.sh (NAME=slimcap; NAME=slimcap-stage BIN=slimcap-stage; NAME=slimcap-tokio
#     CARGO_ARGS="--features tokio") into $OUT, unless --no-build and all are there;
#  2. builds the harness (scripts/bench/benchrun.c, gcc) and the floor (scripts/bench/floor.c,
#     musl-gcc -static: a C program that registers, then calls next on the same connection);
#  3. one interleaved benchrun over: floor, lean/staged (the stage exec'ing lean, as the layer
#     ships it), lean, lean with SLIMCAP_SUBSCRIBE=concurrent,
#     tokio, tokio concurrent, and every BINARY given (label = its file name): RUNS rounds,
#     each a cold run (evicted from the page cache, checked with mincore) then a warm run;
#  4. the subscribe race on the platform emulator (scripts/bench/race, tests/emulator):
#     RACE_RUNS emulated cold starts per binary x mode x runtime init time (0, 5, 50 ms);
#  5. prints the tables (Markdown) and leaves them with the raw data in $OUT/bench/.
#
# Why not scripts/exectime.sh: it stops the child at `register`; this needs exec->first `next`,
# the subscribe, page faults and RSS at `next`, and per-target environments in one interleaved
# run. benchrun keeps exectime's eviction/mincore method and adds those.
#
# Environment: RUNS (30), RACE_RUNS (30), OUT (dist/bench-bins), CARGO_TARGET_DIR (target),
# RACE_INIT_MS ("0,5,50"), BENCH_TIMEOUT_MS (5000, per run); for arm64 the binaries run under
# qemu-aarch64-static (emulated: the timings are qemu's, not a CPU's).
# The `instructions to register` column needs a PMU (perf_event_open); in VMs without one it
# reads n/a, and `CPU to register` (task-clock of all threads) stands in.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
abspath() { case "$1" in /*) echo "$1";; *) echo "$PWD/$1";; esac; }

RUNS=${RUNS:-30}
RACE_RUNS=${RACE_RUNS:-30}
RACE_INIT_MS=${RACE_INIT_MS:-0,5,50}
ARCH=x86_64
BUILD=1
RACE=1
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n) RUNS=$2; shift 2;;
    --race-runs) RACE_RUNS=$2; shift 2;;
    --no-build) BUILD=; shift;;
    --no-race) RACE=; shift;;
    --arch) ARCH=$2; shift 2;;
    -h|--help) sed -n '2,30p' "$0"; exit 0;;
    -*) echo "unknown option $1" >&2; exit 2;;
    *) EXTRA+=("$(abspath "$1")"); shift;;
  esac
done
case "$ARCH" in x86_64|amd64) ARCH=x86_64;; arm64|aarch64) ARCH=arm64;; *) echo "bad --arch" >&2; exit 2;; esac

OUT=$(abspath "${OUT:-$ROOT/dist/bench-bins}")
[ -n "${CARGO_TARGET_DIR:-}" ] && export CARGO_TARGET_DIR=$(abspath "$CARGO_TARGET_DIR")
B=$OUT/bench
mkdir -p "$B"
log() { printf '[bench] %s\n' "$*" >&2; }

LEAN=$OUT/slimcap-$ARCH
STAGE=$OUT/slimcap-stage-$ARCH
TOKIO=$OUT/slimcap-tokio-$ARCH

# ---- 1. the two builds
if [ -n "$BUILD" ] || [ ! -x "$LEAN" ] || [ ! -x "$TOKIO" ] || [ ! -x "$STAGE" ]; then
  log "building lean ($ARCH) -> $LEAN"
  OUT=$OUT NAME=slimcap SLIMCAP_NO_ZIP=1 "$ROOT/scripts/build.sh" "$ARCH" >&2
  if [ ! -x "$STAGE" ]; then  # build.sh builds it beside the core; older ones did not
    log "building the registration stage ($ARCH) -> $STAGE"
    OUT=$OUT NAME=slimcap-stage BIN=slimcap-stage SLIMCAP_NO_ZIP=1 SLIMCAP_NO_SMOKE=1 "$ROOT/scripts/build.sh" "$ARCH" >&2
  fi
  log "building tokio ($ARCH) -> $TOKIO"
  OUT=$OUT NAME=slimcap-tokio CARGO_ARGS="--features tokio" SLIMCAP_NO_ZIP=1 "$ROOT/scripts/build.sh" "$ARCH" >&2
fi

# ---- 2. harness and floor
gcc -O2 -Wall -o "$B/benchrun" "$ROOT/scripts/bench/benchrun.c"
WRAP=()
if [ "$ARCH" = arm64 ]; then
  XTC=${SLIMCAP_XTC:-${XTC:-$HOME/.cache/slimcap-xtc}}
  "$XTC/bin/aarch64-linux-musl-gcc" -Os -static -o "$B/floor" "$ROOT/scripts/bench/floor.c"
  aarch64-linux-gnu-strip "$B/floor"
  WRAP=(-p "$(command -v qemu-aarch64-static)")
else
  musl-gcc -Os -static -o "$B/floor" "$ROOT/scripts/bench/floor.c"
  strip "$B/floor"
fi
readelf -lW "$B/floor" | grep -q INTERP && { echo "floor is not static" >&2; exit 1; }

# ---- 3. the interleaved run
relocs() {
  readelf -rW "$1" 2>/dev/null | sed -n 's/.* contains \([0-9]*\) entr.*/\1/p' | awk '{s+=$1} END {print s+0}'
}
# lean/staged: the layer's layout since the registration stage (src/bin/slimcap-stage.rs):
# the stage registers, then execs the lean binary (SLIMCAP_CORE), whose load comes after register.
TARGETS=(floor="$B/floor"
         lean/staged="$STAGE" lean/staged@SLIMCAP_CORE="$LEAN" lean/staged+"$LEAN"
         lean="$LEAN" lean/concurrent="$LEAN" lean/concurrent@SLIMCAP_SUBSCRIBE=concurrent
         tokio="$TOKIO" tokio/concurrent="$TOKIO" tokio/concurrent@SLIMCAP_SUBSCRIBE=concurrent)
BUILDS=floor,lean/staged,lean,tokio
printf 'label\tpath\tbytes\trelocs\n' > "$B/files.tsv"
for t in floor="$B/floor" lean/staged="$STAGE" lean="$LEAN" lean/concurrent="$LEAN" tokio="$TOKIO" tokio/concurrent="$TOKIO"; do
  printf '%s\t%s\t%s\t%s\n' "${t%%=*}" "${t#*=}" "$(stat -c %s "${t#*=}")" "$(relocs "${t#*=}")" >> "$B/files.tsv"
done
for f in "${EXTRA[@]}"; do
  l=$(basename "$f")
  TARGETS+=("$l=$f")
  BUILDS+=",$l"
  printf '%s\t%s\t%s\t%s\n' "$l" "$f" "$(stat -c %s "$f")" "$(relocs "$f")" >> "$B/files.tsv"
done
log "benchrun: $RUNS rounds x (cold + warm) x ${#TARGETS[@]} targets, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$B/benchrun" -n "$RUNS" -t "${BENCH_TIMEOUT_MS:-5000}" "${WRAP[@]}" "${TARGETS[@]}" > "$B/runs.tsv"

# ---- 4. the race on the emulator
RACE_TSV=
if [ -n "$RACE" ]; then
  log "subscribe race: $RACE_RUNS runs x 2 modes x init ${RACE_INIT_MS} ms x 2 binaries (emulator)"
  RUNNER=()
  [ "$ARCH" = arm64 ] && RUNNER=(--runner "$(command -v qemu-aarch64-static)")
  cargo build -q --release --manifest-path "$ROOT/scripts/bench/race/Cargo.toml" >&2
  RB=${CARGO_TARGET_DIR:-$ROOT/scripts/bench/race/target}/release/subscribe-race
  "$RB" -n "$RACE_RUNS" --init-ms "$RACE_INIT_MS" "${RUNNER[@]}" lean="$LEAN" tokio="$TOKIO" > "$B/race.tsv"
  RACE_TSV=$B/race.tsv
fi

# ---- 5. tables
{
  echo "## $ARCH$([ "$ARCH" = arm64 ] && echo ' (emulated: qemu-aarch64-static)'), $(date -u +%Y-%m-%d), $(uname -r), $(nproc) CPUs, load at start $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  python3 "$ROOT/scripts/bench/report.py" "$B/runs.tsv" "$B/files.tsv" "$RACE_TSV" \
    --builds "$BUILDS" --modes lean,lean/concurrent,tokio,tokio/concurrent
} | tee "$B/report.md"
log "raw data and report in $B"
