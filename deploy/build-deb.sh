#!/usr/bin/env bash
# Builds dist/ceustream_VERSION_ARCH.deb (`make deb`) and, with --check, installs it with apt on
# a clean Debian 12 (the image base of `make image`) and runs it there (--check-only: the
# package already built; `make deb-check`).
#
# Why a .deb and not a manylinux wheel: the wheel carries a GStreamer plugin (libgstceus.so)
# that must link the host's own libgstreamer/libglib (one GType system per process: a
# plugin with its own vendored copies, as auditwheel would make it, crashes or is refused by
# the host's gst-launch-1.0 and PyGObject). So the plugin is built per distribution, as
# GStreamer's own plugins are, and shipped in the distribution's format, depending on the
# distribution's GStreamer. The package holds:
#   /opt/ceustream            a virtualenv over Debian's python3 (python3-gi from Debian) with
#                             ceustream and its PyPI dependencies (onnxruntime, pydicom 3 ...
#                             are not in Debian 12)
#   /usr/bin/ceustream        -> /opt/ceustream/bin/ceustream
#   /usr/lib/MULTIARCH/gstreamer-1.0/libgstceus.so -> the plugin in the virtualenv (so
#                             gst-launch-1.0 / gst-inspect-1.0 find ceushud, ceusgate)
#   /lib/systemd/system/ceustream.service, /usr/lib/sysusers.d/ceustream.conf,
#   /etc/ceustream/{config.toml,ceustream.env} (conffiles): the service of deploy/systemd
# Needs dpkg-deb and Debian's python3 + python3-venv + python3-gi (APT_PKGS); --check needs
# root and podman (the base image is made as `make image` makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SYSPY=/usr/bin/python3
OUT=deploy/out/deb
MODE=${1:-}
case "$MODE" in ""|--check|--check-only) ;; *) echo "build-deb: usage: build-deb.sh [--check|--check-only]" >&2; exit 2;; esac
for tool in dpkg-deb dpkg-architecture "$SYSPY"; do
    command -v "$tool" >/dev/null || { echo "build-deb: $tool is missing (apt-get install dpkg-dev python3-venv)" >&2; exit 3; }
done
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
PYVER=$("$SYSPY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
DEB=dist/ceustream_${VERSION}_${ARCH}.deb
now() { date +%s.%N; }
t=$(now)

if [ "$MODE" != --check-only ]; then
rm -rf "$OUT" && mkdir -p "$OUT/wheel" "$OUT/root/DEBIAN" dist
ROOT=$(realpath "$OUT/root")
"$PY" -m pip wheel -q --no-deps --wheel-dir "$OUT/wheel" .
# the virtualenv is made at its final path under the staging root, then its own paths fixed
"$SYSPY" -m venv --system-site-packages "$ROOT/opt/ceustream"
"$ROOT/opt/ceustream/bin/python" -m pip install -q --no-compile --disable-pip-version-check \
    "$OUT"/wheel/ceustream-*.whl
"$ROOT/opt/ceustream/bin/python" -m pip uninstall -q -y pip setuptools 2>/dev/null || true
grep -rlI --null "$ROOT" "$ROOT/opt/ceustream" | xargs -0 -r sed -i "s|$ROOT||g"
grep -rlI "$ROOT" "$ROOT/opt/ceustream" && { echo "build-deb: the staging path is left in these files" >&2; exit 1; }
find "$ROOT/opt/ceustream" -name __pycache__ -prune -exec rm -rf {} +
rm -f "$ROOT"/opt/ceustream/bin/[Aa]ctivate* "$ROOT"/opt/ceustream/bin/pip*
SITE=/opt/ceustream/lib/python$PYVER/site-packages
[ -f "$ROOT$SITE/ceustream/gst-plugins/libgstceus.so" ] || { echo "build-deb: the wheel has no plugin" >&2; exit 1; }
install -d "$ROOT/usr/bin" "$ROOT/usr/lib/$MULTIARCH/gstreamer-1.0" "$ROOT/lib/systemd/system" \
    "$ROOT/usr/lib/sysusers.d" "$ROOT/etc/ceustream" "$ROOT/usr/share/doc/ceustream"
ln -s /opt/ceustream/bin/ceustream "$ROOT/usr/bin/ceustream"
ln -s "$SITE/ceustream/gst-plugins/libgstceus.so" "$ROOT/usr/lib/$MULTIARCH/gstreamer-1.0/libgstceus.so"
install -m 644 deploy/systemd/ceustream.service "$ROOT/lib/systemd/system/"
install -m 644 deploy/systemd/ceustream.sysusers "$ROOT/usr/lib/sysusers.d/ceustream.conf"
install -m 644 deploy/systemd/config.toml deploy/systemd/ceustream.env "$ROOT/etc/ceustream/"
install -m 644 LICENSE "$ROOT/usr/share/doc/ceustream/copyright"
gzip -9n -c CHANGELOG.md > "$ROOT/usr/share/doc/ceustream/changelog.gz"
printf 'ceustream (%s-1) bookworm; urgency=medium\n\n  * Packaged by deploy/build-deb.sh; the changes are in changelog.gz.\n\n -- the ceustream developers <ceustream@ceustream.invalid>  %s\n' \
    "$VERSION" "$(date -R)" | gzip -9n > "$ROOT/usr/share/doc/ceustream/changelog.Debian.gz"
printf '/etc/ceustream/config.toml\n/etc/ceustream/ceustream.env\n' > "$ROOT/DEBIAN/conffiles"
cat > "$ROOT/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
if [ "\$1" = configure ]; then
    # the service user (systemd-sysusers when systemd is there; useradd otherwise)
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers /usr/lib/sysusers.d/ceustream.conf
    elif ! getent passwd ceustream >/dev/null; then
        useradd --system --user-group --home-dir /var/lib/ceustream --shell /usr/sbin/nologin ceustream
    fi
    /opt/ceustream/bin/python -m compileall -q /opt/ceustream/lib >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
EOF
cat > "$ROOT/DEBIAN/prerm" <<EOF
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl stop ceustream.service 2>/dev/null || true; fi
find /opt/ceustream -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
EOF
chmod 755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm"
SIZE_KB=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
# Depends: Debian's Python, PyGObject, GStreamer (plugins as `make system` installs them) and
# the libraries the plugin links (dpkg-shlibdeps would say the same for libgstceus.so)
cat > "$ROOT/DEBIAN/control" <<EOF
Package: ceustream
Version: $VERSION-1
Architecture: $ARCH
Maintainer: the ceustream developers <ceustream@ceustream.invalid>
Installed-Size: $SIZE_KB
Depends: python3 (>= $PYVER), python3 (<< ${PYVER%.*}.$(( ${PYVER#*.} + 1 ))), python3-gi (>= 3.42), python3-cairo, gir1.2-gstreamer-1.0, gir1.2-gst-plugins-base-1.0, gstreamer1.0-tools, gstreamer1.0-plugins-base, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad, gstreamer1.0-plugins-ugly, gstreamer1.0-libav, libgstreamer1.0-0, libgstreamer-plugins-base1.0-0, libglib2.0-0, libc6, libzmq5, libjson-glib-1.0-0, libcairo2, libpango-1.0-0, libpangocairo-1.0-0, fonts-dejavu-core
Recommends: systemd
Section: science
Priority: optional
Homepage: https://ceustream.invalid/
Description: streaming CEUS inference engine (simulated-data model; not a medical device)
 ceustream watches a contrast-enhanced ultrasound exam's video over GStreamer, samples the
 30-frame schedule from contrast arrival and scores the lesion HCC vs non-HCC with a 3D-CNN
 (ONNX Runtime), publishing scores over ZeroMQ. The shipped weights are trained on
 simulated data only: not a medical device, not for diagnosis.
EOF
dpkg-deb --root-owner-group -Zgzip -z6 --build "$ROOT" "$DEB" >/dev/null
rm -rf "$OUT"  # the staging tree (490 MiB, absolute links): only the package is kept
echo "build-deb: $DEB: $(du -h "$DEB" | cut -f1) ($(( SIZE_KB / 1024 )) MiB installed) in $("$SYSPY" -c "print(f'{$(now) - $t:.0f}')") s"
fi

[ -n "$MODE" ] || exit 0
[ -f "$DEB" ] || { echo "build-deb: no $DEB (make deb first)" >&2; exit 3; }
mkdir -p "$OUT"
# --check: apt installs the package (and its Depends) on a clean Debian 12, then it runs there
[ "$(id -u)" = 0 ] || { echo "build-deb: --check needs root (podman, chroot)" >&2; exit 3; }
command -v podman >/dev/null || { echo "build-deb: --check needs podman" >&2; exit 3; }
t=$(now)
BASE=localhost/ceustream-base:bookworm
if ! podman image exists "$BASE"; then
    mmdebstrap --variant=minbase --quiet bookworm "$OUT/rootfs.tar"
    podman import --quiet "$OUT/rootfs.tar" "$BASE" >/dev/null
    rm -f "$OUT/rootfs.tar"
fi
CTR=$(podman create --quiet "$BASE" /bin/true)
MNT=$(podman mount "$CTR")
MOUNTS=()
cleanup() {
    for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || true; done
    podman umount "$CTR" >/dev/null 2>&1 || true
    podman rm -f "$CTR" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for d in proc dev; do mount --bind "/$d" "$MNT/$d" && MOUNTS+=("$MNT/$d"); done
cp /etc/resolv.conf "$MNT/etc/resolv.conf"
cp "$DEB" "$MNT/tmp/"
chroot "$MNT" sh -c "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends /tmp/$(basename "$DEB") >/tmp/apt.log 2>&1" \
    || { tail -20 "$MNT/tmp/apt.log" >&2; echo "build-deb: apt could not install the package" >&2; exit 1; }
inside() { chroot --userspec="$(chroot "$MNT" id -u ceustream):$(chroot "$MNT" id -g ceustream)" "$MNT" \
    env -i HOME=/var/lib/ceustream PATH=/usr/bin:/bin "$@"; }
inside ceustream --help | head -1 | grep -q '^usage: ceustream' || { echo "build-deb: ceustream --help failed" >&2; exit 1; }
# the system GStreamer finds the plugin with no GST_PLUGIN_PATH
inside gst-inspect-1.0 ceushud >/dev/null || { echo "build-deb: gst-inspect-1.0 finds no ceushud" >&2; exit 1; }
"$PY" - "$MNT/tmp/exam.mp4" > "$MNT/tmp/exam.args" <<'PYEOF'
import sys
sys.path.insert(0, "tests")
from media import ROI, write_coded  # the test suite's generated recording (x264, 30 fps)
c = write_coded(sys.argv[1], fps=30.0, container="mp4")
print(",".join(map(str, ROI)), c.arrival)
PYEOF
read -r ROI T0 < "$MNT/tmp/exam.args"
RESULT=$(inside sh -c "XDG_DATA_HOME=/tmp/x ceustream replay /tmp/exam.mp4 --roi $ROI --t0 $T0 --json -q" | tail -1)
echo "$RESULT" | "$PY" -c 'import json, sys
r = json.load(sys.stdin)
assert r["final"] and r["slots_filled"] == 30, r
print("build-deb: replay on a clean Debian 12 with the package:", r["slots_filled"], "of 30 slots, score", r["score"])'
# removal leaves no file of the package behind (conffiles stay until purge)
chroot "$MNT" sh -c "DEBIAN_FRONTEND=noninteractive apt-get purge -y -q ceustream >/dev/null 2>&1"
[ ! -e "$MNT/opt/ceustream" ] && [ ! -e "$MNT/usr/bin/ceustream" ] \
    || { echo "build-deb: files left after apt-get purge" >&2; exit 1; }
echo "build-deb: installed, run and purged on $BASE in $("$SYSPY" -c "print(f'{$(now) - $t:.0f}')") s"
