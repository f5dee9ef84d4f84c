#!/usr/bin/env bash
# Installs the Debian packages named on the command line that are missing
# (apt-get, as scripts/toolchain.sh does; sudo when not root). Idempotent and
# quiet when everything is present. The supported host is Debian 12.
#   scripts/apt-need.sh python3 python3-venv openssl
set -euo pipefail
log() { printf '[apt-need] %s\n' "$*" >&2; }
miss=()
for p in "$@"; do
  case "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)" in
    ii*) ;;
    *) miss+=("$p");;
  esac
done
[ ${#miss[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  log "missing ${miss[*]} and no apt-get (the supported host is Debian 12): install them by hand"
  exit 1
fi
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
log "installing: ${miss[*]}"
for i in 1 2 3; do
  if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${miss[@]}" >/dev/null; then
    exit 0
  fi
  log "apt-get failed (attempt $i); retrying"
  sleep $((i * 5))
done
log "could not install ${miss[*]}"
exit 1
