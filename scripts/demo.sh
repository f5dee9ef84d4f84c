#!/usr/bin/env bash
# Builds slimcap (host release build) and runs it against the bundled Lambda
# platform emulator's default scenario: a cold start, three invocations with
# their telemetry (#2 fails on purpose), and a shutdown, shipping to a local
# fake Datadog intake; prints the timeline (with a legend) and what reached
# the intake (each metric with a value, the first log lines).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'USAGE'
usage: scripts/demo.sh [-v] [--mi] [PATH_TO_EXTENSION]
  -v     also show the extension's own output (it runs with DD_LOG_LEVEL=debug)
  --mi   emulate Lambda Managed Instances (concurrent invocations, SHUTDOWN only)
  PATH   an extension binary to run instead of building target/release/slimcap
         (e.g. dist/slimcap-x86_64 from scripts/build.sh)
USAGE
}

args=()
bin=""
for a in "$@"; do
  case "$a" in
    -h|--help) usage; exit 0;;
    -v|--verbose|--mi) args+=("$a");;
    -*) echo "unknown option $a" >&2; usage >&2; exit 2;;
    *) bin="$a";;
  esac
done
target=${CARGO_TARGET_DIR:-target}
# cargo prints its progress (the first build takes about a minute)
echo "== building slimcap and the Lambda emulator (release)" >&2
cargo build --release -p slimcap --bin slimcap -p lambda-emulator --bin lambda-emulator
bin=${bin:-$target/release/slimcap}
echo "== running $bin under the emulator" >&2
exec "$target/release/lambda-emulator" demo "$bin" ${args[@]+"${args[@]}"}
