#!/usr/bin/env bash
# Report the local cluster: each component's process, the node and the pods. Exits
# non-zero unless every component runs and the node is Ready. With $KUBECONFIG at another
# reachable cluster, reports that cluster's nodes and pods instead.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

main() {
  if foreign_cluster; then
    local k; k=$(any_kubectl)
    echo "using the cluster of KUBECONFIG=$KUBECONFIG (context $("$k" config current-context))"
    "$k" get nodes -o wide
    "$k" get pods -A -o wide
    return 0
  fi
  local c pid up=0
  echo "local cluster, state dir $STATE"
  for c in "${COMPONENTS[@]}"; do
    if pid=$(pid_of "$c"); then
      printf '  %-24s running (pid %s)\n' "$c" "$pid"
    else
      printf '  %-24s NOT running\n' "$c"; up=1
    fi
  done
  if [[ -f "$KUBECONFIG_LOCAL" ]] && kctl --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
    echo "api server: ready at https://127.0.0.1:$API_PORT (KUBECONFIG=$KUBECONFIG_LOCAL)"
    kctl get nodes -o wide
    kctl get pods -A -o wide
    local ready
    ready=$(kctl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
    [[ "$ready" == True ]] || { echo "node $NODE_NAME is not Ready"; up=1; }
  else
    echo "api server: not reachable"; up=1
  fi
  if ((up)); then echo "cluster is NOT up (start it: hack/cluster-up.sh)"; else echo "cluster is up"; fi
  return "$up"
}

main "$@"
