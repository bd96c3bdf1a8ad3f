#!/bin/sh
# Build zend's OCI image, offline.
#
#   packaging/oci/build.sh [TAG]
#
# compiles static zend and zen-client for Linux on this machine's
# architecture (GOARCH overrides it) into a fresh build context, then
# builds packaging/oci/Containerfile FROM scratch with podman (or
# CONTAINER_ENGINE, e.g. docker). Nothing is pulled from a registry.
# Prints the tag (default localhost/zend:latest). Needs Go; run from
# anywhere in the tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
tag=${1:-localhost/zend:latest}
engine=${CONTAINER_ENGINE:-podman}
command -v "$engine" >/dev/null 2>&1 || { echo "build.sh: $engine not found (set CONTAINER_ENGINE)" >&2; exit 1; }
command -v go >/dev/null 2>&1 || PATH=/usr/local/go/bin:$PATH

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

# Static (no libc in the image), reproducible paths, stripped. cmd/zend has
# no version variable to set: zend reports the module's build information.
cd "$top"
for b in zend zen-client; do
	GOOS=linux CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$ctx/$b" "./cmd/$b"
done
install -m 0644 "$here/passwd" "$here/group" "$here/Containerfile" "$ctx/"
chmod 0755 "$ctx/zend" "$ctx/zen-client"

case $(basename "$engine") in
podman | buildah)
	# The OCI format has no HEALTHCHECK: keep it with the docker format.
	"$engine" build --pull=never --format docker -f "$ctx/Containerfile" -t "$tag" "$ctx" >&2
	;;
*)
	"$engine" build -f "$ctx/Containerfile" -t "$tag" "$ctx" >&2
	;;
esac
echo "$tag"
