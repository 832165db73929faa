# Shared by hack/kind-*.sh: the kind version, where its binary, node image and cluster
# kubeconfig live. Sourced, never run. A kind cluster is separate from the project's own
# local cluster (hack/cluster-up.sh): other name, other kubeconfig, other network.
# shellcheck shell=bash disable=SC2034
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

KIND_VERSION="${KIND_VERSION:-v0.33.0}"
# crictl is in every kind node (`kind load` asks it which images are there); Debian has none.
CRICTL_VERSION="${CRICTL_VERSION:-v1.34.0}"
KIND_BIN="$MD_CACHE/bin/kind-$KIND_VERSION"
CRICTL_BIN="$MD_CACHE/bin/crictl-$CRICTL_VERSION"
KIND_CLUSTER="${MODELDEPLOY_KIND_CLUSTER:-modeldeploy-kind}"
KIND_DIR="$MD_CACHE/kind"
KIND_KUBECONFIG="${MODELDEPLOY_KIND_KUBECONFIG:-$KIND_DIR/$KIND_CLUSTER.kubeconfig}"
KIND_NODE_REPO="${MODELDEPLOY_KIND_NODE_REPO:-localhost/modeldeploy/kind-node}"
# kind's default pod subnet; the node image's CNI config hands out its first /24 (one node).
KIND_POD_SUBNET=10.244.0.0/16
KIND_NODE_POD_CIDR=10.244.0.0/24
# Any docker build or image import takes the same lock as hack/images.sh's callers.
IMAGES_LOCK=/tmp/modeldeploy-images.lock

export PATH="$KIND_BIN:$PATH"

# The docker container of the cluster's (only) node.
kind_node() { echo "$KIND_CLUSTER-control-plane"; }

kind_cluster_exists() { "$KIND_BIN/kind" get clusters 2>/dev/null | grep -qxF "$KIND_CLUSTER"; }

# --- docker without --privileged, where --privileged cannot work --------------------------

# Linux capability names by number (capability.h), as docker's --cap-drop takes them.
LINUX_CAPS=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE
  SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
  SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
  WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)

# Capabilities the kernel has that dockerd's bounding set lacks. docker 20.10's
# --privileged asks runc for every capability the kernel knows; when the bounding set is
# smaller (these VMs drop CAP_SYS_RESOURCE), runc fails with "unable to apply caps:
# operation not permitted" and no kind node can start.
missing_caps() {
  local pid bnd last i
  pid=$(pgrep -xo dockerd 2>/dev/null || echo self)
  bnd=$((16#$(awk '/^CapBnd:/ {print $2}' "/proc/$pid/status")))
  last=$(</proc/sys/kernel/cap_last_cap)
  for ((i = 0; i <= last && i < ${#LINUX_CAPS[@]}; i++)); do
    (((bnd >> i) & 1)) || echo "${LINUX_CAPS[i]}"
  done
}

# Print a directory to put first on PATH for `kind create cluster`, holding a `docker` that
# runs kind's nodes as --privileged does minus the missing capabilities: every other
# capability, no masked or read-only /proc paths, every device allowed, /dev/kmsg (kubelet
# reads it). The node image's entrypoint makes its cgroup mounts writable, as --privileged
# would. Prints nothing when --privileged works here (no capability is missing).
kind_docker_shim() {
  local caps drops=() c real dir="$KIND_DIR/docker-shim"
  caps=$(missing_caps | tr '\n' ' ')
  [[ -n "$caps" ]] || return 0
  for c in $caps; do drops+=("--cap-drop=$c"); done
  real=$(PATH=${PATH//"$dir:"/} command -v docker) || die "docker missing"
  mkdir -p "$dir"
  cat >"$dir/docker.$$" <<SHIM
#!/usr/bin/env bash
# Made by hack/kind-lib.sh (kind_docker_shim) for kind on a host whose capability bounding
# set lacks: ${caps% }. Only \`docker run --privileged\` and \`docker exec --privileged\`
# change; an exec gets the node container's capabilities.
if [[ "\${1:-}" == run || "\${1:-}" == exec ]]; then
  args=()
  for a in "\$@"; do
    if [[ "\$a" != --privileged ]]; then
      args+=("\$a")
    elif [[ "\$1" == run ]]; then
      args+=(--cap-add=ALL ${drops[*]} --security-opt=systempaths=unconfined '--device-cgroup-rule=a *:* rwm' --device=/dev/kmsg)
    fi
  done
  exec "$real" "\${args[@]}"
fi
exec "$real" "\$@"
SHIM
  chmod 0755 "$dir/docker.$$"
  mv "$dir/docker.$$" "$dir/docker"
  echo "$dir"
}
