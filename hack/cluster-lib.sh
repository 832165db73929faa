# Shared by hack/cluster-*.sh, hack/images.sh and hack/load-images.sh: where the local
# cluster keeps its state, its network ranges, image names, and how its daemons are
# started, found and stopped. Sourced, never run.
# shellcheck shell=bash disable=SC2034
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE="${MODELDEPLOY_STATE:-/var/lib/modeldeploy-cluster}"
KUBECONFIG_LOCAL="$STATE/kubeconfig"
PKI="$STATE/pki"
RUN_DIR="$STATE/run"          # pid files
LOG_DIR="$STATE/logs"         # one log per daemon
CTRD_DIR="$STATE/containerd"
CTRD_SOCK="$CTRD_DIR/containerd.sock"
API_PORT="${MODELDEPLOY_API_PORT:-6443}"
ETCD_PORT="${MODELDEPLOY_ETCD_PORT:-2379}"
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_IP=10.96.0.10
POD_CIDR=10.244.0.0/24
CLUSTER_DOMAIN=cluster.local
CNI_NET=modeldeploy-pods
CNI_BRIDGE=cni0
NODE_NAME="${MODELDEPLOY_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}"
# Start order; stopped in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy)

# Images the project builds locally. Explicit tags: ':latest' would make kubelet pull. Fully
# qualified (registry host "localhost" unless MODELDEPLOY_IMAGE_REGISTRY says otherwise), so no
# reference silently resolves to Docker Hub. The cluster's own pause and CoreDNS images below
# are imported under fixed names and never pulled.
IMAGE_REGISTRY="${MODELDEPLOY_IMAGE_REGISTRY:-localhost}"
OPERATOR_IMAGE="${MODELDEPLOY_OPERATOR_IMAGE:-$IMAGE_REGISTRY/modeldeploy/operator:0.1.0}"
TESTSERVER_IMAGE="${MODELDEPLOY_TESTSERVER_IMAGE:-$IMAGE_REGISTRY/modeldeploy/testserver:0.1.0}"
MODEL_SERVER_IMAGE="${MODELDEPLOY_MODEL_SERVER_IMAGE:-$IMAGE_REGISTRY/modeldeploy/model-server:0.1.0}"
STORAGE_INITIALIZER_IMAGE="${MODELDEPLOY_STORAGE_INITIALIZER_IMAGE:-$IMAGE_REGISTRY/modeldeploy/storage-initializer:0.1.0}"
S3_SERVER_IMAGE="${MODELDEPLOY_S3_SERVER_IMAGE:-$IMAGE_REGISTRY/modeldeploy/s3-server:0.1.0}"
MLFLOW_IMAGE="${MODELDEPLOY_MLFLOW_IMAGE:-$IMAGE_REGISTRY/modeldeploy/mlflow:0.1.0}"
ROUTER_IMAGE="${MODELDEPLOY_ROUTER_IMAGE:-$IMAGE_REGISTRY/modeldeploy/router:0.1.0}"
PROMETHEUS_IMAGE="${MODELDEPLOY_PROMETHEUS_IMAGE:-$IMAGE_REGISTRY/modeldeploy/prometheus:$PROMETHEUS_VERSION}"
COREDNS_IMAGE="${MODELDEPLOY_COREDNS_IMAGE:-modeldeploy/coredns:$COREDNS_VERSION}"
PAUSE_IMAGE="${MODELDEPLOY_PAUSE_IMAGE:-modeldeploy/pause:$K8S_VERSION}"
DOCKERD_LOG="${MODELDEPLOY_DOCKERD_LOG:-/var/log/modeldeploy-dockerd.log}"

export PATH="$CLUSTER_PATH:$PATH"

# --- small helpers ----------------------------------------------------------------------

# Full image reference as containerd stores it (docker.io/ prefix for short names).
ctr_ref() {
  local first="${1%%/*}"
  if [[ "$1" != */* ]]; then echo "docker.io/library/$1"
  elif [[ "$first" == *.* || "$first" == *:* || "$first" == localhost ]]; then echo "$1"
  else echo "docker.io/$1"; fi
}

kctl() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_LOCAL" "$@"; }
lctr() { ctr -a "$CTRD_SOCK" -n k8s.io "$@"; }

# Seconds since $1 (a $SECONDS value), for step timings.
since() { echo "$((SECONDS - $1))s"; }

# wait_until TIMEOUT DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_until() {
  local timeout=$1 desc=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then log "timed out after ${timeout}s waiting for $desc"; return 1; fi
    sleep 0.5
  done
}

# The address other pods reach this node on: the default route's interface address.
node_ip() {
  if [[ -n "${MODELDEPLOY_NODE_IP:-}" ]]; then echo "$MODELDEPLOY_NODE_IP"; return; fi
  local dev ip
  dev=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
  ip=$(ip -4 -o addr show ${dev:+dev "$dev"} scope global | awk '{split($4, a, "/"); print a[1]; exit}')
  [[ -n "$ip" ]] || die "no global IPv4 address found; set MODELDEPLOY_NODE_IP"
  echo "$ip"
}

# --- daemons ----------------------------------------------------------------------------

# Pid of a running component, from its pid file; checks the process is still that binary
# (pids get reused after an unclean stop).
pid_of() {
  local f="$RUN_DIR/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1" || return 1
  echo "$pid"
}

# start_daemon NAME COMMAND...: run detached (own session, so it outlives this shell and
# its process group), log to $LOG_DIR/NAME.log, record the pid.
# detach COMMAND...: run it in its own session, in the background, with no file descriptor
# but 0-2 from this shell: a daemon must not inherit a lock its starter holds (cluster-up's
# state-dir lock, or any caller's `flock FILE make ...`), or the lock outlives the starter.
detach() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
  done
  exec setsid "$@"
}

start_daemon() {
  local name=$1; shift
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  # Logs are appended across restarts; keep one previous generation past 50 MB.
  if [[ $(stat -c %s "$LOG_DIR/$name.log" 2>/dev/null || echo 0) -gt 52428800 ]]; then
    mv "$LOG_DIR/$name.log" "$LOG_DIR/$name.log.1"
  fi
  printf '\n=== %s starting: %s\n' "$(date -Is)" "$*" >>"$LOG_DIR/$name.log"
  (detach "$@") >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
}

# wait_daemon NAME TIMEOUT COMMAND...: like wait_until, but fails fast (with the log's
# tail) when the daemon died.
wait_daemon() {
  local name=$1 timeout=$2 deadline=$((SECONDS + $2))
  shift 2
  local pid; pid=$(<"$RUN_DIR/$name.pid")
  until "$@" >/dev/null 2>&1; do
    # By pid, not pid_of: right after the fork, before exec, the child's cmdline is still
    # this script's, and a loaded machine makes that window long enough to be seen.
    if pid_gone "$pid"; then
      tail -n 30 "$LOG_DIR/$name.log" >&2; die "$name exited; log: $LOG_DIR/$name.log"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$LOG_DIR/$name.log" >&2; die "$name not ready after ${timeout}s; log: $LOG_DIR/$name.log"
    fi
    sleep 0.5
  done
}

# Gone or a zombie: PID 1 on these VMs does not reap orphans, so killed daemons linger
# as <defunct> entries holding no resources.
pid_gone() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 0
  [[ -z "$st" || "$st" == Z ]]
}

# stop_daemon NAME: SIGTERM, wait up to 15 s, then SIGKILL.
stop_daemon() {
  local name=$1 pid
  if pid=$(pid_of "$name"); then
    kill -TERM "$pid" 2>/dev/null || true
    wait_until 15 "$name to exit" pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    wait_until 5 "$name to die" pid_gone "$pid" || true
  fi
  rm -f "$RUN_DIR/$name.pid"
}

# Host processes of this cluster that lost their pid file: our binaries whose command line
# names this state dir (daemons, containerd shims).
stray_pids() {
  local d pid exe
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ "$pid" == "$$" || "$pid" == "$BASHPID" ]] && continue
    exe=$(basename "$(readlink "$d/exe" 2>/dev/null)" 2>/dev/null) || continue
    case "$exe" in
      etcd | kube-* | kubelet | containerd | containerd-shim*) ;;
      *) continue ;;
    esac
    tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q -- "$STATE/" && echo "$pid"
  done
  return 0
}

# --- binaries ---------------------------------------------------------------------------

# Build whatever binary is missing (hack/build-k8s.sh), one build at a time per cache.
ensure_binaries() {
  local need=("$K8S_BIN"/{kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy,kubelet,kubectl,pause}
    "$ETCD_BIN/etcd" "$COREDNS_BIN/coredns")
  local b missing=0
  for b in "${need[@]}"; do [[ -x "$b" ]] || missing=1; done
  [[ -f "$K8S_BIN/coredns.yaml.base" ]] || missing=1
  ((missing)) || return 0
  log "building missing binaries (cold build: 20-45 min; log: $MD_CACHE/build.log)"
  mkdir -p "$MD_CACHE"
  local t=$SECONDS
  # One build at a time per cache, however many cluster-up runs wait for it.
  flock "$MD_CACHE/build.lock" bash "$HACK_DIR/build-k8s.sh" >>"$MD_CACHE/build.log" 2>&1 ||
    { tail -n 30 "$MD_CACHE/build.log" >&2; die "build failed; log: $MD_CACHE/build.log"; }
  log "binaries built in $(since "$t")"
}

# --- images as plain tar files ----------------------------------------------------------

# mk_image_tar OUT.tar IMAGE:TAG ENTRYPOINT FILE...: write a docker-save archive of a
# FROM-scratch image holding FILEs at /<basename>, without docker. Reproducible (fixed
# mtimes), so the same inputs give the same image id.
mk_image_tar() {
  python3 - "$@" <<'PY'
import hashlib, io, json, os, sys, tarfile
out, ref, entry, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def add(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))

layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.USTAR_FORMAT) as t:
    for f in files:
        add(t, os.path.basename(f), open(f, "rb").read(), 0o755)
layer = layer.getvalue()
diff = hashlib.sha256(layer).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
    "config": {"Entrypoint": [entry], "Env": ["PATH=/"]},
    "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff}"]},
    "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/cluster-lib.sh mk_image_tar"}],
}, sort_keys=True).encode()
cid = hashlib.sha256(config).hexdigest()
manifest = json.dumps([{"Config": f"{cid}.json", "RepoTags": [ref], "Layers": [f"{diff}/layer.tar"]}]).encode()
with tarfile.open(out + ".tmp", mode="w", format=tarfile.USTAR_FORMAT) as t:
    add(t, f"{diff}/layer.tar", layer)
    add(t, f"{cid}.json", config)
    add(t, "manifest.json", manifest)
os.replace(out + ".tmp", out)
PY
}

# The pause and CoreDNS images, made from the built binaries (no docker needed). Prints
# the tar paths.
infra_image_tars() {
  local dir="$MD_CACHE/images"
  mkdir -p "$dir"
  local pause="$dir/pause-$K8S_VERSION.tar" coredns="$dir/coredns-$COREDNS_VERSION.tar"
  [[ -f "$pause" && "$pause" -nt "$K8S_BIN/pause" ]] ||
    mk_image_tar "$pause" "$PAUSE_IMAGE" /pause "$K8S_BIN/pause"
  [[ -f "$coredns" && "$coredns" -nt "$COREDNS_BIN/coredns" ]] ||
    mk_image_tar "$coredns" "$COREDNS_IMAGE" /coredns "$COREDNS_BIN/coredns"
  echo "$pause" "$coredns"
}

# --- docker -----------------------------------------------------------------------------

# Start dockerd in the background unless one answers already (no systemd here).
ensure_dockerd() {
  docker info >/dev/null 2>&1 && return 0
  command -v dockerd >/dev/null || die "dockerd missing: run hack/install-host-deps.sh"
  log "starting dockerd (log: $DOCKERD_LOG)"
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  (detach dockerd) >>"$DOCKERD_LOG" 2>&1 </dev/null &
  wait_until 60 "dockerd" docker info || { tail -n 20 "$DOCKERD_LOG" >&2; die "dockerd did not start"; }
}

# --- which cluster ----------------------------------------------------------------------

# A kubectl for talking to clusters: ours once built, else whatever is on PATH.
any_kubectl() {
  if [[ -x "$K8S_BIN/kubectl" ]]; then echo "$K8S_BIN/kubectl"; else command -v kubectl; fi
}

# True when $KUBECONFIG is set, answers, and is not this local cluster.
foreign_cluster() {
  [[ -n "${KUBECONFIG:-}" ]] || return 1
  local k; k=$(any_kubectl) || return 1
  if [[ -f "$PKI/ca.crt" ]]; then
    local ca; ca=$("$k" config view --minify --raw -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}' 2>/dev/null) || true
    [[ "$ca" == "$(base64 -w0 "$PKI/ca.crt")" ]] && return 1
  fi
  "$k" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

# --- phase timing (hack/test.sh, hack/demo.sh) -------------------------------------------
# phase NAME ends the running phase (logging `time: PHASE Ns`) and starts NAME;
# phase_failed closes a phase cut short; phase_table prints every phase and the total.
T0=$SECONDS PHASE="" PHASE_T0=0 TIMES=()

phase() {
  end_phase
  PHASE=$1 PHASE_T0=$SECONDS
  log "phase: $PHASE"
}

end_phase() {
  [[ -n "$PHASE" ]] || return 0
  local took=$((SECONDS - PHASE_T0))
  TIMES+=("$(printf '%-16s %5ss' "$PHASE" "$took")")
  log "time: $PHASE ${took}s"
  PHASE=""
}

phase_failed() {
  [[ -n "$PHASE" ]] || return 0
  log "time: $PHASE $((SECONDS - PHASE_T0))s (failed)"
  TIMES+=("$(printf '%-16s %5ss failed' "$PHASE" "$((SECONDS - PHASE_T0))")")
  PHASE=""
}

phase_table() {
  TIMES+=("$(printf '%-16s %5ss' total "$((SECONDS - T0))")")
  log "time: total $((SECONDS - T0))s"
  printf '  %s\n' "${TIMES[@]}" >&2
}
