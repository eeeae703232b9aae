"""A late mark is served from the past kept in ``ceusgate`` (in each source's worker), on a
busy machine: one recording sent in real time by one `gst-launch-1.0` sender to two UDP
sources of one engine (the same bytes to both), one exam marked on time and one 40 s late,
with two CPU-bound processes (`yes`) beside the test. The two exams give the same t0, the same
30 slot frames and the same score. Takes the exam's length (about 3.5 minutes)."""

from __future__ import annotations

import subprocess

import pytest

from conftest import free_port
from livekit import Engine, Sender, wait_until

LATE_S = 40.0


@pytest.fixture
def two_cpu_hogs():
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(2)]
    yield hogs
    for h in hogs:
        h.kill()
        h.wait(10)


@pytest.fixture(scope="module")
def exam_ts(media_dir):
    """A simulated scanner-screen exam in MPEG-TS (320x240, H.264), as an encoder sends it."""
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.recording import write_exam
    from ceustream.models.simulator.scene import Layout, Scene

    path = media_dir / "past_exam.ts"
    truth = write_exam(Scene(sample_case(11), Layout(320, 240), injection_s=8.0), path,
                       fps=30.0, container="ts")
    return path, truth


def _status(eng: Engine, source: str) -> dict:
    r = eng.cmd("status", source=source)
    assert r.get("ok"), r
    return r


def _stream_s(eng: Engine, source: str) -> float:
    return _status(eng, source)["source"]["stream_time_s"] or 0.0


@pytest.mark.slow
def test_a_late_mark_gives_the_on_time_frames_on_a_busy_machine(exam_ts, env, two_cpu_hogs):
    path, truth = exam_ts
    pa, pb = free_port(), free_port()
    eng = Engine(env, f"ontime=udp://127.0.0.1:{pa}", "--source", f"late=udp://127.0.0.1:{pb}")
    sender = None
    try:
        for name in ("ontime", "late"):
            assert eng.cmd("start_exam", source=name, exam=f"past{name}", roi=truth["roi"])["ok"]
        # both sources' workers listen (their pipelines started) before the sender starts:
        # both take the same first frame, so their exam clocks are the same
        wait_until(lambda: all(eng.cmd("health")["sources"][n]["worker"]["ready"]
                               for n in ("ontime", "late")), 120, "both sources' workers")
        sender = Sender(f"filesrc location={path} ! tsparse set-timestamps=true alignment=7 ! "
                        f"multiudpsink clients=127.0.0.1:{pa},127.0.0.1:{pb} sync=true")
        inj = truth["injection_s"] - 1.0  # on the exam clock: about when it shows
        wait_until(lambda: _stream_s(eng, "ontime") >= inj - 0.5, 120, "ontime")
        r = eng.cmd("mark_injection", source="ontime", t=inj)
        assert r["ok"], r
        wait_until(lambda: _stream_s(eng, "late") >= inj + LATE_S, 180, "late")
        r = eng.cmd("mark_injection", source="late", t=inj, timeout_s=30)
        assert r["ok"], r
        wait_until(lambda: len(eng.results()) >= 2, 420, "both results")
    finally:
        if sender is not None:
            sender.stop()
        eng.stop()
    res = {r["exam"]: r for r in eng.results()}
    on, late = res["pastontime"], res["pastlate"]
    assert "from the kept frames" in eng.stderr  # the late mark was served from the gate
    why = ({n: (r["arrival"], r["flags"], r["warnings"], r["clock"]) for n, r in
            (("ontime", on), ("late", late))}, eng.stderr[-4000:])
    # the same exam clock on both (the same first frame, no reconnect)
    assert on["clock"]["first_frame_stream_s"] == late["clock"]["first_frame_stream_s"], why
    assert on["clock"]["reconnects"] == late["clock"]["reconnects"] == 0, why
    assert on["final"] and on["slots_filled"] == 30, why
    assert late["final"] and late["slots_filled"] == 30, why
    assert on["t0"] == late["t0"], why
    assert [s.get("pts_s") for s in on["slots"]] == [s.get("pts_s") for s in late["slots"]], why
    assert on["score"] == late["score"]
    assert "slot_neighbour_fill" not in on["flags"] + late["flags"]
