#!/usr/bin/env bash
# The Python test clients (Datadog's datadog-lambda, ddtrace, ...) in a venv
# under target/, installed from PyPI with pip: never by hand. Idempotent: pip
# runs only when scripts/pyenv-requirements.txt changed since the last install.
# Prints the venv's python on stdout (everything else goes to stderr):
#
#   PY=$(scripts/pyenv.sh)      # scripts/test.sh exports it as SLIMCAP_PYTHON
#
# Add a client: one pinned line (name==version) in scripts/pyenv-requirements.txt.
# SLIMCAP_PYENV=dir overrides the venv's place (default: <target dir>/pyenv).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REQ=$ROOT/scripts/pyenv-requirements.txt
VENV=${SLIMCAP_PYENV:-${CARGO_TARGET_DIR:-$ROOT/target}/pyenv}
log() { printf '[pyenv] %s\n' "$*" >&2; }

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  "$ROOT/scripts/apt-need.sh" python3 python3-venv >&2
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV" >&2
fi
want=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$REQ" | sort)
stamp=$VENV/.slimcap-requirements
if [ -n "$want" ] && [ "$want" != "$(cat "$stamp" 2>/dev/null || true)" ]; then
  log "installing: $(echo $want)"
  ok=
  for i in 1 2 3; do
    if "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >&2; then ok=1; break; fi
    log "pip failed (attempt $i); retrying"
    sleep $((i * 5))
  done
  [ -n "$ok" ] || { log "could not install the Python test clients"; exit 1; }
  printf '%s\n' "$want" > "$stamp"
fi
echo "$VENV/bin/python"
