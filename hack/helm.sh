#!/usr/bin/env bash
# helm $HELM_VERSION: the one on PATH when it is that version, else the cached build
# (hack/build-k8s.sh builds it with the cluster; built here alone when missing).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if command -v helm >/dev/null && [[ "$(helm version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]; then
  exec helm "$@"
fi
if [[ ! -x "$HELM_BIN/helm" ]]; then
  echo "building helm $HELM_VERSION from the Go module proxy into $HELM_BIN" >&2
  GOBIN="$HELM_BIN" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
fi
exec "$HELM_BIN/helm" "$@"
