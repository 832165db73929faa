#!/usr/bin/env bash
# kubectl matching the cluster: the one built for the local cluster, else the one on PATH.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"
exec "$(any_kubectl)" "$@"
