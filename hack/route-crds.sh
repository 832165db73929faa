#!/usr/bin/env bash
# Fetch the CRDs of the gateway-api and istio traffic providers, without any registry:
# both projects publish their CRDs inside Go modules, so the Go module proxy serves them
# (checksummed by sum.golang.org) like any other source.
#   Gateway API  sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION  config/crd/$GATEWAY_API_CHANNEL/*.yaml
#                (CRDs only; the ValidatingAdmissionPolicy files there are left out)
#   Istio        istio.io/api@$ISTIO_API_VERSION  kubernetes/customresourcedefinitions.gen.yaml,
#                only the VirtualService CRD, as virtualservices.networking.istio.io.yaml
# And the chart's optional ServiceMonitor's CRD:
#   prometheus-operator  github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION
#                example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
# Cached under $MD_CACHE/crds/<name>-<version>/; prints the three directories, one a line
# (gateway-api, istio, prometheus-operator). A cached version costs nothing: no go, no network.
#
# Env: GATEWAY_API_VERSION (v1.6.3: the newest Gateway API whose go.mod Go 1.26 accepts;
#      v1.7.0 wants Go 1.27), GATEWAY_API_CHANNEL (standard; HTTPRoute's RequestMirror
#      filter is in the standard channel), ISTIO_API_VERSION (v1.32.0),
#      PROMETHEUS_OPERATOR_VERSION (v0.85.0).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-v1.6.3}"
GATEWAY_API_CHANNEL="${GATEWAY_API_CHANNEL:-standard}"
ISTIO_API_VERSION="${ISTIO_API_VERSION:-v1.32.0}"
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CRD_CACHE="$MD_CACHE/crds"
GATEWAY_DIR="$CRD_CACHE/gateway-api-$GATEWAY_API_CHANNEL-$GATEWAY_API_VERSION"
ISTIO_DIR="$CRD_CACHE/istio-api-$ISTIO_API_VERSION"
MONITORING_DIR="$CRD_CACHE/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
# A directory counts as cached only once this marker is in it (it is moved in whole).
MARKER=.complete

# module_dir MODULE@VERSION: download the module into the throwaway $GOMODCACHE and print
# the directory go extracted it to.
module_dir() {
  local json dir
  json=$(cd "$WORK" && go mod download -json "$1") || {
    printf '%s\n' "$json" >&2
    die "go mod download $1 failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  }
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$json")
  [[ -n "$dir" && -d "$dir" ]] || { printf '%s\n' "$json" >&2; die "go mod download $1 gave no module directory"; }
  printf '%s\n' "$dir"
}

fetch_gateway_api() {
  local src dst="$WORK/gateway-api" f n=0
  src="$(module_dir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")/config/crd/$GATEWAY_API_CHANNEL"
  [[ -d "$src" ]] || die "no config/crd/$GATEWAY_API_CHANNEL in sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
  mkdir -p "$dst"
  for f in "$src"/*.yaml; do
    grep -q '^kind: CustomResourceDefinition$' "$f" || continue
    install -m 0644 "$f" "$dst/"
    n=$((n + 1))
  done
  ((n > 0)) || die "no CRDs in $src"
  [[ -f "$dst/gateway.networking.k8s.io_httproutes.yaml" ]] || die "no HTTPRoute CRD in $src"
  touch "$dst/$MARKER"
  install_dir "$dst" "$GATEWAY_DIR"
  log "gateway-api $GATEWAY_API_VERSION ($GATEWAY_API_CHANNEL): $n CRDs in $GATEWAY_DIR"
}

fetch_istio() {
  local src dst="$WORK/istio" out
  src="$(module_dir "istio.io/api@$ISTIO_API_VERSION")/kubernetes/customresourcedefinitions.gen.yaml"
  [[ -f "$src" ]] || die "no kubernetes/customresourcedefinitions.gen.yaml in istio.io/api@$ISTIO_API_VERSION"
  mkdir -p "$dst"
  out="$dst/virtualservices.networking.istio.io.yaml"
  # Documents are separated by '---' lines; keep the one whose metadata.name is ours.
  awk '
    function flush() { if (doc ~ /\n  name: virtualservices\.networking\.istio\.io\n/) printf "%s", doc; doc = "" }
    /^---$/ { flush(); next }
    /^#/ && doc == "" { next }
    { doc = doc $0 "\n" }
    END { flush() }
  ' "$src" >"$out"
  grep -q '^kind: CustomResourceDefinition$' "$out" || die "no VirtualService CRD in $src"
  [[ $(grep -c '^kind: CustomResourceDefinition$' "$out") == 1 ]] || die "more than one document matched in $src"
  touch "$dst/$MARKER"
  install_dir "$dst" "$ISTIO_DIR"
  log "istio.io/api $ISTIO_API_VERSION: VirtualService CRD in $ISTIO_DIR"
}

fetch_monitoring() {
  local src dst="$WORK/monitoring" name=monitoring.coreos.com_servicemonitors.yaml
  src="$(module_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")/example/prometheus-operator-crd/$name"
  [[ -f "$src" ]] || die "no example/prometheus-operator-crd/$name in prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
  mkdir -p "$dst"
  install -m 0644 "$src" "$dst/"
  touch "$dst/$MARKER"
  install_dir "$dst" "$MONITORING_DIR"
  log "prometheus-operator $PROMETHEUS_OPERATOR_VERSION: ServiceMonitor CRD in $MONITORING_DIR"
}

# install_dir SRC DST: replace DST with SRC in one rename, so a reader never sees half.
install_dir() {
  rm -rf "$2"
  mv "$1" "$2"
}

main() {
  if [[ -f "$GATEWAY_DIR/$MARKER" && -f "$ISTIO_DIR/$MARKER" && -f "$MONITORING_DIR/$MARKER" ]]; then
    printf '%s\n%s\n%s\n' "$GATEWAY_DIR" "$ISTIO_DIR" "$MONITORING_DIR"
    return 0
  fi
  command -v go >/dev/null || die "go is needed to fetch the CRDs (Go modules sigs.k8s.io/gateway-api, istio.io/api, prometheus-operator)"
  mkdir -p "$CRD_CACHE"
  WORK=$(mktemp -d "$CRD_CACHE/.fetch.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
  # A throwaway module cache (writable, so rm works) and no toolchain switching: the
  # modules are only unpacked, never built.
  export GOMODCACHE="$WORK/gomodcache" GOFLAGS=-modcacherw GOTOOLCHAIN=local GO111MODULE=on
  [[ -f "$GATEWAY_DIR/$MARKER" ]] || fetch_gateway_api
  [[ -f "$ISTIO_DIR/$MARKER" ]] || fetch_istio
  [[ -f "$MONITORING_DIR/$MARKER" ]] || fetch_monitoring
  printf '%s\n%s\n%s\n' "$GATEWAY_DIR" "$ISTIO_DIR" "$MONITORING_DIR"
}

main "$@"
