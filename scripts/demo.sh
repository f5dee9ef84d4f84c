#!/usr/bin/env bash
# Builds slimcap (host release build) and runs it against the bundled Lambda
# platform emulator's default scenario: a cold start, three invocations with
# their telemetry, and a shutdown, shipping to a local fake Datadog intake.
# usage: scripts/demo.sh [-v] [--mi] [path-to-extension-binary]
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
bin=""
for a in "$@"; do
  case "$a" in -*) args+=("$a");; *) bin="$a";; esac
done
if [ -z "$bin" ]; then
  cargo build --release --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/slimcap"
fi
exec cargo run --release --quiet -p lambda-emulator --bin lambda-emulator -- demo "$bin" ${args[@]+"${args[@]}"}
