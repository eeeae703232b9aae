"""The schedule and the sampler, as plain functions: nearest frame within tolerance, neighbour
fill, missing slots, over any frame rate and jitter (property tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ceustream.engine.core.modelmeta import PAPER_OFFSETS_S, PAPER_TOLERANCE_S
from ceustream.engine.core.schedule import (FRAME, MISSING, NEIGHBOUR, Sampler, Schedule,
                                       nearest_brute_force)


def test_paper_schedule():
    s = Schedule()
    assert len(s) == 30
    assert s.offsets_s[:25] == tuple(float(x) for x in range(0, 50, 2))
    assert s.offsets_s[25:] == (60.0, 90.0, 120.0, 150.0, 180.0)
    assert s.span_s == 180.0
    assert s.times(10.0)[0] == 10.0 and s.times(10.0)[-1] == 190.0


def run_sampler(pts, sched, t0, payloads=None):
    s = Sampler(sched, t0)
    for k in range(len(pts)):
        s.offer(pts[k], k if payloads is None else payloads[k])
    s.close()
    return s


def chosen(s: Sampler) -> list:
    return [f.payload if f.source == FRAME else None for f in s.fills]


@settings(max_examples=150, deadline=None)
@given(fps=st.floats(5.0, 60.0), jitter=st.floats(0.0, 0.45), t0=st.floats(0.0, 30.0),
       seed=st.integers(0, 10_000), drop=st.floats(0.0, 0.3))
def test_sampler_picks_nearest_frame(fps, jitter, t0, seed, drop):
    rng = np.random.default_rng(seed)
    n = int((t0 + 185) * fps)
    pts = np.arange(n) / fps + rng.uniform(-jitter, jitter, n) / fps
    pts = np.sort(pts[rng.random(n) >= drop])
    pts = [float(p) for p in pts if p >= 0]
    sched = Schedule()
    ref = nearest_brute_force(pts, sched, t0)
    # (that the frames ceusgate passes are enough is tested on the real element:
    # tests/test_gate_past.py)
    assert chosen(run_sampler(pts, sched, t0)) == ref


def test_tie_goes_to_the_earlier_frame():
    s = run_sampler([9.5, 10.5], Schedule((10.0,), (1.0,)), 0.0)
    assert s.fills[0].payload == 0 and s.fills[0].error_s == -0.5


def test_empty_slot_is_filled_from_its_neighbour_and_flagged():
    # a 6 s gap (probe lifted) around slots 3-5 of t0 = 0
    pts = [x / 10 for x in range(0, 50)] + [x / 10 for x in range(110, 2000)]
    s = run_sampler(pts, Schedule(), 0.0)
    sources = [f.source for f in s.fills]
    assert sources[3] == NEIGHBOUR and s.fills[3].from_slot == 2
    assert sources[4] == NEIGHBOUR and sources[5] == FRAME
    assert s.fills[3].payload is s.fills[2].payload
    assert MISSING not in sources


def test_first_slot_empty_waits_for_the_next_one():
    pts = [x / 10 for x in range(15, 2000)]  # starts 1.5 s after t0 = 0: slot 0 out of tolerance
    s = run_sampler(pts, Schedule(), 0.0)
    assert s.fills[0].source == NEIGHBOUR and s.fills[0].from_slot == 1


def test_recording_ending_early_leaves_slots_missing_not_neighbour_filled():
    pts = [x / 30 for x in range(0, 30 * 100)]  # 100 s of video, t0 = 10 s
    s = run_sampler(pts, Schedule(), 10.0)
    sources = [f.source for f in s.fills]
    assert sources[:25] == [FRAME] * 25
    assert sources[25] == FRAME  # due at 70 s
    assert sources[27:] == [MISSING] * 3
    assert s.filled() == 27


def test_advance_decides_slots_when_no_frames_come():
    s = Sampler(Schedule(), 0.0)
    s.offer(0.01, "a")
    s.offer(2.0, "b")  # slots 0 and 1
    out = s.advance(9.0)  # no frames for 7 s: slots 2, 3 (due 4, 6) are past tolerance
    assert [f.index for f in out] == [2, 3]
    assert all(f.source == NEIGHBOUR for f in out)


def test_cutoff_uses_the_frames_so_far():
    s = Sampler(Schedule(), 10.0)
    for t in np.arange(9.0, 11.95, 0.125):  # the arrival window's frames, up to 11.875 s
        s.offer(float(t), float(t))
    out = s.cutoff(12.1)
    assert [f.index for f in out] == [1]  # slot 1 (12 s) from the last frame before it
    assert s.fills[0].pts_s == 10.0 and s.fills[1].pts_s == 11.875


def test_duplicate_or_out_of_order_frames_are_ignored():
    s = Sampler(Schedule(), 0.0)
    s.offer(0.0, "a")
    assert s.offer(0.0, "dup") == [] and s.offer(-1.0, "old") == []


def test_meta_schedule_drives_the_sampler():
    sched = Schedule((0.0, 5.0, 7.5), (0.5, 0.5, 0.5))
    s = run_sampler([x / 4 for x in range(0, 60)], sched, 1.0)
    assert [f.pts_s for f in s.fills] == [1.0, 6.0, 8.5]
    assert len(PAPER_OFFSETS_S) == len(PAPER_TOLERANCE_S) == 30


# -- exact times: an independent reference in rational arithmetic ---------------------------
def rational_reference(pts_ns: list[int], offsets, tolerances, t0) -> list[int | None]:
    """Nearest frame per slot, ties to the EARLIER frame, computed with ``Fraction`` from the
    decimal texts of the schedule and t0 (no float ever compared)."""
    from fractions import Fraction

    t0 = Fraction(str(t0))
    out = []
    for off, tol in zip(offsets, tolerances):
        due = t0 + Fraction(str(off))
        tol = Fraction(str(tol))
        best, best_d = None, None
        for k, p in enumerate(pts_ns):  # frames in time order: the first of equals is earlier
            d = abs(Fraction(p, 10**9) - due)
            if d <= tol and (best is None or d < best_d):
                best, best_d = k, d
        out.append(best)
    return out


def ties_12_5fps(t0: float) -> list[int]:
    """A 12.5 fps file as GStreamer times it: frame k at k * 80 ms, in nanoseconds."""
    return [k * 80_000_000 for k in range(int((t0 + 185) * 12.5))]


def test_ties_go_to_the_earlier_frame_at_12_5_fps():
    t0 = 18.2  # half-way between two frames (18.16 and 18.24): every slot is an exact tie
    pts_ns = ties_12_5fps(t0)
    pts = [p / 1e9 for p in pts_ns]  # what a reader hands the sampler
    ref = rational_reference(pts_ns, PAPER_OFFSETS_S, PAPER_TOLERANCE_S, t0)
    # every slot is a tie, and the earlier frame wins it
    from fractions import Fraction
    for k, off in zip(ref, PAPER_OFFSETS_S):
        due = Fraction("18.2") + Fraction(str(off))
        assert Fraction(pts_ns[k], 10**9) == due - Fraction(1, 25)
    s = run_sampler(pts, Schedule(), t0)
    assert chosen(s) == ref
    assert all(f.error_s == -0.04 for f in s.fills)
    assert nearest_brute_force(pts, Schedule(), t0) == ref
    # the float comparison the sampler used before gets many of them wrong (the bug this
    # test is here to see)
    naive = []
    for due, tol in zip([t0 + o for o in PAPER_OFFSETS_S], PAPER_TOLERANCE_S):
        best = None
        for k, p in enumerate(pts):
            if abs(p - due) <= tol and (best is None or abs(p - due) < abs(pts[best] - due)):
                best = k
        naive.append(best)
    assert sum(a != b for a, b in zip(naive, ref)) >= 10  # 20 of 30 at this t0


@settings(max_examples=60, deadline=None)
@given(fps_num=st.sampled_from([(25, 2), (15, 1), (24, 1), (30000, 1001), (10, 1), (50, 1)]),
       start_frames=st.integers(0, 400), half=st.booleans(), first_ns=st.integers(0, 3 * 10**9))
def test_sampler_matches_the_rational_reference_on_ties(fps_num, start_frames, half, first_ns):
    """Frames at exact rational times (GStreamer rounds to ns), t0 on a frame or half-way
    between two: the sampler and the brute force agree with Fraction arithmetic."""
    from fractions import Fraction

    num, den = fps_num
    period = Fraction(den, num)
    t0_exact = Fraction(first_ns, 10**9) + period * start_frames + (period / 2 if half else 0)
    t0 = round(float(t0_exact), 9)
    n = int((float(t0_exact) + 185) * num / den)
    pts_ns = [first_ns + round(period * k * 10**9) for k in range(n)]
    pts = [p / 1e9 for p in pts_ns]
    ref = rational_reference(pts_ns, PAPER_OFFSETS_S, PAPER_TOLERANCE_S, repr(t0))
    assert chosen(run_sampler(pts, Schedule(), t0)) == ref
    assert nearest_brute_force(pts, Schedule(), t0) == ref


def test_due_times_are_exact_nanoseconds():
    s = Sampler(Schedule(), 10.04)
    assert s.due_ns[1] == 12_040_000_000 and s.due_ns[-1] == 190_040_000_000
    assert s.due[1] == 12.04


def test_a_frame_half_a_period_before_a_slot_does_not_decide_it_when_timestamps_jitter():
    """Seen on an MPEG-TS/UDP stream (CI): frames 31 ms apart at a nominal 30 fps. The
    frame 15.9 ms before the slot is not the nearest: the next one, 15.1 ms after, is. A
    sampler deciding on the frame rate alone would take the earlier one live and the later
    one on replay. The slot waits for the next frame."""
    t0 = 18.454800
    s = Sampler(Schedule(), t0)  # slot 9 is due at t0 + 18 s = 36.4548
    assert s.due_ns[9] == 36_454_800_000
    got = []
    for pts in (36.405, 36.439149):
        got += s.offer(pts, pts)
    assert all(f.index != 9 for f in got)  # undecided after the frame before it
    got = s.offer(36.47018, 36.47018)
    assert 9 in [f.index for f in got]
    assert s.fills[9].source == FRAME and s.fills[9].payload == 36.47018


@settings(max_examples=200, deadline=None)
@given(t0=st.floats(1.0, 30.0), seed=st.integers(0, 2**32 - 1))
def test_jittered_timestamps_give_the_brute_force_nearest_frame(t0, seed):
    """Nominal 30 fps with up to +-4 ms jitter per frame (a live capture's timestamps):
    every slot gets the frame a brute-force search over all frames calls nearest."""
    rng = np.random.default_rng(seed)
    n = int((t0 + 185) * 30)
    pts = np.round((np.arange(n) / 30.0 + rng.uniform(-0.004, 0.004, n)) * 1e6) / 1e6
    pts = list(np.maximum.accumulate(pts))
    sched = Schedule()
    s = Sampler(sched, t0)
    for k, p in enumerate(pts):
        s.offer(float(p), k)
    s.close()
    want = nearest_brute_force([float(p) for p in pts], sched, t0)
    got = [f.payload if f.source == FRAME else None for f in s.fills]
    assert got == want
