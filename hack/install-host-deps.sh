#!/usr/bin/env bash
# Install the Debian packages the local cluster, image builds and host-level tests need. Idempotent: asks
# apt only when something is missing (one `apt-get update`, then one install).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(
  containerd runc containernetworking-plugins   # the node's container runtime and CNI
  docker.io                                     # local image builds
  iptables conntrack socat iproute2 kmod util-linux   # kube-proxy, kubelet, mounts, flock
  debootstrap ca-certificates                   # the local base image
  openssl curl                                  # certificates, health checks
  gcc libc6-dev                                 # the static pause binary
  nginx-light                                   # the router's data plane, tested on the host
)

main() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || missing+=("$p")
  done
  if ((${#missing[@]})); then
    [[ $EUID -eq 0 ]] || die "installing ${missing[*]} needs root"
    log "installing: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # Go is not from apt (Debian's is too old for Kubernetes 1.34); the build needs 1.24+.
  command -v go >/dev/null || log "warning: no 'go' on PATH: hack/build-k8s.sh cannot build the binaries"
}

main "$@"
