#!/usr/bin/env bash
# Exit 0 when the cluster the make targets would use answers. Otherwise say which cluster
# did not answer and what to do, and exit 1: within seconds, so that a target runs this
# before anything slow (a venv, an image build) and a newcomer never meets a raw
# "connection refused".
#
# The cluster: $KUBECONFIG's when it is set (one that does not answer is reported, never
# silently replaced by the local cluster), else the local cluster's kubeconfig
# ($MODELDEPLOY_STATE/kubeconfig, written by hack/cluster-up.sh) — hack/cluster-env.sh then
# selects that same cluster.
#
# Usage: hack/need-cluster.sh [-q] [WHAT]
#   WHAT  what needs the cluster, for the message (e.g. "make run")
#   -q    no message, only the exit status
# Env: MODELDEPLOY_CLUSTER_TIMEOUT  how long the API server may take to answer (default 5s)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

QUIET=0
if [[ "${1:-}" == -q ]]; then QUIET=1; shift; fi
WHAT="${1:-this}"
TIMEOUT="${MODELDEPLOY_CLUSTER_TIMEOUT:-5s}"

# explain HEADLINE [HINT...]: the message, unless -q; always exit 1.
explain() {
  if ((!QUIET)); then
    log "error: $WHAT: $1"
    shift
    local hint
    for hint in "$@"; do printf '    %s\n' "$hint" >&2; done
  fi
  exit 1
}

# The local cluster's daemons that do not run, as "a, b" (empty when all run).
stopped_daemons() {
  local c down=()
  for c in "${COMPONENTS[@]}"; do pid_of "$c" >/dev/null || down+=("$c"); done
  local IFS=,
  echo "${down[*]:-}" | sed 's/,/, /g'
}

main() {
  local cfg=${KUBECONFIG:-} local=0
  if [[ -z "$cfg" || "$cfg" == "$KUBECONFIG_LOCAL" ]]; then
    cfg=$KUBECONFIG_LOCAL local=1
  fi
  local start_local="start the local cluster: make cluster-up (as root; its first run builds Kubernetes, ~16 min, later ones ~20 s)"
  local unset_local="start the local cluster: unset KUBECONFIG; make cluster-up (as root; its first run builds Kubernetes, ~16 min, later ones ~20 s)"
  local use_yours="or point KUBECONFIG at yours: export KUBECONFIG=/path/to/its/kubeconfig"

  if ((local)) && [[ ! -f "$cfg" ]]; then
    explain "no Kubernetes cluster is reachable: KUBECONFIG is not set and the local cluster was never started (no $cfg)" \
      "$start_local" "$use_yours"
  fi
  local f missing=()
  IFS=: read -ra files <<<"$cfg"
  for f in "${files[@]}"; do [[ -z "$f" || -f "$f" ]] || missing+=("$f"); done
  if ((${#missing[@]} == ${#files[@]})); then
    explain "no Kubernetes cluster is reachable: KUBECONFIG=$cfg does not exist" "$unset_local" "$use_yours"
  fi
  local k
  k=$(any_kubectl) || explain "no kubectl found (none on PATH, none built in $K8S_BIN)" \
    "$start_local (it builds kubectl too)" "or install kubectl and point KUBECONFIG at your cluster"
  export KUBECONFIG=$cfg

  local out server ctx
  if out=$("$k" --request-timeout="$TIMEOUT" get --raw /readyz 2>&1); then return 0; fi
  # It answered, only not to this request: the target's own commands report the rest.
  if grep -q 'Forbidden' <<<"$out"; then return 0; fi
  server=$("$k" config view --minify -o 'jsonpath={.clusters[0].cluster.server}' 2>/dev/null) || server=""
  ctx=$("$k" config current-context 2>/dev/null) || ctx=""
  local reason; reason=$(grep -v '^\s*$' <<<"$out" | tail -n 1 | sed 's/^error: //')
  if grep -qiE 'Unauthorized|provide credentials|x509|certificate' <<<"$out"; then
    explain "the cluster at ${server:-?} (KUBECONFIG=$cfg${ctx:+, context $ctx}) answers but refuses these credentials: $reason" \
      "check the user and certificates of context ${ctx:-?} in $cfg"
  fi
  local where="${server:-an unknown server (no current context)} (KUBECONFIG=$cfg${ctx:+, context $ctx})"
  if ((local)); then
    local down; down=$(stopped_daemons)
    explain "no Kubernetes cluster is reachable at $where: $reason" \
      "the local cluster is not running${down:+ (stopped: $down; logs in $LOG_DIR)}" \
      "$start_local" "$use_yours"
  fi
  local hints=("$unset_local" "or point KUBECONFIG at a cluster that runs")
  if [[ -f "$KUBECONFIG_LOCAL" ]] && KUBECONFIG=$KUBECONFIG_LOCAL "$k" --request-timeout=2s get --raw /readyz >/dev/null 2>&1; then
    hints=("the local cluster is up: unset KUBECONFIG (or export KUBECONFIG=$KUBECONFIG_LOCAL) to use it" "or point KUBECONFIG at a cluster that runs")
  fi
  explain "no Kubernetes cluster is reachable at $where: $reason" "${hints[@]}"
}

main "$@"
