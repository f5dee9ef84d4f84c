#!/usr/bin/env bash
# Size gate for the static release binaries.
#
#   scripts/size.sh            build (unless dist/ is fresh), compare with size-reports/baseline.tsv;
#                              exit 1 if a binary grew too much. Writes nothing (scripts/test.sh
#                              runs it: a test run leaves git status clean)
#   scripts/size.sh --bloat    same, and rewrite the tracked size-reports/bloat-*.txt (cargo bloat)
#   scripts/size.sh --update   same as --bloat, then write the current sizes into baseline.tsv and
#                              append a line to size-reports/history.tsv (commit all with the change)
#   SIZE_NO_BUILD=1            use dist/ as it is;  SIZE_NO_BLOAT=1  skip cargo bloat even then
#
# A binary fails the gate when it grew by more than max(1 %, 4 KiB) over the baseline, unless
# size-reports/baseline.tsv was changed in the same commit (HEAD's own diff) or is changed in
# the working tree. Shrinking never fails (update the baseline to lock a win in).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BASE=size-reports/baseline.tsv
HIST=size-reports/history.tsv
DIST=${OUT:-$ROOT/dist}
ARCHES=(x86_64 arm64)
UPDATE=
BLOAT=
case "${1:-}" in
  --update) UPDATE=1; BLOAT=1;;
  --bloat) BLOAT=1;;
  "") ;;
  *) echo "usage: scripts/size.sh [--bloat|--update]" >&2; exit 2;;
esac

log() { printf '[size] %s\n' "$*" >&2; }

# ---- build unless dist/ is newer than every input ----
fresh() {
  local a f
  for a in "${ARCHES[@]}"; do
    f=$DIST/slimcap-$a
    [ -f "$f" ] || return 1
    if [ -n "$(find src Cargo.toml Cargo.lock .cargo scripts/build.sh scripts/xtc -newer "$f" -print -quit 2>/dev/null)" ]; then
      return 1
    fi
  done
}
if [ -z "${SIZE_NO_BUILD:-}" ] && ! fresh; then
  log "building (dist/ missing or older than sources)"
  OUT=$DIST scripts/build.sh all
fi

# ---- compare ----
base_of() { [ -f "$BASE" ] && awk -v a="$1" -F'\t' '$1 == a {print $2}' "$BASE" || true; }

baseline_changed() {
  # in the working tree / index ...
  if [ -n "$(git status --porcelain -- "$BASE" 2>/dev/null)" ]; then return 0; fi
  # ... or in HEAD's own diff (against each parent; a root or shallow-grafted HEAD lists all files)
  git diff-tree --root -m -r --name-only --no-commit-id HEAD 2>/dev/null | grep -qx "$BASE"
}

fail=0
printf '%-8s %10s %10s %9s %7s %8s  %s\n' arch baseline current delta pct limit status
for a in "${ARCHES[@]}"; do
  f=$DIST/slimcap-$a
  cur=$(stat -c %s "$f")
  base=$(base_of "$a")
  if [ -z "$base" ]; then
    printf '%-8s %10s %10d %9s %7s %8s  %s\n' "$a" - "$cur" - - - "no baseline"
    continue
  fi
  delta=$((cur - base))
  limit=$((base / 100)); [ $limit -lt 4096 ] && limit=4096
  pct=$(awk -v d=$delta -v b=$base 'BEGIN {printf "%+.2f%%", 100 * d / b}')
  status=ok
  if [ $delta -gt $limit ]; then
    if baseline_changed; then status="grew, baseline updated in this commit"
    else status="FAIL: grew by more than $limit bytes"; fail=1; fi
  fi
  printf '%-8s %10d %10d %+9d %7s %8d  %s\n' "$a" "$base" "$cur" "$delta" "$pct" "$limit" "$status"
done

# ---- cargo bloat ----
if [ -n "$BLOAT" ] && [ -z "${SIZE_NO_BLOAT:-}" ]; then
  if ! command -v cargo-bloat >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-bloat" ]; then
    log "cargo-bloat missing (scripts/toolchain.sh installs it); skipping bloat reports"
  else
    export PATH=$PATH:${CARGO_HOME:-$HOME/.cargo}/bin
    # Same target, flags and profile as the release binary: build.sh links with symbols and
    # strips the copy in dist/, so cargo bloat finds the artifacts fresh and only analyses them.
    bt=${BLOAT_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}}
    rev="$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo +dirty)"
    bloat() { # arch, cargo-bloat args, output file
      local hdr="# cargo bloat $2, $1 musl release build (scripts/build.sh), $rev, .text only"
      if { echo "$hdr"; CARGO_TARGET_DIR=$bt SLIMCAP_BLOAT="$2" scripts/build.sh "$1" 2>/dev/null; } > "$3.tmp"; then
        mv "$3.tmp" "$3"; log "wrote $3"
      else
        rm -f "$3.tmp"; log "cargo bloat failed for $1; $3 not updated"
      fi
    }
    bloat x86_64 "--crates -n 40" size-reports/bloat-crates.txt
    bloat x86_64 "-n 60 -w" size-reports/bloat-functions.txt
    bloat arm64 "--crates -n 40" size-reports/bloat-crates-arm64.txt
  fi
fi

if [ -n "$UPDATE" ]; then
  {
    printf 'arch\tbytes\n'
    for a in "${ARCHES[@]}"; do printf '%s\t%d\n' "$a" "$(stat -c %s "$DIST/slimcap-$a")"; done
  } > "$BASE"
  [ -f "$HIST" ] || printf 'date\tcommit\tx86_64\tarm64\tnote\n' > "$HIST"
  printf '%s\t%s\t%d\t%d\t%s\n' "$(date -u +%Y-%m-%d)" "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo +dirty)" \
    "$(stat -c %s "$DIST/slimcap-x86_64")" "$(stat -c %s "$DIST/slimcap-arm64")" "${SIZE_NOTE:-}" >> "$HIST"
  log "baseline updated: $(tr '\n' ' ' < "$BASE")"
  exit 0
fi
exit $fail
