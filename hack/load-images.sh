#!/usr/bin/env bash
# Load the locally built images into the cluster in use:
#   - $KUBECONFIG at a reachable kind cluster (context kind-NAME): `kind load docker-image`;
#   - otherwise the local cluster: `docker save | ctr import` into its containerd.
# Images already there with the same id are skipped.
#
# Usage: hack/load-images.sh [IMAGE...]   (default: every image hack/images.sh builds)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

# Config digest (= docker's image id) of an image in the local containerd, if present.
ctr_image_id() {
  local ref d
  ref=$(ctr_ref "$1")
  d=$(lctr images ls "name==$ref" 2>/dev/null | awk 'NR == 2 {print $3}')
  [[ -n "$d" ]] || return 1
  # An index (one platform here) or a manifest: follow to the config digest.
  lctr content get "$d" | python3 -c '
import json, subprocess, sys
m = json.load(sys.stdin)
if "manifests" in m:
    m = json.loads(subprocess.run(sys.argv[1:] + [m["manifests"][0]["digest"]], check=True, capture_output=True).stdout)
print(m["config"]["digest"])' ctr -a "$CTRD_SOCK" -n k8s.io content get
}

load_local() {
  pid_of containerd >/dev/null && [[ -S "$CTRD_SOCK" ]] || die "the local cluster is not up: run hack/cluster-up.sh"
  local img id t
  for img in "$@"; do
    t=$SECONDS
    id=$(docker image inspect -f '{{.Id}}' "$img")
    if [[ "$(ctr_image_id "$img" 2>/dev/null)" == "$id" ]]; then
      log "$img: already in the cluster's containerd"
      continue
    fi
    docker save "$img" | lctr images import - >/dev/null
    log "$img: imported into the cluster's containerd in $(since "$t")"
  done
}

load_kind() {
  local name=$1 img t
  shift
  command -v kind >/dev/null || die "kind is not installed"
  for img in "$@"; do
    t=$SECONDS
    kind load docker-image --name "$name" "$img"
    log "$img: loaded into kind cluster $name in $(since "$t")"
  done
}

main() {
  local images=("$@") img present=()
  ((${#images[@]})) || images=("$OPERATOR_IMAGE" "$TESTSERVER_IMAGE" "$MODEL_SERVER_IMAGE" "$STORAGE_INITIALIZER_IMAGE" "$S3_SERVER_IMAGE" "$MLFLOW_IMAGE" "$ROUTER_IMAGE" "$PROMETHEUS_IMAGE")
  ensure_dockerd
  for img in "${images[@]}"; do
    if docker image inspect "$img" >/dev/null 2>&1; then present+=("$img")
    else log "warning: $img is not built (hack/images.sh): skipping"; fi
  done
  ((${#present[@]})) || die "no image to load"
  if foreign_cluster; then
    local ctx
    ctx=$("$(any_kubectl)" config current-context)
    [[ "$ctx" == kind-* ]] || die "KUBECONFIG context $ctx is neither kind nor the local cluster: push the images to a registry it pulls from"
    load_kind "${ctx#kind-}" "${present[@]}"
  else
    load_local "${present[@]}"
  fi
}

main "$@"
