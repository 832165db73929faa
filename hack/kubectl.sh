#!/usr/bin/env bash
# kubectl matching the cluster (the one built for the local cluster, else the one on PATH),
# pointed at the cluster hack/cluster-env.sh selects when KUBECONFIG is not set.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
[[ -n "${KUBECONFIG:-}" ]] || eval "$(bash "$HACK_DIR/cluster-env.sh")"
exec "$(any_kubectl)" "$@"
