#!/usr/bin/env bash
# The test command (README, .ci/run): unit tests, the emulator end-to-end
# tests against the host release binary, then the static x86_64 and arm64
# release binaries (arm64 under qemu-user), then the size gate.
# Installs what it needs (scripts/toolchain.sh is idempotent).
# SLIMCAP_QUICK=1 skips the static builds and the size gate.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

echo "== unit and end-to-end tests (host release build)"
cargo test --release --workspace

if [ "${SLIMCAP_QUICK:-0}" = 1 ]; then exit 0; fi

echo "== toolchain for static builds"
scripts/toolchain.sh

echo "== static builds"
scripts/build.sh all

# The static builds use panic=immediate-abort (no panic hook): a panic there is a trap
# (SIGILL on x86_64, SIGTRAP on aarch64), reported by the signal handlers of
# src/shell/crash.rs, so the crash tests run here too (the message names the signal).
echo "== end-to-end tests against the static x86_64 binary"
SLIMCAP_BIN="$PWD/dist/slimcap-x86_64" SLIMCAP_STAGE_BIN="$PWD/dist/slimcap-stage-x86_64" cargo test --release --test lifecycle --test bad_input --test datadog --test tls

# (the stage test is skipped there: the stage would exec an arm64 binary, which needs binfmt_misc;
# the crash tests pass under qemu-user: the trap arrives as SIGTRAP, a stack overflow as SIGSEGV)
echo "== end-to-end lifecycle tests against the static arm64 binary under qemu-user"
SLIMCAP_BIN="$PWD/dist/slimcap-arm64" SLIMCAP_RUNNER="$(command -v qemu-aarch64-static)" \
  cargo test --release --test lifecycle --test tls -- --skip stage

echo "== size gate"
scripts/size.sh
