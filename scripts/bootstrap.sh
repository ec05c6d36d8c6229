#!/usr/bin/env bash
# Idempotent setup used by `npm start`, `npm test` and .ci/run:
# system packages (when root), npm dependencies, native builds, TypeScript.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

install_apt_packages() {
  local wanted missing=()
  wanted=$(grep -v '^#' scripts/apt-packages.txt | grep -v '^$')
  for pkg in $wanted; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing system packages (run as root to install): ${missing[*]}"
    return 0
  fi
  log "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_npm_deps() {
  # Reinstall when the lockfile changed since the last install.
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm dependencies"
    npm ci --no-fund --no-audit --loglevel=error
  fi
}

install_apt_packages
install_npm_deps
bash scripts/build.sh
