"""A release a user can install and an integrator can depend on: the plugin link across
several virtualenvs (real GStreamer), the package's metadata and files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def cli(*argv: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ceustream", *argv], capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.fixture
def user_env(tmp_path):
    """A user with an empty GStreamer plugin folder and registry of their own."""
    env = {k: v for k, v in os.environ.items() if k not in ("GST_PLUGIN_PATH",
                                                              "GST_PLUGIN_PATH_1_0")}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["GST_REGISTRY_1_0"] = str(tmp_path / "registry.bin")
    return env


def inspect_filename(env: dict) -> str | None:
    """The file gst-inspect-1.0 loads ceushud from (None: not found)."""
    p = subprocess.run(["gst-inspect-1.0", "ceushud"], capture_output=True, text=True,
                       timeout=120, env=env)
    if p.returncode != 0:
        return None
    line = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("Filename"))
    return line.split(None, 1)[1].strip()


def test_install_plugin_survives_several_virtualenvs(tmp_path, user_env):
    own = Path(cli("plugin-path", env=user_env).stdout.strip())
    assert (own / "libgstceus.so").is_file()
    link = tmp_path / "xdg" / "gstreamer-1.0" / "plugins" / "libgstceus.so"

    # another virtualenv's copy of the plugin holds the link
    other = tmp_path / "other-venv" / "gst-plugins"
    other.mkdir(parents=True)
    shutil.copy(own / "libgstceus.so", other / "libgstceus.so")
    link.parent.mkdir(parents=True)
    link.symlink_to(other / "libgstceus.so")
    assert inspect_filename(user_env) == str(link)

    # GST_PLUGIN_PATH of this installation wins over the other's link, without touching it
    per_venv = dict(user_env, GST_PLUGIN_PATH=str(own))
    assert Path(inspect_filename(per_venv)).resolve() == (own / "libgstceus.so").resolve()
    assert link.resolve() == (other / "libgstceus.so").resolve()

    # --remove leaves another installation's link alone
    p = cli("install-plugin", "--remove", env=user_env)
    assert p.returncode == 0 and "nothing removed" in p.stdout
    assert link.is_symlink()

    # install-plugin takes the link over and says whose it was
    p = cli("install-plugin", env=user_env)
    assert p.returncode == 0, p.stderr
    assert f"replaced the plugin of another installation, {other / 'libgstceus.so'}" in p.stderr
    assert link.resolve() == (own / "libgstceus.so").resolve()

    # the other virtualenv is deleted after taking the link back: a dangling link is repaired
    link.unlink()
    link.symlink_to(other / "libgstceus.so")
    shutil.rmtree(tmp_path / "other-venv")
    assert inspect_filename(user_env) is None
    p = cli("install-plugin", env=user_env)
    assert p.returncode == 0 and "replaced a dangling link" in p.stderr
    assert Path(inspect_filename(user_env)).resolve() == (own / "libgstceus.so").resolve()

    # this installation's own link is removed by --remove; gst-inspect no longer finds it
    p = cli("install-plugin", "--remove", env=user_env)
    assert p.returncode == 0 and p.stdout.startswith("GStreamer plugin link removed")
    assert not link.is_symlink()
    assert inspect_filename(user_env) is None


def test_the_installed_distribution_says_what_it_is():
    from importlib.metadata import distribution

    import ceustream

    d = distribution("ceustream")
    meta = d.metadata
    assert meta["Version"] == ceustream.__version__
    # tomllib (the settings) is 3.11's: an older Python must be refused at install time
    assert meta["Requires-Python"] == ">=3.11"
    assert "License :: OSI Approved :: MIT License" in meta.get_all("Classifier")
    assert any(f.name == "LICENSE" for f in d.files), "LICENSE is not in the wheel"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert {"Homepage", "Changelog"} <= set(urls)
    assert all(".invalid/" in u for u in urls.values()), urls  # placeholders, no real host


def test_the_changelog_has_a_version_policy_and_this_version():
    import ceustream

    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## Version policy" in text
    assert "fields are only ever *added* within v1" in text
    released = ceustream.__version__
    assert f"## [{released}]" in text


def test_every_repository_path_the_docs_name_exists():
    """README.md and ARCHITECTURE.md name files by their path in the checkout (issue 22: the
    README sent users to `engine/defaults.toml`, which is `engine/core/defaults.toml`);
    generated folders (benchmark results, image output, the API reference) excepted."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    generated = ("benchmarks/results", "deploy/out", "docs/api")
    missing = []
    for doc in ("README.md", "ARCHITECTURE.md"):
        text = (root / doc).read_text(encoding="utf-8")
        for m in re.finditer(r"(?<![\w/.~-])((?:engine|pipelines|models|plugins|benchmarks|"
                             r"tests|deploy|examples|docs)/[\w./-]*\w)", text):
            p = m.group(1)
            if not p.startswith(generated) and not (root / p).exists() \
                    and not any(root.glob(p)):
                missing.append(f"{doc}: {p}")
    assert not missing, missing
