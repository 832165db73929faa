#!/usr/bin/env bash
# Delete the kind cluster $KIND_CLUSTER (modeldeploy-kind) and its kubeconfig file; then
# kind's docker network, when no container uses it any more. The node image and the kind
# binary stay cached (hack/kind-build.sh). Touches nothing of the project's own cluster.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"

main() {
  local start=$SECONDS
  export KUBECONFIG="$KIND_KUBECONFIG"
  [[ -x "$KIND_BIN/kind" ]] || { log "kind $KIND_VERSION is not built: no kind cluster to delete"; exit 0; }
  docker info >/dev/null 2>&1 || { log "docker is not running: no kind cluster to delete"; exit 0; }
  mkdir -p "$KIND_DIR"
  local shim; shim=$(kind_docker_shim)
  PATH="${shim:+$shim:}$PATH"
  exec 9>"$KIND_DIR/$KIND_CLUSTER.lock"
  flock 9
  if kind_cluster_exists; then
    kind delete cluster --name "$KIND_CLUSTER" --kubeconfig "$KIND_KUBECONFIG"
  else
    log "no kind cluster $KIND_CLUSTER"
  fi
  rm -f "$KIND_KUBECONFIG"
  # kind leaves its network (and with it a bridge and docker's rules for it) behind.
  if docker network inspect kind >/dev/null 2>&1 &&
    [[ "$(docker network inspect kind -f '{{len .Containers}}')" == 0 ]]; then
    docker network rm kind >/dev/null 2>&1 || true
  fi
  log "kind cluster $KIND_CLUSTER deleted in $(since "$start")"
}

main "$@"
