"""Every file in examples/ runs as its docstring says: the embedding script on a real
recording with the example settings, the live embedding script on the simulated scanner
(a live GStreamer source, 10x real time), the plain-pyzmq subscriber against a real publisher
(a replay on loopback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ceustream.engine.core import config

from media import ROI

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_every_example_is_tested_here():
    tested = {"embed_replay.py", "embed_live.py", "subscriber_pyzmq.py", "config.toml"}
    assert {p.name for p in EXAMPLES.iterdir() if p.is_file()} == tested


def test_the_example_config_loads():
    cfg = config.load(EXAMPLES / "config.toml", env={})
    assert cfg["model"]["backend"] == "onnxruntime" and cfg["metrics"]["listen"]


def test_embed_replay(coded_mp4, env):
    p = subprocess.run([sys.executable, str(EXAMPLES / "embed_replay.py"), str(coded_mp4.path),
                        "--roi", ",".join(map(str, ROI)), "--t0", str(coded_mp4.arrival),
                        "--config", str(EXAMPLES / "config.toml")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:30]] == [f"slot {i}" for i in range(30)]
    result = json.loads(lines[-1])
    assert result["final"] and result["slots_filled"] == 30
    assert result["backend"]["name"] == "onnxruntime"  # the example settings were used
    assert "simulated" in lines[-2]
    # bad input: the CLI's one line and exit code
    p = subprocess.run([sys.executable, str(EXAMPLES / "embed_replay.py"), "missing.mp4",
                        "--roi", "1,2,3,4", "--t0", "1"], capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 3 and p.stderr.strip().startswith("embed_replay: ")
    assert len(p.stderr.strip().splitlines()) == 1


def test_embed_live(env):
    """The command in the example's docstring, as printed there (the simulated scanner's
    lesion and injection), run to a final result through the in-process live engine."""
    from ceustream.models.simulator.scanner import SimScanner

    doc = (EXAMPLES / "embed_live.py").read_text()
    sim = "sim://11?speed=10&size=320x240&injection=6"
    truth = SimScanner(sim).truth
    roi = ",".join(map(str, truth["roi"]))
    assert f'--source "{sim}"' in doc and f"--roi {roi} --injection 6" in doc
    p = subprocess.run([sys.executable, str(EXAMPLES / "embed_live.py"), "--source", sim,
                        "--roi", roi, "--injection", "6", "--config",
                        str(EXAMPLES / "config.toml"), "--timeout", "240"],
                       capture_output=True, text=True, timeout=400, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:30]] == [f"slot {i}" for i in range(30)]
    result = json.loads(lines[-1])
    assert result["final"] and result["slots_filled"] == 30
    assert abs(result["t0"] - truth["t0_s"]) < 1.0 and "t0_from_injection" in result["flags"]
    assert result["backend"]["name"] == "onnxruntime"  # the example settings were used
    assert "simulated" in lines[-2]
    # bad input: one line and the CLI's exit code, before any source starts
    p = subprocess.run([sys.executable, str(EXAMPLES / "embed_live.py"), "--source",
                        "bogus://x", "--roi", "1,2,3,4", "--t0", "1"], capture_output=True,
                       text=True, timeout=120, env=env)
    assert p.returncode == 2 and p.stderr.strip().startswith("embed_live: ")
    assert len(p.stderr.strip().splitlines()) == 1


def test_plain_pyzmq_subscriber(coded_mp4, tmp_path, port):
    from ceustream.engine.app.replay import ReplayOptions, replay
    from ceustream.engine.core.roi import Roi
    from ceustream.engine.wire.publisher import Publisher

    ep = f"tcp://127.0.0.1:{port}"
    cfg = config.load(env={})
    cfg["journal"]["dir"] = str(tmp_path / "j")
    pub = Publisher(ep, cfg)
    sub = subprocess.Popen([sys.executable, str(EXAMPLES / "subscriber_pyzmq.py"), "--endpoint",
                            ep, "--count", "30", "--timeout", "60"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert pub.wait_for_subscriber(60), "the example never subscribed"
        res = replay(coded_mp4.path, ReplayOptions(roi=Roi(*ROI), t0=coded_mp4.arrival,
                                                   exam="ex1"), cfg, pub)
        out, err = sub.communicate(timeout=60)
    finally:
        pub.close()
        if sub.poll() is None:
            sub.kill()
    assert sub.returncode == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 30
    assert [ln.split(":")[0] for ln in lines] == [f"ex1 slot {i}/30" for i in range(1, 31)]
    assert all("simulated" in ln for ln in lines)
    last = lines[-1]
    if "out_of_distribution" in res["flags"]:  # the synthetic test file: the TIC reading
        # the score leaves before the clip's analysis: it carries the reading before it
        assert "outside model domain: TIC" in last
    else:
        assert f"P(HCC) {res['score']:.3f} {res['label']}" in last
