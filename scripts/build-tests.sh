#!/usr/bin/env bash
# Builds what only the tests, VM scenarios and benches use: test BPF objects, the static
# probe binary and the VM loader. The product build (scripts/build.sh) never compiles these.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[build-tests] %s\n' "$*" >&2; }
log "test bpf objects"; make -s -C testkit/bpf
log "probe binary"; make -s -C testkit/progs
log "vm-tests loader"; make -s -C vm-tests/loader
