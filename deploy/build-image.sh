#!/usr/bin/env bash
# Builds the OCI image localhost/ceustream:VERSION from deploy/Containerfile and checks it.
#   1. base: Debian 12 by `mmdebstrap --variant=minbase`, `podman import`ed (once)
#   2. wheels: ceustream (with its GStreamer plugin) and its runtime dependencies, built here
#      by pip (PyGObject and pycairo excepted: the image takes Debian's python3-gi)
#   3. `podman build --isolation chroot --network host --format docker` (HEALTHCHECK kept)
#   4. checks without `podman run` (it needs cgroups this machine may not give): the image is
#      mounted (`podman image mount`) and its programs run by `chroot` as the image's user:
#      `ceustream --help`, the plugin found by gst-inspect-1.0, a replay of a generated
#      recording, and `ceustream run` answering the HEALTHCHECK's own command.
# Prints the time each step took and the image's size; writes deploy/out/image-report.json.
# Needs root, podman and mmdebstrap (apt-get install podman mmdebstrap). `make image` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=deploy/out
PY=${PYTHON:-.venv/bin/python}
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
IMAGE=localhost/ceustream:$VERSION
BASE=localhost/ceustream-base:bookworm
for tool in podman mmdebstrap chroot; do
    command -v "$tool" >/dev/null || { echo "build-image: $tool is missing (apt-get install podman mmdebstrap)" >&2; exit 3; }
done
[ "$(id -u)" = 0 ] || { echo "build-image: run as root (podman image mount, chroot)" >&2; exit 3; }
mkdir -p "$OUT"
now() { date +%s.%N; }
took() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
declare -A T

# 1. the base
t=$(now)
if ! podman image exists "$BASE"; then
    mmdebstrap --variant=minbase --quiet bookworm "$OUT/rootfs.tar"
    podman import --quiet "$OUT/rootfs.tar" "$BASE" >/dev/null
    rm -f "$OUT/rootfs.tar"
fi
T[base]=$(took "$t")

# 2. the wheels
t=$(now)
rm -rf "$OUT/wheels" && mkdir -p "$OUT/wheels"
"$PY" -m pip wheel -q --no-deps --wheel-dir "$OUT/wheels" .
mapfile -t deps < <("$PY" - <<'PYEOF'
import tomllib
from packaging.requirements import Requirement
for r in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if Requirement(r).name.lower() != "pygobject":
        print(r)
PYEOF
)
"$PY" -m pip wheel -q --wheel-dir "$OUT/wheels" "${deps[@]}"
rm -f "$OUT"/wheels/[Pp]y[Gg][Oo]bject-* "$OUT"/wheels/pycairo-*
T[wheels]=$(took "$t")

# 3. the image
t=$(now)
# the wheels' digest keys the layer that installs them (a bind mount is not in the cache key)
WHEELS_SHA=$(cat "$OUT"/wheels/*.whl | sha256sum | cut -c1-16)
podman build --quiet --isolation chroot --network host --format docker \
    --build-arg BASE="$BASE" --build-arg WHEELS_SHA="$WHEELS_SHA" \
    -f deploy/Containerfile -t "$IMAGE" deploy >/dev/null
T[build]=$(took "$t")
SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")

# 4. the checks, by chroot into the mounted image, as its own user
t=$(now)
MNT=$(podman image mount "$IMAGE")
MOUNTS=()
cleanup() {
    [ -n "${ENGINE:-}" ] && kill "$ENGINE" 2>/dev/null && wait "$ENGINE" 2>/dev/null
    for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || true; done
    podman image unmount "$IMAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
mount --bind /proc "$MNT/proc" && MOUNTS+=("$MNT/proc")
mount --bind /dev "$MNT/dev" && MOUNTS+=("$MNT/dev")
for d in tmp var/lib/ceustream var/cache/ceustream; do  # the image itself stays read-only
    mount -t tmpfs -o mode=1777 tmpfs "$MNT/$d" && MOUNTS+=("$MNT/$d")
done
mapfile -t ENVS < <(podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$IMAGE" | grep .)
USERSPEC=$(chroot "$MNT" id -u ceustream):$(chroot "$MNT" id -g ceustream)
inside() { chroot --userspec="$USERSPEC" "$MNT" env -i HOME=/var/lib/ceustream "${ENVS[@]}" "$@"; }

inside ceustream --help | head -1 | grep -q '^usage: ceustream' || { echo "build-image: ceustream --help failed" >&2; exit 1; }
inside gst-inspect-1.0 ceushud >/dev/null || { echo "build-image: the ceushud element is not found in the image" >&2; exit 1; }
"$PY" - "$MNT/tmp/exam.mp4" > "$MNT/tmp/exam.args" <<'PYEOF'
import sys
sys.path.insert(0, "tests")
from media import ROI, write_coded  # the test suite's generated recording (x264, 30 fps)
c = write_coded(sys.argv[1], fps=30.0, container="mp4")
print(",".join(map(str, ROI)), c.arrival)
PYEOF
read -r ROI T0 < "$MNT/tmp/exam.args"
RESULT=$(inside ceustream replay /tmp/exam.mp4 --roi "$ROI" --t0 "$T0" --json -q | tail -1)
echo "$RESULT" | "$PY" -c 'import json, sys
r = json.load(sys.stdin)
assert r["final"] and r["slots_filled"] == 30, r
print("replay in the image:", r["slots_filled"], "of 30 slots, score", r["score"], "flags", r["flags"])'
# the HEALTHCHECK's own command against `ceustream run` in the image (free ports: the host's)
PORTS=($("$PY" -c 'import socket
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'))
# chroot and env exec: $! is the engine itself, which gets the SIGTERM below
chroot --userspec="$USERSPEC" "$MNT" env -i HOME=/var/lib/ceustream "${ENVS[@]}" \
    CEUSTREAM_ZMQ__PUB="tcp://127.0.0.1:${PORTS[0]}" CEUSTREAM_ZMQ__CONTROL="tcp://127.0.0.1:${PORTS[1]}" \
    ceustream run -q --source test://smpte > "$OUT/run.log" 2>&1 &
ENGINE=$!
HC=$(podman image inspect --format '{{json .Config.Healthcheck.Test}}' "$IMAGE" | "$PY" -c 'import json,sys; t=json.load(sys.stdin); assert t[0]=="CMD", t; print("\0".join(t[1:]))' | tr '\0' '\n')
mapfile -t HCMD <<< "$HC"
ok=
for _ in $(seq 1 90); do
    if inside "${HCMD[@]}" 2>/dev/null; then ok=1; break; fi
    kill -0 "$ENGINE" 2>/dev/null || break
    sleep 1
done
[ -n "$ok" ] || { echo "build-image: the HEALTHCHECK never passed; the engine said:" >&2; tail -20 "$OUT/run.log" >&2; exit 1; }
kill -TERM "$ENGINE"; wait "$ENGINE" || { echo "build-image: ceustream run did not exit 0 on SIGTERM" >&2; exit 1; }
ENGINE=
T[check]=$(took "$t")

"$PY" - "$IMAGE" "$SIZE" "${T[base]}" "${T[wheels]}" "${T[build]}" "${T[check]}" <<'PYEOF'
import json, platform, os, sys
image, size, base, wheels, build, check = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
rep = {"image": image, "size_mb": round(size / 1e6, 1), "base_s": base, "wheels_s": wheels,
       "build_s": build, "check_s": check, "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
json.dump(rep, open("deploy/out/image-report.json", "w"), indent=1)
print(f"{image}: {rep['size_mb']} MB; base {base:.0f} s, wheels {wheels:.0f} s, build {build:.0f} s, checks {check:.0f} s")
PYEOF
