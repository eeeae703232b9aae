"""The service files in deploy/systemd/ checked by systemd's own tools: `systemd-analyze
verify` (no warning at all), `systemd-sysusers --root` (the user is made), and the settings
file read by the engine's config loader. The OCI image is built by `make image`
(deploy/build-image.sh, minutes): not part of the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ceustream.engine.core import config

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "deploy" / "systemd"
UNIT = SYSTEMD / "ceustream.service"
INSTALLED = "/opt/ceustream/bin/ceustream"

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed (Debian: systemd)")


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_the_unit_says_what_the_service_needs():
    d = directives(UNIT.read_text())
    assert d["User"] == ["ceustream"] and d["Group"] == ["ceustream"]
    assert d["NoNewPrivileges"] == ["yes"] and d["ProtectSystem"] == ["strict"]
    assert d["Restart"] == ["on-failure"] and d["Nice"] == ["-10"]
    assert d["StandardError"] == ["journal"] and d["StandardOutput"] == ["journal"]
    env = dict(e.split("=", 1) for e in d["Environment"])
    assert env["CEUSTREAM_CONFIG"].startswith("/etc/ceustream/")
    # the journal of sampled frames is where the service may write
    assert any(env["CEUSTREAM_JOURNAL_DIR"].startswith(p + "/")
               for v in d["ReadWritePaths"] for p in v.split())
    assert d["ExecStart"][0].startswith(f"{INSTALLED} run ")
    assert d["EnvironmentFile"] == ["/etc/ceustream/ceustream.env"]


@needs_systemd
def test_systemd_analyze_verify_finds_nothing(tmp_path):
    """The unit as shipped, with only ExecStart's install path pointing to this
    installation's `ceustream` (verify checks that the program exists)."""
    exe = Path(sys.executable).parent / "ceustream"
    assert exe.is_file()
    text = UNIT.read_text()
    assert text.count(f"ExecStart={INSTALLED}") == 1
    unit = tmp_path / "ceustream.service"
    unit.write_text(text.replace(f"ExecStart={INSTALLED}", f"ExecStart={exe}"))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stderr.strip() == "" and p.stdout.strip() == "", \
        p.stdout + p.stderr
    # and verify does catch a misspelt hardening line (the check is not a no-op)
    unit.write_text(unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                       text=True, timeout=120)
    assert "Unknown key 'NoNewPrivilege'" in p.stderr


@needs_systemd
def test_sysusers_makes_the_service_user(tmp_path):
    (tmp_path / "etc").mkdir()
    p = subprocess.run(["systemd-sysusers", f"--root={tmp_path}",
                        str(SYSTEMD / "ceustream.sysusers")], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text().splitlines()
    user = next(x for x in passwd if x.startswith("ceustream:")).split(":")
    assert user[5] == "/var/lib/ceustream" and user[6] == "/usr/sbin/nologin"
    assert int(user[2]) < 1000  # a system user
    group = (tmp_path / "etc" / "group").read_text()
    assert any(x.startswith("video:") and "ceustream" in x.split(":")[3]
               for x in group.splitlines())


def test_the_shipped_settings_and_arguments_are_valid():
    cfg = config.load(SYSTEMD / "config.toml", env={})
    assert cfg["metrics"]["listen"] == "127.0.0.1:9108"
    env = dict(line.split("=", 1) for line in (SYSTEMD / "ceustream.env").read_text().splitlines()
               if line and not line.startswith("#"))
    from ceustream.engine.cli import build_parser

    args = build_parser().parse_args(["run", "-q", *env["CEUSTREAM_RUN_ARGS"].split()])
    assert args.source == ["scanner1=udp://0.0.0.0:5000"] and args.metrics == "127.0.0.1:9108"


def deb_depends() -> set[str]:
    """The package names in deploy/build-deb.sh's control file (Depends)."""
    import re

    text = (ROOT / "deploy" / "build-deb.sh").read_text()
    block = re.search(r"^Depends: (.*?)\n(?=\S)", text, re.S | re.M).group(1)
    return {re.split(r"[\s(]", d.strip())[0] for d in block.replace("\n", " ").split(",")}


@pytest.mark.skipif(shutil.which("dpkg-query") is None or shutil.which("readelf") is None,
                    reason="needs Debian's dpkg and binutils")
def test_the_deb_depends_on_every_library_the_plugin_links():
    """`make deb`'s Depends name the Debian package of every shared library the built
    GStreamer plugin links directly (readelf NEEDED, resolved by ldconfig, owned per dpkg):
    what dpkg-shlibdeps would say. The package itself is built and installed on a clean
    Debian 12 by `make deb-check` (minutes, root, podman): not part of the tests."""
    import os

    from ceustream.pipelines.gst import plugin_dirs

    dirs = plugin_dirs()
    assert dirs, "the plugin is not built (pip install . / ceustream install-plugin)"
    plugin = dirs[0] / "libgstceus.so"
    needed = [ln.split("[", 1)[1].rstrip("]") for ln in subprocess.run(
        ["readelf", "-d", str(plugin)], capture_output=True, text=True, check=True
    ).stdout.splitlines() if "(NEEDED)" in ln]
    assert "libgstreamer-1.0.so.0" in needed and "libzmq.so.5" in needed
    cache = {}
    for ln in subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True,
                             check=True).stdout.splitlines()[1:]:
        name, _, path = ln.strip().partition(" => ")
        if "x86-64" in name or "x86_64" in path:
            cache.setdefault(name.split()[0], path.strip())
    depends = deb_depends()
    missing = []
    for lib in needed:
        path = os.path.realpath(cache[lib])
        owners = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True)
        if owners.returncode != 0:  # a merged-/usr path dpkg knows under /lib
            owners = subprocess.run(["dpkg-query", "-S", path.removeprefix("/usr")],
                                    capture_output=True, text=True)
        # "libglib2.0-0:amd64: /usr/lib/..." (or "a:amd64, b:amd64: path")
        head = owners.stdout.splitlines()[0].rsplit(": ", 1)[0] if owners.stdout else ""
        pkgs = {p.strip().split(":")[0] for p in head.split(",") if p.strip()}
        if not pkgs & depends:
            missing.append(f"{lib} ({', '.join(sorted(pkgs)) or 'no package'})")
    assert not missing, f"Depends lacks: {missing}"
    # the interpreter the package's virtualenv is made with, and PyGObject from Debian
    assert {"python3", "python3-gi", "gir1.2-gstreamer-1.0"} <= depends


def test_build_deb_script_is_valid_and_refuses_unknown_options():
    script = ROOT / "deploy" / "build-deb.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    p = subprocess.run(["bash", str(script), "--nonsense"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and p.stderr.strip().startswith("build-deb: usage:")


def test_the_nvidia_containerfile_builds_on_the_cpu_image():
    """deploy/Containerfile.nvidia (not built here: no GPU, no NVIDIA index): its base is the
    CPU image `make image` tags, it installs the TensorRT wheel for a CUDA major and the
    cuda-python the backend imports (cuda.bindings, not pycuda), and runs as the non-root
    user like the CPU image (whose HEALTHCHECK it inherits)."""
    import re
    import tomllib

    nv = (ROOT / "deploy" / "Containerfile.nvidia").read_text()
    cpu = (ROOT / "deploy" / "Containerfile").read_text()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"ARG BASE=localhost/ceustream:{version}\nFROM ${{BASE}}" in nv
    assert "IMAGE=localhost/ceustream:$VERSION" in (ROOT / "deploy" / "build-image.sh").read_text()
    code = [ln for ln in nv.splitlines() if ln.strip() and not ln.startswith("#")]
    run = " ".join(ln for ln in code if "pip install" in ln or ln.startswith(" "))
    assert '"tensorrt-cu${CUDA_MAJOR}>=10.14"' in run and '"cuda-python>=12.6' in run
    assert "pycuda" not in run
    backend = (ROOT / "engine" / "backends" / "tensorrt.py").read_text()
    assert "from cuda.bindings import runtime" in backend and "import tensorrt" in backend
    users = [ln.split()[1] for ln in code if ln.startswith("USER ")]
    assert users[-1] == "ceustream" and re.search(r"^USER ceustream$", cpu, re.M)
    assert "HEALTHCHECK" in cpu and "HEALTHCHECK" not in "\n".join(code)
