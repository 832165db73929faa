#!/usr/bin/env bash
# Build kwok (sigs.k8s.io/kwok) from the Go module proxy into the cache, keyed by version,
# and print the directory holding the binary and the stages file hack/kwok.sh runs it with.
#
# The stages are kwok's own "fast" set, taken from the module zip this build downloads
# (kustomize/stage/fast, and the node heartbeat with Leases) and joined into one file:
# kwok has no built-in stages, and without pod-delete deleted pods stay Terminating.
#
# Usage: hack/build-kwok.sh           build if missing, print the bin dir
# Env:   MODELDEPLOY_CACHE (default ~/.cache/modeldeploy), KWOK_VERSION
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STAGES=(
  node/fast/node-initialize.yaml
  node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml
  pod/fast/pod-complete.yaml
  pod/fast/pod-delete.yaml
)

build_env() {
  export GOMODCACHE="$MD_CACHE/go/mod" GOCACHE="$MD_CACHE/go/build"
  export GOFLAGS="-mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
  mkdir -p "$GOMODCACHE" "$GOCACHE" "$KWOK_BIN"
}

build_kwok() {
  [[ -x "$KWOK_BIN/kwok" ]] && return
  log "building kwok $KWOK_VERSION (a few minutes on 2 cores)"
  GOBIN="$KWOK_BIN" go install -p "${GO_BUILD_P:-2}" -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

write_stages() {
  [[ -s "$KWOK_BIN/stages.yaml" ]] && return
  local dir f out="$KWOK_BIN/stages.yaml.tmp"
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  : > "$out"
  for f in "${STAGES[@]}"; do
    [[ -f "$dir/kustomize/stage/$f" ]] || die "stage $f not in $dir/kustomize/stage"
    { echo "---"; grep -v '^---$' "$dir/kustomize/stage/$f"; } >> "$out"
  done
  mv "$out" "$KWOK_BIN/stages.yaml"
}

main() {
  local start=$SECONDS
  build_env
  build_kwok
  write_stages
  log "kwok ready in $((SECONDS - start))s ($KWOK_BIN)"
  echo "$KWOK_BIN"
}

main "$@"
