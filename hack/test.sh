#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (`make test`; .ci/run calls it):
#   1. install what is missing (host packages, .venv with the operator and test tools)
#   2. import-linter contracts and the tests that need no cluster
#   3. the cluster: $KUBECONFIG's when it points at a reachable cluster, else the local one
#      (built and started here, and stopped again at the end unless KEEP_CLUSTER=1)
#   4. images built and loaded into it, then every test that needs the cluster.
# Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
cd "$REPO_DIR"
T0=$SECONDS

log "installing host packages and the Python environment"
bash hack/install-host-deps.sh
make --no-print-directory install

log "prometheus (for the Prometheus-check tests; cached after the first build)"
bash hack/build-prometheus.sh >/dev/null

log "lint and unit tests"
make --no-print-directory lint
.venv/bin/pytest -m 'not e2e' "$@"

started_here=0
if ! foreign_cluster; then
  if ! bash hack/cluster-status.sh >/dev/null 2>&1; then
    started_here=1
  fi
  if [[ $started_here == 1 && "${KEEP_CLUSTER:-0}" != 1 ]]; then
    trap 'log "stopping the cluster started for the tests"; bash hack/cluster-down.sh' EXIT
  fi
  bash hack/cluster-up.sh
fi
eval "$(bash hack/cluster-env.sh)"

log "images"
bash hack/images.sh
bash hack/load-images.sh

log "cluster tests against $KUBECONFIG"
.venv/bin/pytest -m e2e "$@"
log "all tests passed in $(since "$T0")"
