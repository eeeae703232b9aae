"""Drives a frame reader through an exam: arrival detection, then the slots.

Works on any ``FrameSource`` (``ceustream.engine.core.source``), so the logic is the same
for every container, live or recorded.

One rule makes live, streamed and seeking runs choose the same frames. When t0 comes from
arrival detection it is known only after the rise is confirmed, when its first slots have
gone by. The arrival window is watched at ``monitor_hz`` (8 frames/s by default, chosen by
stream time, so the same frames in every mode); it is kept open until ``HOLD_S`` after the
confirmation, and every slot due before it closes is taken from those frames (its frame
is then at most 1/16 s off the slot time). Later slots get the exact nearest frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ceustream.engine.core.arrival import Arrival, ArrivalDetector
from ceustream.engine.core.roi import Roi
from ceustream.engine.core.source import DamagedStream, EndOfStream, FrameSource, SeekMismatch

from .session import ExamSession

log = logging.getLogger(__name__)

HOLD_S = 1.0  # the monitor window stays open this long after arrival is confirmed


@dataclass
class Plan:
    seek_mode: bool
    seek_lead_s: float = 0.1
    seek_min_gap_s: float = 0.5
    duration_s: float | None = None


@dataclass
class Frame:
    """A frame as the sampler keeps it: its time, the ROI crop, when it left the decoder."""

    pts_s: float
    crop: np.ndarray
    mono_ns: int | None


@dataclass
class Watch:
    """What arrival detection leaves behind for the slots."""

    arrival: Arrival
    history: list[Frame] = field(default_factory=list)  # monitor frames up to ``until``
    until: float = 0.0                                  # the monitor window's end
    pending: list[Any] = field(default_factory=list)    # frames already pulled after it


def roi_of(fr: Any, roi: Roi) -> np.ndarray:
    """The ROI of a reader's frame (which may already be cropped to it), as a copy."""
    return np.ascontiguousarray(fr.region(roi.x, roi.y, roi.w, roi.h))


def crop_of(fr: Any, session: ExamSession) -> np.ndarray:
    """A slot's crop: the session's region (the ROI and the parenchyma around it) when it has
    one, else the ROI."""
    return roi_of(fr, session.region or session.roi)


def roi_mean(fr: Any, roi: Roi) -> float:
    return float(fr.region(roi.x, roi.y, roi.w, roi.h).mean())


def monitor_interval(cfg: dict) -> float:
    return 1.0 / float(cfg["arrival"]["monitor_hz"])


def arm_monitor(reader: FrameSource, injection_s: float, cfg: dict) -> None:
    """One frame per monitor interval from the injection to the end of the arrival window.
    A streaming reader is armed before it starts, so no frame of the window goes by."""
    reader.set_monitor(injection_s, injection_s + float(cfg["arrival"]["window_s"]) + HOLD_S + 1.0,
                       monitor_interval(cfg))


def _pull(reader: FrameSource) -> Any:
    """The next frame; None from a live reader when no frame came in time."""
    return reader.pull()


def idle(session: ExamSession, reader: Any) -> None:
    """No frame within the pull timeout (live): say so, and decide the slots whose tolerance
    window has passed (neighbour-filled, flagged) instead of waiting for frames forever."""
    since = reader.seconds_since_frame()
    st = reader.stream_time()
    session.set_warning("no_signal", since is not None and since > 1.0)
    if session.sampler is not None and st is not None and since is not None:
        fills = session.sampler.advance(st + since)
        if fills:
            session.add(fills)


def detect_arrival(reader: FrameSource, session: ExamSession, injection_s: float, cfg: dict,
                   plan: Plan,
                   override: Callable[[], float | None] | None = None) -> Watch:
    """Watches the ROI from the injection on until contrast arrival is confirmed (or the
    window ends, or ``override()`` gives t0: the operator marked arrival), then keeps the
    monitor open ``HOLD_S`` longer for the first slots."""
    det = ArrivalDetector.from_config(injection_s, cfg["arrival"])
    if plan.seek_mode:
        arm_monitor(reader, injection_s, cfg)
        reader.seek(injection_s)
    step = monitor_interval(cfg)
    history: list[Frame] = []
    res: Arrival | None = None
    until = None
    pending: list[Any] = []
    try:
        while True:
            fr = _pull(reader)
            if fr is None:
                idle(session, reader)
                if override is not None and res is None and override() is not None:
                    res = Arrival(override(), "manual")
                    until = _confirmed(reader, session, res, reader.stream_time() or res.t0,
                                       step, plan)
                continue
            session.set_warning("no_signal", False)
            session.position_s = fr.pts_s
            if until is not None and fr.pts_s > until:
                pending.append(fr)
                break
            history.append(Frame(fr.pts_s, crop_of(fr, session), fr.mono_ns))
            if until is not None and fr.pts_s + step > until:
                break  # the next monitor frame would fall after the window: it is complete
            if res is None:
                manual = override() if override is not None else None
                res = Arrival(manual, "manual") if manual is not None else \
                    det.offer(fr.pts_s, roi_mean(fr, session.roi))
                if res is not None:
                    until = _confirmed(reader, session, res, fr.pts_s, step, plan)
                    if fr.pts_s + step > until:
                        break
    except (EndOfStream, DamagedStream) as e:
        if isinstance(e, DamagedStream):
            session.warnings.add("recording_damaged")
            session.damage = (str(e), e.at_s)
        if res is None:
            res = det.finish()
            until = history[-1].pts_s if history else injection_s
            session.set_t0(res.t0, res)
    finally:
        reader.stop_monitor()
    how = {"detected": "detected", "manual": "marked by the operator"}.get(
        res.method, "not seen, fallback")
    log.info("exam %s: contrast arrival %s: t0 = %.2f s", session.exam, how, res.t0)
    return Watch(res, [f for f in history if f.pts_s <= until], until, pending)


def _confirmed(reader: FrameSource, session: ExamSession, res: Arrival, now: float,
               step: float, plan: Plan) -> float:
    """Arrival confirmed at stream time ``now``: close the window ``HOLD_S`` later and, when
    streaming, list the later slots at once (a seeking reader lists them per seek)."""
    sampler = session.set_t0(res.t0, res)
    until = now + HOLD_S + step
    reader.set_monitor(session.injection or 0.0, until, step)
    if not plan.seek_mode:
        reader.set_slots([d for d in sampler.due if d > until])
    return until


def collect_slots(reader: FrameSource, session: ExamSession, plan: Plan,
                  watch: Watch | None = None, armed: bool = False) -> str | None:
    """Fills the session's slots from the reader. Returns the reason the exam ended early
    (``recording_ended_early``, ``recording_damaged``) or None when every slot was decided.
    ``armed``: a streaming reader was given the slots before it started (a recording with t0
    known), so none can go by before they are listed."""
    sampler = session.sampler
    assert sampler is not None
    due = sampler.due
    try:
        if watch is not None:
            for f in watch.history:
                _offer_frame(session, f.pts_s, f.crop, f.mono_ns)
            fills = sampler.cutoff(watch.until)
            if fills:
                session.add(fills)
        if not plan.seek_mode:
            if watch is None and not armed:
                reader.set_slots(due)
            for fr in (watch.pending if watch else []):
                _offer(session, fr)
            while not sampler.done:
                fr = _pull(reader)
                if fr is None:
                    idle(session, reader)
                else:
                    _offer(session, fr)
            return None
        try:
            return _seek_slots(reader, session, plan)
        except SeekMismatch as e:
            return decode_through(reader, session, str(e))
    except EndOfStream:
        return "recording_ended_early"
    except DamagedStream as e:
        session.warnings.add("recording_damaged")
        session.damage = (str(e), e.at_s)
        return "recording_damaged"


def _seek_slots(reader: FrameSource, session: ExamSession, plan: Plan) -> str | None:
    """Seek mode: one seek per group of close slots, ``seek_lead_s`` before the first. Every
    landing is checked: the first frame after a seek must come before the slot (or be nearer
    to it than the frame before could be); otherwise the seek is retried further back, and
    after three tries the container is not trusted (``SeekMismatch``). The reader checks
    the timestamps themselves and raises ``SeekMismatch`` too."""
    sampler = session.sampler
    due = sampler.due
    while sampler.next_index is not None:
        i = sampler.next_index
        if plan.duration_s is not None and due[i] > plan.duration_s + \
                session.schedule.tolerance_s[i]:
            break
        group = [due[i]]
        j = i + 1
        while j < len(due) and due[j] - due[j - 1] < plan.seek_min_gap_s:
            group.append(due[j])
            j += 1
        reader.set_slots(group)
        lead = plan.seek_lead_s
        for attempt in range(3):
            sampler.reset_prev()
            reader.seek(due[i] - lead)
            first = None
            try:
                while sampler.next_index is not None and sampler.next_index < j:
                    fr = _pull(reader)
                    if first is None:
                        first = fr.pts_s
                        # the frame before the slot was not delivered (the decoder clipped
                        # it, a gap, or the container landed late): look further back so it
                        # cannot be missed
                        missed = first >= due[i] and first - due[i] >= lead and due[i] - lead > 0
                        if missed and attempt < 2:
                            lead = (first - due[i]) + plan.seek_lead_s
                            break
                        if missed:
                            raise SeekMismatch(f"three seeks before slot {i} ({due[i]:.3f} s) "
                                               f"landed after it (at {first:.3f} s)")
                    _offer(session, fr)
                else:
                    break
            except EndOfStream:
                if sampler.next_index is not None and sampler.next_index < j:
                    return "recording_ended_early"
                break
    return None if sampler.done else "recording_ended_early"


def decode_through(reader: FrameSource, session: ExamSession, why: str) -> str | None:
    """A seek could not be trusted: the rest of the exam decodes the file through from its
    start (the gate lists every slot not decided yet), flagged ``seek_fallback``. The slots
    already decided came from verified landings and stand."""
    through = getattr(reader, "stream_through", None)
    if through is None:
        raise DamagedStream(why)
    sampler = session.sampler
    session.flags.add("seek_fallback")
    log.warning("exam %s: %s; decoding the recording through instead of seeking",
                session.exam, why)
    sampler.reset_prev()
    rest = sampler.due[sampler.next_index:] if sampler.next_index is not None else []
    through(rest, why=why)
    while not sampler.done:
        _offer(session, _pull(reader))
    return None


def _offer(session: ExamSession, fr: Any) -> None:
    session.set_warning("no_signal", False)
    _offer_frame(session, fr.pts_s, crop_of(fr, session), fr.mono_ns)


def _offer_frame(session: ExamSession, pts: float, roi_crop: np.ndarray, mono: int | None) -> None:
    session.position_s = pts
    fills = session.sampler.offer(pts, roi_crop, mono)
    if fills:
        session.add(fills, mono)
