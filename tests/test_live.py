"""The live engine on real live GStreamer sources (the simulated scanner pushes frames into an
appsrc in real time, here 10x; a recording streamed over UDP by gst-launch-1.0), driven
through its real ZeroMQ control socket; late marks; SIGTERM; record and replay; the journal;
QA over a manifest; the overlay command; the demo. Every wait is on an event (a message, a
status answer, a result), never a fixed sleep."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import pytest

from ceustream.models.simulator.scanner import SimScanner

from conftest import free_port, last_json, run_cli
from livekit import Engine, file_udp_sender, wait_until

SIM = "sim://11?speed=10&size=320x240&injection=6"


def test_live_exam_through_the_control_socket(env):
    truth = SimScanner(SIM).truth
    eng = Engine(env, SIM, "--exit-after-exam")
    try:
        r = eng.cmd("mark_injection")
        assert not r["ok"] and "start_exam" in r["error"]
        wait_until(lambda: eng.stream_time() > 0, 60, "video")
        r = eng.cmd("start_exam", exam="live1", roi=[0, 0, 9999, 10])
        assert not r["ok"] and "outside" in r["error"]
        r = eng.cmd("start_exam", exam="live1", roi=truth["roi"])
        assert r["ok"] and r["exam"] == "live1"
        r = eng.cmd("start_exam", exam="live2", roi=truth["roi"])
        assert not r["ok"] and "running" in r["error"]
        # the operator marks the injection when it happens on the (simulated) scanner
        wait_until(lambda: eng.stream_time() >= truth["injection_s"] - 0.5, 60, "injection")
        r = eng.cmd("mark_injection", t=truth["injection_s"])
        assert r["ok"], r
        r = eng.cmd("set_roi", roi=truth["roi"])
        assert not r["ok"] and "fixed" in r["error"]
        res = eng.wait_result(1, 180)
        eng.p.wait(60)
    finally:
        eng.stop()
    assert eng.p.returncode == 0, eng.stderr
    assert res["exam"] == "live1" and res["final"] and res["slots_filled"] == 30
    assert abs(res["t0"] - truth["t0_s"]) < 1.0
    assert "t0_from_injection" in res["flags"]
    assert res["clock"]["first_frame_stream_s"] is not None
    scores = eng.sub.of("score", "live1")
    assert scores and scores[-1]["final"]
    statuses = eng.sub.of("status", "live1")
    # the overlay's countdown moves: stream time moves with the frames, speed is measured
    times = [m["stream_time_s"] for m in statuses if m["stream_time_s"] is not None]
    assert len(set(times)) > 10 and times == sorted(times)
    speeds = [m["speed"] for m in statuses if m["phase"] == "video_phase" and m["speed"]]
    # measured, not a constant: about 10x (less when the machine cannot render that fast)
    assert speeds and 1.5 < sorted(speeds)[len(speeds) // 2] < 12.0


def test_stop_exam_gives_a_flagged_partial_result(env):
    truth = SimScanner(SIM).truth
    eng = Engine(env, SIM)
    try:
        assert eng.cmd("start_exam", exam="stopme", roi=truth["roi"])["ok"]
        wait_until(lambda: eng.stream_time() > 1.0, 60, "video")
        assert eng.cmd("mark_arrival")["ok"]
        wait_until(lambda: eng.status()["status"]["slots_filled"] >= 2, 60, "two slots")
        r = eng.cmd("stop_exam", timeout_s=30)
        assert r["ok"], r
        res = r["result"]
        assert res["final"] is False and "stopped_early" in res["flags"]
        assert 0 < res["slots_filled"] < 30 and res["label"] is None
        # the engine stays up for the next exam
        assert eng.cmd("start_exam", exam="next1", roi=truth["roi"])["ok"]
    finally:
        eng.stop()


def _late_exam(env, late_s: float, out: dict) -> None:
    try:
        _late_exam_run(env, late_s, out)
    except BaseException as e:  # reported by the test, not lost in the thread
        out[f"error {late_s}"] = repr(e)


def _late_exam_run(env, late_s: float, out: dict) -> None:
    truth = SimScanner(SIM).truth
    eng = Engine(env, SIM, "--exit-after-exam")
    try:
        assert eng.cmd("start_exam", exam=f"late{int(late_s * 10)}", roi=truth["roi"])["ok"]
        inj = truth["injection_s"]
        wait_until(lambda: eng.stream_time() >= inj + late_s, 120, "the stream")
        r = eng.cmd("mark_injection", t=inj, timeout_s=30)
        assert r["ok"], r
        out[late_s] = eng.wait_result(1, 240)
    finally:
        eng.stop()


def test_late_marks_give_exactly_the_on_time_score(env):
    """The same simulated exam, the injection marked just ahead of time (on time) and 10,
    40 and 80 s late (from the kept past): the same t0, frames and score, to the bit."""
    out: dict[float, dict] = {}
    lates = (-0.6, 10.0, 40.0, 80.0)
    threads = [threading.Thread(target=_late_exam, args=(env, d, out)) for d in lates]
    for t in threads:
        t.start()
    for t in threads:
        t.join(400)
    assert not [k for k in out if isinstance(k, str)], out
    assert sorted(out) == sorted(lates)
    ref = out[-0.6]
    assert ref["final"] and ref["slots_filled"] == 30
    for d in lates[1:]:
        r = out[d]
        why = (d, r["flags"], r.get("warnings"), ref["flags"], ref.get("warnings"))
        assert r["t0"] == ref["t0"], why
        assert [s.get("pts_s") for s in r["slots"]] == [s.get("pts_s") for s in ref["slots"]], why
        assert r["score"] == ref["score"] and r["final"], d
        assert "baseline_contaminated" not in r["flags"]


def test_marks_outside_the_kept_past_are_refused_and_change_nothing(env, tmp_path):
    truth = SimScanner(SIM).truth
    cfg = tmp_path / "c.toml"
    cfg.write_text("[live]\nhistory_s = 20.0\n")
    eng = Engine(env, SIM, "--config", str(cfg))
    try:
        assert eng.cmd("start_exam", exam="refuse", roi=truth["roi"])["ok"]
        wait_until(lambda: eng.stream_time() > 30.0, 60, "30 s of stream")
        before = eng.status()["status"]
        r = eng.cmd("mark_injection", t=2.0)
        assert not r["ok"] and "kept past" in r["error"] and "\n" not in r["error"]
        now = eng.stream_time()
        r = eng.cmd("mark_arrival", t=now + 30)
        assert not r["ok"] and "ahead" in r["error"]
        after = eng.status()["status"]
        for k in ("phase", "injection_s", "t0_s", "roi", "slots_filled"):
            assert after[k] == before[k], k
        # a mark inside the horizon is taken
        r = eng.cmd("mark_arrival", t=eng.stream_time() - 5.0)
        assert r["ok"], r
    finally:
        eng.stop()


def test_a_mark_after_contrast_arrived_is_flagged_baseline_contaminated(env):
    """The injection marked 25 s after it happened, with that (wrong) time: the baseline
    window already holds contrast, and the engine says so instead of pretending."""
    truth = SimScanner(SIM).truth
    eng = Engine(env, SIM, "--exit-after-exam")
    try:
        assert eng.cmd("start_exam", exam="contam", roi=truth["roi"])["ok"]
        wrong = truth["t0_s"] + 5.0
        wait_until(lambda: eng.stream_time() >= wrong + 8.0, 120, "the stream")
        assert eng.cmd("mark_injection", t=wrong)["ok"]
        wait_until(lambda: "baseline_contaminated" in
                   eng.status()["status"]["warnings"], 60, "the warning")
        assert any("baseline_contaminated" in m["warnings"] for m in eng.sub.of("status"))
    finally:
        eng.stop()


def test_sigterm_stops_the_running_exam_cleanly(env):
    """docker/systemd stop: the exam is closed (partial, journaled, published), exit 0."""
    truth = SimScanner(SIM).truth
    eng = Engine(env, SIM)
    try:
        assert eng.cmd("start_exam", exam="term1", roi=truth["roi"])["ok"]
        wait_until(lambda: eng.stream_time() > 1.0, 60, "video")
        assert eng.cmd("mark_arrival")["ok"]
        wait_until(lambda: eng.status()["status"]["slots_filled"] >= 1, 60, "a slot")
        eng.p.terminate()
        eng.p.wait(60)
    finally:
        eng.stop()
    assert eng.p.returncode == 0, eng.stderr
    res = eng.results()[-1]
    assert res["exam"] == "term1" and not res["final"] and "stopped_early" in res["flags"]
    last = eng.sub.of("status", "term1")[-1]
    assert last["phase"] == "stopped"
    p = run_cli(["journal", "list", "term1"], env)
    assert "term1" in p.stdout and "partial" in p.stdout


def _record_and_replay(env, source: str, record, mark_at: float, roi: list[int],
                       extra=()) -> tuple[dict, dict]:
    eng = Engine(env, source, "--record", str(record), "--exit-after-exam", *extra)
    try:
        assert eng.cmd("start_exam", exam="rec1", roi=roi)["ok"]
        wait_until(lambda: eng.stream_time() >= mark_at - 0.5, 300, "the stream")
        assert eng.cmd("mark_injection", t=mark_at)["ok"]
        live = eng.wait_result(1, 400)
        eng.p.wait(60)
    finally:
        eng.stop()
    assert record.exists() and record.stat().st_size > 0
    p = run_cli(["replay", str(record), "--roi", ",".join(map(str, roi)), "--injection",
                 repr(mark_at), "--json", "--no-publish", "--seek", "never"], env)
    assert p.returncode == 0, p.stderr
    return live, last_json(p.stdout)


def test_a_recorded_live_exam_replays_to_the_same_score(env, tmp_path):
    """The simulated scanner live (10x) recorded by the engine (`run --record`), then
    replayed from the file: the same t0, frames and score, to the last bit."""
    truth = SimScanner(SIM).truth
    live, rep = _record_and_replay(env, SIM, tmp_path / "live.mkv", truth["injection_s"],
                                   truth["roi"])
    assert live["final"] and rep["final"]
    assert rep["t0"] == live["t0"]
    assert [s.get("pts_s") for s in rep["slots"]] == [s.get("pts_s") for s in live["slots"]]
    assert rep["score"] == live["score"]


@pytest.mark.slow
def test_an_exam_streamed_over_udp_is_recorded_and_replays_to_the_same_score(
        sim_exam_ts, env, tmp_path):
    """A recording sent in real time by `gst-launch-1.0 ... ! udpsink` (MPEG-TS), scored
    live and recorded by the engine, then replayed: the same score to the last bit. Takes
    the exam's length (about 3.5 minutes)."""
    path, truth = sim_exam_ts
    port = free_port()
    eng_src = f"udp://127.0.0.1:{port}"
    sender = file_udp_sender(path, port)
    try:
        live, rep = _record_and_replay(env, eng_src, tmp_path / "udp.mkv",
                                       truth["injection_s"], truth["roi"])
    finally:
        sender.stop()
    assert live["slots_filled"] == 30, live
    assert rep["t0"] == live["t0"]
    assert [s.get("pts_s") for s in rep["slots"]] == [s.get("pts_s") for s in live["slots"]]
    assert rep["score"] == live["score"]


@pytest.fixture(scope="session")
def sim_exam_ts(media_dir):
    """A simulated scanner-screen exam in MPEG-TS (320x240, H.264), as an encoder sends it."""
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.recording import write_exam
    from ceustream.models.simulator.scene import Layout, Scene

    path = media_dir / "sim_exam.ts"
    truth = write_exam(Scene(sample_case(11), Layout(320, 240), injection_s=2.0), path,
                       fps=30.0, container="ts")
    return path, truth


def test_a_neighbour_filled_slot_is_not_a_frozen_frame():
    """A slot filled from its neighbour is a copy on purpose; two slots taken from two
    different but identical frames are a frozen picture."""
    import numpy as np

    from ceustream.engine.app.loading import load_model_and_backend
    from ceustream.engine.app.session import ExamSession
    from ceustream.engine.core import config
    from ceustream.engine.core.roi import Roi

    cfg = config.load(env={})
    model, be, note = load_model_and_backend(None, "onnxruntime", cfg)
    s = ExamSession("nf1", model, be, Roi(0, 0, 8, 8), backend_note=note)
    sampler = s.set_t0(10.0)
    img = np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)
    for t in (11.5, 12.0):  # nothing within 1 s of slot 0: it takes slot 1's frame
        fills = sampler.offer(t, img, None)
        if fills:
            s.add(fills)
    assert [f.source for f in sampler.fills[:2]] == ["neighbour", "frame"]
    assert "frozen_frames" not in s.flags
    s.add(sampler.offer(14.0, img.copy(), None))  # another frame, the same picture
    assert "frozen_frames" in s.flags


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
    assert sorted(r["row"] for r in rows) == [2, 3, 4]  # appended as workers finish
    rep = json.loads((out / "report.json").read_text())
    assert 0.0 <= rep["evaluation"]["metrics"]["ROC_AUC"] <= 1.0
    assert (out / "roc.png").stat().st_size > 1000 and (out / "confusion.png").exists()
    assert "simulated" in (out / "report.md").read_text()
    # a second run resumes: nothing is replayed again
    p = run_cli(["qa", str(tmp_path / "m.csv"), "--out", str(out)], env)
    assert p.returncode == 0 and "[1/3]" not in p.stderr


def test_overlay_command_writes_a_video_and_snapshots(coded_mp4, env, tmp_path):
    """`ceustream overlay` on a recording, drawing a real engine's messages (a replay
    publishing on loopback at the same time). The replay starts once the overlay says its
    pipeline is playing (an event on its log), not after a fixed sleep."""
    from media import ROI

    pub = f"tcp://127.0.0.1:{free_port()}"
    out_mp4 = tmp_path / "ov.mp4"
    ov = subprocess.Popen([sys.executable, "-m", "ceustream.engine.cli", "overlay", "--source",
                           str(coded_mp4.path), "--engine", pub, "--sink", str(out_mp4),
                           "--duration", "8"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []
    for line in ov.stderr:  # "overlay: SOURCE -> SINK (engine ...); Ctrl-C to stop"
        err_lines.append(line)
        if "Ctrl-C to stop" in line:
            break
    assert ov.poll() is None, "".join(err_lines)
    threading.Thread(target=lambda: err_lines.extend(ov.stderr), daemon=True).start()
    r = run_cli(["replay", str(coded_mp4.path), "--roi", ",".join(map(str, ROI)), "--t0",
                 str(coded_mp4.arrival), "--speed", "20", "--pub", pub, "--json"], env)
    assert r.returncode == 0, r.stderr
    out = ov.stdout.read()
    ov.wait(60)
    assert ov.returncode == 0, "".join(err_lines)
    assert "overlay written to" in out
    from ceustream.pipelines.filesource import discover

    info = discover(out_mp4)
    recorded_s = info.duration_s or 0
    # a 4:3 picture gets a 16:9 canvas of at least 480 lines, the panels beside the video
    # (ceushud layout=auto, issue 20)
    assert (info.width, info.height) == (854, 480) and recorded_s > 3  # seconds, not a timing
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


class _Jumpy:
    """A frame generator whose times go back twice (as a decoder fed a damaged stream puts
    out): 64x48 RGB frames, each a different grey ramp."""
    size, fps, speed = (64, 48), 30.0, 30.0
    times = [k / 30 for k in range(40)]
    times[12] = times[11] - 0.010  # one frame earlier than the one before
    times[25] = times[24]  # one at the same time as the one before

    def frames(self):
        import numpy as np
        ramp = np.arange(64, dtype=np.uint8)[None, :].repeat(48, 0)
        for k, t in enumerate(self.times):
            g = (ramp * 2 + 3 * k).astype(np.uint8)
            yield t, np.dstack([g, g, g])


def test_the_recording_keeps_only_frames_in_time_order_and_decodes_to_what_the_engine_saw(
        tmp_path):
    """A frame out of time order, encoded, is dropped by the muxer and every frame predicted
    from it replays as other pictures (seen under load on UDP). The record branch leaves such
    frames out, as the engine does: every recorded frame decodes (ffmpeg, an independent
    decoder) to exactly the luma the engine was given at that time."""
    import numpy as np

    from ceustream.engine.core.source import EndOfStream
    from ceustream.pipelines.live import LiveReader

    rec = tmp_path / "jumpy.mkv"
    r = LiveReader(generator=_Jumpy(), record=rec)
    got, last = {}, None
    r.set_pass_all(True)
    r.open()
    try:
        while True:
            fr = r.pull(5.0)
            if fr is not None and (last is None or fr.pts_s > last):  # the engine's rule
                got[fr.pts_s] = fr.luma.copy()
                last = fr.pts_s
    except EndOfStream:
        pass
    finally:
        r.close()
    assert r.record_skipped == 2
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                            "frame=pts_time", "-of", "csv=p=0", str(rec)],
                           capture_output=True, text=True, check=True)
    times = [float(x.strip(",")) for x in probe.stdout.split()]
    assert len(times) == 38 and times == sorted(set(times))
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(rec), "-vsync", "0", "-f",
                          "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True)
    frames = np.frombuffer(raw.stdout, np.uint8).reshape(-1, 48, 64)
    assert len(frames) == 38
    engine_times = sorted(got)
    assert len(engine_times) == 38
    for k, t in enumerate(engine_times):
        assert np.array_equal(frames[k], got[t]), f"recorded frame {k} ({t} s) differs"
