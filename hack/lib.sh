# Shared settings for the hack/ scripts: versions, cache and state locations, logging.
# shellcheck shell=bash
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.12.1}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
# Prometheus 3.X.Y is published to the Go module proxy as v0.3XX.Y (hack/build-prometheus.sh).
PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v3.16.0}"
# kwok: fake nodes for the scale bench (hack/build-kwok.sh, hack/kwok.sh).
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
# vegeta: the constant-rate load generator of the benchmarks (hack/build-vegeta.sh).
VEGETA_VERSION="${VEGETA_VERSION:-v12.13.0}"
MD_CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
# One directory per component and version: bumping one rebuilds only that one.
K8S_BIN="$MD_CACHE/bin/kubernetes-$K8S_VERSION"
ETCD_BIN="$MD_CACHE/bin/etcd-$ETCD_VERSION"
COREDNS_BIN="$MD_CACHE/bin/coredns-$COREDNS_VERSION"
HELM_BIN="$MD_CACHE/bin/helm-$HELM_VERSION"
PROMETHEUS_BIN="$MD_CACHE/bin/prometheus-$PROMETHEUS_VERSION"
KWOK_BIN="$MD_CACHE/bin/kwok-$KWOK_VERSION"
VEGETA_BIN="$MD_CACHE/bin/vegeta-$VEGETA_VERSION"
CLUSTER_PATH="$K8S_BIN:$ETCD_BIN:$COREDNS_BIN:$HELM_BIN"
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$HACK_DIR/.." && pwd)"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
