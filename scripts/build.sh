#!/usr/bin/env bash
# Builds everything: BPF objects, native addon/helpers, TypeScript.
# Each native part owns a Makefile or binding.gyp; this script only sequences them.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[build] %s\n' "$*" >&2; }

if [ -f bpf/Makefile ]; then log "bpf objects"; make -s -C bpf; fi
if [ -f bpf/addon/binding.gyp ]; then
  if [ ! -f bpf/addon/build/Release/lilith_bpf.node ] || [ -n "$(find bpf/addon -newer bpf/addon/build/Release/lilith_bpf.node \( -name '*.cc' -o -name '*.h' -o -name binding.gyp \) 2>/dev/null)" ]; then
    log "libbpf addon"
    (cd bpf/addon && npx --no-install node-gyp rebuild --silent >/dev/null)
  fi
fi
if [ -f confine/native/Makefile ]; then log "confinement helper"; make -s -C confine/native; fi
log "typescript"
npx --no-install tsc -p tsconfig.json
