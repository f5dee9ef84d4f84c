#!/usr/bin/env bash
# Builds slimcap (host release build) and runs it against the bundled Lambda
# platform emulator's default scenario: a cold start, three invocations with
# their telemetry, and a shutdown, shipping to a local fake Datadog intake.
# usage: scripts/demo.sh [path-to-extension-binary]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then
  cargo build --release --quiet
  set -- target/release/slimcap
fi
exec cargo run --release --quiet -p lambda-emulator -- demo "$@"
