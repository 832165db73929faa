#!/usr/bin/env bash
# Build hack/health (kstatus and Argo CD's Lua health, as GitOps tools judge an object) from
# the Go module proxy into the cache, keyed by a digest of its sources; print the binary's path.
#
# Usage: hack/build-health.sh
# Env:   MODELDEPLOY_CACHE (default ~/.cache/modeldeploy)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/health" && pwd)"
KEY=$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-12)
BIN="$MD_CACHE/bin/health-$KEY/health"

if [[ ! -x "$BIN" ]]; then
  log "building hack/health ($KEY)"
  export GOMODCACHE="$MD_CACHE/go/mod" GOCACHE="$MD_CACHE/go/build" GOTOOLCHAIN=local CGO_ENABLED=0
  mkdir -p "$(dirname "$BIN")"
  (cd "$SRC" && go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" .)
  mv "$BIN.tmp" "$BIN"
fi
echo "$BIN"
