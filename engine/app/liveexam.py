"""One live exam over the frames of its source: the recent past kept, marks honoured late,
arrival detected, slots filled — the same decisions a replay of the exam's recording makes.

While the exam is open and t0 is not known, the source's gate passes every frame and the exam
keeps their ROI crops (``history.History``). A mark (``mark_injection`` / ``mark_arrival``)
may name a time in the past within the kept horizon, or up to ``FUTURE_S`` ahead: the kept
frames from that time on are run through exactly the path later frames take, so a mark given
80 s late yields the clip and score of the same mark given on time.

The path is ``collect.detect_arrival`` + ``collect.collect_slots`` of a streaming replay,
with ``ceusgate``'s choices made here on the exam's microsecond clock: arrival is watched on
the monitor frames (``history.MonitorPicker``, 8 per second from the injection); once it is
confirmed the window stays open ``collect.HOLD_S`` longer and every slot due inside it is
taken from those monitor frames; later slots take the nearest frame. When the window closes
the gate is told the slots and stops passing everything.

Without frames (no signal) time still passes: arrival detection falls back when its window
has gone by, and slots whose tolerance has passed are decided by ``Sampler.advance`` (the
neighbour/missing rules), each published as a ``slot_missed`` warning as it happens.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from typing import Any, Protocol

import numpy as np

from ceustream.engine.core.arrival import Arrival, ArrivalDetector
from ceustream.engine.core.errors import CeusError, UsageError
from ceustream.engine.core.roi import Roi
from ceustream.engine.core.schedule import FRAME
from ceustream.engine.core.source import Frame

from .collect import HOLD_S, monitor_interval
from .history import History, Kept, MonitorPicker, slot_us, to_us
from .session import ExamSession

log = logging.getLogger(__name__)

#: a mark may be at most this far ahead of the newest frame (seconds)
FUTURE_S = 1.0
#: how far before the injection the ROI is compared with the baseline (seconds)
PRE_INJECTION_S = 30.0


class Gate(Protocol):
    """What an exam asks of its source's gate, on the exam's clock."""

    def configure(self, pass_all: bool, slots_s: list[float]) -> None: ...


def baseline_contaminated(pre: list[float], window: list[float], rise: float) -> bool:
    """True when the baseline window (the first seconds after the injection mark) already
    shows contrast: the ROI was clearly darker before the mark (``pre``: per-second ROI means
    before it), or it rises inside the window itself. ``rise``: the detector's threshold above
    its baseline (grey levels). Either means the mark came after contrast arrived."""
    if len(window) < 4:
        return False
    base = float(np.median(window))
    if pre and base - min(pre) > rise:
        return True
    q = max(2, len(window) // 4)
    return float(np.median(window[-q:])) - float(np.median(window[:q])) > rise


def rise_threshold(values: list[float], det: ArrivalDetector) -> float:
    """The detector's rise threshold above its baseline for these baseline values (grey
    levels): max(k * robust sigma, min_rise), as ``ArrivalDetector`` computes it."""
    if not values:
        return det.min_rise
    v = np.asarray(values)
    sigma = max(1.4826 * float(np.median(np.abs(v - np.median(v)))), 0.5)
    return max(det.k_sigma * sigma, det.min_rise)


class Outputs(Protocol):
    """What an exam holds open while it runs (its journal, its model lease): closed once its
    result is out."""

    def close(self) -> None: ...


class LiveExam:
    """The frame-by-frame state of one live exam (``stage``: waiting, detecting, collecting,
    ended) and the commands on it. Its decisions are not thread-safe: its source's runner
    calls them under the runner's lock. Scoring is not among them: a decided slot is queued
    (``_decided``) and put into the clip and scored by ``score_pending``, which the runner
    calls after releasing its lock, so that no source's or engine's lock is ever held while
    the model runs; the exam's own ``_score_lock`` only keeps its scores in order."""

    def __init__(self, session: ExamSession, cfg: dict, gate: Gate, history: History,
                 outputs: list[Outputs] | None = None):
        self.s = session
        self.outputs = list(outputs or [])
        #: ("add", fills, mono_ns) and ("finish", reason), in decision order
        self._pending: deque[tuple] = deque()
        self._score_lock = threading.Lock()
        self._report_lock = threading.Lock()
        self.cfg = cfg
        self.gate = gate
        self.history = history
        self.stage = "waiting"
        self.step_s = monitor_interval(cfg)
        self.det: ArrivalDetector | None = None
        self.picker: MonitorPicker | None = None
        self.until: float | None = None
        self.window: list[Kept] = []
        self.s1_us: int | None = None       # the first slot after the window (µs)
        self.last: Kept | None = None       # the previous frame, and whether it was picked
        self.last_picked = False
        self.newest_us: int | None = None
        self.pre_means: list[float] = []
        self.checked_baseline = False
        self.result: dict[str, Any] | None = None
        self.reported = False  # the runner has handed the result on
        self.warned_memory = False
        gate.configure(True, [])

    # -- frames ----------------------------------------------------------------------------
    def feed(self, k: Kept) -> None:
        """A frame from the source (exam clock, in time order)."""
        if self.stage == "ended":
            return
        if self.newest_us is not None and k.us <= self.newest_us:
            return
        self.newest_us = k.us
        if self.stage in ("waiting", "detecting"):
            self.history.add(k)
            if self.history.bytes_limited_s is not None and not self.warned_memory:
                self.warned_memory = True
                log.warning("exam %s: a %dx%d ROI: the memory bound (live.history_max_mb) "
                            "keeps only the last %.0f s for late marks", self.s.exam,
                            k.crop.shape[1], k.crop.shape[0], self.history.bytes_limited_s)
        self._step(k)

    def _step(self, k: Kept) -> None:
        if self.stage == "detecting":
            self._detect(k)
        elif self.stage == "collecting":
            self._offer(k)
        else:
            self.last, self.last_picked = k, False

    def tick(self, now_s: float, no_signal: bool) -> None:
        """Time passes without frames (``no_signal``): decide what cannot wait any longer."""
        if not no_signal or self.stage in ("waiting", "ended"):
            return
        if self.stage == "detecting":
            if self.until is None and now_s >= self.det.window_end:
                res = self.det.finish()
                self.s.set_t0(res.t0, res)
                self.until = self.window[-1].pts_s if self.window else self.s.injection
                log.info("exam %s: no signal through the arrival window: t0 = %.2f s (%s)",
                         self.s.exam, res.t0, res.method)
                self._end_window([])
            elif self.until is not None and now_s > self.until:
                self._end_window([])
        if self.stage == "collecting":
            sampler = self.s.sampler
            first = sampler.next_index
            fills = sampler.advance(now_s)
            last = sampler.next_index if sampler.next_index is not None else len(sampler.due)
            if first is not None and last > first:
                taken = {f.index for f in fills if f.source == FRAME}
                missed = [i for i in range(first, last) if i not in taken]
                if missed:
                    log.warning("exam %s: no signal: slot(s) %s missed (neighbour/missing rule)",
                                self.s.exam, ", ".join(str(i + 1) for i in missed))
                    self.s.set_warning("slot_missed", True)
            if fills:
                self._decided(fills)
            self._check_done()

    # -- marks -----------------------------------------------------------------------------
    def check_time(self, t: float, now_s: float | None, what: str) -> int:
        """A mark's time (µs) if the kept past covers it, else a one-line refusal."""
        if not math.isfinite(t):
            raise UsageError(f"{what}: t must be a finite number of seconds")
        if now_s is not None and t > now_s + FUTURE_S:
            raise UsageError(f"{what}: t={t:.2f} s is {t - now_s:.1f} s ahead of the stream "
                             f"({now_s:.2f} s); at most {FUTURE_S:g} s ahead")
        us = to_us(t)
        start = self.history.covers_from_us
        if start is None:
            if now_s is not None and t < now_s - 1.0:
                raise UsageError(f"{what}: t={t:.2f} s: no frame of this exam is kept from "
                                 "then (none has come since it started)")
            return us
        if us < start:
            horizon = self.history.horizon_us / 1e6
            raise UsageError(f"{what}: t={t:.2f} s is before the kept past (frames are kept "
                             f"from {start / 1e6:.2f} s: since the exam started or its ROI was "
                             f"set, for at most {horizon:g} s)")
        return us

    def mark_injection(self, t: float, now_s: float | None) -> float:
        if self.stage != "waiting" or self.s.injection is not None:
            raise UsageError("injection (or arrival) is already marked for this exam")
        us = self.check_time(t, now_s, "mark_injection")
        t = us / 1e6
        arr = self.cfg["arrival"]
        self.pre_means = self._pre_means(us)
        self.s.mark_injection(t)
        self.det = ArrivalDetector.from_config(t, arr)
        self.picker = MonitorPicker.from_seconds(
            t, t + float(arr["window_s"]) + HOLD_S + 1.0, self.step_s)
        self.stage = "detecting"
        self.last, self.last_picked = None, False
        for k in list(self.history.since(us)):  # the kept past, then live frames
            if self.stage == "ended":
                break
            self._step(k)
        return t

    def mark_arrival(self, t: float, now_s: float | None) -> float:
        if self.s.t0 is not None:
            raise UsageError(f"t0 is already set ({self.s.t0:.2f} s)")
        us = self.check_time(t, now_s, "mark_arrival")
        t = us / 1e6
        manual = Arrival(t, "manual")
        self.det = None
        self.s.set_t0(t, manual)
        self.stage = "collecting"
        self.last, self.last_picked = None, False
        # every kept frame is a candidate: the nearest frame for each slot, as on time
        for k in list(self.history.since(0)):
            if self.stage == "ended":
                break
            self._offer(k)
        self.history.clear()
        if self.stage == "collecting":
            self.gate.configure(False, list(self.s.sampler.due))
        return t

    def roi_changed(self) -> None:
        """A new ROI (before any mark): the kept crops show another place."""
        self.history.clear()

    # -- arrival ---------------------------------------------------------------------------
    def _detect(self, k: Kept) -> None:
        picked = self.picker.pick(k.us)
        prev, prev_picked = self.last, self.last_picked
        self.last, self.last_picked = k, picked
        if self.until is None:  # before confirmation the gate passes monitor frames only
            if not picked:
                return
            self.window.append(k)
            self.s.position_s = k.pts_s
            res = self.det.offer(k.pts_s, float(k.crop.mean()))
            self._baseline_check()
            if res is not None:
                self._confirmed(res, k.pts_s)
                if k.pts_s + self.step_s > self.until:
                    self._end_window([])
            return
        # after it: monitor frames, and the frames the gate passes for the first later slot
        # (the one before it may still fall inside the window)
        out: list[Kept] = []
        if prev is not None and not prev_picked and self.s1_us is not None and \
                prev.us < self.s1_us <= k.us:
            out.append(prev)
        if picked or (self.s1_us is not None and k.us >= self.s1_us):
            out.append(k)
        used = False
        for g in out:
            self.s.position_s = g.pts_s
            used = g is k
            if g.pts_s > self.until:
                self._end_window([g])
                break
            self.window.append(g)
            if g.pts_s + self.step_s > self.until:
                self._end_window([])
                break
        if self.stage == "collecting" and not used:
            self._offer(k)  # from here on every frame is a slot candidate

    def _confirmed(self, res: Arrival, now: float) -> None:
        sampler = self.s.set_t0(res.t0, res)
        self.until = now + HOLD_S + self.step_s
        self.picker.stop_at(self.until)
        later = [d for d in sampler.due if d > self.until]
        self.s1_us = slot_us(later[0]) if later else None
        log.info("exam %s: contrast arrival %s: t0 = %.2f s", self.s.exam,
                 "detected" if res.method == "detected" else "not seen, fallback", res.t0)

    def _end_window(self, pending: list[Kept]) -> None:
        """The arrival window is complete: its monitor frames decide the slots due inside
        it, later slots take the nearest frame (``collect.collect_slots``)."""
        self.stage = "collecting"
        sampler = self.s.sampler
        for f in self.window:
            if f.pts_s <= self.until:
                self._offer(f, check=False)
        fills = sampler.cutoff(self.until)
        if fills:
            self._decided(fills)
        for f in pending:
            self._offer(f, check=False)
        self.window = []
        self.history.clear()
        self.gate.configure(False, list(sampler.due))
        self._check_done()

    def _pre_means(self, inj_us: int) -> list[float]:
        """Per-second ROI means of the kept frames before the injection mark."""
        frames = [k for k in self.history.before(inj_us)
                  if k.us >= inj_us - to_us(PRE_INJECTION_S)]
        out: dict[int, list[float]] = {}
        for k in frames:
            out.setdefault(k.us // 1_000_000, []).append(float(k.crop.mean()))
        return [float(np.median(v)) for v in out.values() if len(v) >= 2]

    def _baseline_check(self) -> None:
        """Once the detector's baseline window is complete: does it already show contrast?"""
        det = self.det
        if self.checked_baseline or det is None or not det.times or \
                det.times[-1] < det.injection_s + det.baseline_s:
            return
        self.checked_baseline = True
        base = [v for t, v in zip(det.times, det.values)
                if t < det.injection_s + det.baseline_s]
        if baseline_contaminated(self.pre_means, base, rise_threshold(base, det)):
            log.warning("exam %s: the baseline window after the injection mark already shows "
                        "contrast (mark too late?): arrival detection cannot be trusted; mark "
                        "arrival instead", self.s.exam)
            self.s.flags.add("baseline_contaminated")
            self.s.set_warning("baseline_contaminated", True)

    # -- slots -----------------------------------------------------------------------------
    def _offer(self, k: Kept, check: bool = True) -> None:
        self.last, self.last_picked = k, False
        self.s.position_s = k.pts_s
        fills = self.s.sampler.offer(k.pts_s, k.crop, k.mono_ns)
        if fills:
            if any(f.source == FRAME for f in fills):
                self.s.set_warning("slot_missed", False)
            self._decided(fills, k.mono_ns)
        if check:
            self._check_done()

    def _check_done(self) -> None:
        sampler = self.s.sampler
        if self.stage != "collecting" or sampler is None:
            return
        if sampler.done:
            self.finish(None)
        elif sampler.next_index is None:  # only slots waiting for a neighbour that never came
            self.finish("slots_missing")

    # -- the end ---------------------------------------------------------------------------
    def finish(self, reason: str | None) -> None:
        """Closes the exam: no more frames or marks; its result (undecided slots missing)
        follows from ``score_pending``, after the slots decided before it are scored."""
        if self.stage == "ended":
            return
        self.stage = "ended"
        self.history.clear()
        self.gate.configure(False, [])
        self._pending.append(("finish", reason))

    # -- scoring (outside the runner's lock) -----------------------------------------------
    def _decided(self, fills: list, mono_ns: int | None = None) -> None:
        """Decided slots: queued for ``score_pending`` (never scored under a lock)."""
        self._pending.append(("add", fills, mono_ns))

    def has_pending(self) -> bool:
        return bool(self._pending)

    def score_pending(self) -> dict[str, Any] | None:
        """Puts the decided slots into the clip and scores them, in order; closes the exam
        when its finish is reached. Returns the result the first time it is complete and not
        yet handed on (``take_result``), else None. Called by any thread holding no lock;
        the exam's scores stay in decision order."""
        with self._score_lock:
            while self._pending:
                job = self._pending.popleft()
                if job[0] == "add":
                    self.s.add(job[1], job[2])
                elif self.result is None:
                    self.result = self.s.finish(job[1])
        return self.take_result()

    def take_result(self) -> dict[str, Any] | None:
        """The result, once: the first caller after it is complete gets it (the others
        None), and the exam's outputs (journal, model lease) are closed."""
        with self._report_lock:
            if self.result is None or self.reported:
                return None
            self.reported = True
        for o in self.outputs:
            try:
                o.close()
            except Exception:
                log.exception("exam %s: closing an output failed", self.s.exam)
        self.outputs = []
        return self.result

    # -- what the source's runner reads and tells (it never reaches into the session) ------
    @property
    def exam_id(self) -> str:
        return self.s.exam

    @property
    def phase(self) -> str:
        return self.s.phase

    @property
    def open(self) -> bool:
        return self.stage != "ended"

    def status_fields(self) -> dict[str, Any]:
        return self.s.status_fields()

    def set_warning(self, name: str, on: bool) -> None:
        """A source warning (no_signal, frozen_frame, ...) while the exam is open."""
        if self.stage != "ended":
            self.s.set_warning(name, on)

    def progress(self, now_s: float | None, speed: float, lag_s: float | None,
                 no_signal: bool) -> None:
        """The source's clock moved (a frame, or time without one)."""
        if self.stage == "ended":
            return
        self.s.speed = speed
        if lag_s is not None:
            self.s.lag_s = lag_s
        if now_s is not None:
            self.tick(now_s, no_signal)

    def take_frame(self, fr: Frame, us: int, lag_s: float) -> dict[str, bool]:
        """A frame of the source at exam time ``us`` (µs); returns the source warnings it
        decides (``roi_outside_frame``, ``source_changed``)."""
        s = self.s
        if self.stage == "ended":
            return {}
        out: dict[str, bool] = {}
        if s.frame_size is None:  # the exam started before the first frame
            s.frame_size = (fr.width, fr.height)
            try:
                s.roi.check_inside(fr.width, fr.height, "the video frame")
            except CeusError as e:
                log.error("exam %s: %s; set_roi to a box inside the frame", s.exam, e)
                s.frame_size = None
                return {"roi_outside_frame": True}
            out["roi_outside_frame"] = False
            s.announce()
        if (fr.width, fr.height) != tuple(s.frame_size):
            out["source_changed"] = True
            return out
        out["source_changed"] = False
        s.lag_s = lag_s
        roi = s.roi
        crop = np.ascontiguousarray(fr.region(roi.x, roi.y, roi.w, roi.h))
        self.feed(Kept(us, crop, fr.mono_ns))
        return out

    @property
    def roi(self) -> Roi:
        return self.s.roi

    def set_roi(self, r: Roi) -> dict[str, Any]:
        """A new ROI, before any mark (checked against the frame by the caller)."""
        if self.stage != "waiting":
            raise UsageError("the ROI is fixed once contrast is being watched")
        self.s.roi = r
        self.roi_changed()
        self.s.announce()
        return {"roi": r.as_list()}
