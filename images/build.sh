#!/usr/bin/env bash
# Build the example training image into podman's local store (no registry needed):
#   mmdebstrap bookworm rootfs (cached under .cache/) -> podman import (base image)
#   -> podman build images/train/Containerfile (pip installs with the host's CA bundle).
# Cached: when the image already carries the hash of its build inputs, nothing is built.
#
#   images/build.sh [--tag TAG] [--label KEY=VALUE]... [--force]
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${COMPOSER_IMAGE_TAG:-localhost/composer-train:latest}
BASE=localhost/composer-base:bookworm
CACHE=.cache/images
ROOTFS=$CACHE/rootfs-bookworm.tar
SUITE=bookworm
INCLUDE=python3,python3-venv,ca-certificates
labels=()
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --label) labels+=(--label "$2"); shift 2 ;;
    --force) force=1; shift ;;
    *) echo "usage: $0 [--tag TAG] [--label KEY=VALUE]... [--force]" >&2; exit 2 ;;
  esac
done

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || {
    echo "images/build.sh needs $tool: apt-get install podman runc mmdebstrap" >&2; exit 1; }
done

# Everything the image is made from: change any of it and the image is rebuilt.
hash=$( { cat images/build.sh images/train/Containerfile images/train/requirements.txt
          echo "$SUITE $INCLUDE ${labels[*]:-}"; } | sha256sum | cut -c1-16)
have=$(podman image inspect --format '{{index .Labels "composer.build-hash"}}' "$TAG" 2>/dev/null || true)
if [ "$force" = 0 ] && [ "$have" = "$hash" ]; then
  echo "image $TAG is up to date (build hash $hash)"
  exit 0
fi

start=$(date +%s)
mkdir -p "$CACHE"
if ! podman image exists "$BASE"; then
  if [ ! -s "$ROOTFS" ]; then
    echo "mmdebstrap $SUITE -> $ROOTFS"
    mmdebstrap --quiet --variant=apt --include="$INCLUDE" "$SUITE" "$CACHE/rootfs-partial.tar"
    mv "$CACHE/rootfs-partial.tar" "$ROOTFS"
  fi
  echo "podman import $ROOTFS -> $BASE"
  podman import --quiet "$ROOTFS" "$BASE" >/dev/null
fi

echo "podman build images/train -> $TAG"
podman build --quiet --network host --runtime "${COMPOSER_BUILD_RUNTIME:-runc}" \
  --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" \
  -v /etc/ssl/certs:/etc/ssl/certs:ro \
  --build-arg "BASE=$BASE" --label "composer.build-hash=$hash" "${labels[@]}" \
  -t "$TAG" -f images/train/Containerfile images/train >/dev/null
echo "built $TAG ($(podman image inspect --format '{{.Digest}}' "$TAG")) in $(( $(date +%s) - start ))s"
