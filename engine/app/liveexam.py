"""One live exam over the frames of its source: the recent past kept, marks honoured late,
arrival detected, slots filled — the same decisions a replay of the exam's recording makes.

While the exam is open and t0 is not known, the source's gate (``ceusgate``, in the source's
worker process) keeps the ROI's luma of every frame in a ring bounded by ``live.history_s``
and ``live.history_max_mb``, and passes no frame to Python. A mark (``mark_injection`` /
``mark_arrival``) may name a time in the past within the kept horizon, or up to ``FUTURE_S``
ahead: the gate runs its kept frames from that time on through the one selection rule its live
frames take (the monitor window, 8 frames per second from the injection; the slots: the last
frame before and the first at or after each) and sends the chosen ones ahead of the live
frames that follow, so a mark given 80 s late yields the clip and score of the same mark given
on time. Frames the gate passed before the request (an older ``epoch``) are not used.

The path is ``collect.detect_arrival`` + ``collect.collect_slots`` of a streaming replay, on
the exam's microsecond clock: arrival is watched on the monitor frames; once it is confirmed
the window stays open ``collect.HOLD_S`` longer and every slot due inside it is taken from
those monitor frames; later slots take the nearest of the frames the gate passes for them.

Without frames (no signal) time still passes: arrival detection falls back when its window
has gone by, and slots whose tolerance has passed are decided by ``Sampler.advance`` (the
neighbour/missing rules), each published as a ``slot_missed`` warning as it happens.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np

from ceustream.engine.core.arrival import Arrival, ArrivalDetector
from ceustream.engine.core.errors import CeusError, UsageError
from ceustream.engine.core.roi import Roi
from ceustream.engine.core.schedule import FRAME
from ceustream.engine.core.source import Frame

from .collect import HOLD_S, monitor_interval
from .history import Kept, to_us
from .journal import Journal, default_dir
from .outputs import attach
from .overload import SlotWatch
from .session import ExamSession

if TYPE_CHECKING:
    from ceustream.engine.backends import Backend
    from ceustream.engine.core.modelmeta import LoadedModel
    from ceustream.engine.wire.publisher import Publisher

    from .modelslot import Lease, ModelSlot
    from .session import Score
    from .telemetry import Telemetry

log = logging.getLogger(__name__)

#: a mark may be at most this far ahead of the newest frame (seconds)
FUTURE_S = 1.0
#: how far before the injection the ROI is compared with the baseline (seconds)
PRE_INJECTION_S = 30.0


@dataclass
class ExamContext:
    """What every exam of the engine shares: model, backend, outputs, settings. With a
    ``slot`` each exam leases the model current when it starts (``reload_model`` never
    changes a running exam) and scores through the slot's shared batching scorer;
    ``telemetry`` counts what happens."""

    cfg: dict[str, dict[str, object]]
    model: LoadedModel | None
    backend: Backend | None
    note: str
    publisher: Publisher | None = None
    journal: bool = True
    on_score: Callable[[Score, ExamSession], None] | None = None
    on_done: Callable[[dict[str, object]], None] | None = None
    slot: ModelSlot | None = None
    telemetry: Telemetry | None = None


@dataclass
class SourceView:
    """What an exam takes from its source when it opens: the source's name, its picture
    size (None before the first frame), its exam clock (``now_s``), whether its gate sees the
    picture frozen, its clock record (shared: the source fills it in) and its warnings."""

    name: str
    size: tuple[int, int] | None
    now_s: Callable[[], float | None]
    picture_frozen: Callable[[], bool]
    clock: dict[str, Any]
    warnings: set[str]


class LeaseOutput:
    """A model lease as an exam output: released with the exam's result (a replaced model
    is closed with its last exam)."""

    def __init__(self, lease: Lease):
        self.lease = lease

    def close(self) -> None:
        self.lease.release()


def journal_error(session: ExamSession, text: str) -> None:
    """The journal could not write: the exam says so (flag and warning) and goes on."""
    session.flags.add("journal_error")
    session.set_warning("journal_error", True)



class Gate(Protocol):
    """What an exam asks of its source's gate, on the exam's clock (seconds)."""

    def keep(self, roi: Any) -> None:
        """Keep the luma of this ROI of every frame (None: keep nothing, forget)."""

    def rule(self, monitor: tuple[float, float, float] | None, slots: list[float]) -> None:
        """The monitor window (start, stop, interval) and the slots from the next frame on."""

    def replay(self, monitor: tuple[float, float, float] | None, slots: list[float],
               from_s: float | None = None, after: Kept | None = None,
               pre_from_s: float | None = None) -> None:
        """The same, run first over the kept past from ``from_s`` (or from just after the
        frame ``after``, the monitor's rhythm going on from it); the kept frames from
        ``pre_from_s`` come as context. The chosen frames come before any later live one."""

    def close_gate(self) -> None:
        """Nothing more: no monitor, no slots, nothing kept."""

    def kept_from_s(self) -> float | None:
        """The exam time of the oldest kept frame (None: nothing kept)."""

    def kept_limited(self) -> bool:
        """True when the memory bound, not the horizon, decides how far back it goes."""


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

    def __init__(self, session: ExamSession, cfg: dict, gate: Gate,
                 outputs: list[Outputs] | None = None):
        self.s = session
        self.outputs = list(outputs or [])
        #: ("add", fills, mono_ns) and ("finish", reason), in decision order
        self._pending: deque[tuple] = deque()
        self._score_lock = threading.Lock()
        self._report_lock = threading.Lock()
        self.cfg = cfg
        self.gate = gate
        self.horizon_s = float(cfg["live"]["history_s"])
        self.stage = "waiting"
        self.step_s = monitor_interval(cfg)
        self.det: ArrivalDetector | None = None
        self.until: float | None = None
        self.window: list[Kept] = []
        self.newest_us: int | None = None
        self.inj_us: int | None = None
        self.pre: dict[int, list[float]] = {}  # ROI means of the kept frames before the mark
        self.checked_baseline = False
        self.result: dict[str, Any] | None = None
        self.reported = False  # the runner has handed the result on
        self.warned_memory = False
        self.slots_given = False
        self.window_rule: tuple[float, float, float] = (0.0, 0.0, self.step_s)
        gate.keep(session.roi)

    @classmethod
    def begin(cls, ctx: ExamContext, gate: Gate, exam: str, roi: Roi,
              src: SourceView) -> "LiveExam":
        """A new exam on a source: its session on the model current now (a lease when the
        engine has a model slot), its journal, publisher, metrics and slot watch attached;
        started, waiting for the injection mark. The lease is released if it cannot open."""
        lease = ctx.slot.lease() if ctx.slot is not None else None
        model, backend, note = (lease.model, lease.backend, lease.note) if lease else \
            (ctx.model, ctx.backend, ctx.note)
        try:
            session = ExamSession(exam, model, backend, roi, speed=0.0,
                                  frame_size=src.size, backend_note=note, clock=src.now_s,
                                  source=src.name,
                                  max_copied=int(ctx.cfg["engine"]["max_copied_slots"]),
                                  picture_frozen=src.picture_frozen)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        outputs: list[Outputs] = [] if lease is None else [LeaseOutput(lease)]
        session.info["clock"] = src.clock
        session.info["source"] = src.name
        jr = None
        if ctx.journal:
            jr = Journal(default_dir(ctx.cfg), exam,
                         on_error=lambda text, s=session: journal_error(s, text))
            outputs.insert(0, jr)  # the journal is closed before the model is released
        attach(session, ctx.publisher, jr, ctx.on_score)
        if ctx.telemetry is not None:
            ctx.telemetry.watch(session)
        session.subscribe(SlotWatch(float(ctx.cfg["engine"]["slot_late_s"]), ctx.telemetry))
        session.warnings.update(src.warnings)
        ex = cls(session, ctx.cfg, gate, outputs)
        session.start()
        log.info("exam %s started (ROI %s); waiting for the injection mark", exam, roi)
        return ex

    # -- frames ----------------------------------------------------------------------------
    def feed(self, k: Kept) -> None:
        """A frame the gate chose (live, or kept and replayed: exam clock, in time order)."""
        if self.stage in ("ended", "waiting"):
            return
        if k.context:
            if self.stage == "detecting" and self.inj_us is not None and \
                    self.inj_us - to_us(PRE_INJECTION_S) <= k.us < self.inj_us:
                self.pre.setdefault(k.us // 1_000_000, []).append(float(k.crop.mean()))
            return
        if self.newest_us is not None and k.us <= self.newest_us:
            return
        self.newest_us = k.us
        if self.stage == "detecting":
            self._detect(k)
        elif self.stage == "collecting":
            self._offer(k)

    def tick(self, now_s: float, no_signal: bool) -> None:
        """Time passes without frames (``no_signal``): decide what cannot wait any longer."""
        if self.stage in ("waiting", "detecting") and not self.warned_memory and \
                self.gate.kept_limited():
            self.warned_memory = True
            start = self.gate.kept_from_s()
            log.warning("exam %s: a %dx%d ROI: the memory bound (live.history_max_mb) keeps "
                        "only the past since %s for late marks", self.s.exam, self.s.roi.w,
                        self.s.roi.h, "?" if start is None else f"{start:.1f} s")
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
        start = self.gate.kept_from_s()
        if start is None:
            if now_s is not None and t < now_s - 1.0:
                raise UsageError(f"{what}: t={t:.2f} s: no frame of this exam is kept from "
                                 "then (none has come since it started)")
            return us
        if us < to_us(start):
            raise UsageError(f"{what}: t={t:.2f} s is before the kept past (frames are kept "
                             f"from {start:.2f} s: since the exam started, its ROI was set or "
                             f"the source reconnected, for at most {self.horizon_s:g} s)")
        return us

    def mark_injection(self, t: float, now_s: float | None) -> float:
        if self.stage != "waiting" or self.s.injection is not None:
            raise UsageError("injection (or arrival) is already marked for this exam")
        us = self.check_time(t, now_s, "mark_injection")
        t = us / 1e6
        arr = self.cfg["arrival"]
        self.s.mark_injection(t)
        self.det = ArrivalDetector.from_config(t, arr)
        self.stage = "detecting"
        self.inj_us = us
        self.newest_us = None
        # the kept past from t through the gate's monitor rule, then live frames
        self.window_rule = (t, t + float(arr["window_s"]) + HOLD_S + 1.0, self.step_s)
        self.gate.replay(self.window_rule, [], from_s=t, pre_from_s=t - PRE_INJECTION_S)
        return t

    def mark_arrival(self, t: float, now_s: float | None) -> float:
        if self.s.t0 is not None:
            raise UsageError(f"t0 is already set ({self.s.t0:.2f} s)")
        us = self.check_time(t, now_s, "mark_arrival")
        t = us / 1e6
        manual = Arrival(t, "manual")
        self.det = None
        self.window = []
        self.s.set_t0(t, manual)
        self.stage = "collecting"
        self.newest_us = None
        # every kept frame through the gate's slot rule (the last frame before and the first
        # at or after each slot: the nearest is among them), then live frames
        self.gate.replay(None, list(self.s.sampler.due), from_s=0.0)
        self.gate.keep(None)
        return t

    def roi_changed(self) -> None:
        """A new ROI (before any mark): the kept crops show another place."""
        self.gate.keep(self.s.roi)

    # -- arrival ---------------------------------------------------------------------------
    def _detect(self, k: Kept) -> None:
        """A frame the gate passed while arrival is watched (``collect.detect_arrival``): a
        monitor frame, or after the confirmation also a frame for the first later slots."""
        self.s.position_s = k.pts_s
        if self.until is None:
            self.window.append(k)
            res = self.det.offer(k.pts_s, float(k.crop.mean()))
            self._baseline_check()
            if res is not None:
                self._confirmed(res, k)
                if k.pts_s + self.step_s > self.until:
                    self._end_window([])
            return
        if k.pts_s > self.until:
            self._end_window([k])
            return
        self.window.append(k)
        if k.pts_s + self.step_s > self.until:
            self._end_window([])

    def _confirmed(self, res: Arrival, k: Kept) -> None:
        sampler = self.s.set_t0(res.t0, res)
        self.until = k.pts_s + HOLD_S + self.step_s
        # the window closes at ``until``; the later slots are listed. Run over the kept past
        # from just after this frame: a late mark's frames after it are in the past already
        start, _, step = self.window_rule
        self.gate.replay((start, self.until, step), [d for d in sampler.due if d > self.until],
                         after=k)
        self.slots_given = True
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
        # the slots after the window are the gate's since the confirmation (left as they are:
        # setting them again could drop the frame it holds for the next one)
        if not self.slots_given:
            self.gate.rule(None, [d for d in sampler.due if d > self.until])
            self.slots_given = True
        self.gate.keep(None)
        self._check_done()

    def _pre_means(self) -> list[float]:
        """Per-second ROI means of the kept frames before the injection mark."""
        return [float(np.median(v)) for v in self.pre.values() if len(v) >= 2]

    def _baseline_check(self) -> None:
        """Once the detector's baseline window is complete: does it already show contrast?"""
        det = self.det
        if self.checked_baseline or det is None or not det.times or \
                det.times[-1] < det.injection_s + det.baseline_s:
            return
        self.checked_baseline = True
        base = [v for t, v in zip(det.times, det.values)
                if t < det.injection_s + det.baseline_s]
        if baseline_contaminated(self._pre_means(), base, rise_threshold(base, det)):
            log.warning("exam %s: the baseline window after the injection mark already shows "
                        "contrast (mark too late?): arrival detection cannot be trusted; mark "
                        "arrival instead", self.s.exam)
            self.s.flags.add("baseline_contaminated")
            self.s.set_warning("baseline_contaminated", True)

    # -- slots -----------------------------------------------------------------------------
    def _offer(self, k: Kept, check: bool = True) -> None:
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
        self.gate.close_gate()
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
                 no_signal: bool, gate_silent: bool | None = None) -> None:
        """The source's clock moved (a frame, or time without one). ``gate_silent``: the
        gate itself saw no frame for the no-signal time (default: ``no_signal``); only then
        are slots given up for want of frames."""
        if self.stage == "ended":
            return
        self.s.speed = speed
        if lag_s is not None:
            self.s.lag_s = lag_s
        if now_s is not None:
            self.tick(now_s, no_signal if gate_silent is None else gate_silent)

    def take_frame(self, fr: Frame, us: int, lag_s: float,
                   stream_ns: int | None = None) -> dict[str, bool]:
        """A frame of the source at exam time ``us`` (µs; ``stream_ns``: its time on the
        pipeline's own clock); returns the source warnings it decides
        (``roi_outside_frame``, ``source_changed``)."""
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
        if crop.shape != (roi.h, roi.w):
            # cropped by the gate's worker for an ROI set before (a frame on its way when
            # set_roi came): not this ROI's picture
            log.debug("exam %s: a frame cropped for another ROI skipped", s.exam)
            return out
        self.feed(Kept(us, crop, fr.mono_ns, stream_ns=stream_ns))
        return out

    def take_past(self, fr: Frame, us: int, stream_ns: int, context: bool) -> None:
        """A kept frame the gate replayed for a mark in the past (``context``: before the
        replay's start, for the baseline check only)."""
        s = self.s
        if self.stage == "ended" or s.frame_size is None:
            return
        roi = s.roi
        crop = np.ascontiguousarray(fr.region(roi.x, roi.y, roi.w, roi.h))
        if crop.shape != (roi.h, roi.w):
            return  # kept for another ROI (the gate's keep-roi changed meanwhile)
        self.feed(Kept(us, crop, fr.mono_ns, context=context, stream_ns=stream_ns))

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
