#!/usr/bin/env bash
# Build every image the project needs, locally with docker (no registry is needed):
#   modeldeploy/base-python:bookworm-<hash>  debootstrap base (images/base/build.sh)
#   $TESTSERVER_IMAGE  ($IMAGE_REGISTRY/modeldeploy/testserver:0.1.0)   images/testserver
#   $MODEL_SERVER_IMAGE ($IMAGE_REGISTRY/modeldeploy/model-server:0.1.0) images/model-server
#   $STORAGE_INITIALIZER_IMAGE ($IMAGE_REGISTRY/modeldeploy/storage-initializer:0.1.0) images/storage-initializer
#   $S3_SERVER_IMAGE   ($IMAGE_REGISTRY/modeldeploy/s3-server:0.1.0)    images/s3-server (moto, for tests)
#   $MLFLOW_IMAGE      ($IMAGE_REGISTRY/modeldeploy/mlflow:0.1.0)       images/mlflow (MLflow tracking server, for tests)
#   $ROUTER_IMAGE      ($IMAGE_REGISTRY/modeldeploy/router:0.1.0)       images/router (nginx, canary traffic split)
#   $PROMETHEUS_IMAGE  ($IMAGE_REGISTRY/modeldeploy/prometheus:$PROMETHEUS_VERSION) images/prometheus + the
#                      binary of hack/build-prometheus.sh (for the Prometheus-check tests)
#   $OPERATOR_IMAGE    ($IMAGE_REGISTRY/modeldeploy/operator:0.1.0)     images/operator, repo root sources
#   $COREDNS_IMAGE, $PAUSE_IMAGE                        scratch images of the built binaries
# Starts dockerd when none answers (log: $DOCKERD_LOG). Load them into the cluster with
# hack/load-images.sh.
#
# Env: MODELDEPLOY_{OPERATOR,TESTSERVER,MLFLOW,COREDNS,PAUSE}_IMAGE override names and tags;
#      MODELDEPLOY_BASE_IMAGE uses a given base (e.g. python:3.11-slim-bookworm) instead.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

# docker build, quiet unless it fails (the legacy builder's deprecation notice is noise).
dbuild() {
  local out
  out=$(docker build -q "$@" 2>&1) || { echo "$out" >&2; die "docker build $* failed"; }
}

# step NAME COMMAND...: run and report its duration.
step() {
  local name=$1 t=$SECONDS
  shift
  "$@"
  log "$name: done in $(since "$t")"
}

# build_dir IMAGE DIR: an image whose build context is its own images/ directory.
build_dir() {
  dbuild --build-arg "BASE=$BASE" -t "$1" "$REPO_DIR/images/$2"
}

# Send only what the image needs (pyproject.toml, README*, operator/) plus the Dockerfile,
# so the build does not depend on a .dockerignore and its cache on unrelated files.
build_operator() {
  if [[ ! -f "$REPO_DIR/pyproject.toml" || ! -d "$REPO_DIR/operator" ]]; then
    log "warning: no pyproject.toml + operator/ at $REPO_DIR yet: skipping $OPERATOR_IMAGE"
    return 0
  fi
  local files=(pyproject.toml operator) f
  for f in "$REPO_DIR"/README*; do [[ -e "$f" ]] && files+=("$(basename "$f")"); done
  tar -C "$REPO_DIR" -c --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' "${files[@]}" \
    -C "$REPO_DIR/images/operator" Dockerfile |
    dbuild --build-arg "BASE=$BASE" -t "$OPERATOR_IMAGE" -
}

# The binary is built (or taken from the cache) by hack/build-prometheus.sh, outside docker.
build_prometheus() {
  local bin
  bin=$(bash "$HACK_DIR/build-prometheus.sh")
  tar -C "$(dirname "$bin")" -c prometheus -C "$REPO_DIR/images/prometheus" Dockerfile prometheus.yml |
    dbuild --build-arg "BASE=$BASE" -t "$PROMETHEUS_IMAGE" -
}

# docker load the pause and CoreDNS archives (also imported by cluster-up without docker),
# so `kind load` and docker users have them too.
load_infra() {
  local tar
  for tar in $(infra_image_tars); do docker load -q -i "$tar" >/dev/null; done
}

main() {
  local start=$SECONDS
  ensure_binaries
  step dockerd ensure_dockerd
  if [[ -n "${MODELDEPLOY_BASE_IMAGE:-}" ]]; then
    BASE=$MODELDEPLOY_BASE_IMAGE
  else
    local t=$SECONDS
    BASE=$(bash "$REPO_DIR/images/base/build.sh")
    log "base image $BASE: done in $(since "$t")"
  fi
  step "$TESTSERVER_IMAGE" build_dir "$TESTSERVER_IMAGE" testserver
  step "$MODEL_SERVER_IMAGE" build_dir "$MODEL_SERVER_IMAGE" model-server
  step "$STORAGE_INITIALIZER_IMAGE" build_dir "$STORAGE_INITIALIZER_IMAGE" storage-initializer
  step "$S3_SERVER_IMAGE" build_dir "$S3_SERVER_IMAGE" s3-server
  step "$MLFLOW_IMAGE" build_dir "$MLFLOW_IMAGE" mlflow
  step "$ROUTER_IMAGE" build_dir "$ROUTER_IMAGE" router
  step "$PROMETHEUS_IMAGE" build_prometheus
  step "$OPERATOR_IMAGE" build_operator
  step "$PAUSE_IMAGE + $COREDNS_IMAGE" load_infra
  log "images built in $(since "$start"):"
  docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep "^$IMAGE_REGISTRY/modeldeploy/" | sed 's/^/  /' >&2 || true
}

main "$@"
