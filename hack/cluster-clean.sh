# Tear-down steps shared by cluster-down.sh (after a stop) and cluster-up.sh (before a
# start, to recover from an unclean stop). Sourced, never run. Every step is a no-op when
# there is nothing to remove, and each removes only what this cluster made.
# shellcheck shell=bash
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

# Kill and delete every CRI container so containerd's metadata holds no stale sandboxes.
purge_containers() {
  [[ -S "$CTRD_SOCK" ]] && pid_of containerd >/dev/null || return 0
  local ids
  ids=$(lctr tasks ls -q 2>/dev/null) || true
  for id in $ids; do lctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  for id in $ids; do lctr tasks delete -f "$id" >/dev/null 2>&1 || true; done
  for id in $(lctr containers ls -q 2>/dev/null); do lctr containers delete "$id" >/dev/null 2>&1 || true; done
}

# Every process in the kubelet's pod cgroups (container processes whose shim is gone).
kill_pod_processes() {
  local f
  find /sys/fs/cgroup/*/kubepods -name cgroup.procs 2>/dev/null | while IFS= read -r f; do
    xargs -r kill -KILL <"$f" 2>/dev/null || true
  done || true
}

# Remove the now-empty pod cgroups, deepest first.
remove_pod_cgroups() {
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
}

no_strays() { [[ -z "$(stray_pids)" ]]; }

stop_all() {
  local i pids
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    [[ "${COMPONENTS[i]}" == containerd ]] && purge_containers
    stop_daemon "${COMPONENTS[i]}"
  done
  # Anything left without a pid file: shims, daemons of an earlier run, pod processes.
  pids=$(stray_pids)
  if [[ -n "$pids" ]]; then
    log "killing leftover processes: $(echo $pids)"
    kill -KILL $pids 2>/dev/null || true
  fi
  kill_pod_processes
  wait_until 10 "leftover processes to exit" no_strays || true
}

# Mount points under the state dir, deepest first (mountinfo escapes spaces as \040).
state_mounts() {
  awk -v s="$STATE/" 'index($5, s) == 1 {print length($5), $5}' /proc/self/mountinfo |
    sort -rn | cut -d' ' -f2- | sed 's/\\040/ /g'
}

unmount_state() {
  local m _
  for _ in 1 2 3 4 5; do
    [[ -n "$(state_mounts)" ]] || return 0
    while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done < <(state_mounts)
  done
  [[ -z "$(state_mounts)" ]] || die "mounts left under $STATE: $(state_mounts | tr '\n' ' ')"
}

# Pod network namespaces made by containerd's CRI plugin (named cni-<uuid>).
remove_netns() {
  local ns
  for ns in /run/netns/cni-*; do
    [[ -e "$ns" ]] || continue
    ip netns delete "${ns##*/}" 2>/dev/null || { umount -l "$ns" 2>/dev/null; rm -f "$ns"; }
  done
}

# Remove the KUBE-* and CNI-* chains, every rule that jumps to them and cluster-up's own
# rules (commented "modeldeploy: ..."), in one
# iptables-restore transaction per table, leaving docker's and everyone else's rules.
clean_iptables() {
  local cmd table dump script
  for cmd in iptables ip6tables; do
    command -v "$cmd-save" >/dev/null || continue
    for table in filter nat mangle raw; do
      dump=$("$cmd-save" -t "$table" 2>/dev/null) || continue
      script=$(awk '
        /^:(KUBE-|CNI-)/ { chains[++n] = substr($1, 2); next }
        /^-A / && $2 !~ /^(KUBE-|CNI-)/ && (/ -[jg] (KUBE-|CNI-)/ || /--comment "?modeldeploy: /) { sub(/^-A /, "-D "); print }
        END { for (i = 1; i <= n; i++) print "-F " chains[i]; for (i = 1; i <= n; i++) print "-X " chains[i] }
      ' <<<"$dump")
      [[ -n "$script" ]] || continue
      printf '*%s\n%s\nCOMMIT\n' "$table" "$script" | "$cmd-restore" --noflush ||
        log "warning: could not clean $cmd table $table"
    done
  done
  # kube-proxy's nftables mode tables, should a run have made them.
  if command -v nft >/dev/null; then
    nft delete table ip kube-proxy 2>/dev/null || true
    nft delete table ip6 kube-proxy 2>/dev/null || true
  fi
}

remove_links() {
  local l
  if ip link show "$CNI_BRIDGE" >/dev/null 2>&1; then
    for l in $(ip -o link show master "$CNI_BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
      ip link delete "$l" 2>/dev/null || true
    done
    ip link delete "$CNI_BRIDGE" 2>/dev/null || true
  fi
  ip link delete kube-ipvs0 2>/dev/null || true
}

# Files of the last run that would confuse the next one. Keeps the pki, the binaries'
# configs and containerd's image store (root); drops etcd data: every start is a new cluster.
remove_run_files() {
  [[ -z "$(state_mounts)" ]] || die "refusing to delete files while mounts remain under $STATE"
  rm -rf --one-file-system "$STATE/etcd" "$STATE/kubelet" "$STATE/pod-logs" "$STATE/cni/ipam" \
    "$CTRD_DIR/state" "$STATE/runc" "$RUN_DIR"
  rm -f "$CTRD_SOCK" "$CTRD_SOCK.ttrpc"
  rm -f /var/lib/cni/results/"$CNI_NET"-* 2>/dev/null || true
  # kubelet's per-container log links point into our pod log dir.
  find /var/log/containers -maxdepth 1 -type l -lname "$STATE/*" -delete 2>/dev/null || true
}

# The whole tear-down, in dependency order.
cluster_clean() {
  mkdir -p "$STATE"
  stop_all
  unmount_state
  remove_netns
  clean_iptables
  remove_links
  remove_pod_cgroups
  remove_run_files
}
