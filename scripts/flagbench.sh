#!/usr/bin/env bash
# Measures release-flag and TLS-stack choices: size, relocation count, cold/warm exec->register.
#
#   scripts/flagbench.sh [build|measure|all] [config...]     (default: all, every config)
#
# Each config is one build of size-reports/probe (ureq register over HTTP + one HTTPS GET when
# PROBE_URL is set; features pick the TLS stack) or of slimcap itself, through scripts/build.sh
# with the env below. Binaries go to $FB/<config>/; results to size-reports/flags.tsv
# (one row per config and arch, replaced on re-run). size-reports/flags.md is written by hand
# from that table.
#   FB=/work/tgt/fb  CARGO_TARGET_DIR=/work/tgt/flagbench  RUNS=40  ARCHES="x86_64"
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FB=${FB:-/work/tgt/fb}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/tgt/flagbench}
RUNS=${RUNS:-40}
TSV=$ROOT/size-reports/flags.tsv
PROBE=$ROOT/size-reports/probe/Cargo.toml
TLS_URL=${TLS_URL:-https://index.crates.io/config.json}

# name | crate (probe|slimcap) | features | env assignments for build.sh
CONFIGS=(
  "release|probe|webpki|"
  "tls-none|probe||"
  "tls-sysca|probe|sysca|"
  "tls-minprov|probe|minprov|"
  "minprov+shallow|probe|minprov|SLIMCAP_FMT_DEBUG=shallow"
  "tls-raw|probe|raw|"
  "tls-raw+shallow|probe|raw|SLIMCAP_FMT_DEBUG=shallow"
  "slimcap|slimcap||"
  "static-pie|probe|webpki|EXTRA_RUSTFLAGS=-Crelocation-model=pie"
  "static-pie+relr|probe|webpki|EXTRA_RUSTFLAGS=-Crelocation-model=pie -Clink-arg=-Wl,-z,pack-relative-relocs"
  "no-gc-sections|probe|webpki|EXTRA_RUSTFLAGS=-Clink-arg=-Wl,--no-gc-sections"
  "no-icf|probe|webpki|EXTRA_RUSTFLAGS=-Clink-arg=-Wl,--icf=none"
  "panic-abort|probe|webpki|SLIMCAP_PANIC=abort"
  "fmt-debug-shallow|probe|webpki|SLIMCAP_FMT_DEBUG=shallow"
  "location-full|probe|webpki|SLIMCAP_LOCATION_DETAIL=full"
  "std-no-opt-size|probe|webpki|SLIMCAP_STD_FEATURES="
  "fmt-debug-none|probe|webpki|SLIMCAP_FMT_DEBUG=none"
  "opt-s|probe|webpki|CARGO_PROFILE_RELEASE_OPT_LEVEL=s"
)

PHASE=${1:-all}; shift || true
want() { [ $# -le 1 ] && return 0; local n=$1; shift; for w in "$@"; do [ "$w" = "$n" ] && return 0; done; return 1; }

arch_list() { echo "${ARCHES:-x86_64}"; }

build_cfg() {
  local name=$1 crate=$2 feats=$3 envs=$4 a=$5
  local out=$FB/$name
  mkdir -p "$out"
  local -a e=(OUT="$out" SLIMCAP_NO_ZIP=1 SLIMCAP_NO_SMOKE=1)
  if [ "$crate" = probe ]; then
    e+=(MANIFEST="$PROBE" PACKAGE=probe BIN=probe NAME=bin CARGO_LOCKED=)
  else
    e+=(NAME=bin)
  fi
  [ -n "$feats" ] && e+=(CARGO_ARGS="--features $feats")
  [ -n "$envs" ] && e+=("$envs")
  echo "== build $name ($a): ${e[*]}" >&2
  if ! env "${e[@]}" "$ROOT/scripts/build.sh" "$a" > "$out/build-$a.log" 2>&1; then
    echo "   build FAILED (see $out/build-$a.log)" >&2
    rm -f "$out/bin-$a"
  fi
}

relocs() {
  # total dynamic relocation entries (RELA + RELR words), as readelf reports them
  readelf -rW "$1" 2>/dev/null | sed -n 's/.* contains \([0-9]*\) entr.*/\1/p' | awk '{s+=$1} END {print s+0}'
}

fake_api_run() {
  # runs $@ against a one-shot fake Extensions API; prints the child's stdout
  python3 - "$@" <<'EOF'
import os, socket, subprocess, sys, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
def srv():
    c, _ = s.accept(); c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: x\r\nContent-Length: 2\r\n\r\n{}"); c.close()
threading.Thread(target=srv, daemon=True).start()
env = dict(os.environ, AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % s.getsockname()[1])
try:
    p = subprocess.run(sys.argv[1:], env=env, capture_output=True, timeout=30)
    print((p.stdout.decode().strip() or "-").replace("\t", " ") + " (rc %d)" % p.returncode)
except subprocess.TimeoutExpired:
    print("timeout")
EOF
}

measure_cfg() {
  local name=$1 crate=$2 a=$3
  local f=$FB/$name/bin-$a
  [ -f "$f" ] || { printf '%s\t%s\tFAILED\t\t\t\t\t\t\t\n' "$name" "$a"; return; }
  local size rel pie wrap=() ew=
  size=$(stat -c %s "$f")
  rel=$(relocs "$f")
  pie=$(readelf -hW "$f" | sed -n 's/.*Type: *\([A-Z]*\).*/\1/p')
  if [ "$a" = arm64 ]; then wrap=(qemu-aarch64-static); ew=qemu-aarch64-static; fi
  local start=ok
  AWS_LAMBDA_RUNTIME_API=127.0.0.1:9 timeout 5 "${wrap[@]}" "$f" </dev/null >/dev/null 2>&1 || {
    rc=$?; if [ $rc -gt 128 ] && [ $rc != 124 ]; then start="signal $((rc - 128))"; fi; }
  local cold=- warm=- what=- tls=-
  if [ "$start" = ok ]; then
    local r
    r=$(EXECTIME_WRAPPER=$ew EXECTIME_MODES=cold "$ROOT/scripts/exectime.sh" -n "$RUNS" "$f")
    cold=$(echo "$r" | awk '{print $5}'); what=$(echo "$r" | awk '{print $2}')
    r=$(EXECTIME_WRAPPER=$ew EXECTIME_MODES=warm "$ROOT/scripts/exectime.sh" -n "$RUNS" "$f")
    warm=$(echo "$r" | awk '{print $5}')
    if [ "$crate" = probe ]; then
      tls=$(PROBE_URL=$TLS_URL fake_api_run "${wrap[@]}" "$f" | head -c 80)
    fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$a" "$size" "$pie" "$rel" "$start" "$cold" "$warm" "$what; TLS GET: $tls"
}

if [ "$PHASE" = build ] || [ "$PHASE" = all ]; then
  for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name crate feats envs <<<"$c"
    want "$name" "$@" || continue
    for a in $(arch_list); do build_cfg "$name" "$crate" "$feats" "$envs" "$a"; done
  done
fi
if [ "$PHASE" = measure ] || [ "$PHASE" = all ]; then
  [ -f "$TSV" ] || printf 'config\tarch\tbytes\ttype\trelocs\tstarts\tcold_us_median\twarm_us_median\tnotes\n' > "$TSV"
  for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name crate feats envs <<<"$c"
    want "$name" "$@" || continue
    for a in $(arch_list); do
      row=$(measure_cfg "$name" "$crate" "$a")
      echo "$row"
      grep -v -P "^\Q$name\E\t$a\t" "$TSV" > "$TSV.tmp" || true
      echo "$row" >> "$TSV.tmp"
      { head -1 "$TSV.tmp"; tail -n +2 "$TSV.tmp" | sort -t$'\t' -k2,2 -k1,1 -s; } > "$TSV"
      rm -f "$TSV.tmp"
    done
  done
fi
