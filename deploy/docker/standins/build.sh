#!/usr/bin/env bash
# Builds local stand-ins for the public base images, for machines that cannot reach an image
# registry (this project's CI). Each is Debian bookworm (debootstrap, then `docker import`) with
# the same program installed from Debian's packages, offering what compose.yaml and the
# Dockerfile use of the official image: the same paths, commands, users and environment
# variables. They are tagged mythoughts-standin/<name> and selected through the image variables
# (PYTHON_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, HAPROXY_IMAGE, PROMETHEUS_IMAGE), whose defaults
# stay the official images. An image built from the same files is kept.
set -euo pipefail
cd "$(dirname "$0")"
DOCKER=${DOCKER:-/usr/bin/docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=mythoughts-standin/debian:bookworm

have() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

if ! have "$BASE"; then
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
    # The official images ship without apt lists or caches; so does the stand-in.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    tar -C "$rootfs" -c . | "$DOCKER" import - "$BASE" >/dev/null
    echo "built $BASE"
fi

# name:tag of the stand-in, and the Dockerfile that makes it from the Debian base.
for spec in python:3.11-slim-bookworm:python postgres:15:postgres redis:7:redis \
        haproxy:2.6:haproxy prometheus:v2:prometheus; do
    name=${spec%%:*}; rest=${spec#*:}; tag=${rest%:*}; file=${rest##*:}.Dockerfile
    image="mythoughts-standin/$name:$tag"
    # The image carries the hash of its Dockerfile and of the files that file copies: a change to
    # either rebuilds it, an unchanged one is kept.
    source=$(cat "$file" $(awk '$1 == "COPY" {print $2}' "$file") | sha256sum | cut -c1-16)
    built=$("$DOCKER" image inspect -f '{{index .Config.Labels "mythoughts.standin.source"}}' \
        "$image" 2>/dev/null || true)
    if [ "$built" != "$source" ]; then
        DOCKER_BUILDKIT=1 "$DOCKER" build -q --build-arg "BASE=$BASE" \
            --label "mythoughts.standin.source=$source" -t "$image" -f "$file" . >/dev/null
        echo "built $image"
    fi
done
