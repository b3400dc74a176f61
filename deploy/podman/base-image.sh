#!/usr/bin/env bash
# Builds a Debian bookworm base image from Debian's packages alone (no image registry
# needed): debootstrap minbase, then `podman import`. Skipped when the image exists.
# Usage: deploy/podman/base-image.sh [IMAGE]   (default localhost/debian:bookworm)
set -euo pipefail
IMAGE=${1:-localhost/debian:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if podman image exists "$IMAGE"; then
    echo "base image $IMAGE: present (cached)"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "base image: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
ROOTFS=$(mktemp -d)
trap 'rm -rf "$ROOTFS"' EXIT
echo "base image $IMAGE: debootstrap bookworm from $MIRROR"
if ! nice debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1; then
    tail -20 "$ROOTFS.log" >&2
    echo "base image: debootstrap failed (log above)" >&2
    rm -f "$ROOTFS.log"
    exit 1
fi
rm -f "$ROOTFS.log"
# Drop what an image never needs: apt lists and caches (RUN apt-get update refreshes them).
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb
tar -C "$ROOTFS" -c . | podman import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base image $IMAGE: imported"
