"""The live engine: sources that outlive their faults, exams one after another on each,
driven by control commands (ZeroMQ REP, the keyboard, or a scanner integration).

Rooms, each with one job, none reaching into another's state:

- ``supervisor.Supervisor``: a source's pipeline generations (a source worker process each),
  opened, closed and re-opened with backoff (0.5 s doubling to 5 s) when one fails, ends,
  stalls, crashes or hangs;
- ``examclock.ExamClock``: the source's exam clock, pure and monotone by construction;
- ``sourcehealth.HealthMonitor``: frame rate, frozen picture, speed, lag and the frame counters
  (cumulative across reconnects, per source in the metrics);
- ``liveexam.LiveExam``: the exam and its commands (marks, ROI, stop), its outputs (journal,
  model lease) and its scoring queue;
- ``SourceRunner`` (here): the source's thread, which ties them together and owns the gate and
  the source's warnings (``no_signal``, ``frozen_frame``); ``LiveEngine``: the table of
  runners and the control commands.

Nothing a source does ends the engine or the exam: without frames the exam's time goes on,
warnings are published, and slots whose tolerance passes are decided by the neighbour/missing
rules. Locks: a runner's lock guards its decisions (frames, ticks, commands); the model never
runs under it, nor under the engine's (``LiveExam.score_pending`` runs after the lock is
released), so ``status`` and ``health`` answer while exams score.

The exam clock: seconds since the first frame the engine received from the source
(microsecond resolution), so a recording of the exam (``--record``) replays on the same
times. When a source is re-opened its new pipeline's stream time may restart anywhere; the
new pipeline's first frame is placed at the last frame's exam time plus the wall-clock time
that passed in between, and the exam clock goes on from there (always increasing).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any, Callable

from ceustream.engine.core.errors import CeusError, InputError, UsageError
from ceustream.engine.core.roi import Roi
from ceustream.engine.core.source import DamagedStream, EndOfStream, Frame
from ceustream.engine.wire import messages
from ceustream.pipelines.source import redact

from . import examclock
from .history import Kept, to_us
from .liveexam import ExamContext, LiveExam, SourceView
from .sourcehealth import HealthMonitor, SpeedMeter
from .supervisor import Reader, Supervisor

#: ``ExamContext`` lives with the exam (``liveexam``: the exam's room builds the exam from
#: it); the engine's callers take it from here as before
__all__ = ["ExamContext", "LiveEngine", "SourceRunner"]

log = logging.getLogger(__name__)

__all__ = ["ExamContext", "LiveEngine", "SourceRunner", "SpeedMeter", "CONTROL_KINDS"]

#: extra slot times listed to the gate around each slot (µs), so that a frame whose exam time
#: rounds onto the slot cannot hide the frame after it
SLOT_PAD_US = 5


#: frames in a row far back that make a new timeline (``examclock``)
TIMELINE_CONFIRM = examclock.TIMELINE_CONFIRM


def names(values: set[str]) -> list[str]:
    """A sorted copy of a set another thread may be changing (retried, never an error)."""
    for _ in range(100):
        try:
            return sorted(values)
        except RuntimeError:  # "set changed size during iteration"
            continue
    return []


def live_settings(cfg: dict) -> dict[str, float]:
    """The ``[live]`` settings, as numbers."""
    return {k: float(v) for k, v in cfg["live"].items()}


class SourceRunner:
    """One source: its thread, gate, warnings and current exam, over the rooms of the
    module's docstring."""

    def __init__(self, name: str, uri: str, open_reader: Callable[[int], Reader],
                 ctx: ExamContext, reopen: bool = True):
        self.name = name
        self.uri = uri
        self.ctx = ctx
        self.settings = live_settings(ctx.cfg)
        self.lock = threading.RLock()
        self.sup = Supervisor(name, uri, open_reader, self.settings, reopen)
        self.health = HealthMonitor(name, self.settings["frozen_s"])
        #: the exam clock (µs), pure (``examclock.ExamClock``): fed under the lock
        self.xclock = examclock.ExamClock()
        self._now_lock = threading.Lock()
        self.size: tuple[int, int] | None = None
        self.warnings: set[str] = set()
        self.exam: LiveExam | None = None
        self.results: list[dict] = []
        #: the exam's wishes for the gate, on the exam clock (``liveexam.Gate``): applied to
        #: each new pipeline's gate once its first frame places it on the exam clock
        self._gate_cfg: dict[str, Any] = {"keep": None, "monitor": None, "slots": []}
        #: the latest replay request (``ceusgate``'s epoch): frames the gate chose before it
        #: (older epoch) are not the exam's any more; 0 for a new pipeline
        self._epoch = 0
        self._want_epoch = 0
        #: a replay's frames are on their way: nothing is decided by the clock meanwhile
        self._replaying = False
        self._quit = threading.Event()
        #: what the exam's times mean (in every result; updated as the source comes and goes)
        self.clock: dict[str, Any] = {
            "kind": "seconds since the first frame received from the source",
            "first_frame_stream_s": None, "reconnects": 0}
        self._t = threading.Thread(target=self._run, name=f"source-{name}", daemon=True)

    # -- what others read ------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.sup.state

    @property
    def ended(self) -> threading.Event:
        return self.sup.ended

    @property
    def reader(self) -> Reader | None:
        return self.sup.reader

    # -- life ------------------------------------------------------------------------------
    def start(self) -> None:
        self._t.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stops the thread and the pipeline (a running exam is left to the caller)."""
        self._quit.set()
        self._t.join(timeout_s)
        with self.lock:
            r = self.sup.take()
        self.health.retire(r)
        if r is not None:
            r.close()

    def wait_for_video(self, timeout_s: float) -> bool:
        """True once the source delivered a frame (scripts, tests)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.last_us is not None:
                return True
            if self.ended.is_set():
                return False
            time.sleep(0.02)
        return False

    # -- the clock -------------------------------------------------------------------------
    @property
    def offset_us(self) -> int | None:
        """exam = stream + offset for the open pipeline (µs); None before its first frame."""
        return self.xclock.offset_us

    @property
    def last_us(self) -> int | None:
        """Exam time (µs) of the newest frame taken."""
        return self.xclock.last_us

    @property
    def last_mono_ns(self) -> int | None:
        return self.xclock.last_mono_ns

    @property
    def first_stream_s(self) -> float | None:
        us = self.xclock.first_stream_us
        return None if us is None else us / 1e6

    def seconds_since_frame(self) -> float | None:
        r = self.sup.reader
        arrival = r.arrival_ns() if r is not None and self.offset_us is not None else 0
        last = max(arrival, self.last_mono_ns or 0)
        return None if last == 0 else (time.monotonic_ns() - last) / 1e9

    def now_s(self) -> float | None:
        """The exam clock now: the newest frame at the gate; while no frame comes, the newest
        frame's time plus the wall time since (so countdowns keep moving). Never goes back
        (``examclock.ExamClock.now_us``)."""
        since = self.seconds_since_frame()
        silent = since is not None and since > self.settings["no_signal_s"]
        r = self.sup.reader
        st = r.stream_ns() if r is not None and not silent else None
        with self._now_lock:  # the control thread reads it too (status)
            us = self.xclock.now_us(time.monotonic_ns(), silent,
                                    None if st is None else (st + 500) // 1000)
        return None if us is None else us / 1e6

    # -- the gate (``liveexam.Gate``, on the exam clock) ----------------------------------
    def _stream_s(self, exam_s: float, off: int) -> float:
        """An exam time as the open pipeline's stream time (seconds, whole µs)."""
        return (to_us(exam_s) - off) / 1e6

    def keep(self, roi: Any) -> None:
        self._gate_cfg["keep"] = None if roi is None else (roi.x, roi.y, roi.w, roi.h)
        if roi is not None:  # the exam's frames carry its ROI only, kept or not
            self._gate_cfg["crop"] = self._gate_cfg["keep"]
        r = self.sup.reader
        if r is not None and self.offset_us is not None:
            self._apply_keep(r)

    def _apply_keep(self, r: Any) -> None:
        st = self.settings
        r.set_keep(self._gate_cfg["keep"], st["history_s"], int(st["history_max_mb"] * 1e6))
        set_crop = getattr(r, "set_crop", None)
        if set_crop is not None:
            set_crop(self._gate_cfg.get("crop"))

    def rule(self, monitor: tuple[float, float, float] | None, slots: list[float]) -> None:
        """The gate's monitor window and slots from the next frame on (nothing replayed)."""
        self._gate_cfg["monitor"], self._gate_cfg["slots"] = monitor, list(slots)
        self._apply_gate()

    def replay(self, monitor: tuple[float, float, float] | None, slots: list[float],
               from_s: float | None = None, after: Kept | None = None,
               pre_from_s: float | None = None) -> None:
        """The gate's rule as ``rule``, run first over the kept past: from ``from_s`` (exam
        time), or from just after the frame ``after`` (the monitor's rhythm going on from it),
        with the kept frames from ``pre_from_s`` as context. Frames the gate chose before this
        request are not the exam's any more (the epoch)."""
        self._gate_cfg["monitor"], self._gate_cfg["slots"] = monitor, list(slots)
        r, off = self.sup.reader, self.offset_us
        if r is None or off is None:
            return
        self._epoch += 1
        self._want_epoch = self._epoch
        self._replaying = True
        last = None
        if after is not None and after.stream_ns is not None:
            from_ns = after.stream_ns + 1
            last = after.stream_ns if monitor is not None else None
        else:
            from_ns = max(0, to_us(from_s or 0.0) - off) * 1000
        mon = None if monitor is None else (
            max(0.0, self._stream_s(monitor[0], off)), self._stream_s(monitor[1], off),
            monitor[2])
        pre = None if pre_from_s is None else max(0, to_us(pre_from_s) - off) * 1000
        r.replay(self._epoch, from_ns, pre, mon, last, self._slot_times(off))

    def close_gate(self) -> None:
        self._gate_cfg = {"keep": None, "monitor": None, "slots": []}
        self._apply_gate()

    def kept_from_s(self) -> float | None:
        r, off = self.sup.reader, self.offset_us
        if r is None or off is None:
            return None
        from_ns, _ = r.kept()
        return None if from_ns is None else ((from_ns + 500) // 1000 + off) / 1e6

    def kept_limited(self) -> bool:
        r = self.sup.reader
        return r is not None and r.kept()[1]

    def _slot_times(self, off: int) -> list[float]:
        times = []
        for s in self._gate_cfg["slots"]:
            us = to_us(s) - off
            times += [(us - SLOT_PAD_US) / 1e6, (us + SLOT_PAD_US) / 1e6]
        return sorted(t for t in times if t >= 0)

    def _apply_gate(self) -> None:
        """The exam's wishes as they stand (no replay) on the open pipeline's gate."""
        r, off = self.sup.reader, self.offset_us
        if r is None or off is None:
            return
        r.set_slots(self._slot_times(off))
        mon = self._gate_cfg["monitor"]
        if mon is None:
            r.stop_monitor()
        else:
            r.set_monitor(max(0.0, self._stream_s(mon[0], off)), self._stream_s(mon[1], off),
                          mon[2])
        r.set_pass_all(False)

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        sup = self.sup
        while not self._quit.is_set():
            self.health.beat()
            try:
                if sup.reader is None:
                    wait = sup.wait_s()
                    if wait is None or wait > 0:
                        self._idle(min(max(wait or 0.0, 0.1), 0.5))
                        continue
                    if not self._open():
                        continue
                try:
                    fr = sup.reader.pull(0.1)
                except (EndOfStream, DamagedStream, InputError) as e:
                    self._lost(str(e) or "the source ended", isinstance(e, EndOfStream))
                    continue
                with self.lock:
                    if fr is not None:
                        self.health.took()
                        self._frame(fr)
                    self._tick()
                self.settle()  # the model runs here, with no lock held
                if sup.reopen and not self._replaying:
                    # (a replay's frames are coming; the worker's own hang limit applies)
                    reason = sup.stalled(self.offset_us is not None, self.gate_silent_s())
                    if reason is not None:
                        self._lost(reason, False)
            except Exception:  # never let the source's thread die
                log.exception("source %s: unexpected error (continuing)", self.name)
                self._idle(0.5)

    def _idle(self, seconds: float) -> None:
        """Waits (the source is gone) while the exam's time goes on."""
        deadline = time.monotonic() + seconds
        while not self._quit.is_set() and time.monotonic() < deadline:
            with self.lock:
                self._tick()
            self.settle()
            self._quit.wait(0.1)

    def _open(self) -> bool:
        r = self.sup.open()
        if r is None:
            if not self.sup.reopen:
                self._gone("source_error")
            return False
        with self.lock, self._now_lock:
            self.sup.install(r)
            self.xclock.new_pipeline()
            self.health.new_pipeline()
            self._want_epoch = 0  # a new gate: what it passes is the exam's wishes as they stand
            self._replaying = False
        return True

    def _lost(self, why: str, eos: bool) -> None:
        """The pipeline failed, ended, stalled, or its worker crashed or hung: close it;
        re-open later (or end)."""
        with self.lock:
            r = self.sup.take(lost=True)
            got_frames = self.offset_us is not None
            self._set_warning("no_signal", True)
            self._set_warning("frozen_frame", False)
        self.health.retire(r)
        if r is not None:
            r.close()
        if not self.sup.closed(r, why, got_frames):
            self._gone("source_ended" if eos else "source_error")
            return
        self.clock["reconnects"] = self.sup.reconnects

    def _gone(self, reason: str) -> None:
        with self.lock:
            ex = self.open_exam()
            if ex is not None:
                ex.finish(reason)
        self.settle()
        self.sup.ended.set()

    # -- frames ----------------------------------------------------------------------------
    def _frame(self, fr: Frame) -> None:
        pts_ns = int(round(fr.pts_s * 1e9))
        raw = (pts_ns + 500) // 1000
        if getattr(fr, "epoch", 0) < self._want_epoch:
            return  # chosen by the gate before the exam's latest request: not the exam's
        if getattr(fr, "past", "") == "end":
            self._replaying = False
            return
        if getattr(fr, "past", ""):
            self._past_frame(fr, raw, pts_ns)
            return
        mono = fr.mono_ns if fr.mono_ns is not None else time.monotonic_ns()
        clk = self.xclock
        before_us, before_ns = clk.last_us, clk.last_mono_ns
        was = clk.exam_us(raw)
        us, event = clk.place(raw, mono)
        if event == "first":
            self.clock["first_frame_stream_s"] = self.first_stream_s
            self.size = (fr.width, fr.height)
            log.info("source %s: first frame (%dx%d) at stream time %.3f s: the exam clock "
                     "starts here", self.name, fr.width, fr.height, raw / 1e6)
        elif event == "resumed":
            log.info("source %s: frames again after %.1f s; the exam clock goes on at %.2f s",
                     self.name, (mono - (before_ns or mono)) / 1e9, clk.exam_us(raw) / 1e6)
        elif event == "timeline":
            # the stream time went back and stayed back: a new timeline (a sender that
            # restarted its clock)
            log.warning("source %s: stream time jumped back %.2f s; the exam clock goes on",
                        self.name, ((before_us or 0) - (was or 0)) / 1e6)
        if event is not None:
            self._apply_gate()
            if self.sup.reader is not None:  # a new pipeline, or a new timeline: kept anew
                self._apply_keep(self.sup.reader)
        if us is None:
            # a repeated or out-of-order frame, or one with a time far back that the next
            # frames do not confirm yet (a decoder fed a damaged stream puts out such frames):
            # the earlier one stands
            return
        lag = self.health.lag(mono)
        self._set_warning("no_signal", False)
        self.sup.playing()
        ex = self.open_exam()
        if ex is None:
            return
        for name, on in ex.take_frame(fr, us, lag, pts_ns).items():
            self._set_warning(name, on)

    def _past_frame(self, fr: Frame, raw: int, pts_ns: int) -> None:
        """A kept frame the gate replayed for a late mark: on the exam clock by the open
        pipeline's offset (it was on screen before the newest frame; the clock is not
        moved)."""
        us = self.xclock.exam_us(raw)
        ex = self.open_exam()
        if us is not None and ex is not None:
            ex.take_past(fr, us, pts_ns, context=fr.past == "context")

    def gate_silent_s(self) -> float | None:
        """Seconds the gate has seen no frame: a worker's own measure (frames it reported but
        the engine has not read yet are the engine behind, not the source), else the newest
        frame taken."""
        quiet = getattr(self.sup.reader, "gate_silent_s", None)
        return quiet() if quiet is not None else self.seconds_since_frame()

    # -- periodic --------------------------------------------------------------------------
    def _tick(self) -> None:
        r = self.sup.reader
        since = self.seconds_since_frame()
        no_signal = r is None or since is None or since > self.settings["no_signal_s"]
        # a replay's frames on their way carry the gate's state as it was when each was sent:
        # its clock reads late until they are through, not a source without signal
        no_signal = no_signal and not (self._replaying and r is not None)
        self._set_warning("no_signal", no_signal)
        if r is not None and self.offset_us is not None:
            self._set_warning("frozen_frame", self.health.observe(r, self.offset_us, no_signal))
            st = r.stream_ns()  # every frame at the gate, passed or not
            if st is not None and not no_signal:
                self.xclock.observe_gate((st + 500) // 1000, r.arrival_ns())
        ex = self.open_exam()
        if ex is not None:
            # status carries the lag (also between slot frames)
            # slots are given up for want of frames only when the gate itself saw none (as its
            # worker last reported): a worker slow to report on a busy machine delays its
            # frames, it does not lose them
            silent = self.gate_silent_s() if r is not None else None
            ex.progress(self.now_s(), 0.0 if no_signal else self.health.speed(),
                        self.health.engine_lag_s(r is not None), no_signal,
                        gate_silent=no_signal and (r is None or silent is None or
                                                   silent > self.settings["no_signal_s"]))

    def _picture_frozen(self) -> bool:
        """The gate has seen the whole picture byte-identical (``frozen-after`` frames)."""
        if "frozen_frame" in self.warnings:
            return True
        r = self.sup.reader
        try:
            return r is not None and bool(r.frozen())
        except Exception:
            return False

    def _set_warning(self, name: str, on: bool) -> None:
        if on == (name in self.warnings):
            return
        (self.warnings.add if on else self.warnings.discard)(name)
        log.info("source %s: %s %s", self.name, name, "raised" if on else "cleared")
        ex = self.exam
        if ex is not None:
            ex.set_warning(name, on)

    # -- scoring (no lock held) ------------------------------------------------------------
    def settle(self) -> None:
        """Scores what the current exam decided and hands its result on when it is out
        (``LiveExam.score_pending``). Called with no lock held: by the source's thread after
        each frame or tick, and by a command that needs the result (stop_exam)."""
        ex = self.exam
        if ex is None:
            return
        res = ex.score_pending()
        if res is None:
            return
        self.results.append(res)
        if self.ctx.on_done:
            try:
                self.ctx.on_done(res)
            except Exception:
                log.exception("exam %s: the result callback failed", ex.exam_id)

    def busy(self) -> bool:
        """An exam is open, or its result is not handed on yet."""
        ex = self.exam
        return ex is not None and (ex.open or not ex.reported)

    # -- exams -----------------------------------------------------------------------------
    def open_exam(self) -> LiveExam | None:
        ex = self.exam
        return ex if ex is not None and ex.open else None

    def need_exam(self) -> LiveExam:
        ex = self.open_exam()
        if ex is None:
            raise UsageError("no exam running: send start_exam first")
        return ex

    def command(self, req: dict[str, Any]) -> dict[str, Any]:
        """An exam command for this source (``LiveEngine.handle``): decided under the
        runner's lock; what it leaves to score is scored after it, never under it."""
        cmd = req["cmd"]
        if cmd == "start_exam":
            self.settle()  # an exam that ended a moment ago: its result is handed on first
            with self.lock:
                return self.start_exam(req.get("exam"), req.get("roi"))
        if cmd == "stop_exam":
            return self.stop_exam()
        with self.lock:
            if cmd == "set_roi":
                return self.set_roi(req["roi"])
            if cmd == "mark_injection":
                return self.mark_injection(req.get("t"))
            if cmd == "mark_arrival":
                return self.mark_arrival(req.get("t"))
        raise UsageError(f"unknown command {cmd!r}")

    def start_exam(self, exam: str | None, roi: list[int] | None) -> dict[str, Any]:
        """Checks the request against this source (one exam at a time, the ROI inside its
        picture) and opens the exam (``LiveExam.begin``: the exam's own room builds it)."""
        if self.open_exam() is not None:
            raise UsageError(f"exam {self.exam.exam_id} is running: stop_exam first")
        if roi is None:
            raise UsageError("start_exam needs roi [x, y, w, h] (or run with --roi)")
        r = Roi(*roi)
        size = self.frame_size()
        if size is not None:
            r.check_inside(size[0], size[1], "the video frame")
        self.exam = LiveExam.begin(
            self.ctx, self, exam or "x" + secrets.token_hex(6), r,
            SourceView(self.name, size, self.now_s, self._picture_frozen, self.clock,
                       set(self.warnings)))
        return {"exam": self.exam.exam_id, "phase": self.exam.phase}

    def set_roi(self, roi: list[int]) -> dict[str, Any]:
        ex = self.need_exam()
        r = Roi(*roi)
        size = self.frame_size()
        if size is not None and ex.stage == "waiting":
            r.check_inside(size[0], size[1], "the video frame")
        return ex.set_roi(r)

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the video: of the newest frame, else of the caps the pipeline
        negotiated (known before a frame reaches the engine)."""
        if self.size is not None:
            return self.size
        r = self.sup.reader
        return r.frame_size() if r is not None else None

    def _mark_time(self, t: float | None, what: str) -> tuple[float, float | None]:
        now = self.now_s()
        if t is None:
            if now is None:
                raise UsageError(f"{what}: no video from the source yet; give t")
            return now, now
        return float(t), now

    def mark_injection(self, t: float | None) -> dict[str, Any]:
        ex = self.need_exam()
        t, now = self._mark_time(t, "mark_injection")
        t = ex.mark_injection(t, now)
        log.info("exam %s: injection marked at %.2f s%s; watching for contrast arrival",
                 ex.exam_id, t, "" if now is None or now - t < 1.0 else
                 f" ({now - t:.1f} s ago: from the kept frames)")
        return {"exam": ex.exam_id, "injection": t}

    def mark_arrival(self, t: float | None) -> dict[str, Any]:
        ex = self.need_exam()
        t, now = self._mark_time(t, "mark_arrival")
        if now is not None and t == now:
            t = now + 0.02  # without a time: the next frame is slot 0
        t = ex.mark_arrival(t, now)
        log.info("exam %s: contrast arrival marked: t0 = %.2f s", ex.exam_id, t)
        return {"exam": ex.exam_id, "t0": t}

    def stop_exam(self, reason: str = "stopped_early") -> dict[str, Any]:
        """Closes the exam and waits for its result (its decided slots scored first: by
        this thread, or by the source's, whichever comes first; no lock held)."""
        with self.lock:
            ex = self.need_exam()
            ex.finish(reason)
        self.settle()
        return {"exam": ex.exam_id, "result": ex.result}

    def numbers(self) -> dict[str, Any]:
        """The source's numbers for ``health`` and the metrics (read at any time, no lock)."""
        ex, sup = self.exam, self.sup
        r = sup.reader
        frames, dropped = self.health.totals(r)
        warnings = names(self.warnings)
        return {"uri": redact(self.uri), "state": sup.state, "warnings": warnings,
                "reconnects": sup.reconnects, "stream_time_s": self.now_s(),
                "fps": self.health.fps if "no_signal" not in warnings else 0.0,
                "lag_s": self.health.engine_lag_s(r is not None), "frames_total": frames,
                "frames_dropped": dropped,
                "worker": {"pid": getattr(r, "pid", None), "last_exit": sup.worker_exit,
                           "ready": bool(getattr(r, "ready_ns", 0)),
                           "last_error": sup.last_error},
                "up": sup.state == "playing" and "no_signal" not in warnings,
                "exam": ex.exam_id if ex is not None and ex.open else None,
                "phase": ex.phase if ex is not None else "idle"}

    def status(self) -> dict[str, Any]:
        """The exam's status and the source's state; read without the runner's lock (the
        session has its own, never held while scoring)."""
        ex = self.exam
        st = messages.status(**ex.status_fields()) if ex is not None else {"phase": "idle"}
        return {"status": st, "source": {
            "name": self.name, "state": self.sup.state, "warnings": names(self.warnings),
            "reconnects": self.sup.reconnects, "stream_time_s": self.now_s(),
            "speed": self.health.speed()}}


#: source kinds a control peer may add at run time (``add_source``): live inputs only. A
#: file or a ``gst:`` launch line (any element, a filesink included) is given on the command
#: line or in the config by whoever runs the engine, never over the socket.
CONTROL_KINDS = ("rtsp", "http", "https", "udp", "srt", "v4l2", "decklink", "test", "sim")


class LiveEngine:
    """The engine's sources and the commands that drive their exams.

    Every source has its own runner (pipeline, thread, lock, clock, warnings, exam); the
    engine's own lock guards only the table of runners and is never held while a source
    decodes or scores. A command names its source (``source``) or its exam (``exam``); with
    one source both are optional, as before there were several. ``opener(name, uri)`` builds
    a source's reader factory and says whether it re-opens: it serves ``add_source``."""

    def __init__(self, ctx: ExamContext,
                 opener: Callable[[str, str], tuple[Callable[[int], Any], bool]] | None = None):
        self.ctx = ctx
        self.opener = opener
        self.runners: dict[str, SourceRunner] = {}
        self._lock = threading.Lock()
        self.started = time.monotonic()

    # -- sources ---------------------------------------------------------------------------
    def add_source(self, name: str, uri: str, open_reader: Callable[[int], Any],
                   reopen: bool = True) -> SourceRunner:
        with self._lock:
            if name in self.runners:
                raise UsageError(f"a source named {name!r} exists")
            r = SourceRunner(name, uri, open_reader, self.ctx, reopen)
            self.runners[name] = r
        tel = self.ctx.telemetry
        if tel is not None:
            tel.add_source(name, r.numbers)
        r.start()
        log.info("source %s added (%s)", name, redact(uri))
        return r

    def remove_source(self, name: str) -> dict[str, Any]:
        """Stops the source's running exam (partial, ``source_removed``: journaled and
        published), then closes its pipeline and thread in the background."""
        with self._lock:
            r = self.runners.get(name)
            if r is None:
                raise UsageError(f"no source named {name!r} (sources: {self._names()})")
        result = None
        if r.open_exam() is not None:
            try:
                result = r.stop_exam("source_removed")["result"]
            except UsageError:  # it ended on its own meanwhile
                r.settle()
        with self._lock:
            self.runners.pop(name, None)
        if self.ctx.telemetry is not None:
            self.ctx.telemetry.remove_source(name)
        threading.Thread(target=r.close, name=f"close-{name}", daemon=True).start()
        log.info("source %s removed", name)
        return {"source": name, "result": result}

    def _names(self) -> str:
        return ", ".join(self.runners) or "none"

    def snapshot(self) -> list[SourceRunner]:
        with self._lock:
            return list(self.runners.values())

    @property
    def runner(self) -> SourceRunner:
        """The engine's first source (scripts with one source)."""
        return self.snapshot()[0]

    def pick(self, req: dict[str, Any]) -> SourceRunner:
        """The runner a command is for: its ``source``; else the one running its ``exam``
        (not for start_exam, which names a new exam); else the only source."""
        with self._lock:
            name = req.get("source")
            if name is not None:
                r = self.runners.get(name)
                if r is None:
                    raise UsageError(f"no source named {name!r} (sources: {self._names()})")
                return r
            exam = req.get("exam")
            if exam is not None and req["cmd"] != "start_exam":
                for r in self.runners.values():
                    ex = r.exam
                    if ex is not None and ex.exam_id == exam:
                        return r
                if len(self.runners) != 1:
                    raise UsageError(f"no exam {exam!r} on any source")
            if len(self.runners) == 1:
                return next(iter(self.runners.values()))
            if not self.runners:
                raise UsageError("the engine has no source: add_source first")
            raise UsageError(f"{req['cmd']}: the engine has several sources: name one with "
                             f"'source' ({self._names()})")

    # -- commands --------------------------------------------------------------------------
    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        """One validated command (``wire.messages.parse_command``); raises a ``CeusError``
        with a one-line reason when refused. State changes only when it is accepted."""
        cmd = req["cmd"]
        if cmd == "health":
            return self.health()
        if cmd == "add_source":
            return self._add_from_control(req["source"], req["uri"])
        if cmd == "remove_source":
            return self.remove_source(req["source"])
        if cmd == "reload_model":
            return self.reload_model(req["path"])
        if cmd == "status" and req.get("source") is None and req.get("exam") is None and \
                len(self.snapshot()) != 1:
            return {"sources": {r.name: r.status() for r in self.snapshot()}}
        r = self.pick(req)
        if cmd == "status":  # never waits on the source (scoring runs under its lock)
            return r.status()
        if cmd == "start_exam":
            self._check_exam_free(req.get("exam"), r)
        return r.command(req)

    def _check_exam_free(self, exam: str | None, target: SourceRunner) -> None:
        """An exam id is one exam: its topics (``score.<exam>``) never mix two sources."""
        if exam is None:
            return
        for r in self.snapshot():
            ex = r.open_exam()
            if r is not target and ex is not None and ex.exam_id == exam:
                raise UsageError(f"exam {exam} is running on source {r.name}: exam ids are "
                                 "unique across sources")

    def _add_from_control(self, name: str, uri: str) -> dict[str, Any]:
        from ceustream.pipelines.source import kind

        if self.opener is None:
            raise UsageError("add_source: this engine cannot open sources at run time")
        k = kind(uri)
        if k not in CONTROL_KINDS:
            raise UsageError(f"add_source: {k}{':' if k == 'gst' else ''} sources are given on "
                             "the command line or in the config, not over the control socket "
                             f"(here: {', '.join(CONTROL_KINDS)})")
        with self._lock:
            if name in self.runners:
                raise UsageError(f"a source named {name!r} exists")
        open_reader, reopen = self.opener(name, uri)  # a bad URI fails here, in one line
        self.add_source(name, uri, open_reader, reopen)
        return {"source": name, "uri": redact(uri)}

    def reload_model(self, path: str) -> dict[str, Any]:
        slot = self.ctx.slot
        if slot is None:
            raise UsageError("reload_model: this engine was started without a model slot")
        tel = self.ctx.telemetry
        try:
            out = slot.reload(path)
        except CeusError:
            if tel is not None:
                tel.reload(False)
            raise
        if tel is not None:
            tel.reload(True)
        return out

    def health(self) -> dict[str, Any]:
        """Every source's state and numbers, the engine's lag (the worst source's), the
        model, batches and messages: what an operator's health check reads."""
        sources = {r.name: r.numbers() for r in self.snapshot()}
        lags = [v["lag_s"] for v in sources.values() if v["lag_s"] is not None]
        ctx = self.ctx
        gen = ctx.slot.current if ctx.slot is not None else None
        model = gen.model.describe() if gen else ctx.model.describe()
        scorer = gen.scorer if gen else ctx.backend
        stats = getattr(scorer, "stats", None)
        pub = ctx.publisher
        return {
            "sources": sources, "lag_s": max(lags) if lags else None,
            "exams_active": sum(1 for v in sources.values() if v["exam"]),
            "model": {**model, "generation": gen.number if gen else 1},
            "backend": scorer.describe(),
            "batches": None if stats is None else {
                "calls": stats.calls, "clips": stats.clips, "largest": stats.largest},
            "messages": None if pub is None else {"sent": pub.sent, "refused": pub.refused},
            "uptime_s": round(time.monotonic() - self.started, 1)}

    # -- the end ---------------------------------------------------------------------------
    def busy(self) -> bool:
        return any(r.busy() for r in self.snapshot())

    def all_ended(self) -> bool:
        """Every source has ended for good (files that ended; live sources never do)."""
        runners = self.snapshot()
        return bool(runners) and all(r.ended.is_set() for r in runners)

    def stop_all(self, reason: str = "stopped_early") -> list[dict]:
        """Stops every running exam (a clean shutdown): partial results, journaled and
        published."""
        out = []
        for r in self.snapshot():
            if r.open_exam() is not None:
                try:
                    out.append(r.stop_exam(reason)["result"])
                    continue
                except UsageError:  # it ended on its own meanwhile
                    pass
            r.settle()
        return out

    def close(self) -> None:
        runners = self.snapshot()
        closers = [threading.Thread(target=r.close, daemon=True) for r in runners]
        for t in closers:  # in parallel: one stuck pipeline never delays the others
            t.start()
        for t in closers:
            t.join(15)
