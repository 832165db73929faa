#!/usr/bin/env bash
# Build what a kind cluster needs on a machine that reaches no container registry, cached
# outside the checkout, and print the node image's reference on stdout:
#   - kind itself, `go install sigs.k8s.io/kind@$KIND_VERSION`   ($KIND_BIN/kind)
#   - crictl, `go install sigs.k8s.io/cri-tools/cmd/crictl`        ($CRICTL_BIN/crictl)
#   - kubeadm, from the same wrapper module as the cluster's other binaries ($K8S_BIN)
#   - a kind node image, $KIND_NODE_REPO:$K8S_VERSION-<hash of every input>.
#
# `kind build node-image` cannot work here: it pulls etcd, CoreDNS, pause, kindnetd and
# local-path images from registries (sigs.k8s.io/kind pkg/build/nodeimage/buildcontext.go).
# This script does its steps by hand:
#   1. a Debian bookworm rootfs from debootstrap with the packages of kind's base image
#      (images/base/Dockerfile in the kind module: systemd, iptables, ...), Debian's
#      containerd 1.6, runc and CNI plugins instead of kind's own builds;
#   2. kind's base-image files from the module (entrypoint, systemd units, containerd
#      config, /kind/bin), its Dockerfile's systemd clean-up, kubeadm/kubelet/kubectl in
#      /usr/bin, crictl, /kind/version, the host's CA bundle (egress here is TLS-intercepted);
#   3. the images `kubeadm config images list` names, made from the cached binaries under
#      exactly those tags (etcd is the project's $ETCD_VERSION build under kubeadm's etcd tag),
#      imported into the node's containerd as kind does: containerd run in a build container,
#      `ctr images import --no-unpack`, `docker commit`;
#      kube-proxy's image also holds iptables (legacy and nft, taken from the node's rootfs)
#      and a wrapper that picks the backend the node uses, as upstream's image does;
#   4. no kindnetd (a nested Go module, not on the module proxy): a baked ptp CNI config
#      for the one node's pod range, so clusters are made with `disableDefaultCNI: true`
#      (hack/kind-up.sh does);
#   5. an entrypoint before kind's that makes the node work where docker cannot run it
#      --privileged (hack/kind-lib.sh: kind_docker_shim), a no-op elsewhere.
# Each phase logs its time. A second run with the same inputs finds everything and takes
# about a second.
#
# Env: KIND_VERSION, CRICTL_VERSION, K8S_VERSION, ETCD_VERSION, COREDNS_VERSION,
#      MODELDEPLOY_CACHE, MODELDEPLOY_DEBIAN_MIRROR, MODELDEPLOY_KIND_NODE_REPO.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/kind-lib.sh"

SUITE=bookworm
# kind's base image packages (kind's Dockerfile), less the storage-test ones (nfs-common,
# open-iscsi, e2fsprogs) and fuse-overlayfs (rootless only); Debian's containerd, runc and
# CNI plugins in place of kind's builds; busybox-static for the kube-proxy image's wrapper.
PACKAGES=(systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz
  bash ca-certificates curl jq procps socat containerd runc containernetworking-plugins busybox-static)
HOST_CA=/etc/ssl/certs/ca-certificates.crt
KIND_SRC="$MD_CACHE/go/mod/sigs.k8s.io/kind@$KIND_VERSION"

go_env() {
  export GOMODCACHE="$MD_CACHE/go/mod" GOCACHE="$MD_CACHE/go/build"
  export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
}

# phase NAME COMMAND...: run it and log how long it took.
phase() {
  local name=$1 t=$SECONDS
  shift
  "$@"
  log "phase $name: $(since "$t")"
}

# --- binaries ---------------------------------------------------------------------------

build_kind() {
  [[ -x "$KIND_BIN/kind" && -d "$KIND_SRC/images/base/files" ]] && return 0
  go_env
  mkdir -p "$KIND_BIN"
  log "building kind $KIND_VERSION from the Go module proxy"
  GOBIN="$KIND_BIN" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
  # The module's files (images/base/files) are the node image's; install leaves them in GOMODCACHE.
  go mod download "sigs.k8s.io/kind@$KIND_VERSION"
}

build_crictl() {
  [[ -x "$CRICTL_BIN/crictl" ]] && return 0
  go_env
  mkdir -p "$CRICTL_BIN"
  log "building crictl $CRICTL_VERSION from the Go module proxy"
  GOBIN="$CRICTL_BIN" go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

# kubeadm, built like hack/build-k8s.sh builds the other Kubernetes binaries (same wrapper
# module, tags and version ldflags), into the same cache directory.
build_kubeadm() {
  ensure_binaries
  [[ -x "$K8S_BIN/kubeadm" ]] && return 0
  go_env
  local dir="$MD_CACHE/src/k8s-$K8S_VERSION" minor p ld="-s -w"
  [[ -f "$dir/go.mod" ]] || die "no wrapper module at $dir (hack/build-k8s.sh makes it)"
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  exec 7>"$MD_CACHE/build.lock"
  flock 7
  if [[ ! -x "$K8S_BIN/kubeadm" ]]; then
    log "building kubeadm $K8S_VERSION"
    (cd "$dir" && go build -p "${GO_BUILD_P:-2}" -trimpath -tags selinux,notest -ldflags "$ld" \
      -o "$K8S_BIN/kubeadm.tmp" k8s.io/kubernetes/cmd/kubeadm)
    mv "$K8S_BIN/kubeadm.tmp" "$K8S_BIN/kubeadm"
  fi
  exec 7>&-
}

# --- the node's root filesystem ---------------------------------------------------------

# The host's own Debian mirror (as images/base/build.sh picks it).
mirror() {
  if [[ -n "${MODELDEPLOY_DEBIAN_MIRROR:-}" ]]; then echo "$MODELDEPLOY_DEBIAN_MIRROR"; return; fi
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '/^URIs:/ && $2 !~ /security/ {print $2; exit} /^deb / && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}')
  echo "${m:-http://deb.debian.org/debian}"
}

rootfs_key() { echo "$SUITE minbase ${PACKAGES[*]} $(mirror)" | sha256sum | cut -c1-12; }
rootfs_tarball() { echo "$MD_CACHE/images/kind-node-rootfs-$SUITE-$(rootfs_key).tar"; }

# Unmount whatever is mounted below $1 (debootstrap may leave proc and sys).
unmount_below() {
  local m
  awk -v s="$1/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

cleanup_dir() {
  [[ -d "$1" ]] || return 0
  unmount_below "$1"
  rm -rf --one-file-system "$1"
}

# The debootstrapped rootfs as a tarball, cached: the slow, network-bound part.
build_rootfs() {
  local tarball; tarball=$(rootfs_tarball)
  [[ -f "$tarball" ]] && return 0
  local dir="$MD_CACHE/tmp/kind-rootfs-$(rootfs_key)" include
  include=$(IFS=,; echo "${PACKAGES[*]}")
  cleanup_dir "$dir"
  mkdir -p "$dir" "$MD_CACHE/images"
  log "debootstrap $SUITE minbase (+${#PACKAGES[@]} packages) from $(mirror)"
  debootstrap --variant=minbase --include="$include" "$SUITE" "$dir" "$(mirror)" >"$MD_CACHE/images/kind-debootstrap.log" 2>&1 ||
    { tail -n 20 "$MD_CACHE/images/kind-debootstrap.log" >&2; cleanup_dir "$dir"; die "debootstrap failed"; }
  unmount_below "$dir"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log
  tar --numeric-owner -C "$dir" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  cleanup_dir "$dir"
  log "node rootfs: $(du -h "$tarball" | cut -f1)"
}

# kind's images/base/Dockerfile, its COPY and RUN steps, on the unpacked rootfs $1.
install_kind_files() {
  local r=$1 f="$KIND_SRC/images/base/files"
  install -m 0755 "$f"/usr/local/bin/* "$r/usr/local/bin/"
  mkdir -p "$r/kind/bin" "$r/LICENSES"
  install -m 0644 "$f/kind/README.txt" "$r/kind/"
  install -m 0755 "$f"/kind/bin/* "$r/kind/bin/"
  install -m 0644 "$f"/LICENSES/* "$r/LICENSES/"
  install -m 0644 "$f/etc/crictl.yaml" "$r/etc/"
  install -D -m 0644 "$f/etc/containerd/config.toml" "$r/etc/containerd/config.toml"
  install -D -m 0644 "$f/etc/default/kubelet" "$r/etc/default/kubelet"
  install -m 0644 "$f"/etc/sysctl.d/* "$r/etc/sysctl.d/"
  install -m 0644 "$f"/etc/systemd/system/*.service "$f"/etc/systemd/system/*.slice "$r/etc/systemd/system/"
  install -D -m 0644 -t "$r/etc/systemd/system/kubelet.service.d" "$f"/etc/systemd/system/kubelet.service.d/*
  chmod 0755 "$r/kind" "$r/kind/bin"
  # The Dockerfile's clean-up: only what kind enables below runs at boot.
  find "$r/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
    "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
    "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$r/sbin/init"
  chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$r" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  mkdir -p "$r/etc/kubernetes/manifests"
}

# Debian's containerd where kind's unit and config expect kind's build; the sandbox image
# is the pause tag kubeadm names; Debian's CNI plugins where containerd looks for them.
configure_runtime() {
  local r=$1 pause=$2
  ln -sf /usr/bin/containerd "$r/usr/local/bin/containerd"
  sed -i "s#^\(\s*sandbox_image = \).*#\1\"$pause\"#" "$r/etc/containerd/config.toml"
  grep -qF "sandbox_image = \"$pause\"" "$r/etc/containerd/config.toml" || die "could not set sandbox_image in kind's containerd config"
  mkdir -p "$r/opt/cni" "$r/etc/cni/net.d"
  ln -sfn /usr/lib/cni "$r/opt/cni/bin"
  # kindnetd's own config, minus kindnetd: ptp links, host-local addresses from the node's
  # range, masquerade off the pod range. One node: no routes to other nodes are needed.
  cat >"$r/etc/cni/net.d/10-kind-ptp.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "kind-ptp",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": true,
      "mtu": 1500,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": "$KIND_NODE_POD_CIDR"}]]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# Runs before kind's entrypoint. A node docker started without --privileged (hack/kind-lib.sh's
# docker shim, where the capability bounding set is smaller than --privileged asks for)
# gets its cgroup mounts read-only and lacks CAP_SYS_RESOURCE: make the mounts writable as
# --privileged would, and have containerd keep pods' oom_score_adj at or above its own, as
# kind's entrypoint does in a user namespace. A no-op in a --privileged node.
install_node_entrypoint() {
  cat >"$1/usr/local/bin/modeldeploy-entrypoint" <<'EOF'
#!/bin/bash
set -o errexit -o nounset -o pipefail
for m in $(findmnt -rn -O ro -t cgroup,cgroup2 -o TARGET); do
  echo "INFO: remounting $m read-write" >&2
  mount -o remount,bind,rw "$m"
done
if ! (( (16#$(awk '/^CapEff:/ {print $2}' /proc/self/status) >> 24) & 1 )); then
  echo "INFO: no CAP_SYS_RESOURCE: containerd restricts oom_score_adj" >&2
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml
fi
exec "$@"
EOF
  chmod 0755 "$1/usr/local/bin/modeldeploy-entrypoint"
}

install_kubernetes() {
  local r=$1 b
  for b in kubeadm kubelet kubectl; do install -m 0755 "$K8S_BIN/$b" "$r/usr/bin/$b"; done
  install -m 0755 "$CRICTL_BIN/crictl" "$r/usr/local/bin/crictl"
  printf '%s' "$K8S_VERSION" >"$r/kind/version"
  # Egress from this machine is TLS-intercepted: the node trusts the host's CAs too.
  cp "$HOST_CA" "$r/etc/ssl/certs/ca-certificates.crt"
  cp "$HOST_CA" "$r/usr/local/share/ca-certificates/modeldeploy-host-bundle.crt"
  : >"$r/etc/machine-id"  # the entrypoint makes one per node
}

# --- the control-plane images -----------------------------------------------------------

# copy_from_rootfs ROOTFS STAGE PATH: PATH of the rootfs into STAGE at its canonical (merged
# /usr) location, a symlink at PATH's own name when that differs.
copy_from_rootfs() {
  local r=$1 s=$2 p=$3 real link
  real=$(chroot "$r" realpath "$p")
  link="$(chroot "$r" realpath "$(dirname "$p")")/$(basename "$p")"
  mkdir -p "$s$(dirname "$real")"
  cp -a "$r$real" "$s$real"
  if [[ "$link" != "$real" ]]; then mkdir -p "$s$(dirname "$link")"; ln -sfn "$real" "$s$link"; fi
}

# The shared libraries a dynamic ELF file of the rootfs loads (its loader included).
elf_deps() {
  chroot "$1" /lib64/ld-linux-x86-64.so.2 --list "$2" |
    awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
}

# kube-proxy's iptables mode needs iptables in its image (upstream: distroless-iptables).
# Only what it runs is taken from the node's rootfs: iptables (legacy and nft), conntrack,
# their libraries, and a busybox shell for the wrapper that picks the node's backend.
stage_kube_proxy() {
  local r=$1 s=$2 f d
  mkdir -p "$s"/usr/{bin,sbin,lib,lib64,local/bin} "$s"/{etc,run,tmp,var}
  for d in bin sbin lib lib64; do ln -s "usr/$d" "$s/$d"; done
  install -m 0755 "$K8S_BIN/kube-proxy" "$s/usr/local/bin/kube-proxy"
  local dynamic=(/usr/sbin/xtables-legacy-multi /usr/sbin/xtables-nft-multi /usr/sbin/conntrack)
  for f in "$r"/usr/lib/x86_64-linux-gnu/xtables/*.so; do dynamic+=("${f#"$r"}"); done
  {
    printf '%s\n' "${dynamic[@]}"
    for f in "${dynamic[@]}"; do elf_deps "$r" "$f"; done
  } | sort -u | while read -r f; do copy_from_rootfs "$r" "$s" "$f"; done
  copy_from_rootfs "$r" "$s" /usr/bin/busybox
  for f in sh grep ln wc; do ln -s busybox "$s/usr/bin/$f"; done
  for f in /etc/protocols /etc/services /etc/ethertypes; do [[ -e "$r$f" ]] && cp "$r$f" "$s$f"; done
  for f in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
    ln -s "xtables-legacy-multi" "$s/usr/sbin/${f/tables/tables-legacy}"
    ln -s "xtables-nft-multi" "$s/usr/sbin/${f/tables/tables-nft}"
    ln -s iptables-wrapper "$s/usr/sbin/$f"
  done
  # After kubernetes-sigs/iptables-wrappers: the backend kubelet's KUBE-IPTABLES-HINT chain
  # is in, else the one holding more rules (the node's entrypoint chose it the same way).
  cat >"$s/usr/sbin/iptables-wrapper" <<'EOF'
#!/bin/sh
if xtables-nft-multi iptables-save -t mangle 2>/dev/null | grep -q KUBE-IPTABLES-HINT; then mode=nft
elif xtables-legacy-multi iptables-save -t mangle 2>/dev/null | grep -q KUBE-IPTABLES-HINT; then mode=legacy
else
  legacy=$( (xtables-legacy-multi iptables-save; xtables-legacy-multi ip6tables-save) 2>/dev/null | grep -c '^-')
  nft=$( (xtables-nft-multi iptables-save; xtables-nft-multi ip6tables-save) 2>/dev/null | grep -c '^-')
  if [ "$legacy" -ge "$nft" ]; then mode=legacy; else mode=nft; fi
fi
for cmd in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf "xtables-$mode-multi" "/usr/sbin/$cmd"
done
exec "$0" "$@"
EOF
  chmod 0755 "$s/usr/sbin/iptables-wrapper"
}

# dir_image_tar OUT.tar REF ENTRYPOINT DIR: a docker-save archive of a one-layer image of
# DIR (symlinks kept, root-owned, fixed mtimes), like cluster-lib.sh's mk_image_tar.
dir_image_tar() {
  python3 - "$@" <<'PY'
import hashlib, io, json, os, sys, tarfile
out, ref, entry, root = sys.argv[1:]

def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))

layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            info = t.gettarinfo(path, os.path.relpath(path, root))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isfile():
                with open(path, "rb") as f:
                    t.addfile(info, f)
            else:
                t.addfile(info)
layer = layer.getvalue()
diff = hashlib.sha256(layer).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
    "config": {"Entrypoint": [entry], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff}"]},
    "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/kind-build.sh dir_image_tar"}],
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

# The archives of every image kubeadm names, under its exact tags, in directory $2.
control_plane_images() {
  local r=$1 out=$2 ref name
  mkdir -p "$out"
  while read -r ref; do
    name=${ref##*/}; name=${name%%:*}
    case "$name" in
      kube-apiserver | kube-controller-manager | kube-scheduler)
        mk_image_tar "$out/$name.tar" "$ref" "/$name" "$K8S_BIN/$name" ;;
      kube-proxy)
        stage_kube_proxy "$r" "$out/kube-proxy-root"
        dir_image_tar "$out/$name.tar" "$ref" /usr/local/bin/kube-proxy "$out/kube-proxy-root"
        rm -rf "$out/kube-proxy-root" ;;
      etcd) mk_image_tar "$out/$name.tar" "$ref" /etcd "$ETCD_BIN/etcd" ;;
      coredns) mk_image_tar "$out/$name.tar" "$ref" /coredns "$COREDNS_BIN/coredns" ;;
      pause) mk_image_tar "$out/$name.tar" "$ref" /pause "$K8S_BIN/pause" ;;
      *) die "kubeadm names an image this script cannot build: $ref" ;;
    esac
  done < <(kubeadm_images)
}

kubeadm_images() { "$K8S_BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null; }

# --- the node image ---------------------------------------------------------------------

# Everything the image is made of: a change to any of it gives a new tag.
node_image_ref() {
  local key
  key=$( {
    echo "$(rootfs_key) $KIND_VERSION $K8S_VERSION $ETCD_VERSION $COREDNS_VERSION $CRICTL_VERSION $KIND_NODE_POD_CIDR"
    sha256sum "$HOST_CA" "${BASH_SOURCE[0]}" | cut -d" " -f1
    stat -c '%n %s %Y' "$K8S_BIN"/{kubeadm,kubelet,kubectl,kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy,pause} \
      "$ETCD_BIN/etcd" "$COREDNS_BIN/coredns" "$CRICTL_BIN/crictl"
  } | sha256sum | cut -c1-12)
  echo "$KIND_NODE_REPO:$K8S_VERSION-$key"
}

# In a container of the unfinished image, as `kind build node-image` does: the runtime
# spec kind's containerd config names, then the images imported into the node's own
# containerd (not unpacked: the node's containerd unpacks them on first use).
import_images() {
  local build=$1 tag=$2 images=$3 cid ref
  cid=$(docker run -d --entrypoint sleep --security-opt seccomp=unconfined -v "$images:/mnt:ro" "$build" infinity)
  BUILD_CONTAINER=$cid
  docker exec "$cid" bash -c "ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}' | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json"
  docker exec "$cid" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
  wait_until 30 "containerd in the build container" docker exec "$cid" ctr version ||
    { docker exec "$cid" cat /tmp/containerd.log >&2; die "containerd did not start in the build container"; }
  local tar
  for tar in "$images"/*.tar; do
    docker exec "$cid" ctr -n k8s.io images import --all-platforms --no-unpack --digests "/mnt/${tar##*/}" >/dev/null
  done
  local have; have=$(docker exec "$cid" ctr -n k8s.io images ls -q)
  while read -r ref; do
    grep -qxF "$ref" <<<"$have" || die "$ref missing from the node's containerd after the import"
  done < <(kubeadm_images)
  docker exec "$cid" pkill containerd
  # Stopped once only a zombie is left (sleep, the container's PID 1, reaps nothing).
  wait_until 30 "containerd to stop" docker exec "$cid" sh -c '! ps -C containerd -o stat= | grep -qv Z'
  docker exec "$cid" rm -rf /tmp/containerd.log /var/log/containerd
  docker commit "$cid" "$build-committed" >/dev/null
  docker rm -f -v "$cid" >/dev/null
  BUILD_CONTAINER=
  # What kind's Dockerfile ends with (commit cannot set STOPSIGNAL): systemd learns it is in
  # a container and stops on SIGRTMIN+3; kind's entrypoint (after ours) runs before it.
  local out
  out=$(printf '%s\n' "FROM $build-committed" "ENV container=docker" "STOPSIGNAL SIGRTMIN+3" \
    'ENTRYPOINT ["/usr/local/bin/modeldeploy-entrypoint", "/usr/local/bin/entrypoint", "/sbin/init"]' | docker build -q -t "$tag" - 2>&1) ||
    { echo "$out" >&2; die "docker build of $tag failed"; }
  docker rmi "$build-committed" >/dev/null
}

BUILD_CONTAINER=
build_node_image() {
  local tag=$1 work="$MD_CACHE/tmp/kind-node" r t pause
  cleanup_dir "$work"
  mkdir -p "$work/rootfs"
  r="$work/rootfs"
  local build="$KIND_NODE_REPO-build:${tag##*:}"
  # shellcheck disable=SC2064
  trap "[[ -z \$BUILD_CONTAINER ]] || docker rm -f -v \$BUILD_CONTAINER >/dev/null 2>&1; docker rmi $build $build-committed >/dev/null 2>&1; cleanup_dir '$work'" EXIT
  t=$SECONDS
  tar --numeric-owner -C "$r" -xpf "$(rootfs_tarball)"
  pause=$(kubeadm_images | grep '/pause:') || die "kubeadm names no pause image"
  install_kind_files "$r"
  configure_runtime "$r" "$pause"
  install_kubernetes "$r"
  install_node_entrypoint "$r"
  log "phase node rootfs (kind files, Kubernetes binaries): $(since "$t")"
  t=$SECONDS
  control_plane_images "$r" "$work/images"
  log "phase control-plane images ($(kubeadm_images | wc -l) archives): $(since "$t")"
  # Docker builds and imports take the project's images lock, so that they never collide.
  exec 8>"$IMAGES_LOCK"
  flock -n 8 || { log "waiting for $IMAGES_LOCK (another image build)"; flock 8; }
  t=$SECONDS
  tar --numeric-owner -C "$r" -c . | docker import - "$build" >/dev/null
  log "phase docker import of the rootfs: $(since "$t")"
  t=$SECONDS
  import_images "$build" "$tag" "$work/images"
  docker rmi "$build" >/dev/null
  log "phase images into the node's containerd, docker commit: $(since "$t")"
  exec 8>&-
  cleanup_dir "$work"
  trap - EXIT
}

# Node images of earlier inputs (about 1 GB each), unless a container still uses one.
remove_old_node_images() {
  local ref
  # `|| true`: no other image (the first build on a machine) is no error under pipefail.
  docker image ls --format '{{.Repository}}:{{.Tag}}' "$KIND_NODE_REPO" | { grep -vxF "$1" || true; } |
    while read -r ref; do
      if [[ -z "$(docker ps -aq --filter "ancestor=$ref")" ]]; then
        docker rmi "$ref" >/dev/null 2>&1 && log "removed the old node image $ref" || true
      fi
    done
}

main() {
  local start=$SECONDS tag
  [[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot)"
  mkdir -p "$MD_CACHE" "$KIND_DIR"
  # One build at a time per cache.
  exec 6>"$KIND_DIR/build.lock"
  flock 6
  phase "kind $KIND_VERSION" build_kind
  phase "crictl $CRICTL_VERSION" build_crictl
  phase "kubeadm $K8S_VERSION" build_kubeadm
  ensure_dockerd
  tag=$(node_image_ref)
  if docker image inspect "$tag" >/dev/null 2>&1; then
    log "node image $tag: cached ($(since "$start"))"
  else
    command -v debootstrap >/dev/null || die "debootstrap missing: run hack/install-host-deps.sh"
    phase "debootstrap rootfs" build_rootfs
    phase "node image $tag" build_node_image "$tag"
    remove_old_node_images "$tag"
    log "kind $KIND_VERSION and node image $tag built in $(since "$start")"
  fi
  echo "$tag"
}

# Sourced (tests/unit/test_cluster_scripts.py), it only defines its functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
