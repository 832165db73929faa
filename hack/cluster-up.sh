#!/usr/bin/env bash
# Start a single-node Kubernetes cluster on this host: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, a private containerd, kubelet, kube-proxy and
# CoreDNS, from binaries built by hack/build-k8s.sh. A no-op when the cluster is already up;
# recovers from an unclean stop (killed processes, stale mounts, pid files, sockets).
#
# When $KUBECONFIG points at another reachable cluster (kind, a real one), uses that
# instead and starts nothing.
#
# Env: MODELDEPLOY_STATE (default /var/lib/modeldeploy-cluster), MODELDEPLOY_NODE_IP,
#      MODELDEPLOY_API_PORT (6443), MODELDEPLOY_ETCD_PORT (2379),
#      MODELDEPLOY_DNS_UPSTREAM=1 to let CoreDNS forward non-cluster names to the host's
#      resolvers (off: the cluster then sends no DNS traffic off this machine),
#      MODELDEPLOY_KUBE_API_QPS / MODELDEPLOY_KUBE_API_BURST: the client limits of
#      kube-controller-manager and kube-scheduler (--kube-api-qps/--kube-api-burst; their
#      defaults when unset), raised for the scale bench (bench/scale.py).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-clean.sh"

START=$SECONDS

# --- prerequisites ----------------------------------------------------------------------

prepare_host() {
  # Pod volume mounts must propagate into containers; the root mount is private here.
  mount --make-rshared /
  modprobe br_netfilter 2>/dev/null || true
  modprobe overlay 2>/dev/null || true
  sysctl -qw net.ipv4.ip_forward=1
  # Bridged pod traffic must pass iptables for service VIPs to work pod to pod.
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  local port
  for port in "$API_PORT" "$ETCD_PORT" "$((ETCD_PORT + 1))" 10248 10249 10250 10256 10257 10259; do
    if ss -Htln "sport = :$port" | grep -q .; then die "port $port is in use on this host"; fi
  done
}

# --- certificates and kubeconfigs -------------------------------------------------------

mk_key() { [[ -f "$1" ]] || openssl genrsa -out "$1" 2048 2>/dev/null; }

# mk_cert NAME CN ORG EKU [SANS]: a leaf certificate signed by the cluster CA.
mk_cert() {
  local name=$1 cn=$2 org=$3 eku=$4 san=${5:-} ext
  mk_key "$PKI/$name.key"
  ext=$(mktemp)
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -z "$san" ]] || echo "subjectAltName=$san"
  } >"$ext"
  openssl req -new -key "$PKI/$name.key" -subj "/CN=$cn${org:+/O=$org}" |
    openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 3650 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$ext"
}

# write_kubeconfig FILE CERT-NAME: a kubeconfig with the cert embedded (portable file).
write_kubeconfig() {
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modeldeploy
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: modeldeploy
  context:
    cluster: modeldeploy
    user: $2
current-context: modeldeploy
EOF
  chmod 600 "$1"
}

# Certificates are kept across restarts; the serving certs are remade when the node's
# address or name changed (a new machine with an old state dir).
make_pki() {
  local ip=$1 id="$1 $NODE_NAME $API_PORT"
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  if [[ ! -f "$PKI/ca.crt" ]]; then
    log "creating certificates in $PKI"
    mk_key "$PKI/ca.key"
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=modeldeploy-ca" -days 3650 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$PKI/ca.crt"
    mk_key "$PKI/sa.key"
    openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
    mk_cert admin kubernetes-admin system:masters clientAuth
    mk_cert controller-manager system:kube-controller-manager "" clientAuth
    mk_cert scheduler system:kube-scheduler "" clientAuth
    mk_cert kube-proxy system:kube-proxy "" clientAuth
    mk_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters clientAuth
  fi
  # Front-proxy (request header) CA: aggregated APIs, and the controller-manager's and
  # scheduler's delegated authentication expect it. A CA of its own, as kubeadm does.
  if [[ ! -f "$PKI/front-proxy-ca.crt" ]]; then
    mk_key "$PKI/front-proxy-ca.key"
    openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=modeldeploy-front-proxy-ca" -days 3650 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$PKI/front-proxy-ca.crt"
    mk_key "$PKI/front-proxy-client.key"
    openssl req -new -key "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" |
      openssl x509 -req -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 3650 -out "$PKI/front-proxy-client.crt" \
        -extfile <(printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n') 2>/dev/null
  fi
  if [[ "$(cat "$PKI/serving.id" 2>/dev/null)" != "$id" ]]; then
    mk_cert apiserver kube-apiserver "" serverAuth \
      "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,DNS:$NODE_NAME,IP:127.0.0.1,IP:$ip,IP:$API_SERVICE_IP"
    mk_cert kubelet "system:node:$NODE_NAME" system:nodes serverAuth,clientAuth \
      "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$ip"
    echo "$id" >"$PKI/serving.id"
  fi
  local n
  for n in admin controller-manager scheduler kube-proxy kubelet; do
    write_kubeconfig "$STATE/$n.kubeconfig" "$n"
  done
  cp "$STATE/admin.kubeconfig" "$KUBECONFIG_LOCAL"
}

# --- node configuration -----------------------------------------------------------------

write_node_configs() {
  local ip=$1
  mkdir -p "$CTRD_DIR" "$STATE/cni/net.d" "$STATE/kubelet" "$STATE/pod-logs"
  # containerd: private root/state/socket; CRI settings tested on these VMs (see
  # shared research notes): no CAP_SYS_RESOURCE, so restrict oom_score_adj.
  cat >"$CTRD_DIR/config.toml" <<EOF
version = 2
root = "$CTRD_DIR/root"
state = "$CTRD_DIR/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CTRD_SOCK"

[ttrpc]
  address = "$CTRD_SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD_DIR/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(ctr_ref "$PAUSE_IMAGE")"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$STATE/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  # firewall: dockerd sets the FORWARD policy to DROP; this plugin lets pod traffic through.
  cat >"$STATE/cni/net.d/10-$CNI_NET.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$CNI_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$STATE/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall"}
  ]
}
EOF
  # Image GC 100/99: containerd 1.6 does not report the pause image as pinned, so any GC
  # would delete it and no registry could give it back.
  cat >"$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
containerRuntimeEndpoint: unix://$CTRD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: /etc/resolv.conf
podLogsDir: $STATE/pod-logs
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
serializeImagePulls: false
EOF
  cat >"$STATE/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $STATE/kube-proxy.kubeconfig
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
}

# --- components -------------------------------------------------------------------------

curl_api() { curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://127.0.0.1:$API_PORT$1"; }

start_etcd() {
  start_daemon etcd etcd --name modeldeploy --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "modeldeploy=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --listen-metrics-urls "" --unsafe-no-fsync --log-level warn
  wait_daemon etcd 60 curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  local ip=$1
  start_daemon kube-apiserver kube-apiserver \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --advertise-address "$ip" --bind-address 0.0.0.0 --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
    --authorization-mode Node,RBAC --allow-privileged=true --profiling=false
  wait_daemon kube-apiserver 120 curl_api /readyz
}

# The control plane's own client limits, only when asked for: the defaults (QPS 20/50,
# burst 30/100) throttle it long before 2 cores do once thousands of fake pods exist.
client_limits() {
  [[ -n "${MODELDEPLOY_KUBE_API_QPS:-}" ]] && echo "--kube-api-qps=$MODELDEPLOY_KUBE_API_QPS"
  [[ -n "${MODELDEPLOY_KUBE_API_BURST:-}" ]] && echo "--kube-api-burst=$MODELDEPLOY_KUBE_API_BURST"
  return 0
}

start_controllers() {
  local limits; mapfile -t limits < <(client_limits)
  start_daemon kube-controller-manager kube-controller-manager \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials=true --service-cluster-ip-range "$SERVICE_CIDR" \
    --profiling=false "${limits[@]}"
  start_daemon kube-scheduler kube-scheduler \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false "${limits[@]}"
  wait_daemon kube-controller-manager 60 curl -fsSk --max-time 2 https://127.0.0.1:10257/healthz
  wait_daemon kube-scheduler 60 curl -fsSk --max-time 2 https://127.0.0.1:10259/healthz
}

start_containerd() {
  start_daemon containerd containerd --config "$CTRD_DIR/config.toml"
  wait_daemon containerd 60 lctr version
  # Metadata of containers whose processes died with an unclean stop.
  purge_containers
  local tar ref
  for tar in $(infra_image_tars); do
    ref=$(tar -xOf "$tar" manifest.json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["RepoTags"][0])')
    lctr images ls -q | grep -qxF "$(ctr_ref "$ref")" || lctr images import "$tar" >/dev/null
  done
}

node_ready() {
  [[ "$(kctl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

start_kubelet() {
  local ip=$1
  start_daemon kubelet kubelet --config "$STATE/kubelet-config.yaml" \
    --kubeconfig "$STATE/kubelet.kubeconfig" --root-dir "$STATE/kubelet" \
    --hostname-override "$NODE_NAME" --node-ip "$ip"
  wait_daemon kubelet 60 curl -fsS --max-time 2 http://127.0.0.1:10248/healthz
  wait_daemon kubelet 120 node_ready
}

start_proxy() {
  start_daemon kube-proxy kube-proxy --config "$STATE/kube-proxy-config.yaml"
  wait_daemon kube-proxy 60 curl -fsS --max-time 2 http://127.0.0.1:10256/healthz
}

# A connection to a Service IP must end on this node: DNATed to an endpoint by kube-proxy, or
# refused. Two ways it left by the default route instead, where whatever answers there (this
# machine's transparent egress proxy answers HTTP 404 and keeps the connection) answered for
# the Service: (1) kube-proxy refuses a Service without ready endpoints with a REJECT in the
# filter chain KUBE-SERVICES, jumped to from FORWARD, but the CNI firewall plugin's per-pod
# ACCEPT came first; (2) a Service IP kube-proxy has not programmed yet (the second after the
# Service is created) is not DNATed at all, and nothing refused it. The firewall plugin puts
# its jump to CNI-FORWARD at the top of FORWARD when the first pod starts (after cluster-up,
# on a new cluster), so a rule put at the top before then ends up behind it; but CNI-FORWARD's
# first rule jumps to the plugin's admin chain CNI-ADMIN, which the plugin creates only when
# missing and never flushes. So CNI-ADMIN gets kube-proxy's verdict, then a REJECT of whatever
# is still addressed to the Service range; OUTPUT (the host's own connections) gets the same
# REJECT after kube-proxy's jump. Idempotent (cluster-up on a running cluster checks it); it
# also removes the FORWARD rule an earlier version put there. cluster-clean removes them all.
reject_before_cni_accepts() {
  local chain tag="modeldeploy: a Service IP is DNATed on this node or refused"
  local verdict=(-m conntrack --ctstate NEW -m comment --comment "$tag" -j KUBE-SERVICES)
  local refuse=(-d "$SERVICE_CIDR" -m conntrack --ctstate NEW -m comment --comment "$tag" -j REJECT)
  for chain in KUBE-SERVICES CNI-ADMIN; do iptables -w -N "$chain" 2>/dev/null || true; done
  iptables -w -C CNI-ADMIN "${verdict[@]}" 2>/dev/null || iptables -w -I CNI-ADMIN 1 "${verdict[@]}"
  iptables -w -C CNI-ADMIN "${refuse[@]}" 2>/dev/null || iptables -w -I CNI-ADMIN 2 "${refuse[@]}"
  iptables -w -C OUTPUT "${refuse[@]}" 2>/dev/null || iptables -w -A OUTPUT "${refuse[@]}"
  local old=(-m conntrack --ctstate NEW -m comment --comment "modeldeploy: kube-proxy rejects before CNI accepts" -j KUBE-SERVICES)
  while iptables -w -D FORWARD "${old[@]}" 2>/dev/null; do :; done
}

# The Available condition is no use here: with one replica and maxUnavailable 1 it is True
# before any pod is ready.
coredns_available() {
  [[ "$(kctl -n kube-system get deployment coredns -o 'jsonpath={.status.availableReplicas}' 2>/dev/null)" -ge 1 ]]
}

# CoreDNS from the template shipped with Kubernetes, with our image. Without
# MODELDEPLOY_DNS_UPSTREAM=1 it answers cluster names only (no forward, so no loop check).
deploy_coredns() {
  python3 - "$K8S_BIN/coredns.yaml.base" "$CLUSTER_DOMAIN" "$DNS_IP" "$(ctr_ref "$COREDNS_IMAGE")" \
    "${MODELDEPLOY_DNS_UPSTREAM:-0}" <<'PY' | kctl apply -f - >/dev/null
import re, sys
path, domain, ip, image, upstream = sys.argv[1:]
text = open(path).read()
text = text.replace("__DNS__DOMAIN__", domain).replace("__DNS__SERVER__", ip)
text = text.replace("__DNS__MEMORY__LIMIT__", "170Mi")
text = re.sub(r"image: \S*coredns\S*", f"image: {image}", text)
if upstream != "1":
    text = re.sub(r"\n\s*forward \. /etc/resolv\.conf \{[^}]*\}", "", text)
    text = re.sub(r"\n\s*loop\n", "\n", text)
print(text)
PY
  wait_until 180 "CoreDNS to become available" coredns_available ||
    { kctl -n kube-system get pods -o wide >&2 || true; die "CoreDNS is not available"; }
}

# --- main -------------------------------------------------------------------------------

cluster_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_of "$c" >/dev/null || return 1; done
  curl_api /readyz >/dev/null 2>&1 || return 1
  node_ready && coredns_available
}

print_usage() {
  echo "Cluster is up. Use it with:"
  echo "  export KUBECONFIG=$KUBECONFIG_LOCAL"
  echo "  (or: eval \"\$(hack/cluster-env.sh)\"; kubectl: $K8S_BIN/kubectl)"
}

main() {
  if foreign_cluster; then
    log "KUBECONFIG=$KUBECONFIG points at a reachable cluster that is not the local one: using it, starting nothing"
    exit 0
  fi
  [[ $EUID -eq 0 ]] || die "must run as root"
  bash "$HACK_DIR/install-host-deps.sh"
  ensure_binaries
  mkdir -p "$STATE"
  # Serialise up/down runs on this state dir.
  exec 9>"$STATE/.lock"
  flock 9
  if cluster_healthy; then
    reject_before_cni_accepts
    log "cluster already up (nothing to do; $(since "$START"))"
    print_usage
    exit 0
  fi
  local t=$SECONDS ip
  log "cleaning up leftovers of any previous run"
  cluster_clean
  log "cleanup done in $(since "$t")"
  prepare_host
  ip=$(node_ip)
  make_pki "$ip"
  write_node_configs "$ip"
  t=$SECONDS; start_etcd; log "etcd ready in $(since "$t")"
  t=$SECONDS; start_apiserver "$ip"; log "kube-apiserver ready in $(since "$t")"
  t=$SECONDS; start_controllers; log "controller-manager and scheduler ready in $(since "$t")"
  t=$SECONDS; start_containerd; log "containerd ready in $(since "$t")"
  t=$SECONDS; start_kubelet "$ip"; log "kubelet up, node $NODE_NAME Ready in $(since "$t")"
  t=$SECONDS; start_proxy; reject_before_cni_accepts; log "kube-proxy ready in $(since "$t")"
  t=$SECONDS; deploy_coredns; log "CoreDNS available in $(since "$t")"
  log "cluster started in $(since "$START") (node $NODE_NAME, $ip; logs in $LOG_DIR)"
  print_usage
}

main "$@"
