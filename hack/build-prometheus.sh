#!/usr/bin/env bash
# Build the Prometheus server from the Go module proxy and cache it outside the checkout,
# keyed by version, for the tests of spec.rollout.analysis.prometheusChecks.
#
# Prometheus 3.X.Y is published as the Go module version v0.3XX.Y (3.16.0 -> v0.316.0).
# Its go.mod has no replace directives, so `go install module/cmd/prometheus@version` works.
# Built without the `builtinassets` tag: no web UI (only the HTTP API, all the tests use),
# and with `remove_all_sd` (plus the file and HTTP discovery the minimum build keeps): no
# cloud or Kubernetes service discovery, which the tests do not need (static targets only)
# and which is most of the build.
#
# Usage: hack/build-prometheus.sh      build it when missing, print the binary's path
# Env:   MODELDEPLOY_CACHE (default ~/.cache/modeldeploy), PROMETHEUS_VERSION (v3.X.Y)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# v3.16.0 -> v0.316.0
module_version() {
  local v=${1#v} major minor patch
  IFS=. read -r major minor patch <<<"$v"
  [[ $major == 3 && -n $minor && -n $patch ]] || die "PROMETHEUS_VERSION $1: expected v3.X.Y"
  printf 'v0.%d%02d.%d\n' "$major" "$minor" "$patch"
}

main() {
  local bin="$PROMETHEUS_BIN/prometheus" modver start=$SECONDS
  if [[ -x "$bin" ]]; then echo "$bin"; return; fi
  modver=$(module_version "$PROMETHEUS_VERSION")
  export GOMODCACHE="$MD_CACHE/go/mod" GOCACHE="$MD_CACHE/go/build"
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=
  mkdir -p "$PROMETHEUS_BIN" "$GOMODCACHE" "$GOCACHE"
  log "building prometheus $PROMETHEUS_VERSION (module version $modver)"
  local pv="github.com/prometheus/common/version"
  local ld="-s -w -X $pv.Version=${PROMETHEUS_VERSION#v} -X $pv.Revision=$modver -X $pv.Branch=release"
  ld+=" -X $pv.BuildUser=modeldeploy -X $pv.BuildDate=19700101-00:00:00"
  local gobin; gobin=$(mktemp -d "$PROMETHEUS_BIN/.gobin.XXXXXX")
  GOBIN="$gobin" go install -p "${GO_BUILD_P:-2}" -trimpath -tags remove_all_sd,netgo \
    -ldflags "$ld" "github.com/prometheus/prometheus/cmd/prometheus@$modver"
  mv "$gobin/prometheus" "$bin"
  rmdir "$gobin"
  log "prometheus $PROMETHEUS_VERSION built in $((SECONDS - start))s: $bin"
  echo "$bin"
}

main "$@"
