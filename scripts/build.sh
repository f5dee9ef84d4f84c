#!/usr/bin/env bash
# Static (musl, non-PIE) release builds and Lambda layer zips.
#
#   scripts/build.sh [x86_64|arm64|all]      (default: all; run scripts/toolchain.sh first)
#
# Leaves, for each arch:
#   $OUT/$NAME-<arch>            static binary (verified: no PT_INTERP, no DT_NEEDED)
#   $OUT/$NAME-<arch>.zip        layer zip holding extensions/$LAYER_NAME (mode 0755), reproducible
#   $OUT/$NAME-<arch>.zip.sha256 and $OUT/$NAME-<arch>.sha256
#
# Environment (all optional):
#   CARGO_TARGET_DIR   cargo target dir (default: target)
#   OUT                output dir (default: dist)
#   NAME               output basename (default: slimcap), e.g. NAME=slimcap-tokio
#   BIN                cargo binary to build (default: slimcap)
#   PACKAGE, MANIFEST  cargo package and manifest (default: slimcap, ./Cargo.toml); another
#                      crate built this way still gets this repo's .cargo/config.toml
#   LAYER_NAME         file name inside the zip's extensions/ (default: slimcap)
#   SLIMCAP_NO_STAGE=1 no registration stage: the zip holds the core as extensions/$LAYER_NAME
#                      (default: extensions/$LAYER_NAME = stage, slimcap/slimcap-core = core;
#                      $OUT/$NAME-stage-<arch> is the stage binary)
#   CARGO_ARGS         extra cargo args, e.g. "--features tokio"
#   EXTRA_RUSTFLAGS    extra rustc flags for the target (appended last, so they win),
#                      e.g. "-C relocation-model=pie" for static-pie
#   SLIMCAP_PANIC      immediate-abort (default) | abort
#   SLIMCAP_LOCATION_DETAIL  none (default) | full
#   SLIMCAP_FMT_DEBUG  shallow (default) | full | none   (shallow: derived Debug prints only
#                      type/variant names; −23.7 KB x86_64, −18.8 KB arm64; src/ prints no derived
#                      Debug on a wire or log path, see size-reports/flags.md; none empties every {:?})
#   SLIMCAP_STD_FEATURES  -Zbuild-std-features value (default: optimize_for_size if std has it)
#   SLIMCAP_NO_ZIP=1   skip the zips;  SLIMCAP_NO_SMOKE=1  skip the start-up smoke run
#   SLIMCAP_DRY_RUN=1  print the cargo invocation (after the flag probes) and stop
#   SLIMCAP_STRICT=1   fail instead of falling back when an unstable flag is rejected
#   RUSTC, CARGO       default /usr/bin/rustc, /usr/bin/cargo (Debian rustc-web, has rust-src)
#   SLIMCAP_BLOAT="cargo-bloat args"  instead of building dist/, run `cargo bloat` with the same
#                      target, flags and profile (symbols kept) and print its report to stdout
#
# Target settings (linker, relocation model, lld/ICF) live in .cargo/config.toml; the -Z
# flags are added here because the toolchain may change under us (Debian replaces rustc-web
# in place): each one is probed first and dropped with a warning if rejected.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
abspath() { case "$1" in /*) echo "$1";; *) echo "$PWD/$1";; esac; }
[ -n "${OUT:-}" ] && OUT=$(abspath "$OUT")
[ -n "${CARGO_TARGET_DIR:-}" ] && CARGO_TARGET_DIR=$(abspath "$CARGO_TARGET_DIR")
[ -n "${MANIFEST:-}" ] && MANIFEST=$(abspath "$MANIFEST")
cd "$ROOT"

WHICH=${1:-all}
case "$WHICH" in
  x86_64|amd64) ARCHES=(x86_64);;
  arm64|aarch64) ARCHES=(arm64);;
  all) ARCHES=(x86_64 arm64);;
  *) echo "usage: $0 [x86_64|arm64|all]" >&2; exit 2;;
esac

export RUSTC=${RUSTC:-/usr/bin/rustc}
export RUSTDOC=${RUSTDOC:-/usr/bin/rustdoc}
CARGO=${CARGO:-/usr/bin/cargo}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/dist}
NAME=${NAME:-slimcap}
BIN=${BIN:-slimcap}
PACKAGE=${PACKAGE:-slimcap}
MANIFEST=${MANIFEST:-$ROOT/Cargo.toml}
LAYER_NAME=${LAYER_NAME:-slimcap}
# The registration stage (src/bin/slimcap-stage.rs) goes into the layer in front of the core;
# SLIMCAP_NO_STAGE=1 ships the core alone as extensions/$LAYER_NAME.
STAGE_BIN=""
if [ "$BIN" = slimcap ] && [ "$PACKAGE" = slimcap ] && [ -z "${SLIMCAP_NO_STAGE:-}" ]; then STAGE_BIN=slimcap-stage; fi
PANIC=${SLIMCAP_PANIC:-immediate-abort}
LOCDETAIL=${SLIMCAP_LOCATION_DETAIL:-none}
FMTDEBUG=${SLIMCAP_FMT_DEBUG:-shallow}
XTC=${SLIMCAP_XTC:-${XTC:-$HOME/.cache/slimcap-xtc}}
export SLIMCAP_XTC=$XTC
RUST_SRC=$("$RUSTC" --print sysroot)/lib/rustlib/src/rust

log() { printf '[build] %s\n' "$*" >&2; }
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }

[ -x "$RUSTC" ] || die "$RUSTC missing; run scripts/toolchain.sh"
[ -d "$RUST_SRC/library/std" ] || die "no std sources at $RUST_SRC; run scripts/toolchain.sh"
[ -f "$XTC/x86_64/musl.specs" ] && [ -f "$XTC/aarch64/libunwind.a" ] \
  || die "cross toolchain cache $XTC missing; run scripts/toolchain.sh"

# ---- probe the unstable flags (a no_core crate: no std needed) ----
PROBE_DIR=$(mktemp -d)
trap 'rm -rf "$PROBE_DIR"' EXIT
printf '#![feature(no_core)]\n#![no_core]\n' > "$PROBE_DIR/p.rs"
rustc_accepts() {
  "$RUSTC" --crate-type lib --emit=metadata -o "$PROBE_DIR/p.rmeta" "$@" "$PROBE_DIR/p.rs" >/dev/null 2>&1
}
cargo_accepts() { "$CARGO" "$@" version >/dev/null 2>&1; }
fallback() {
  [ -n "${SLIMCAP_STRICT:-}" ] && die "toolchain rejects: $*"
  log "WARNING: toolchain rejects $*; falling back"
}

ZRUSTFLAGS=()
CARGO_Z=(-Zbuild-std=std,panic_abort)
PANIC_PROFILE=abort
if [ "$PANIC" = immediate-abort ]; then
  if rustc_accepts -Cpanic=immediate-abort -Zunstable-options && cargo_accepts -Zpanic-immediate-abort; then
    PANIC_PROFILE=immediate-abort
    CARGO_Z+=(-Zpanic-immediate-abort)
  else
    fallback "panic=immediate-abort (using panic=abort)"
  fi
fi
if [ "$LOCDETAIL" != full ]; then
  if rustc_accepts "-Zlocation-detail=$LOCDETAIL"; then ZRUSTFLAGS+=("-Zlocation-detail=$LOCDETAIL")
  else fallback "-Zlocation-detail=$LOCDETAIL"; fi
fi
if [ "$FMTDEBUG" != full ]; then
  if rustc_accepts "-Zfmt-debug=$FMTDEBUG"; then ZRUSTFLAGS+=("-Zfmt-debug=$FMTDEBUG")
  else fallback "-Zfmt-debug=$FMTDEBUG"; fi
fi
STD_FEATURES=${SLIMCAP_STD_FEATURES-optimize_for_size}
if [ -n "$STD_FEATURES" ]; then
  ok=1
  for f in ${STD_FEATURES//,/ }; do
    grep -q "^$f *=" "$RUST_SRC/library/std/Cargo.toml" || { fallback "std feature $f"; ok=; }
  done
  [ -n "$ok" ] && CARGO_Z+=("-Zbuild-std-features=$STD_FEATURES")
fi

# Reproducibility: no absolute build paths in the output.
REMAP=(--remap-path-prefix="$ROOT=/slimcap"
       --remap-path-prefix="${CARGO_HOME:-$HOME/.cargo}=/cargo"
       --remap-path-prefix="$RUST_SRC=/rust")

export CARGO_PROFILE_RELEASE_PANIC=$PANIC_PROFILE
# Link with symbols and strip when copying to $OUT: `cargo bloat` (scripts/size.sh) then
# analyses the very artifacts that were shipped instead of rebuilding std without strip.
export CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=false
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}

triple() { case "$1" in x86_64) echo x86_64-unknown-linux-musl;; arm64) echo aarch64-unknown-linux-musl;; esac; }
machine() { case "$1" in x86_64) echo 'Advanced Micro Devices X86-64';; arm64) echo AArch64;; esac; }

verify_static() {
  local f=$1 a=$2
  readelf -hW "$f" | grep -q "Machine: *$(machine "$a")" || die "$f: wrong ELF machine"
  if readelf -lW "$f" | grep -q INTERP; then die "$f: has PT_INTERP (not static)"; fi
  if readelf -dW "$f" 2>/dev/null | grep -q NEEDED; then die "$f: has DT_NEEDED (not static)"; fi
}

smoke() {
  # Starts the binary against a closed port: it must run (exit or retry), not die by a signal.
  local f=$1 a=$2 rc=0 run=()
  [ "$a" = arm64 ] && run=(qemu-aarch64-static)
  [ "$a" = x86_64 ] && [ "$(uname -m)" != x86_64 ] && return 0
  AWS_LAMBDA_RUNTIME_API=127.0.0.1:9 timeout 3 "${run[@]}" "$f" </dev/null >/dev/null 2>&1 || rc=$?
  if [ "$rc" -gt 128 ] && [ "$rc" != 124 ]; then die "$f: smoke run died with signal $((rc - 128))"; fi
  log "smoke run $a: exit $rc"
}

mkzip() {
  # With a stage: extensions/$LAYER_NAME is the stage and slimcap/slimcap-core the full binary
  # (/opt/slimcap/slimcap-core, outside /opt/extensions so Lambda does not start it itself).
  local f=$1 zip=$2 stage_bin=${3:-} stage files
  stage=$(mktemp -d)
  mkdir -p "$stage/extensions"
  if [ -n "$stage_bin" ]; then
    mkdir -p "$stage/slimcap"
    cp "$stage_bin" "$stage/extensions/$LAYER_NAME"
    cp "$f" "$stage/slimcap/slimcap-core"
    files=(extensions/ "extensions/$LAYER_NAME" slimcap/ slimcap/slimcap-core)
  else
    cp "$f" "$stage/extensions/$LAYER_NAME"
    files=(extensions/ "extensions/$LAYER_NAME")
  fi
  for x in "${files[@]}"; do chmod 0755 "$stage/$x"; done
  # zip stores DOS local time (no dates before 1980): pin TZ and mtime; -X drops uid/gid/extra times.
  for x in "${files[@]}"; do TZ=UTC touch -h -d '1980-01-01 00:00:00' "$stage/$x"; done
  rm -f "$zip"
  (cd "$stage" && TZ=UTC zip -q -X -9 "$zip" "${files[@]}")
  rm -rf "$stage"
}

sha() { (cd "$(dirname "$1")" && sha256sum "$(basename "$1")" > "$(basename "$1").sha256"); }

build_one() {
  local a=$1 t env_rf rc=0 start errlog
  t=$(triple "$a")
  env_rf="CARGO_TARGET_$(echo "$t" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
  # Appended to the [target.<triple>] rustflags from .cargo/config.toml.
  export "$env_rf=${ZRUSTFLAGS[*]} ${REMAP[*]} ${EXTRA_RUSTFLAGS:-}"
  start=$(date +%s)
  errlog=$(mktemp)
  log "$t: panic=$PANIC_PROFILE ${CARGO_Z[*]} ${!env_rf}"
  [ -n "${SLIMCAP_DRY_RUN:-}" ] && return 0
  if [ -n "${SLIMCAP_BLOAT:-}" ]; then
    # cargo-bloat has no --manifest-path: run it in the manifest's directory (this repo's
    # .cargo/config.toml still applies to crates below it).
    # shellcheck disable=SC2086
    (cd "$(dirname "$MANIFEST")" && "$CARGO" bloat --release ${CARGO_LOCKED---locked} --target "$t" -p "$PACKAGE" --bin "$BIN" \
      "${CARGO_Z[@]}" ${CARGO_ARGS:-} $SLIMCAP_BLOAT)
    return
  fi
  # shellcheck disable=SC2086
  "$CARGO" build --release ${CARGO_LOCKED---locked} --target "$t" --manifest-path "$MANIFEST" -p "$PACKAGE" --bin "$BIN" \
      ${STAGE_BIN:+--bin "$STAGE_BIN"} "${CARGO_Z[@]}" ${CARGO_ARGS:-} 2> >(tee "$errlog" >&2) || rc=$?
  if [ $rc != 0 ]; then
    if [ -z "${SLIMCAP_STRICT:-}" ] && grep -qE "unknown (unstable option|\`-Z\` flag)|panic strategy|immediate-abort|invalid value .* for a boolean|unknown feature" "$errlog"; then
      log "WARNING: build with unstable flags failed; retrying with plain build-std + panic=abort"
      export "$env_rf=${REMAP[*]} ${EXTRA_RUSTFLAGS:-}"
      CARGO_PROFILE_RELEASE_PANIC=abort "$CARGO" build --release ${CARGO_LOCKED---locked} --target "$t" \
        --manifest-path "$MANIFEST" -p "$PACKAGE" --bin "$BIN" ${STAGE_BIN:+--bin "$STAGE_BIN"} -Zbuild-std=std,panic_abort ${CARGO_ARGS:-}
    else
      rm -f "$errlog"; die "cargo build failed for $t"
    fi
  fi
  rm -f "$errlog"
  mkdir -p "$OUT"
  local dst="$OUT/$NAME-$a"
  local strip=strip
  [ "$a" = arm64 ] && strip=aarch64-linux-gnu-strip
  "$strip" --strip-all -o "$dst.tmp" "$CARGO_TARGET_DIR/$t/release/$BIN"
  mv -f "$dst.tmp" "$dst"
  chmod 0755 "$dst"
  verify_static "$dst" "$a"
  [ -n "${SLIMCAP_NO_SMOKE:-}" ] || smoke "$dst" "$a"
  sha "$dst"
  local stage_dst=""
  if [ -n "$STAGE_BIN" ]; then
    stage_dst="$OUT/$NAME-stage-$a"
    "$strip" --strip-all -o "$stage_dst.tmp" "$CARGO_TARGET_DIR/$t/release/$STAGE_BIN"
    mv -f "$stage_dst.tmp" "$stage_dst"
    chmod 0755 "$stage_dst"
    verify_static "$stage_dst" "$a"
    sha "$stage_dst"
    log "$a: registration stage $(stat -c %s "$stage_dst") bytes -> $stage_dst"
  fi
  if [ -z "${SLIMCAP_NO_ZIP:-}" ]; then
    mkzip "$dst" "$dst.zip" "$stage_dst"
    sha "$dst.zip"
  fi
  log "$a: $(stat -c %s "$dst") bytes in $(( $(date +%s) - start ))s -> $dst$([ -z "${SLIMCAP_NO_ZIP:-}" ] && echo " (+ .zip)")"
}

for a in "${ARCHES[@]}"; do build_one "$a"; done
