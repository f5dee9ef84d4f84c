#!/usr/bin/env bash
# The test command (README, .ci/run): unit tests, the emulator end-to-end
# tests against the host release binary, then the static x86_64 and arm64
# release binaries (arm64 under qemu-user), then the size gate.
# Installs what it needs: Debian packages (scripts/apt-need.sh, then
# scripts/toolchain.sh; both idempotent), the Python test clients
# (scripts/pyenv.sh, exported as SLIMCAP_PYTHON).
# Every step runs even when an earlier one failed (cargo test --no-fail-fast),
# so one failure never hides the rest; the exit status is non-zero if any failed.
# Leaves the work tree as it found it (git status clean).
# SLIMCAP_QUICK=1 skips the static builds and the size gate.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
start=$SECONDS
failed=()

# step NAME CMD...: run, remember a failure, go on.
step() {
  local name=$1; shift
  echo "== $name"
  if "$@"; then return 0; fi
  echo "!! FAILED: $name"
  failed+=("$name")
  return 1
}

finish() {
  local m=$(( (SECONDS - start) / 60 )) s=$(( (SECONDS - start) % 60 ))
  if [ ${#failed[@]} -gt 0 ]; then
    echo "== FAILED (${m} min ${s} s):"
    printf '   %s\n' "${failed[@]}"
    exit 1
  fi
  echo "== all passed (${m} min ${s} s)"
  exit 0
}

# python3 (tests/tls.rs's TLS server, the Python clients' venv) and openssl
# (tests/tls.rs makes its certificates with it).
step "Debian packages the tests use" scripts/apt-need.sh python3 python3-venv openssl ca-certificates || true
if py=$(scripts/pyenv.sh); then export SLIMCAP_PYTHON=$py; else echo "!! FAILED: Python test clients"; failed+=("Python test clients (scripts/pyenv.sh)"); fi

step "unit and end-to-end tests (host release build)" cargo test --release --workspace --no-fail-fast || true

if [ "${SLIMCAP_QUICK:-0}" = 1 ]; then finish; fi

if step "toolchain for static builds" scripts/toolchain.sh && step "static builds" scripts/build.sh all; then
  # The static builds use panic=immediate-abort (no panic hook): a panic there is a trap
  # (SIGILL on x86_64, SIGTRAP on aarch64), reported by the signal handlers of
  # src/shell/crash.rs, so the crash tests run here too (the message names the signal).
  step "end-to-end tests against the static x86_64 binary" \
    env SLIMCAP_BIN="$PWD/dist/slimcap-x86_64" SLIMCAP_STAGE_BIN="$PWD/dist/slimcap-stage-x86_64" \
    cargo test --release --no-fail-fast --test lifecycle --test bad_input --test datadog --test tls --test managed --test cli || true

  # (the stage test is skipped there: the stage would exec an arm64 binary, which needs binfmt_misc;
  # the crash tests pass under qemu-user: the trap arrives as SIGTRAP, a stack overflow as SIGSEGV)
  step "end-to-end lifecycle tests against the static arm64 binary under qemu-user" \
    env SLIMCAP_BIN="$PWD/dist/slimcap-arm64" SLIMCAP_RUNNER="$(command -v qemu-aarch64-static)" \
    cargo test --release --no-fail-fast --test lifecycle --test tls -- --skip stage || true

  # The gate only: the bloat reports are written by `scripts/size.sh --update` (with the baseline).
  step "size gate" scripts/size.sh || true
else
  failed+=("(the static-binary tests and the size gate did not run)")
fi
finish
