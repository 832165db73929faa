#!/usr/bin/env bash
# Print the KUBECONFIG export for the cluster to use, for eval:
#   eval "$(hack/cluster-env.sh)"
# The current $KUBECONFIG when it points at a reachable cluster other than the local one,
# else the local cluster's kubeconfig.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

if foreign_cluster; then
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG"
else
  [[ -f "$KUBECONFIG_LOCAL" ]] || log "note: $KUBECONFIG_LOCAL does not exist yet: run hack/cluster-up.sh"
  printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_LOCAL"
fi
