#!/usr/bin/env bash
# Build the local cluster's binaries from the Go module proxy and cache them outside the
# checkout, keyed by version: Kubernetes (apiserver, controller-manager, scheduler, proxy,
# kubelet, kubectl), etcd, CoreDNS, helm and the pause binary.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces its staging modules with
# ./staging paths. A wrapper module that requires k8s.io/kubernetes and replaces each
# staging module with its published v0.X.Y release builds it instead.
#
# Usage: hack/build-k8s.sh            build whatever is missing, print the bin dir
# Env:   MODELDEPLOY_CACHE (default ~/.cache/modeldeploy), K8S_VERSION, ETCD_VERSION,
#        COREDNS_VERSION, HELM_VERSION
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_env() {
  export GOMODCACHE="$MD_CACHE/go/mod" GOCACHE="$MD_CACHE/go/build"
  export GOFLAGS="-mod=mod" GOTOOLCHAIN=local CGO_ENABLED=0
  mkdir -p "$GOMODCACHE" "$GOCACHE" "$K8S_BIN" "$ETCD_BIN" "$COREDNS_BIN" "$HELM_BIN"
}

k8s_wrapper() {
  local dir="$MD_CACHE/src/k8s-$K8S_VERSION" kdir minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  local staging="v0.$minor.${K8S_VERSION##*.}"
  if [[ -f "$dir/go.mod" ]]; then echo "$dir"; return; fi
  mkdir -p "$dir"
  kdir=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  python3 - "$kdir/go.mod" "$dir/go.mod" "$K8S_VERSION" "$staging" <<'PY'
import re, sys
src, dst, version, staging = sys.argv[1:]
text = open(src).read()
text = text.replace("module k8s.io/kubernetes", "module modeldeploy.local/k8s-build", 1)
text = re.sub(r"(\S+) => \./staging/src/\S+", lambda m: f"{m.group(1)} => {m.group(1)} {staging}", text)
text += f"\nrequire k8s.io/kubernetes {version}\n"
open(dst, "w").write(text)
PY
  echo "$dir"
}

build_k8s() {
  local dir; dir=$(k8s_wrapper)
  local pkg="k8s.io/component-base/version" cpkg="k8s.io/client-go/pkg/version"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w"
  for p in "$pkg" "$cpkg"; do
    ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl; do
    [[ -x "$K8S_BIN/$cmd" ]] && continue
    log "building $cmd $K8S_VERSION"
    (cd "$dir" && go build -p "${GO_BUILD_P:-2}" -trimpath -tags selinux,notest \
      -ldflags "$ld" -o "$K8S_BIN/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
    mv "$K8S_BIN/$cmd.tmp" "$K8S_BIN/$cmd"
  done
  if [[ ! -x "$K8S_BIN/pause" || ! -f "$K8S_BIN/coredns.yaml.base" ]]; then
    local kdir; kdir=$(cd "$dir" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
    gcc -Os -static -DVERSION="$K8S_VERSION" -o "$K8S_BIN/pause.tmp" "$kdir/build/pause/linux/pause.c"
    mv "$K8S_BIN/pause.tmp" "$K8S_BIN/pause"
    install -m 0644 "$kdir/cluster/addons/dns/coredns/coredns.yaml.base" "$K8S_BIN/coredns.yaml.base"
  fi
}

build_etcd() {
  [[ -x "$ETCD_BIN/etcd" ]] && return
  local dir="$MD_CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  log "building etcd $ETCD_VERSION"
  # etcd's server module replaces its sibling modules with relative paths too: pin each one.
  (cd "$dir" && [[ -f go.mod ]] || { cat > go.mod <<MOD
module modeldeploy.local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
MOD
  printf 'package main\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go; })
  (cd "$dir" && go mod tidy >/dev/null 2>&1 || true
   go build -trimpath -ldflags "-s -w" -o "$ETCD_BIN/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$ETCD_BIN/etcd.tmp" "$ETCD_BIN/etcd"
}

go_install() {  # bin-dir name module@version
  [[ -x "$1/$2" ]] && return
  log "building $2 from $3"
  GOBIN="$1" go install -trimpath -ldflags "-s -w" "$3"
}

main() {
  local start=$SECONDS
  build_env
  build_k8s
  build_etcd
  go_install "$COREDNS_BIN" coredns "github.com/coredns/coredns@$COREDNS_VERSION"
  go_install "$HELM_BIN" helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  log "cluster binaries ready in $((SECONDS - start))s (cached under $MD_CACHE/bin)"
  echo "$CLUSTER_PATH"
}

main "$@"
