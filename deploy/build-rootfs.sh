#!/bin/sh
# Builds linsync's static binary and assembles the image's whole root filesystem in OUTDIR. It is the one place that
# decides what the image holds: the Dockerfile's build stage runs it, and so does `make image`'s fallback with the
# local Go toolchain (scripts/build-image.sh); both then copy OUTDIR into the same FROM-scratch final stage.
#
#   /linsync                             static binary (CGO_ENABLED=0), the image's ENTRYPOINT
#   /etc/passwd, /etc/group              the non-root user linsync, uid and gid 65532
#   /etc/ssl/certs/ca-certificates.crt   CA certificates (Go's crypto/x509 looks here first on Linux)
#   /usr/share/zoneinfo/                 time zone database (TZ=Europe/Berlin works)
#   /tmp                                 mode 1777 (Kubernetes mounts an emptyDir over it, the root stays read-only)
#
# Usage, from the repository root: sh deploy/build-rootfs.sh OUTDIR
# Honours GOOS, GOARCH (default: linux and the toolchain's arch), GO_BUILD_TAGS (space-separated) and GO (the go command).
set -eu

out=${1:?usage: deploy/build-rootfs.sh OUTDIR}
uid=65532
certs=/etc/ssl/certs/ca-certificates.crt
zoneinfo=/usr/share/zoneinfo

fail() { echo "build-rootfs: $*" >&2; exit 1; }
if [ ! -f go.mod ] || [ ! -d cmd/linsync ]; then fail "run it from the repository root"; fi
[ -s "$certs" ] || fail "$certs is missing (install the ca-certificates package)"
[ -f "$zoneinfo/UTC" ] || fail "$zoneinfo is missing (install the tzdata package)"

rm -rf "$out"
mkdir -p "$out/etc/ssl/certs" "$out/usr/share" "$out/tmp"
chmod 1777 "$out/tmp"

# -buildvcs=false: the Dockerfile's build context has no .git, so both ways stamp the same (no) VCS information.
CGO_ENABLED=0 GOOS=${GOOS:-linux} GOARCH=${GOARCH:-} "${GO:-go}" build \
	-trimpath -buildvcs=false -tags "${GO_BUILD_TAGS:-}" -ldflags="-s -w" \
	-o "$out/linsync" ./cmd/linsync

cp "$certs" "$out/etc/ssl/certs/ca-certificates.crt"
# -P keeps tzdata's relative links (UTC -> Etc/UTC, posix/*); an absolute one (localtime -> /etc/localtime) would
# dangle in the image and goes.
cp -RP "$zoneinfo" "$out/usr/share/zoneinfo"
find "$out/usr/share/zoneinfo" -lname '/*' -exec rm -f {} +
printf 'root:x:0:0:root:/root:/sbin/nologin\nlinsync:x:%s:%s:linsync:/nonexistent:/sbin/nologin\n' "$uid" "$uid" \
	>"$out/etc/passwd"
printf 'root:x:0:\nlinsync:x:%s:\n' "$uid" >"$out/etc/group"
chmod -R a+rX,go-w "$out/etc" "$out/usr"
chmod 0755 "$out/linsync"
