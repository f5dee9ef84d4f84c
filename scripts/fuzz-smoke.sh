#!/usr/bin/env bash
# Fuzz smoke test: runs each cargo-fuzz target for a short time (default 30 s).
#
#   scripts/fuzz-smoke.sh            # all targets, 30 s each
#   FUZZ_SECONDS=300 scripts/fuzz-smoke.sh records
#
# Needs the nightly toolchain (rustup's `nightly`) and cargo-fuzz, which is
# installed here if missing (`cargo install cargo-fuzz --locked`, from crates.io).
# Sanitizer: none by default. The fuzzed code (json, time, telemetry, http1) has
# no `unsafe`, so AddressSanitizer finds nothing more there and only slows the
# run down; panics, overflow checks (debug assertions are on) and the targets'
# own assertions are what can fail. Set FUZZ_SANITIZER=address to change that.
# Findings land in fuzz/artifacts/<target>/ (git-ignored); reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}"
SANITIZER="${FUZZ_SANITIZER:-none}"
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(records http1)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz-smoke: the nightly toolchain is required (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

# Keep fuzz builds apart from the main build directory.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/fuzz/target}"

# Seed corpora from the unit-test shapes, so short runs start from real inputs.
seed() {
  local dir="fuzz/corpus/$1"; shift
  mkdir -p "$dir"
  local i=0
  for s in "$@"; do
    printf '%s' "$s" > "$dir/seed-$i"
    i=$((i + 1))
  done
}
seed records \
  '[{"time":"2022-10-19T13:52:15.636Z","type":"platform.initStart","record":{"initializationType":"on-demand","phase":"init"}}]' \
  '[{"time":"2022-10-21T14:05:05.764Z","type":"platform.runtimeDone","record":{"requestId":"459921b5","status":"success","spans":[{"name":"responseLatency","start":"2022-10-21T14:05:03.165Z","durationMs":2598.0}],"metrics":{"durationMs":2599.0,"producedBytes":8}}}]' \
  '[{"time":"2022-10-21T14:05:05.766Z","type":"platform.report","record":{"requestId":"r","metrics":{"durationMs":2599.4,"billedDurationMs":2600,"memorySizeMB":128,"maxMemoryUsedMB":94,"initDurationMs":549.04},"status":"success"}}]' \
  '[{"time":"2024-04-24T12:34:56.789+02:00","type":"function","record":"plain text \u00e9\ud83d\ude00 line\n"},{"type":"extension","record":{"level":"ERROR","message":"boom","requestId":"r"}}]' \
  '[{"type":"platform.logsDropped","record":{"reason":"x","droppedRecords":1,"droppedBytes":2}},{"type":"platform.extension","record":{"name":"a","state":"Ready","events":["INVOKE"]}},1,null]'
seed http1 \
  $'\x10\x10\x07POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n' \
  $'\x10\x10\x03POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n' \
  $'\x08\x01\x01POST /a HTTP/1.1\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc'

status=0
for t in "${TARGETS[@]}"; do
  echo "fuzz-smoke: $t for ${SECONDS_PER_TARGET}s (sanitizer: $SANITIZER)" >&2
  if ! cargo +nightly fuzz run --fuzz-dir fuzz -s "$SANITIZER" "$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -max_len=65536 -print_final_stats=1; then
    echo "fuzz-smoke: $t FAILED (see fuzz/artifacts/$t/)" >&2
    status=1
  fi
done
exit $status
