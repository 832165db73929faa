#!/usr/bin/env bash
# Fake nodes for the scale bench: kwok (hack/build-kwok.sh) run out of cluster against the
# local cluster. It makes Node objects with the annotation kwok.x-k8s.io/node=fake Ready,
# keeps their Leases, and marks every pod scheduled onto them Running and Ready without
# running a container, so thousands of pods "run" on 2 cores.
#
# The fake pods get IPs from $KWOK_CIDR, a range that overlaps none of the cluster's (pods
# 10.244.0.0/24, Services 10.96.0.0/16). An `unreachable` route for it makes a connection to
# a fake pod (a /metrics scrape during a rollout) fail at once with "No route to host":
# nothing is sent off this machine.
#
# Usage: hack/kwok.sh up [NODES]    build kwok if missing, route, NODES fake nodes (default 20)
#        hack/kwok.sh down          delete the fake nodes, stop kwok, remove the route
#        hack/kwok.sh status        exit 0 when kwok runs
# Env:   MODELDEPLOY_STATE, KWOK_VERSION, MODELDEPLOY_KWOK_CIDR (default 10.250.0.0/16)
# Fake nodes: label type=kwok, taint kwok.x-k8s.io/node=fake:NoSchedule. A workload that
# should land there needs nodeSelector {type: kwok} and a toleration for the taint.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

KWOK_CIDR="${MODELDEPLOY_KWOK_CIDR:-10.250.0.0/16}"
NODE_PREFIX=kwok-node-

route_up() {
  ip route show table main | grep -q "^unreachable $KWOK_CIDR" && return
  ip route add unreachable "$KWOK_CIDR"
}

route_down() {
  if ip route show table main | grep -q "^unreachable $KWOK_CIDR"; then ip route del unreachable "$KWOK_CIDR"; fi
}

node_manifest() {  # INDEX
  cat <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $NODE_PREFIX$1
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: $NODE_PREFIX$1, kubernetes.io/os: linux, kubernetes.io/role: agent}
spec:
  taints: [{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]
status:
  capacity: {cpu: "64", memory: 512Gi, pods: "500"}
  allocatable: {cpu: "64", memory: 512Gi, pods: "500"}
---
YAML
}

nodes_ready() {  # COUNT
  local ready
  ready=$(kctl get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
  [[ "$ready" -ge "$1" ]]
}

up() {
  local count=${1:-20} bin i start=$SECONDS
  [[ $EUID -eq 0 ]] || die "must run as root (ip route)"
  kctl --request-timeout=5s get --raw /readyz >/dev/null 2>&1 || die "the cluster is not up (make cluster-up)"
  bin=$(bash "$HACK_DIR/build-kwok.sh")
  route_up
  if ! pid_of kwok >/dev/null; then
    # Node Leases (--node-lease-duration-seconds): without them the node lifecycle
    # controller marks the fake nodes NotReady and every fake pod Ready=False.
    start_daemon kwok "$bin/kwok" --kubeconfig "$KUBECONFIG_LOCAL" \
      --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
      --cidr "$KWOK_CIDR" --node-ip "${KWOK_CIDR%.*/*}.1" --node-lease-duration-seconds=40 \
      -c "$bin/stages.yaml"
  fi
  for ((i = 0; i < count; i++)); do node_manifest "$i"; done | kctl apply -f - >/dev/null
  wait_daemon kwok 120 nodes_ready "$count"
  log "kwok: $count fake nodes Ready in $(since "$start") (pod IPs from $KWOK_CIDR, routed unreachable)"
}

down() {
  if kctl --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
    kctl delete nodes -l type=kwok --ignore-not-found --wait=false >/dev/null || true
  fi
  stop_daemon kwok
  route_down
  log "kwok: stopped, fake nodes deleted, route $KWOK_CIDR removed"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) pid_of kwok >/dev/null ;;
  *) die "usage: hack/kwok.sh up [NODES] | down | status" ;;
esac
