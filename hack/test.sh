#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (`make test`; .ci/run calls it):
#   1. install what is missing (host packages, .venv with the operator and test tools)
#   2. import-linter contracts and the tests that need no cluster
#   3. the cluster: $KUBECONFIG's when it points at a reachable cluster, else the local one
#      (built and started here, and stopped again at the end unless KEEP_CLUSTER=1)
#   4. images built and loaded into it, then every test that needs the cluster or docker,
#      MODELDEPLOY_TEST_WORKERS modules at a time (pytest-xdist; default 3, 1 runs serially).
# Each phase logs its wall time as "time: PHASE Ns"; a summary of all of them ends the log.
# Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
cd "$REPO_DIR"

# Most of the cluster tests' time is spent waiting for analysis intervals, not computing:
# on the 2-core machine 3 workers took the cluster suite from ~18 to ~9.5 min (README).
WORKERS="${MODELDEPLOY_TEST_WORKERS:-3}"
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || die "MODELDEPLOY_TEST_WORKERS=$WORKERS: expected a positive number"

STARTED_CLUSTER=0

on_exit() {
  local rc=$?
  phase_failed
  [[ -n "${SAMPLES:-}" && -f "$SAMPLES.pid" ]] && log "$(bash hack/load-sampler.sh stop "$SAMPLES")"
  if [[ $STARTED_CLUSTER == 1 && "${KEEP_CLUSTER:-0}" != 1 ]]; then
    log "stopping the cluster started for the tests"
    bash hack/cluster-down.sh || rc=1
  fi
  phase_table
  exit "$rc"
}
trap on_exit EXIT

phase "host packages"
bash hack/install-host-deps.sh

phase "venv"
make --no-print-directory install

phase "prometheus"
bash hack/build-prometheus.sh >/dev/null

phase "lint"
make --no-print-directory lint

phase "unit tests"
.venv/bin/pytest -m 'not e2e and not docker' "$@"

phase "cluster up"
if ! foreign_cluster; then
  if ! bash hack/cluster-status.sh >/dev/null 2>&1; then
    STARTED_CLUSTER=1
  fi
  bash hack/cluster-up.sh
fi
eval "$(bash hack/cluster-env.sh)"

phase "images"
bash hack/images.sh

phase "load images"
bash hack/load-images.sh

phase "cluster tests"
log "cluster and docker tests against $KUBECONFIG, $WORKERS modules at a time"
# The machine's CPU and the node's unschedulable pods, sampled meanwhile: whether more
# workers would help (CPU to spare, no pod waiting for the node's CPU requests).
SAMPLES="${TMPDIR:-/tmp}/modeldeploy-test-load.$$"
bash hack/load-sampler.sh start "$SAMPLES"
# --durations: the slowest tests (a module's fixtures count in its first test) end the log,
# so the next person sees where the cluster phase's time goes.
if [[ $WORKERS == 1 ]]; then
  .venv/bin/pytest -m 'e2e or docker' --durations=40 "$@"
else
  .venv/bin/pytest -m 'e2e or docker' -n "$WORKERS" --dist loadfile --durations=40 "$@"
fi
end_phase
log "$(bash hack/load-sampler.sh stop "$SAMPLES")"
log "all tests passed in $(since "$T0")"
