#!/usr/bin/env bash
# `make demo`: this checkout's operator serving a model and rolling a new one out as a
# canary, on the cluster in use, from nothing:
#   cluster  the cluster of $KUBECONFIG; when KUBECONFIG is unset (or the local cluster's)
#            and the local cluster does not run, hack/cluster-up.sh starts it (root)
#   venv     .venv (make install), where the kubectl plugin is
#   images   hack/images.sh (docker's cache: seconds when nothing changed), under the
#            image lock $MODELDEPLOY_IMAGE_LOCK, then hack/load-images.sh for the demo's images
#   chart    helm upgrade --install of charts/modeldeploy in $SYSTEM_NS, watching $DEMO_NS
#            only (an all-namespaces operator would race any other one in the cluster)
#   models   an S3 server in $DEMO_NS and a Job that trains iris v1 and v2 and uploads them
#   serve    the ModelDeployment hack/demo/iris.yaml (v1, a canary rollout policy), Ready
#   predict  one prediction through its Service (the API server's service proxy), printed
#   rollout  model.uri changed to v2 under a stream of predictions (demo-client);
#            `kubectl modeldeploy status iris` printed as the rollout goes, until Succeeded
# Every phase logs "time: PHASE Ns"; a table of them ends the run. A rerun starts over with
# a new ModelDeployment; everything else is applied as it is (idempotent).
#
# Usage: hack/demo.sh          the demo
#        hack/demo.sh clean    remove it: $DEMO_NS and the release (`make demo-clean`)
# Env: MODELDEPLOY_DEMO_NAMESPACE (modeldeploy-demo), MODELDEPLOY_DEMO_SYSTEM_NAMESPACE
#      (modeldeploy-system), MODELDEPLOY_DEMO_RELEASE (modeldeploy),
#      MODELDEPLOY_DEMO_TIMEOUT: seconds the rollout may take (600).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
cd "$REPO_DIR"

DEMO_NS="${MODELDEPLOY_DEMO_NAMESPACE:-modeldeploy-demo}"
SYSTEM_NS="${MODELDEPLOY_DEMO_SYSTEM_NAMESPACE:-modeldeploy-system}"
RELEASE="${MODELDEPLOY_DEMO_RELEASE:-modeldeploy}"
ROLLOUT_TIMEOUT="${MODELDEPLOY_DEMO_TIMEOUT:-600}"
IMAGE_LOCK="${MODELDEPLOY_IMAGE_LOCK:-/tmp/modeldeploy-images.lock}"
NAME=iris
# Namespaces the demo created carry it; `clean` deletes only those.
DEMO_LABEL=modeldeploy.io/demo
DEMO_IMAGES=("$OPERATOR_IMAGE" "$MODEL_SERVER_IMAGE" "$STORAGE_INITIALIZER_IMAGE" "$ROUTER_IMAGE" "$S3_SERVER_IMAGE")
REQUEST='{"instances": [[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]]}'

WORK=$(mktemp -d)

on_exit() {
  local rc=$?
  rm -rf "$WORK"
  [[ ${#TIMES[@]} -gt 0 || -n "$PHASE" ]] || exit "$rc"
  phase_failed
  phase_table
  exit "$rc"
}
trap on_exit EXIT

k() { "$KUBECTL" "$@"; }
kd() { "$KUBECTL" -n "$DEMO_NS" "$@"; }

# True when the make targets would use the local cluster (hack/need-cluster.sh).
local_selected() { [[ -z "${KUBECONFIG:-}" || "$KUBECONFIG" == "$KUBECONFIG_LOCAL" ]]; }

# The cluster to use, started when it is the local one and does not run; exports KUBECONFIG.
select_cluster() {
  if ! bash "$HACK_DIR/need-cluster.sh" -q; then
    if ! local_selected; then bash "$HACK_DIR/need-cluster.sh" "make demo" || exit 1; fi
    if [[ $EUID -ne 0 ]]; then
      bash "$HACK_DIR/need-cluster.sh" "make demo" || true
      die "starting the local cluster needs root: sudo make cluster-up, then make demo again"
    fi
    log "no cluster runs: starting the local one (hack/cluster-up.sh)"
    bash "$HACK_DIR/cluster-up.sh" >&2
  fi
  eval "$(bash "$HACK_DIR/cluster-env.sh" 2>/dev/null)"
  export KUBECONFIG
  KUBECTL=$(any_kubectl)
  log "cluster: $(k config view --minify -o 'jsonpath={.clusters[0].cluster.server}') (KUBECONFIG=$KUBECONFIG)"
}

# Build and load under the same lock as every other image build on this machine. fd 9:
# hack/cluster-lib.sh starts dockerd with 9 closed, so a dockerd started here does not
# hold the lock for ever.
images() {
  exec 9>"$IMAGE_LOCK"
  if ! flock -n 9; then
    log "another image build holds $IMAGE_LOCK: waiting for it"
    flock 9
  fi
  bash "$HACK_DIR/images.sh"
  phase load
  bash "$HACK_DIR/load-images.sh" "${DEMO_IMAGES[@]}"
  # Read under the lock: the id of the operator image just loaded, not of a later build.
  OPERATOR_IMAGE_ID=$(docker image inspect -f '{{.Id}}' "$OPERATOR_IMAGE")
  flock -u 9
  exec 9>&-
}

# ensure_namespace NS: create it labelled as the demo's, or leave an existing one as it is.
ensure_namespace() {
  k get namespace "$1" >/dev/null 2>&1 && return 0
  k create namespace "$1" >/dev/null
  k label namespace "$1" "$DEMO_LABEL=true" >/dev/null
  wait_until 60 "the default ServiceAccount in $1" k -n "$1" get serviceaccount default
}

install_chart() {
  local owner
  owner=$(k -n "$SYSTEM_NS" get deployment modeldeploy-operator -o 'jsonpath={.metadata.labels.app\.kubernetes\.io/managed-by}' 2>/dev/null) || owner=Helm
  [[ "$owner" == Helm ]] ||
    die "an operator not installed by Helm (make deploy?) runs in $SYSTEM_NS: remove it with make undeploy, or set MODELDEPLOY_DEMO_SYSTEM_NAMESPACE"
  ensure_namespace "$SYSTEM_NS"
  ensure_namespace "$DEMO_NS"
  # The CRD of this checkout: helm installs crds/ only when it is missing, never upgrades it.
  k apply --server-side --force-conflicts -f crds/ >/dev/null
  local ref repo
  ref=$(ctr_ref "$OPERATOR_IMAGE") repo=${ref#*/}
  # Full references (registry host included, hack/cluster-lib.sh's ctr_ref): the default
  # runtimes' model server is <imageRegistry>/modeldeploy/model-server:<appVersion>. The
  # image id in the pod template: a rebuilt operator (same tag) is rolled out.
  bash "$HACK_DIR/helm.sh" upgrade --install "$RELEASE" charts/modeldeploy -n "$SYSTEM_NS" \
    --set watch.allNamespaces=false --set "watch.namespaces={$DEMO_NS}" \
    --set "imageRegistry=${ref%%/*}" --set "image.repository=${repo%:*}" --set "image.tag=${repo##*:}" \
    --set "routerImage=$(ctr_ref "$ROUTER_IMAGE")" \
    --set "storageInitializerImage=$(ctr_ref "$STORAGE_INITIALIZER_IMAGE")" \
    --set-string "podAnnotations.modeldeploy\.io/image-id=$OPERATOR_IMAGE_ID" \
    --wait --timeout 180s >&2
  k -n "$SYSTEM_NS" rollout status deployment/modeldeploy-operator --timeout=180s >&2
}

train_logs() { kd logs job/demo-train --all-containers --prefix=false "$@" >&2 || true; }

# job_finished: true once demo-train completed; fails the demo (with its logs) when it failed.
job_finished() {
  local state
  state=$(kd get job demo-train -o 'jsonpath={range .status.conditions[?(@.status=="True")]}{.type} {end}')
  if [[ "$state" == *Failed* ]]; then
    train_logs --tail=30
    die "the training Job failed (kubectl -n $DEMO_NS describe job demo-train)"
  fi
  [[ "$state" == *Complete* ]]
}

models() {
  cp hack/demo/* "$WORK/"
  {
    echo "namespace: $DEMO_NS"
    echo "images:"
    local name ref
    for name in s3-server model-server storage-initializer; do
      case $name in
        s3-server) ref=$(ctr_ref "$S3_SERVER_IMAGE") ;;
        model-server) ref=$(ctr_ref "$MODEL_SERVER_IMAGE") ;;
        storage-initializer) ref=$(ctr_ref "$STORAGE_INITIALIZER_IMAGE") ;;
      esac
      printf '  - {name: %s, newName: %s, newTag: "%s"}\n' "$name" "${ref%:*}" "${ref##*:}"
    done
  } >>"$WORK/kustomization.yaml"
  # A finished Job does not run again, and the S3 server keeps its objects in memory only.
  kd delete job demo-train --ignore-not-found --wait=true >/dev/null
  k apply -k "$WORK" >&2
  kd rollout status deployment/s3 --timeout=120s >&2
  local deadline=$((SECONDS + 300))
  until job_finished; do
    ((SECONDS < deadline)) || { train_logs --tail=30; die "the training Job did not finish within 300s"; }
    sleep 1
  done
  train_logs
}

serve() {
  if kd get modeldeployment "$NAME" >/dev/null 2>&1; then
    log "deleting the ModelDeployment of the previous run (and its children)"
    kd delete modeldeployment "$NAME" --cascade=foreground --wait=true --timeout=180s >&2
  fi
  kd apply -f hack/demo/iris.yaml >&2
  kd wait "modeldeployment/$NAME" --for=condition=Ready --timeout=300s >&2
  # The promoted revision, from which a change of model starts a canary.
  kd wait "modeldeployment/$NAME" --for=jsonpath='{.status.stable.model.version}'=v1 --timeout=60s >&2
  kd get modeldeployment "$NAME" >&2
}

# predict: one prediction through the ModelDeployment's Service, from wherever this runs
# (the API server proxies it: no port-forward, no route from this host to the cluster).
predict() {
  local path="/api/v1/namespaces/$DEMO_NS/services/$NAME:80/proxy/v1/models/$NAME:predict" answer
  printf '%s' "$REQUEST" >"$WORK/request.json"
  wait_until 60 "a prediction from $NAME" k create --raw "$path" -f "$WORK/request.json" ||
    die "no prediction from the Service $NAME (kubectl -n $DEMO_NS describe md $NAME)"
  answer=$(k create --raw "$path" -f "$WORK/request.json")
  echo "POST http://$NAME.$DEMO_NS/v1/models/$NAME:predict $REQUEST"
  echo "  -> $answer"
}

# The plugin (another engineer's console script): the venv's, else one on PATH.
plugin() {
  local p="$REPO_DIR/.venv/bin/kubectl-modeldeploy"
  [[ -x "$p" ]] || p=$(command -v kubectl-modeldeploy) || return 1
  echo "$p"
}

# show_status: `kubectl modeldeploy status iris`, or kubectl's view when the plugin fails.
show_status() {
  local p rc=0
  if p=$(plugin); then
    "$p" -n "$DEMO_NS" status "$NAME" 2>"$WORK/plugin.err" && return 0 || rc=$?
    log "warning: kubectl modeldeploy status failed (exit $rc: $(tail -n 1 "$WORK/plugin.err")): kubectl's view instead"
  fi
  kd get modeldeployment "$NAME" -o wide
  kd get modeldeployment "$NAME" -o jsonpath='{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}'
  kd get modeldeployment "$NAME" -o jsonpath='  rollout: {.status.rollout.phase} step {.status.rollout.step}, weight {.status.rollout.weight}%: {.status.rollout.message}{"\n"}'
}

rollout() {
  kd scale deployment/demo-client --replicas=1 >&2
  kd rollout status deployment/demo-client --timeout=120s >&2
  kd patch modeldeployment "$NAME" --type merge \
    -p '{"spec": {"model": {"uri": "s3://models/iris/v2", "version": "v2"}}}' >&2
  log "model.uri is s3://models/iris/v2: the rollout starts"
  local deadline=$((SECONDS + ROLLOUT_TIMEOUT)) seen="" now phase
  while :; do
    # What changes as the rollout goes: a new phase, step, weight or analysis verdict.
    now=$(kd get modeldeployment "$NAME" -o 'jsonpath={.status.rollout.phase}/{.status.rollout.step}/{.status.rollout.weight}/{.status.canary.effectiveWeight}/{.status.rollout.lastAnalysis.at}')
    phase=${now%%/*}
    if [[ "$now" != "$seen" ]]; then
      seen=$now
      echo "--- $(date +%H:%M:%S) kubectl modeldeploy status $NAME"
      show_status
    fi
    case "$phase" in
      Succeeded) break ;;
      RolledBack | Failed) die "the rollout ended $phase (kubectl -n $DEMO_NS describe md $NAME)" ;;
    esac
    ((SECONDS < deadline)) || die "the rollout did not succeed within ${ROLLOUT_TIMEOUT}s"
    sleep 2
  done
  kd wait "modeldeployment/$NAME" --for=condition=Ready --timeout=120s >/dev/null
}

look_around() {
  local kc=$KUBECONFIG
  cat <<EOF

The demo runs in namespace $DEMO_NS; its operator is the Helm release $RELEASE in $SYSTEM_NS,
watching $DEMO_NS only. Look around:
  export KUBECONFIG=$kc PATH=$REPO_DIR/.venv/bin:\$PATH
  kubectl -n $DEMO_NS get md,deploy,svc,pods
  kubectl -n $DEMO_NS describe md $NAME                 # conditions and events
  kubectl modeldeploy -n $DEMO_NS status $NAME          # variants, weights, analyses
  kubectl -n $DEMO_NS logs deploy/demo-client -f        # which variant answers
  kubectl -n $SYSTEM_NS logs deploy/modeldeploy-operator -f
  # roll v1 out again, as a canary:
  kubectl -n $DEMO_NS patch md $NAME --type merge -p '{"spec": {"model": {"uri": "s3://models/iris/v1", "version": "v1"}}}'
Clean up: make demo-clean   (deletes namespace $DEMO_NS and the release $RELEASE; the CRD stays, as Helm leaves it)
EOF
}

clean() {
  bash "$HACK_DIR/need-cluster.sh" "make demo-clean"
  eval "$(bash "$HACK_DIR/cluster-env.sh" 2>/dev/null)"
  export KUBECONFIG
  KUBECTL=$(any_kubectl)
  local t=$SECONDS
  k delete namespace "$DEMO_NS" --ignore-not-found --wait=true --timeout=180s >&2
  bash "$HACK_DIR/helm.sh" uninstall "$RELEASE" -n "$SYSTEM_NS" --ignore-not-found --wait --timeout 120s >&2
  if [[ "$(k get namespace "$SYSTEM_NS" -o "jsonpath={.metadata.labels.${DEMO_LABEL//./\\.}}" 2>/dev/null)" == true ]]; then
    k delete namespace "$SYSTEM_NS" --wait=true --timeout=180s >&2
  fi
  log "demo removed in $(since "$t")"
}

main() {
  phase cluster
  select_cluster
  phase venv
  make --no-print-directory install >&2
  phase images
  images
  phase chart
  install_chart
  phase models
  models
  phase serve
  serve
  phase predict
  predict
  phase rollout
  rollout
  phase "predict v2"
  predict
  end_phase
  look_around
}

if [[ "${1:-}" == clean ]]; then clean; else main; fi
