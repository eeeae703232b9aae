"""The live core's small contracts, on the real model and the real parsers: ids that refuse
every control character (socket and CLI), FINAL only with at most ``max_copied`` copied
slots, the score published before the clip's analysis runs."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from ceustream.engine.app.loading import load_model_and_backend
from ceustream.engine.app.session import ExamSession
from ceustream.engine.core import config
from ceustream.engine.core.errors import PartialResult
from ceustream.engine.core.roi import Roi
from ceustream.engine.wire.messages import check_exam_id, check_source_name, parse_command

from conftest import one_line_error, run_cli

CONTROL = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f"]


@pytest.mark.parametrize("c", CONTROL)
@pytest.mark.parametrize("where", ["end", "middle"])
def test_ids_with_a_control_character_are_refused_over_the_socket(c, where):
    bad = "evil" + c if where == "end" else "ev" + c + "il"
    for field in ("exam", "source"):
        raw = json.dumps({"cmd": "status", field: bad}).encode()
        with pytest.raises(ValueError, match=field) as e:
            parse_command(raw)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError):
        check_exam_id(bad)
    with pytest.raises(ValueError):
        check_source_name(bad)


def test_a_trailing_newline_is_refused_by_the_cli(env):
    """``$`` in a Python regex matches before a final newline: the ids use ``\\Z``."""
    p = run_cli(["control", "status", "--exam", "evil\n"], env, timeout=60)
    assert p.returncode == 2 and "exam id" in one_line_error(p)
    p = run_cli(["control", "status", "--source", "cam\n"], env, timeout=60)
    assert p.returncode == 2 and "source name" in one_line_error(p)


@pytest.fixture(scope="module")
def model():
    cfg = config.load(env={})
    return load_model_and_backend(None, "onnxruntime", cfg)


def frames_with_a_gap(s: ExamSession, gap: tuple[float, float]):
    """Frames every 0.5 s from t0 to 181 s, none inside ``gap``: the slots due there are
    filled from their neighbour. Each frame's picture depends on its time only."""
    sampler = s.set_t0(0.0)
    for k in range(0, 363):
        t = k * 0.5
        if gap[0] <= t < gap[1]:
            continue
        img = np.random.default_rng(k).integers(0, 256, (16, 16), dtype=np.uint8)
        fills = sampler.offer(t, img, None)
        if fills:
            s.add(fills)
    return s.finish(None)


@pytest.mark.parametrize("gap,copied,final", [
    # tolerance 1 s: a slot with no frame within 1 s is copied from its neighbour
    ((8.5, 11.5), 1, True),     # slot 5 (10 s): one copy
    ((8.5, 13.5), 2, True),     # slots 5, 6: two copies, the default limit
    ((8.5, 15.5), 3, False),    # slots 5-7: three copies: partial, slots_copied
    ((17.0, 35.0), 8, False),   # the outage: slots 9-16, copies of one frame
])
def test_final_only_with_at_most_k_copied_slots(model, gap, copied, final):
    m, be, note = model
    s = ExamSession("k1", m, be, Roi(0, 0, 16, 16), backend_note=note)
    r = frames_with_a_gap(s, gap)
    assert sum(1 for x in r["slots"] if x["source"] == "neighbour") == copied
    assert r["final"] is final and r["slots_filled"] == 30
    if final:
        assert r["label"] is not None and "slots_copied" not in r["flags"]
        assert s.phase == "complete"
    else:  # never labelled, counted partial, exit 4
        assert r["label"] is None and "slots_copied" in r["flags"] and s.phase == "partial"
        assert not s.last_score.final
        from ceustream.engine.cli.common import finish

        with pytest.raises(PartialResult, match="slots_copied") as e:
            finish(r, as_json=True)
        assert e.value.exit_code == 4


def test_the_copied_slot_limit_is_a_setting(model):
    m, be, note = model
    s = ExamSession("k2", m, be, Roi(0, 0, 16, 16), backend_note=note, max_copied=3)
    assert frames_with_a_gap(s, (8.5, 15.5))["final"]
    with pytest.raises(Exception, match="max_copied_slots"):
        config.load(env={"CEUSTREAM_ENGINE__MAX_COPIED_SLOTS": "-1"})


def test_the_score_leaves_before_the_clip_is_analysed(model):
    """The score event is emitted before the analyser runs; the analyser's reading comes
    with the status event that follows, and a slow analyser never holds a score back."""
    m, be, note = model
    order: list[str] = []
    release = threading.Event()

    def slow_analyser(session, score):
        order.append("analyse")
        release.wait(5)
        return {"features": {"reading": score.slot}, "warnings": {}}

    s = ExamSession("sf1", m, be, Roi(0, 0, 16, 16), backend_note=note,
                    analyser=slow_analyser)
    s.subscribe(lambda ev: order.append(f"{ev.kind}:{ev.session.features}")
                if ev.kind in ("score", "status") else None)
    sampler = s.set_t0(0.0)
    order.clear()
    release.set()
    img = np.full((16, 16), 7, np.uint8)
    for t in (0.0, 0.5):
        s.add(sampler.offer(t, img, None))
    # slot 0: score (no reading yet), then the analysis, then a status with the reading
    assert order[:3] == ["score:None", "analyse", "status:{'reading': 0}"], order
    # the domain travels with the score: undecided this early (core.domain.MIN_SLOTS)
    assert s.last_score.domain["state"] == "unknown"


# -- the exam clock, pure: monotone by construction -----------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ceustream.engine.app.examclock import JUMP_BACK_US, ExamClock  # noqa: E402

#: what a source does to the clock: a frame (stream step, decoder-exit step; steps may be
#: negative, zero or huge: repeats, stray frames, a sender restarting its clock), a reconnect
#: (a new pipeline whose stream time starts anywhere), a stall (wall time passes), a reading
#: of the clock (silent or not) with the gate's newest stream time
EVENTS = st.lists(st.one_of(
    st.tuples(st.just("frame"), st.integers(-200_000_000, 200_000_000),
              st.integers(0, 2_000_000_000)),
    st.tuples(st.just("reconnect"), st.integers(0, 10**12), st.integers(0, 10**10)),
    st.tuples(st.just("stall"), st.integers(0, 10**11), st.just(0)),
    st.tuples(st.just("now"), st.booleans(), st.integers(-10**8, 10**8)),
), max_size=300)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_the_exam_clock_only_goes_forward(events):
    clk = ExamClock()
    raw, mono = 0, 1_000_000_000
    accepted: list[int] = []
    readings: list[int] = []
    for kind, a, b in events:
        if kind == "frame":
            raw, mono = raw + a, mono + b
            us, event = clk.place(raw, mono)
            if us is not None:
                accepted.append(us)
                assert clk.last_us == us
            else:  # a skipped frame changes nothing
                assert event in (None, "first", "resumed") and accepted
        elif kind == "reconnect":
            clk.new_pipeline()
            raw, mono = a, mono + b
        elif kind == "stall":
            mono += a
        else:
            clk.observe_gate(raw + b, mono)
            r = clk.now_us(mono, a, raw + b)
            if r is not None:
                readings.append(r)
    assert all(x < y for x, y in zip(accepted, accepted[1:]))  # strictly increasing
    assert all(x <= y for x, y in zip(readings, readings[1:]))  # never back
    if accepted:
        assert accepted[0] == 0  # the first frame is exam time 0


def test_a_reconnect_goes_on_after_the_wall_time_in_between():
    clk = ExamClock()
    assert clk.place(5_000_000, 10**9) == (0, "first")
    assert clk.place(5_033_333, 10**9 + 33_333_000) == (33_333, None)
    clk.new_pipeline()  # 3 s later, a new pipeline whose stream starts at 0
    assert clk.place(0, 10**9 + 3_033_333_000) == (3_033_333, "resumed")


def test_three_frames_back_make_a_new_timeline_and_fewer_are_skipped():
    clk = ExamClock()
    for k in range(31):
        clk.place(50_000_000 + k * 33_333, k * 33_333_000)
    top = clk.last_us
    assert clk.place(0, 31 * 33_333_000) == (None, None)
    assert clk.place(33_333, 32 * 33_333_000) == (None, None)
    us, event = clk.place(66_666, 33 * 33_333_000)
    assert event == "timeline" and us > top and top - (66_666 - 50_000_000) > JUMP_BACK_US


def test_the_clock_runs_on_from_the_newest_frame_the_gate_saw_while_silent():
    """Between slots the gate passes nothing: the newest frame taken can be far behind the
    newest frame seen. A silent reading runs on from the latter (it once fell back 28 s)."""
    clk = ExamClock()
    clk.place(0, 0)  # a slot frame at 0 s
    clk.observe_gate(28_000_000, 28 * 10**9)  # frames seen, not passed, up to 28 s
    assert clk.now_us(28 * 10**9, False, 28_000_000) == 28_000_000
    assert clk.now_us(29 * 10**9, True, None) == 29_000_000  # silent: 28 s + 1 s of wall
