#!/bin/sh
# Runs the arm64 release binary under qemu-user on an x86_64 host (no binfmt_misc needed).
#   scripts/run-arm64.sh [args...]             runs dist/slimcap-arm64
#   SLIMCAP_ARM64_BIN=path scripts/run-arm64.sh  another aarch64 binary
# Tests that take the binary under test from SLIMCAP_BIN can run the arm64 build with
#   SLIMCAP_BIN=$PWD/scripts/run-arm64.sh cargo test ...
# (the script execs qemu, so the pid, stdio, signals and exit status are the binary's).
# On an arm64 host it execs the binary directly.
here=$(cd "$(dirname "$0")" && pwd)
bin=${SLIMCAP_ARM64_BIN:-$here/../dist/slimcap-arm64}
[ -x "$bin" ] || { echo "run-arm64: $bin missing; run scripts/build.sh arm64" >&2; exit 127; }
case "$(uname -m)" in
  aarch64|arm64) exec "$bin" "$@";;
esac
command -v qemu-aarch64-static >/dev/null 2>&1 || { echo "run-arm64: qemu-aarch64-static missing; run scripts/toolchain.sh" >&2; exit 127; }
exec qemu-aarch64-static "$bin" "$@"
