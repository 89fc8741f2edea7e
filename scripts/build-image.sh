#!/usr/bin/env bash
# `make image`: builds linsync's container image from deploy/Dockerfile with Podman (or Docker).
#
# When the build stage's base image (golang:…) is not in local storage — no registry reachable, or nothing pulled
# yet — it builds the same image without it: deploy/build-rootfs.sh runs on this machine with the local Go toolchain
# and the host's CA certificates and tzdata, and the Dockerfile's final FROM-scratch stage is built from that
# staged rootfs. FROM scratch needs no pull, so this works offline.
#
# Environment:
#   IMAGE             tag to build (default ghcr.io/linsync/linsync:dev)
#   GO_BUILD_TAGS     Go build tags (space-separated), for both ways of building; default nodev (no dev commands)
#   IMAGE_BUILD       auto (default) | dockerfile (always the full Dockerfile; pulls golang if needed) | local
#   CONTAINER_ENGINE  podman or docker (default: podman when installed, else docker)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-ghcr.io/linsync/linsync:dev}
GO_BUILD_TAGS=${GO_BUILD_TAGS-nodev}
IMAGE_BUILD=${IMAGE_BUILD:-auto}
GO=${GO:-go}
dockerfile=deploy/Dockerfile

fail() { echo "make image: $*" >&2; exit 1; }

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman
  elif command -v docker >/dev/null; then engine=docker
  else fail "neither podman nor docker is installed (Debian/Ubuntu: apt-get install podman buildah runc)"
  fi
fi

# The first stage's base image, e.g. golang:1.26.
base=$(awk 'toupper($1) == "FROM" { for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; exit } }' "$dockerfile")
[ -n "$base" ] || fail "no FROM in $dockerfile"

mode=$IMAGE_BUILD
if [ "$mode" = auto ]; then
  if "$engine" image inspect "$base" >/dev/null 2>&1; then mode=dockerfile; else mode=local; fi
fi

case $mode in
dockerfile)
  echo "make image: building $IMAGE from $dockerfile with $engine"
  "$engine" build -f "$dockerfile" --build-arg "GO_BUILD_TAGS=$GO_BUILD_TAGS" -t "$IMAGE" .
  ;;
local)
  echo "make image: $base is not available locally; building $IMAGE with the local Go toolchain ($("$GO" env GOVERSION)) and $dockerfile's final stage"
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  GO=$GO GOOS=linux GO_BUILD_TAGS=$GO_BUILD_TAGS sh deploy/build-rootfs.sh "$stage/rootfs"
  # The final stage: from the last FROM to the end, with the rootfs taken from the staging context.
  awk 'toupper($1) == "FROM" { n = 0 } { lines[++n] = $0 } END { for (i = 1; i <= n; i++) print lines[i] }' \
    "$dockerfile" | sed -E 's#^COPY --from=[A-Za-z0-9_-]+ /rootfs/ /$#COPY rootfs/ /#' >"$stage/Containerfile"
  head -n 1 "$stage/Containerfile" | grep -qix 'FROM scratch' || fail "the final stage of $dockerfile must be FROM scratch"
  grep -qx 'COPY rootfs/ /' "$stage/Containerfile" || fail "the final stage of $dockerfile must COPY --from=<build stage> /rootfs/ /"
  "$engine" build -f "$stage/Containerfile" -t "$IMAGE" "$stage"
  ;;
*)
  fail "IMAGE_BUILD must be auto, dockerfile or local, not $IMAGE_BUILD"
  ;;
esac

echo "make image: built $IMAGE ($("$engine" image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }'))"
