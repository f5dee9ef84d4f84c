#!/usr/bin/env bash
# Installs everything the static release builds, size reports and arm64 (qemu) tests need.
# Idempotent, no prompts; run as root on a fresh Debian 12 machine (CI calls it).
# Fast when everything is present: apt is skipped, the cross-toolchain cache is checked by a stamp.
#
#   scripts/toolchain.sh            # install / verify
#   SLIMCAP_NO_BLOAT=1 scripts/toolchain.sh   # skip cargo-bloat
#   SLIMCAP_XTC=dir    cache dir for the generated cross pieces (default ~/.cache/slimcap-xtc;
#                      scripts/build.sh and scripts/xtc/* read the same variable)
#
# What it sets up (see size-reports/README.md for why):
#   - Debian: rustc-web/cargo-web/rust-web-src (rustc 1.9x + std sources, so -Zbuild-std works
#     for any target incl. *-linux-musl), musl-dev (amd64 + arm64), gcc-aarch64-linux-gnu,
#     LLVM libunwind + lld 16, qemu-user-static, file, zip, binutils, python3.
#   - $XTC (default ~/.cache/slimcap-xtc): gcc wrappers with musl specs files
#     (<arch>-linux-musl-gcc), LLVM libunwind.a for both arches with a __fprintf_chk shim.
#   - cargo-bloat (cargo install --locked, with the rustup/host cargo).
set -euo pipefail

XTC=${SLIMCAP_XTC:-${XTC:-$HOME/.cache/slimcap-xtc}}
LLVM=/usr/lib/llvm-16
XTC_VERSION=2   # bump when the generated files below change

log() { printf '[toolchain] %s\n' "$*" >&2; }

SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

PKGS=(rustc-web cargo-web rust-web-src
      musl-dev musl-dev:arm64 musl-tools
      gcc gcc-aarch64-linux-gnu binutils binutils-aarch64-linux-gnu
      libunwind-16-dev lld-16 qemu-user-static
      file zip unzip python3 util-linux ca-certificates)

missing_pkgs() {
  local p st
  for p in "${PKGS[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$st" in ii*) ;; *) echo "$p";; esac
  done
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding dpkg architecture arm64"
    $SUDO dpkg --add-architecture arm64
  fi
  local miss
  miss=$(missing_pkgs)
  if [ -z "$miss" ]; then
    log "Debian packages: all present"
    return
  fi
  log "installing: $(echo $miss)"
  local i
  for i in 1 2 3; do
    if $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends $miss >/dev/null; then
      return
    fi
    log "apt attempt $i failed; retrying"
    sleep $((i * 5))
  done
  log "apt-get install failed"; exit 1
}

xtc_setup() {
  local stamp="$XTC/.stamp"
  local want="v$XTC_VERSION $(dpkg-query -W -f='${Version}' libunwind-16-dev 2>/dev/null) $(dpkg-query -W -f='${Version}' musl-dev 2>/dev/null)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
     && [ -x "$XTC/bin/x86_64-linux-musl-gcc" ] && [ -x "$XTC/bin/aarch64-linux-musl-gcc" ] \
     && [ -f "$XTC/x86_64/libunwind.a" ] && [ -f "$XTC/aarch64/libunwind.a" ]; then
    log "cross toolchain cache $XTC: up to date"
    return
  fi
  log "building cross toolchain cache in $XTC"
  rm -rf "$XTC"
  mkdir -p "$XTC"/{bin,deb,x86_64,aarch64}

  # arm64 LLVM libunwind: Multi-Arch: same, but file-conflicts with the amd64 one -> unpack privately.
  (cd "$XTC/deb" && apt-get download -qq libunwind-16-dev:arm64 >/dev/null 2>&1 \
     && dpkg-deb -x libunwind-16-dev_*_arm64.deb root) \
     || { log "could not fetch libunwind-16-dev:arm64"; exit 1; }

  # Debian's libunwind.a is built against glibc and calls __fprintf_chk; musl lacks it.
  cat > "$XTC/fprintf_chk.c" <<'EOF'
#include <stdarg.h>
#include <stdio.h>
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
  (void)flag; va_list ap; va_start(ap, fmt); int r = vfprintf(f, fmt, ap); va_end(ap); return r; }
EOF
  local A
  for A in x86_64 aarch64; do
    # gcc specs for musl: like Debian's musl-gcc.specs, but -static-pie really is static
    # (rcrt1.o, --no-dynamic-linker, no PT_INTERP) and -static gives crt1-style non-PIE.
    cat > "$XTC/$A/musl.specs" <<EOF
%rename cpp_options old_cpp_options
*cpp_options:
-nostdinc -isystem /usr/include/$A-linux-musl -isystem include%s %(old_cpp_options)

*cc1:
%(cc1_cpu) -nostdinc -isystem /usr/include/$A-linux-musl -isystem include%s

*link_libgcc:
-L/usr/lib/$A-linux-musl -L .%s

*libgcc:
libgcc.a%s %:if-exists(libgcc_eh.a%s)

*startfile:
%{static-pie:/usr/lib/$A-linux-musl/rcrt1.o;!shared:/usr/lib/$A-linux-musl/Scrt1.o} /usr/lib/$A-linux-musl/crti.o crtbeginS.o%s

*endfile:
crtendS.o%s /usr/lib/$A-linux-musl/crtn.o

*link:
%{!static:%{!static-pie:-dynamic-linker /lib/ld-musl-$A.so.1}} -nostdlib %{shared:-shared} %{static:-static} %{static-pie:-static -pie --no-dynamic-linker -z text} %{rdynamic:-export-dynamic}

EOF
    cat > "$XTC/bin/$A-linux-musl-gcc" <<EOF
#!/bin/sh
exec $A-linux-gnu-gcc -specs $XTC/$A/musl.specs "\$@" -L$XTC/$A
EOF
    chmod +x "$XTC/bin/$A-linux-musl-gcc"
    "$XTC/bin/$A-linux-musl-gcc" -O2 -c "$XTC/fprintf_chk.c" -o "$XTC/$A/fprintf_chk.o"
  done
  cp "$LLVM/lib/libunwind.a" "$XTC/x86_64/libunwind.a"
  cp "$XTC/deb/root$LLVM/lib/libunwind.a" "$XTC/aarch64/libunwind.a"
  ar rs "$XTC/x86_64/libunwind.a" "$XTC/x86_64/fprintf_chk.o" 2>/dev/null
  aarch64-linux-gnu-ar rs "$XTC/aarch64/libunwind.a" "$XTC/aarch64/fprintf_chk.o" 2>/dev/null
  rm -rf "$XTC/deb"

  # smoke test: both wrappers link a static C program without PT_INTERP
  for A in x86_64 aarch64; do
    printf '#include <stdio.h>\nint main(void){puts("ok");return 0;}\n' > "$XTC/hello.c"
    "$XTC/bin/$A-linux-musl-gcc" -static -Os "$XTC/hello.c" -o "$XTC/hello-$A"
    if readelf -lW "$XTC/hello-$A" | grep -q INTERP; then log "musl wrapper for $A is not static"; exit 1; fi
  done
  [ "$("$XTC/hello-x86_64")" = ok ] || { log "x86_64 musl hello failed"; exit 1; }
  [ "$(qemu-aarch64-static "$XTC/hello-aarch64")" = ok ] || { log "arm64 musl hello failed under qemu"; exit 1; }
  rm -f "$XTC"/hello*
  echo "$want" > "$stamp"
}

cargo_tools() {
  [ -n "${SLIMCAP_NO_BLOAT:-}" ] && return
  local cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
  if command -v cargo-bloat >/dev/null 2>&1 || [ -x "$cargo_bin/cargo-bloat" ]; then
    log "cargo-bloat: present"
    return
  fi
  local c=cargo
  command -v cargo >/dev/null 2>&1 || c=/usr/bin/cargo
  log "installing cargo-bloat (cargo install --locked)"
  "$c" install cargo-bloat --locked --quiet
}

check() {
  /usr/bin/rustc -V >/dev/null
  [ -d /usr/lib/rustlib/src/rust/library/std ] || { log "rust-web-src missing"; exit 1; }
  log "ok: $(/usr/bin/rustc -V), xtc=$XTC"
}

apt_install
xtc_setup
cargo_tools
check
