#!/usr/bin/env bash
# Start the kind cluster $KIND_CLUSTER (modeldeploy-kind) from the node image
# hack/kind-build.sh makes (built on first use), its kubeconfig in $KIND_KUBECONFIG (outside
# the checkout; ~/.kube/config and the project's own local cluster are never touched).
# One control-plane node, kind's defaults otherwise, but `disableDefaultCNI: true`: the node
# image carries its own ptp CNI config instead of kindnetd. A no-op when the cluster is up.
#
# Use it with: export KUBECONFIG=$KIND_KUBECONFIG (the script prints the line), then
#   make load-images    (hack/load-images.sh runs `kind load docker-image`)
#
# Env: MODELDEPLOY_KIND_CLUSTER, MODELDEPLOY_KIND_KUBECONFIG, KIND_VERSION, K8S_VERSION.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"

kind_config() {
  cat <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  disableDefaultCNI: true
  podSubnet: $KIND_POD_SUBNET
nodes:
  - role: control-plane
    image: $1
EOF
}

kctl_kind() { "$K8S_BIN/kubectl" --kubeconfig "$KIND_KUBECONFIG" "$@"; }

cluster_ready() {
  kctl_kind --request-timeout=5s get --raw /readyz >/dev/null 2>&1 &&
    [[ "$(kctl_kind -n kube-system get deployment coredns -o 'jsonpath={.status.availableReplicas}' 2>/dev/null)" -ge 1 ]]
}

print_usage() {
  local shim; shim=$(kind_docker_shim)
  echo "kind cluster $KIND_CLUSTER is up. Use it with:"
  echo "  export KUBECONFIG=$KIND_KUBECONFIG"
  echo "  export PATH=$KIND_BIN${shim:+:$shim}:\$PATH   # kind (for make load-images)${shim:+ and its docker shim}"
}

main() {
  local start=$SECONDS t image
  [[ $EUID -eq 0 ]] || die "must run as root"
  # kind must never write into the project's kubeconfig (or any other one in $KUBECONFIG).
  export KUBECONFIG="$KIND_KUBECONFIG"
  t=$SECONDS
  image=$(bash "$HACK_DIR/kind-build.sh")
  log "phase kind binary and node image: $(since "$t")"
  mkdir -p "$KIND_DIR"
  exec 9>"$KIND_DIR/$KIND_CLUSTER.lock"
  flock 9
  local shim
  shim=$(kind_docker_shim)
  if [[ -n "$shim" ]]; then
    log "dockerd's capability bounding set lacks $(missing_caps | tr "\n" " ")(--privileged fails): kind runs docker through $shim/docker"
    PATH="$shim:$PATH"
  fi
  if kind_cluster_exists; then
    kind export kubeconfig --name "$KIND_CLUSTER" --kubeconfig "$KIND_KUBECONFIG" >/dev/null 2>&1 || true
    if cluster_ready; then
      log "kind cluster $KIND_CLUSTER already up (nothing to do; $(since "$start"))"
      print_usage
      exit 0
    fi
    log "kind cluster $KIND_CLUSTER exists but does not answer: recreating it"
    kind delete cluster --name "$KIND_CLUSTER" --kubeconfig "$KIND_KUBECONFIG"
  fi
  t=$SECONDS
  kind create cluster --name "$KIND_CLUSTER" --kubeconfig "$KIND_KUBECONFIG" \
    --config <(kind_config "$image") --wait 180s
  chmod 600 "$KIND_KUBECONFIG"
  log "phase kind create cluster: $(since "$t")"
  t=$SECONDS
  kctl_kind -n kube-system rollout status deployment/coredns --timeout=180s >/dev/null ||
    { kctl_kind get pods -A -o wide >&2 || true; die "CoreDNS is not available in $KIND_CLUSTER"; }
  log "phase CoreDNS available: $(since "$t")"
  log "kind cluster $KIND_CLUSTER up in $(since "$start") (node image $image)"
  print_usage
}

main "$@"
