#!/bin/sh
# Build the zend Debian package with dpkg-deb.
#
#   packaging/deb/build.sh [OUTDIR] [VERSION]
#
# writes OUTDIR/zend_VERSION_ARCH.deb (default: ./dist, version 0.2.0) and
# prints its path. Needs Go and dpkg-deb; run from anywhere in the tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/dist}
version=${2:-0.2.0}
arch=$(dpkg --print-architecture)
mkdir -p "$out"
out=$(cd "$out" && pwd)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/zend_${version}_$arch
install -d -m 0755 "$root/DEBIAN" "$root/usr/sbin" "$root/usr/bin" "$root/etc/logrotate.d" "$root/etc/init.d" \
	"$root/lib/systemd/system" "$root/usr/share/doc/zend/examples" \
	"$root/usr/share/man/man1" "$root/usr/share/man/man5" "$root/usr/share/man/man8"

# Static, stripped binaries: lintian wants them stripped, and they must not
# depend on the build host's libc.
cd "$top"
export CGO_ENABLED=0
# The package's version is the binaries' (zend version, zend_build_info).
build() { go build -trimpath -buildvcs=false -ldflags "-s -w -X zend/daemon.version=$version" -o "$1" "$2"; }
for b in zend in-zen1 in-zen2; do
	build "$root/usr/sbin/$b" "./cmd/$b"
done
# zend execute-only for everyone but root: a process starts dumpable unless
# it may not read its binary, and the new daemon of an upgrade starts as
# the zend user; execute-only keeps other processes of that user from
# tracing it or copying its descriptors before it protects itself.
chmod 0711 "$root/usr/sbin/zend"
for b in zen-client zen-bench; do
	if [ -d "cmd/$b" ]; then build "$root/usr/bin/$b" "./cmd/$b"; fi
done

# /etc/zend.toml: the sample, with the daemon dropping to the zend user the
# package creates.
sed -e 's/^user = ""/user = "zend"/' -e 's/^group = ""/group = "zend"/' etc/zend.toml >"$root/etc/zend.toml"
grep -q '^user = "zend"' "$root/etc/zend.toml" || { echo "build.sh: cannot set daemon.user in etc/zend.toml" >&2; exit 1; }
# zend rotates its own log by size: logrotate's snippet for it is an
# example, not a conffile (one rotation owner).
install -m 0644 packaging/logrotate/zend.example "$root/usr/share/doc/zend/examples/logrotate-zend"
install -m 0644 packaging/logrotate/in-zen "$root/etc/logrotate.d/in-zen"
install -m 0644 packaging/systemd/* "$root/lib/systemd/system/"
# SysV init, for Debian without systemd; on systemd zend.service wins.
install -m 0755 packaging/sysv/zend.init "$root/etc/init.d/zend"
install -m 0644 packaging/inetd/inetd.conf "$root/usr/share/doc/zend/examples/inetd.conf"
install -m 0644 packaging/xinetd/in-zen1 "$root/usr/share/doc/zend/examples/xinetd-in-zen1"
install -m 0644 packaging/xinetd/in-zen2 "$root/usr/share/doc/zend/examples/xinetd-in-zen2"
install -m 0644 packaging/supervisor/zend.conf "$root/usr/share/doc/zend/examples/supervisor-zend.conf"
for m in packaging/man/*.[158]; do
	sec=${m##*.}
	gzip -9n <"$m" >"$root/usr/share/man/man$sec/$(basename "$m").gz"
done
gzip -9n <README.md >"$root/usr/share/doc/zend/README.md.gz"
install -m 0644 "$here/copyright" "$root/usr/share/doc/zend/copyright"
sed "s/@VERSION@/$version/" "$here/changelog" | gzip -9n >"$root/usr/share/doc/zend/changelog.gz"
install -d -m 0755 "$root/usr/share/lintian/overrides"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/zend"

# Maintainer scripts and control files.
for s in preinst postinst prerm postrm; do install -m 0755 "$here/$s" "$root/DEBIAN/$s"; done
printf '/etc/zend.toml\n/etc/logrotate.d/in-zen\n/etc/init.d/zend\n' >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/control" >"$root/DEBIAN/control"

deb=$out/zend_${version}_$arch.deb
dpkg-deb --build --root-owner-group "$root" "$deb" >/dev/null
echo "$deb"
