#!/usr/bin/env bash
# Build the AWS boot test's image into podman's local store (no registry needed):
# a Debian bookworm rootfs from mmdebstrap with Debian's cloud-init and OpenSSH, a NoCloud
# datasource, and a stand-in shutdown(8) first on PATH that records its arguments
# (tests/integration/test_aws_boot.py). Cached: when the image already carries the hash
# of its build inputs, nothing is built.
#
#   images/boot/build.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/../.."

TAG=${COMPOSER_BOOT_IMAGE_TAG:-localhost/composer-boot:bookworm}
CACHE=.cache/images
SUITE=bookworm
INCLUDE=cloud-init,openssh-server,openssh-client,python3,sudo,procps
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || {
    echo "images/boot/build.sh needs $tool: apt-get install podman runc mmdebstrap" >&2; exit 1; }
done

# Everything the image is made from: change any of it and the image is rebuilt.
hash=$( { cat images/boot/build.sh images/boot/shutdown images/boot/90-composer-test.cfg
          echo "$SUITE $INCLUDE"; } | sha256sum | cut -c1-16)
have=$(podman image inspect --format '{{index .Labels "composer.build-hash"}}' "$TAG" 2>/dev/null || true)
if [ "$force" = 0 ] && [ "$have" = "$hash" ]; then
  echo "image $TAG is up to date (build hash $hash)"
  exit 0
fi

start=$(date +%s)
mkdir -p "$CACHE"
rootfs=$CACHE/boot-$SUITE-$hash.tar
if [ ! -s "$rootfs" ]; then
  rm -f "$CACHE"/boot-"$SUITE"-*.tar
  echo "mmdebstrap $SUITE ($INCLUDE) -> $rootfs"
  mmdebstrap --quiet --variant=apt --include="$INCLUDE" \
    --customize-hook='copy-in images/boot/shutdown /usr/local/sbin' \
    --customize-hook='copy-in images/boot/90-composer-test.cfg /etc/cloud/cloud.cfg.d' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    "$SUITE" "$CACHE/boot-partial.tar"
  mv "$CACHE/boot-partial.tar" "$rootfs"
fi
echo "podman import $rootfs -> $TAG"
podman image rm "$TAG" >/dev/null 2>&1 || true  # the old build, unless a container holds it
podman import --quiet --change "LABEL composer.build-hash=$hash" "$rootfs" "$TAG" >/dev/null
echo "built $TAG in $(( $(date +%s) - start ))s"
