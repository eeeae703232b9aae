"""Drives a frame reader through an exam: arrival detection, then the slots.

Works on anything with the reader's small interface (``set_monitor``, ``stop_monitor``,
``set_slots``, ``seek``, ``pull``; see ``ceustream.pipelines.filesource.FileReader``), so the
logic is the same for every container and is tested on real files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from .arrival import Arrival, ArrivalDetector
from .roi import Roi, crop
from .session import ExamSession


class EndOfStream(Exception):
    pass


class DamagedStream(Exception):
    def __init__(self, text: str, at_s: float | None):
        super().__init__(text)
        self.at_s = at_s


class Reader(Protocol):
    def set_monitor(self, start_s: float, stop_s: float, interval_s: float) -> None: ...
    def stop_monitor(self) -> None: ...
    def set_slots(self, times_s: list[float]) -> None: ...
    def seek(self, t_s: float) -> None: ...
    def pull(self, timeout_s: float = ...) -> Any: ...


@dataclass
class Plan:
    seek_mode: bool
    seek_lead_s: float = 0.25
    seek_min_gap_s: float = 0.5
    duration_s: float | None = None


def roi_mean(luma: np.ndarray, roi: Roi) -> float:
    return float(luma[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w].mean())


def arm_monitor(reader: Reader, injection_s: float, cfg: dict) -> None:
    """One frame per 1/monitor_hz from the injection to the end of the arrival window.
    A streaming reader is armed before it starts, so no frame of the window goes by."""
    a = cfg["arrival"]
    reader.set_monitor(injection_s, injection_s + float(a["window_s"]) + 1.0,
                       1.0 / float(a["monitor_hz"]))


def _pull(reader: Reader, ended: type, damaged: type) -> Any:
    try:
        return reader.pull()
    except ended:
        raise EndOfStream() from None
    except damaged as e:
        raise DamagedStream(str(e), getattr(e, "at_s", None)) from None


def detect_arrival(reader: Reader, session: ExamSession, injection_s: float, cfg: dict,
                   plan: Plan, ended: type, damaged: type,
                   progress: Callable[[str], None] | None = None) -> tuple[Arrival, float | None]:
    """Watches the ROI from the injection on; returns (arrival, stream time reached)."""
    det = ArrivalDetector.from_config(injection_s, cfg["arrival"])
    if plan.seek_mode:
        arm_monitor(reader, injection_s, cfg)
        reader.seek(injection_s)
    last = None
    try:
        while True:
            fr = _pull(reader, ended, damaged)
            last = fr.pts_s
            session.position_s = last
            res = det.offer(fr.pts_s, roi_mean(fr.luma, session.roi))
            if res is not None:
                break
    except EndOfStream:
        res = det.finish()
    finally:
        reader.stop_monitor()
    if progress:
        progress(f"contrast arrival {'detected' if res.method == 'detected' else 'not seen'}:"
                 f" t0 = {res.t0:.2f} s ({res.method})")
    return res, last


def collect_slots(reader: Reader, session: ExamSession, plan: Plan, ended: type, damaged: type,
                  position_s: float | None = None) -> str | None:
    """Fills the session's slots from the reader. Returns the reason the exam ended early
    (``recording_ended_early``, ``recording_damaged``) or None when every slot was decided."""
    sampler = session.sampler
    assert sampler is not None
    due = sampler.due
    try:
        if not plan.seek_mode:
            reader.set_slots(due)
            if position_s is not None and due[0] <= position_s:
                # t0 was found after its first slots went by: go back for them
                sampler.reset_prev()
                reader.seek(due[0] - plan.seek_lead_s)
            while not sampler.done:
                fr = _pull(reader, ended, damaged)
                _offer(session, fr)
            return None
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
            for _attempt in range(3):
                sampler.reset_prev()
                reader.seek(due[i] - lead)
                first = None
                try:
                    while sampler.next_index is not None and sampler.next_index < j:
                        fr = _pull(reader, ended, damaged)
                        if first is None:
                            first = fr.pts_s
                            # the frame before the slot was not delivered (decoder clipped
                            # it, or a gap): look further back so it is not missed
                            if first >= due[i] and first - due[i] >= lead and \
                                    due[i] - lead > 0 and _attempt < 2:
                                lead = (first - due[i]) + plan.seek_lead_s
                                break
                        _offer(session, fr)
                    else:
                        break
                except EndOfStream:
                    if sampler.next_index is not None and sampler.next_index < j:
                        return "recording_ended_early"
                    break
        return None if sampler.done else "recording_ended_early"
    except EndOfStream:
        return "recording_ended_early"
    except DamagedStream as e:
        session.warnings.add(f"damaged: {e}")
        session.damage = (str(e), e.at_s)  # type: ignore[attr-defined]
        return "recording_damaged"


def _offer(session: ExamSession, fr: Any) -> None:
    session.position_s = fr.pts_s
    fills = session.sampler.offer(fr.pts_s, crop(fr.luma, session.roi), fr.mono_ns)
    if fills:
        session.add(fills, fr.mono_ns)
