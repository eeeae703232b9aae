"""A late mark is served from the past kept in ``ceusgate`` (in each source's worker), on a
busy machine: two sources of one engine fed the same frames (the simulated scanner, the same
seed: the same pictures with the same timestamps, pushed live into GStreamer at 10x), one exam
marked on time and one 40 s late, with two CPU-bound processes (`yes`) beside the test. The
two exams give the same t0, the same 30 slot frames and the same score.

(Over UDP, one `gst-launch-1.0` sender fanned out to two sources, the two receivers' stream
times are not the same numbers: each demuxer times the frames from its own start, so identity
there is not a matter of times; not tested here.)"""

from __future__ import annotations

import subprocess

import pytest

from livekit import Engine, wait_until

LATE_S = 40.0


@pytest.fixture
def two_cpu_hogs():
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(2)]
    yield hogs
    for h in hogs:
        h.kill()
        h.wait(10)


def _status(eng: Engine, source: str) -> dict:
    r = eng.cmd("status", source=source)
    assert r.get("ok"), r
    return r


def _stream_s(eng: Engine, source: str) -> float:
    return _status(eng, source)["source"]["stream_time_s"] or 0.0


SIM = "sim://11?speed=10&size=320x240&injection=6"


def test_a_late_mark_gives_the_on_time_frames_on_a_busy_machine(env, two_cpu_hogs):
    from ceustream.models.simulator.scanner import SimScanner

    truth = SimScanner(SIM).truth
    inj = truth["injection_s"]
    eng = Engine(env, f"ontime={SIM}", "--source", f"late={SIM}")
    try:
        for name in ("ontime", "late"):
            assert eng.cmd("start_exam", source=name, exam=f"past{name}", roi=truth["roi"])["ok"]
        wait_until(lambda: _stream_s(eng, "ontime") >= inj - 0.6, 120, "ontime")
        r = eng.cmd("mark_injection", source="ontime", t=inj)
        assert r["ok"], r
        wait_until(lambda: _stream_s(eng, "late") >= inj + LATE_S, 180, "late")
        r = eng.cmd("mark_injection", source="late", t=inj, timeout_s=30)
        assert r["ok"], r
        wait_until(lambda: len(eng.results()) >= 2, 420, "both results")
    finally:
        eng.stop()
    res = {r["exam"]: r for r in eng.results()}
    on, late = res["pastontime"], res["pastlate"]
    assert "from the kept frames" in eng.stderr  # the late mark was served from the gate
    why = ({n: (r["t0"], r["score"], r["arrival"], r["flags"], r["warnings"], r["clock"])
            for n, r in (("ontime", on), ("late", late))}, eng.stderr[-3000:])
    assert on["final"] and on["slots_filled"] == 30, why
    assert late["final"] and late["slots_filled"] == 30, why
    assert on["t0"] == late["t0"], why
    assert [s.get("pts_s") for s in on["slots"]] == [s.get("pts_s") for s in late["slots"]], why
    assert on["score"] == late["score"]
    assert "slot_neighbour_fill" not in on["flags"] + late["flags"]
