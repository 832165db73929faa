#!/usr/bin/env bash
# Build vegeta (github.com/tsenart/vegeta, a constant-rate HTTP load generator) from the Go
# module proxy and cache it outside the checkout, keyed by version; print the binary's path.
# Usage: hack/build-vegeta.sh    Env: MODELDEPLOY_CACHE, VEGETA_VERSION (default in hack/lib.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bin="$VEGETA_BIN/vegeta"
if [[ -x "$bin" ]]; then echo "$bin"; exit 0; fi
start=$SECONDS
export GOMODCACHE="$MD_CACHE/go/mod" GOCACHE="$MD_CACHE/go/build" GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=
mkdir -p "$VEGETA_BIN" "$GOMODCACHE" "$GOCACHE"
log "building vegeta $VEGETA_VERSION"
gobin=$(mktemp -d "$VEGETA_BIN/.gobin.XXXXXX")
GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
mv "$gobin/vegeta" "$bin"
rmdir "$gobin"
log "vegeta $VEGETA_VERSION built in $((SECONDS - start))s: $bin"
echo "$bin"
