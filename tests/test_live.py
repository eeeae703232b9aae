"""The live engine on a real live GStreamer source (the simulated scanner pushes frames into
an appsrc in real time, here 10x), driven through its real ZeroMQ control socket; the
journal; QA over a manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ceustream.engine.wire.control import request
from ceustream.models.simulator.scanner import SimScanner

from conftest import free_port, last_json, run_cli

SIM = "sim://11?speed=10&size=320x240&injection=6"


def start_engine(env, *extra):
    ctl, pub = free_port(), free_port()
    p = subprocess.Popen([sys.executable, "-m", "ceustream.engine.cli", "run", "--source", SIM,
                          "--control", f"tcp://127.0.0.1:{ctl}", "--pub", f"tcp://127.0.0.1:{pub}",
                          "--json", *extra], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    ep = f"tcp://127.0.0.1:{ctl}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = request(ep, {"cmd": "status"}, timeout_s=1)
        if r.get("ok"):
            return p, ep
        if p.poll() is not None:
            raise AssertionError(p.stderr.read())
    raise AssertionError("engine did not come up")


def test_live_exam_through_the_control_socket(env):
    truth = SimScanner(SIM).truth
    p, ep = start_engine(env, "--exit-after-exam")
    try:
        r = request(ep, {"cmd": "mark_injection"})
        assert not r["ok"] and "start_exam" in r["error"]
        r = request(ep, {"cmd": "start_exam", "exam": "live1", "roi": [0, 0, 9999, 10]})
        assert not r["ok"] and "outside" in r["error"]
        r = request(ep, {"cmd": "start_exam", "exam": "live1", "roi": truth["roi"]})
        assert r["ok"] and r["exam"] == "live1"
        r = request(ep, {"cmd": "start_exam", "exam": "live2", "roi": truth["roi"]})
        assert not r["ok"] and "running" in r["error"]
        # the operator marks the injection when it happens on the (simulated) scanner
        while request(ep, {"cmd": "status"})["status"].get("injection_s") is None:
            r = request(ep, {"cmd": "mark_injection", "t": truth["injection_s"]})
            if r["ok"]:
                break
            time.sleep(0.1)
        r = request(ep, {"cmd": "set_roi", "roi": truth["roi"]})
        assert not r["ok"] and "fixed" in r["error"]
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    res = last_json(out)
    assert res["exam"] == "live1" and res["final"] and res["slots_filled"] == 30
    assert abs(res["t0"] - truth["t0_s"]) < 1.0
    assert "t0_from_injection" in res["flags"]


def test_stop_exam_gives_a_flagged_partial_result(env):
    truth = SimScanner(SIM).truth
    p, ep = start_engine(env)
    try:
        assert request(ep, {"cmd": "start_exam", "exam": "stopme", "roi": truth["roi"]})["ok"]
        time.sleep(1.0)
        assert request(ep, {"cmd": "mark_arrival"})["ok"]
        time.sleep(2.0)
        r = request(ep, {"cmd": "stop_exam"}, timeout_s=30)
        assert r["ok"], r
        res = r["result"]
        assert res["final"] is False and "stopped_early" in res["flags"]
        assert 0 < res["slots_filled"] < 30 and res["label"] is None
    finally:
        p.terminate()
        p.wait(30)


def test_journal_rescore_gives_the_same_score(coded_mp4, env):
    from media import ROI

    args = ["replay", str(coded_mp4.path), "--roi", ",".join(map(str, ROI)), "--t0",
            str(coded_mp4.arrival), "--json", "--no-publish", "--exam", "jr1"]
    r1 = last_json(run_cli(args, env).stdout)
    p = run_cli(["journal", "list"], env)
    assert "jr1" in p.stdout and "final" in p.stdout
    p = run_cli(["journal", "rescore", "jr1", "--json"], env)
    assert p.returncode == 0, p.stderr
    r2 = last_json(p.stdout)
    assert r2["score"] == pytest.approx(r1["score"], abs=1e-6) and r2["final"]
    p = run_cli(["journal", "show", "jr1"], env)
    shown = json.loads(p.stdout)
    assert len(shown["slots"]) == 30 and shown["exam"]["roi"] == list(ROI)


def test_qa_over_a_manifest_writes_metrics_and_a_report(coded_mp4, coded_mkv25, env, tmp_path):
    import shutil

    for c, name in ((coded_mp4, "a.mp4"), (coded_mkv25, "b.mkv")):
        shutil.copy(c.path, tmp_path / name)
    roi = '"56,32,64,64"'
    (tmp_path / "m.csv").write_text(
        "path,label,roi,t0,injection\n"
        f"a.mp4,HCC,{roi},{coded_mp4.arrival},\n"
        f"b.mkv,non-HCC,{roi},,{coded_mkv25.injection}\n"
        f"a.mp4,non-HCC,{roi},{coded_mp4.arrival + 1},\n")
    out = tmp_path / "qa"
    p = run_cli(["qa", str(tmp_path / "m.csv"), "--out", str(out)], env)
    assert p.returncode == 0, p.stderr
    summary = last_json(p.stdout)
    assert summary["exams"] == 3 and summary["scored_final"] == 3
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rows] == [2, 3, 4]
    rep = json.loads((out / "report.json").read_text())
    assert 0.0 <= rep["evaluation"]["metrics"]["ROC_AUC"] <= 1.0
    assert (out / "roc.png").stat().st_size > 1000 and (out / "confusion.png").exists()
    assert "simulated" in (out / "report.md").read_text()
    # a second run resumes: nothing is replayed again
    p = run_cli(["qa", str(tmp_path / "m.csv"), "--out", str(out)], env)
    assert p.returncode == 0 and "[1/3]" not in p.stderr


def test_overlay_command_writes_a_video_and_snapshots(coded_mp4, env, tmp_path):
    """`ceustream overlay` on a recording, drawing a real engine's messages (a replay
    publishing on loopback at the same time)."""
    from media import ROI

    pub = f"tcp://127.0.0.1:{free_port()}"
    out_mp4 = tmp_path / "ov.mp4"
    ov = subprocess.Popen([sys.executable, "-m", "ceustream.engine.cli", "overlay", "--source",
                           str(coded_mp4.path), "--engine", pub, "--sink", str(out_mp4),
                           "--duration", "8"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    r = run_cli(["replay", str(coded_mp4.path), "--roi", ",".join(map(str, ROI)), "--t0",
                 str(coded_mp4.arrival), "--speed", "20", "--pub", pub, "--json"], env)
    assert r.returncode == 0, r.stderr
    out, err = ov.communicate(timeout=60)
    assert ov.returncode == 0, err
    assert "overlay written to" in out
    from ceustream.pipelines.filesource import discover

    info = discover(out_mp4)
    recorded_s = info.duration_s or 0
    assert info.width == 160 and recorded_s > 3  # seconds of video, not a timing
    snaps = tmp_path / "snaps"
    p = run_cli(["overlay", "--source", str(coded_mp4.path), "--engine", pub, "--sink",
                 str(snaps), "--duration", "3"], env)
    assert p.returncode == 0, p.stderr
    assert len(list(snaps.glob("overlay_*.png"))) >= 2


def test_demo_runs_end_to_end(env, tmp_path):
    """The main job, as a new user runs it (at full speed to keep the test short)."""
    out = tmp_path / "demo"
    p = run_cli(["demo", "--out", str(out), "--speed", "max", "--pub",
                 f"tcp://127.0.0.1:{free_port()}"], env, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "exam demo-7: P(HCC) =" in p.stdout and "30/30 slots" in p.stdout
    assert "simulated" in p.stdout.lower()
    assert "0 sequence gaps" in p.stdout and "30 score" in p.stdout
    video = out / "demo_overlay.mp4"
    assert video.exists() and f"overlay video: {video}" in p.stdout
    from ceustream.pipelines.filesource import discover

    video_s = discover(video).duration_s or 0
    assert video_s > 150  # the whole exam was drawn, not a timing
