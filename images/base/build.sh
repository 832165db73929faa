#!/usr/bin/env bash
# Make the local Python base image without any registry: debootstrap a Debian bookworm
# minbase with python3, python3-venv and ca-certificates, add this host's CA bundle (egress
# here is TLS-intercepted, so pip inside image builds needs it), and `docker import` it.
#
# The tag is keyed by a hash of the inputs (suite, packages, mirror, CA bundle, this
# script), so a changed input gives a new image and an unchanged one is reused. The rootfs
# tarball is cached under $MD_CACHE/images. Prints the image reference on stdout.
#
# The Dockerfiles default to a public base (ARG BASE=python:3.11-slim-bookworm); this image
# is what hack/images.sh passes as --build-arg BASE on machines without a registry.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../hack/lib.sh"

SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
HOST_CA=/etc/ssl/certs/ca-certificates.crt
IMAGE_ENV=(
  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  "LANG=C.UTF-8"
  # pip, requests and Python's ssl use the bundle that includes the host's CA.
  "SSL_CERT_FILE=$HOST_CA" "PIP_CERT=$HOST_CA" "REQUESTS_CA_BUNDLE=$HOST_CA"
)

# The host's own Debian mirror (the one apt here is set up with).
mirror() {
  if [[ -n "${MODELDEPLOY_DEBIAN_MIRROR:-}" ]]; then echo "$MODELDEPLOY_DEBIAN_MIRROR"; return; fi
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '/^URIs:/ && $2 !~ /security/ {print $2; exit} /^deb / && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}')
  echo "${m:-http://deb.debian.org/debian}"
}

# Unmount whatever debootstrap left mounted in the rootfs (proc, sys) and delete it.
cleanup_rootfs() {
  local dir=$1 m
  [[ -d "$dir" ]] || return 0
  awk -v s="$dir/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$dir"
}

main() {
  local mir hash tag tarball rootfs t
  mir=$(mirror)
  hash=$( { echo "$SUITE minbase $INCLUDE $mir"; printf '%s\n' "${IMAGE_ENV[@]}"; sha256sum "$HOST_CA" "${BASH_SOURCE[0]}"; } |
    sed "s#${BASH_SOURCE[0]}##" | sha256sum | cut -c1-12)
  tag="modeldeploy/base-python:$SUITE-$hash"
  if docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; return; fi
  tarball="$MD_CACHE/images/base-python-$SUITE-$hash.tar"
  mkdir -p "$MD_CACHE/images"
  if [[ ! -f "$tarball" ]]; then
    rootfs="$MD_CACHE/tmp/base-rootfs-$hash"
    cleanup_rootfs "$rootfs"
    mkdir -p "$rootfs"
    trap 'cleanup_rootfs "'"$rootfs"'"' EXIT
    t=$SECONDS
    log "debootstrap $SUITE minbase (+$INCLUDE) from $mir"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$mir" >"$MD_CACHE/images/debootstrap.log" 2>&1 ||
      { tail -n 20 "$MD_CACHE/images/debootstrap.log" >&2; die "debootstrap failed"; }
    # The host bundle both as the live bundle and as a local CA, so that an
    # update-ca-certificates run in a later image keeps the host's extra CA.
    cp "$HOST_CA" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    cp "$HOST_CA" "$rootfs/usr/local/share/ca-certificates/modeldeploy-host-bundle.crt"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    cleanup_rootfs "$rootfs"
    trap - EXIT
    log "base rootfs made in $((SECONDS - t))s ($(du -h "$tarball" | cut -f1))"
  fi
  local changes=() e
  for e in "${IMAGE_ENV[@]}"; do changes+=(--change "ENV $e"); done
  docker import "${changes[@]}" --change 'CMD ["python3"]' "$tarball" "$tag" >/dev/null
  echo "$tag"
}

main "$@"
