"""Shared fixtures: real recordings (encoded once per test session), free loopback ports,
the CLI run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import onnxruntime  # noqa: F401  loaded first: see below
import pytest

from media import write_coded

# ONNX Runtime is imported before anything else: a process that imports `onnx`, then
# initialises GStreamer, then imports ONNX Runtime crashes (SIGSEGV) when ONNX Runtime fails
# to load a bad model (onnx 1.23, onnxruntime 1.32, GStreamer 1.22; any other order is fine).
# The engine never imports `onnx`; tests that write model files do.

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def coded_mp4(media_dir):
    return write_coded(media_dir / "coded30.mp4", fps=30.0, container="mp4")


@pytest.fixture(scope="session")
def coded_mkv25(media_dir):
    return write_coded(media_dir / "coded25.mkv", fps=25.0, container="mkv", arrival=17.3)


@pytest.fixture(scope="session")
def coded_avi15(media_dir):
    return write_coded(media_dir / "coded15.avi", fps=15.0, container="avi", arrival=21.1)


@pytest.fixture(scope="session")
def coded_vfr(media_dir):
    return write_coded(media_dir / "coded_vfr.mkv", fps=24.0, container="mkv", vfr=True,
                       arrival=18.4, seed=3)


@pytest.fixture(scope="session")
def short_mp4(media_dir):
    """Ends 60 s after arrival: the clip cannot complete."""
    return write_coded(media_dir / "short.mp4", fps=30.0, duration=80.0, arrival=19.0)


@pytest.fixture(scope="session")
def sim_exam(media_dir):
    """A full simulated scanner-screen exam (640x480, H.264)."""
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.recording import write_exam
    from ceustream.models.simulator.scene import Scene

    path = media_dir / "sim_exam.mp4"
    truth = write_exam(Scene(sample_case(11), injection_s=5.0), path, fps=30.0)
    return path, truth


@pytest.fixture
def env(tmp_path) -> dict:
    """Environment for CLI runs: a private journal and config, nothing from the user."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("CEUSTREAM_")}
    e["CEUSTREAM_JOURNAL_DIR"] = str(tmp_path / "journal")
    e["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return e


def run_cli(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ceustream.engine.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The CLI's error contract: no traceback, one line naming the problem."""
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    # "ceustream: ..." or, for an option of a command, "ceustream replay: error: ..."
    lines = [line for line in err.splitlines()
             if re.match(r"ceustream( [a-z][a-z-]*)*: ", line)]
    assert len(lines) == 1, err
    return lines[0]


def replay_published(path, opts, cfg: dict, port: int) -> tuple[dict, list[list[bytes]]]:
    """A replay publishing on loopback to a real SUB socket: (result, every message as its raw
    frames), waiting for the subscription first and for every sent message at the end."""
    from ceustream.engine.app.replay import replay
    from ceustream.engine.wire.publisher import Publisher
    from ceustream.engine.wire.subscriber import Collector

    ep = f"tcp://127.0.0.1:{port}"
    sub = Collector(ep, keep_frames=True, validate=False)
    pub = Publisher(ep, cfg)
    try:
        assert pub.wait_for_subscriber(10), "the subscriber never connected"
        res = replay(path, opts, cfg, pub)
    finally:
        pub.close()  # drains its queue: every message is sent
    sent = sum(pub.sequences().values())
    sub.drain(pub.sequences(), 20)
    sub.close()
    got = list(sub.frames)
    assert len(got) == sent, f"{sent} messages sent, {len(got)} received"
    return res, got
