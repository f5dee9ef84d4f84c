#!/usr/bin/env bash
# The threads vs smol comparison in size-reports/smol.md.
#
#   size-reports/probe-smol/bench.sh [build|measure|all]     (default: all)
#
# build:   the three probe variants (threads, smol, asyncio; see Cargo.toml) static, x86_64 and
#          arm64, through scripts/build.sh (slimcap's release flags) into $OUT;
#          `cargo bloat --crates` of each (x86_64) into size-reports/bloat-probe-smol-<variant>.txt
# measure: one interleaved benchrun (scripts/bench/benchrun.c: cold + warm exec->register and
#          ->first next, RSS and threads at the first next) over the C floor and the three;
#          then latbench.py (listener POST->200 latency, interleaved, rotated order);
#          then each variant through the platform emulator's demo (tests/emulator).
#          Raw files and the tables (summary.md) in $OUT/bench.
# Env: CARGO_TARGET_DIR (/work/tgt/smol), OUT ($CARGO_TARGET_DIR/dist), RUNS (100 start-ups
# per variant and mode), LAT_ROUNDS (10), LAT_KA (200 POSTs per round), LAT_NEW (50 per round).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/tgt/smol}
OUT=${OUT:-$CARGO_TARGET_DIR/dist}
B=$OUT/bench
RUNS=${RUNS:-100}
VARIANTS=(threads smol asyncio)
PHASE=${1:-all}
mkdir -p "$B"
log() { printf '[smol-bench] %s\n' "$*" >&2; }

if [ "$PHASE" = build ] || [ "$PHASE" = all ]; then
  for a in x86_64 arm64; do
    for v in "${VARIANTS[@]}"; do
      log "build $v ($a)"
      OUT=$OUT MANIFEST="$HERE/Cargo.toml" PACKAGE=probe-smol BIN=$v NAME=$v SLIMCAP_NO_ZIP=1 \
        "$ROOT/scripts/build.sh" "$a" >"$B/build-$v-$a.log" 2>&1 || { tail "$B/build-$v-$a.log"; exit 1; }
    done
  done
  for v in "${VARIANTS[@]}"; do
    MANIFEST="$HERE/Cargo.toml" PACKAGE=probe-smol BIN=$v SLIMCAP_BLOAT="--crates -n 20" \
      "$ROOT/scripts/build.sh" x86_64 2>/dev/null > "$ROOT/size-reports/bloat-probe-smol-$v.txt"
  done
fi

if [ "$PHASE" = measure ] || [ "$PHASE" = all ]; then
  printf 'label\tarch\tbytes\n' > "$B/files.tsv"
  for a in x86_64 arm64; do
    for v in "${VARIANTS[@]}"; do
      [ -f "$OUT/$v-$a" ] && printf '%s\t%s\t%s\n' "$v" "$a" "$(stat -c %s "$OUT/$v-$a")" >> "$B/files.tsv"
    done
  done
  gcc -O2 -Wall -o "$B/benchrun" "$ROOT/scripts/bench/benchrun.c"
  gcc -O2 -Wall -o "$B/postlat" "$HERE/postlat.c"
  musl-gcc -Os -static -o "$B/floor" "$ROOT/scripts/bench/floor.c" && strip "$B/floor"
  T=(floor="$B/floor")
  for v in "${VARIANTS[@]}"; do T+=("$v=$OUT/$v-x86_64"); done
  # the async-io variant with `register` done on a blocking socket before the reactor exists
  T+=("asyncio/blockreg=$OUT/asyncio-x86_64" "asyncio/blockreg@PROBE_BLOCKING_REGISTER=1")
  log "benchrun: $RUNS rounds, load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$B/benchrun" -n "$RUNS" "${T[@]}" > "$B/runs.tsv"
  log "latbench, load $(cut -d' ' -f1-3 /proc/loadavg)"
  L=(); for v in "${VARIANTS[@]}"; do L+=("$v=$OUT/$v-x86_64"); done
  # threads without the listener->main channel hop (counts in an atomic), to tell its cost apart
  L+=("threads/nochan=$OUT/threads-x86_64" "threads/nochan@PROBE_NO_CHANNEL=1")
  python3 "$HERE/latbench.py" "$B/postlat" "${LAT_ROUNDS:-10}" "${LAT_KA:-200}" "${LAT_NEW:-50}" "${L[@]}" > "$B/lat.tsv"
  EMU=$CARGO_TARGET_DIR/release/lambda-emulator
  if [ -x "$EMU" ]; then
    for v in "${VARIANTS[@]}"; do
      # the emulator registers the extension under its file name
      d=$(mktemp -d); cp "$OUT/$v-x86_64" "$d/probe-$v"
      log "emulator demo: $v"
      (cd "$d" && "$EMU" demo "$d/probe-$v" -v) > "$B/emulator-$v.txt" 2>&1 && echo "$v: emulator demo exit 0" \
        || echo "$v: emulator demo exit $?"
      rm -rf "$d"
    done | tee "$B/emulator.txt"
  else
    log "no $EMU: cargo build -p lambda-emulator --release first"
  fi
  python3 "$HERE/summary.py" "$B" | tee "$B/summary.md"
fi
