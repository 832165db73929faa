#!/usr/bin/env bash
# Stop the local cluster and remove what it put on the host: processes, mounts under the
# state dir, pod network namespaces, KUBE-*/CNI-* iptables chains and rules, cni0 and the
# pods' veths. Keeps certificates and containerd's image store for the next start; etcd
# data goes (every cluster-up starts a fresh cluster). Idempotent.
#
# Env: MODELDEPLOY_STATE (default /var/lib/modeldeploy-cluster).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-clean.sh"

main() {
  [[ $EUID -eq 0 ]] || die "must run as root"
  local start=$SECONDS
  if [[ ! -d "$STATE" ]]; then log "nothing to stop: $STATE does not exist"; return 0; fi
  exec 9>"$STATE/.lock"
  flock 9
  # kwok (hack/kwok.sh) is not one of the cluster's components: stop it, drop its route.
  bash "$HACK_DIR/kwok.sh" down
  cluster_clean
  log "cluster stopped and cleaned up in $(since "$start")"
}

main "$@"
