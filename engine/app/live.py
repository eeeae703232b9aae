"""The live engine: sources that outlive their faults, exams one after another on each,
driven by control commands (ZeroMQ REP, the keyboard, or a scanner integration).

A ``SourceRunner`` owns one source: its pipeline (a ``FrameSource`` re-opened with backoff,
0.5 s doubling to 5 s, when it fails, ends or stalls), its thread, its clock, its warnings
(``no_signal``, ``frozen_frame``) and its current exam (``liveexam.LiveExam``). Nothing a
source does ends the engine or the exam: without frames the exam's time goes on, warnings
are published, and slots whose tolerance passes are decided by the neighbour/missing rules.
``LiveEngine`` holds the runners (one per source, any number) and answers commands.

The exam clock: seconds since the first frame the engine received from the source
(microsecond resolution), so a recording of the exam (``--record``) replays on the same
times. When a source is re-opened its new pipeline's stream time may restart anywhere; the
new pipeline's first frame is placed at the last frame's exam time plus the wall-clock time
that passed in between, and the exam clock goes on from there (always increasing).
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ceustream.engine.core.errors import CeusError, InputError, UsageError
from ceustream.engine.core.roi import Roi
from ceustream.engine.core.source import DamagedStream, EndOfStream
from ceustream.pipelines.source import redact

from . import examclock
from .history import Kept, to_us
from .journal import Journal, default_dir
from .liveexam import LiveExam
from .outputs import attach, status_message
from .overload import SlotWatch
from .session import ExamSession

log = logging.getLogger(__name__)

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


@dataclass
class ExamContext:
    """What every exam of the engine shares: model, backend, outputs, settings. With a
    ``slot`` (``modelslot.ModelSlot``) each exam leases the model current when it starts
    (``reload_model`` never changes a running exam) and scores through the slot's shared
    batching scorer; ``telemetry`` (``telemetry.Telemetry``) counts what happens."""

    cfg: dict
    model: Any
    backend: Any
    note: str
    publisher: Any = None
    journal: bool = True
    on_score: Callable | None = None
    on_done: Callable[[dict], None] | None = None
    slot: Any = None
    telemetry: Any = None


class SpeedMeter:
    """Stream seconds per wall second over the last few seconds (0 while nothing moves)."""

    def __init__(self, window_s: float = 2.0):
        self.window_ns = int(window_s * 1e9)
        self._samples: deque[tuple[int, int]] = deque()

    def add(self, mono_ns: int, exam_us: int) -> None:
        if self._samples and exam_us <= self._samples[-1][1]:
            return
        self._samples.append((mono_ns, exam_us))
        while len(self._samples) > 2 and mono_ns - self._samples[1][0] >= self.window_ns:
            self._samples.popleft()

    def speed(self, now_ns: int) -> float:
        if len(self._samples) < 2 or now_ns - self._samples[-1][0] > 1_000_000_000:
            return 0.0
        (w0, s0), (w1, s1) = self._samples[0], self._samples[-1]
        if w1 - w0 < 200_000_000:
            return 0.0
        return round(min((s1 - s0) * 1e3 / (w1 - w0), 10000.0), 3)


class SourceRunner:
    """One source, its pipeline generations and its exams (one at a time)."""

    def __init__(self, name: str, uri: str, open_reader: Callable[[int], Any],
                 ctx: ExamContext, reopen: bool = True):
        self.name = name
        self.uri = uri
        self.open_reader = open_reader
        self.ctx = ctx
        self.reopen = reopen
        self.settings = live_settings(ctx.cfg)
        self.lock = threading.RLock()
        self.reader: Any = None
        self.generation = 0
        self.reconnects = 0
        self.state = "opening"
        self.last_error: str | None = None
        #: the exam clock (µs), pure (``examclock.ExamClock``): fed under the lock
        self.xclock = examclock.ExamClock()
        self._now_lock = threading.Lock()
        self.size: tuple[int, int] | None = None
        self.warnings: set[str] = set()
        self.exam: LiveExam | None = None
        self.results: list[dict] = []
        self.ended = threading.Event()   # the source is gone for good (a file that ended)
        #: the exam's wishes for the gate, on the exam clock (``liveexam.Gate``): applied to
        #: each new pipeline's gate once its first frame places it on the exam clock
        self._gate_cfg: dict[str, Any] = {"keep": None, "monitor": None, "slots": []}
        #: the latest replay request (``ceusgate``'s epoch): frames the gate chose before it
        #: (older epoch) are not the exam's any more; 0 for a new pipeline
        self._epoch = 0
        self._want_epoch = 0
        #: a replay's frames are on their way: nothing is decided by the clock meanwhile
        self._replaying = False
        self._speed = SpeedMeter()
        self._fps: tuple[int, int] | None = None   # (frames seen, stream ns) at the last check
        self._frozen_after = 0
        self._backoff = self.settings["reopen_min_s"]
        self._retry_at = 0.0
        self._quit = threading.Event()
        self._journal: Journal | None = None
        self._lease: Any = None                # the running exam's model lease
        #: how far behind its source the engine was at the newest frame it took (seconds)
        self.lag_s: float | None = None
        self.fps: float | None = None             # measured at the gate
        self._beat_ns = time.monotonic_ns()       # the thread's last loop (a stuck thread)
        #: frames that reached the gate in the pipelines closed so far (``frames_total`` is
        #: this plus the open pipeline's: one count across reconnects)
        self._frames_before = 0
        self._frames_hi = 0      # the highest count reported (a counter never goes back)
        self._count_lock = threading.Lock()  # the reader and the count change together
        self._taken = 0          # frames this pipeline handed to the engine
        self.engine_dropped = 0  # frames the gate passed that the engine never took (behind)
        #: how the last source worker process ended (``signal SIGSEGV``, ``exit code 0``)
        self.worker_exit: str | None = None
        #: what the exam's times mean (in every result; updated as the source comes and goes)
        self.clock: dict[str, Any] = {
            "kind": "seconds since the first frame received from the source",
            "first_frame_stream_s": None, "reconnects": 0}
        self._t = threading.Thread(target=self._run, name=f"source-{name}", daemon=True)

    # -- life ------------------------------------------------------------------------------
    def start(self) -> None:
        self._t.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stops the thread and the pipeline (a running exam is left to the caller)."""
        self._quit.set()
        self._t.join(timeout_s)
        with self.lock:
            r = self._drop_reader()
        if r is not None:
            r.close()

    def _drop_reader(self) -> Any:
        """Takes the open pipeline out (to be closed), its frames added to the count."""
        with self._count_lock:
            r, self.reader = self.reader, None
            if r is not None:
                try:
                    self._frames_before += int(r.frames_seen())
                except Exception:  # a pipeline that failed: its count is gone with it
                    log.debug("source %s: no frame count from the closed pipeline", self.name)
        return r

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
        r = self.reader
        arrival = r.arrival_ns() if r is not None and self.offset_us is not None else 0
        last = max(arrival, self.last_mono_ns or 0)
        return None if last == 0 else (time.monotonic_ns() - last) / 1e9

    def now_s(self) -> float | None:
        """The exam clock now: the newest frame at the gate; while no frame comes, the newest
        frame's time plus the wall time since (so countdowns keep moving). Never goes back
        (``examclock.ExamClock.now_us``)."""
        since = self.seconds_since_frame()
        silent = since is not None and since > self.settings["no_signal_s"]
        r = self.reader
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
        r = self.reader
        if r is not None and self.offset_us is not None:
            self._apply_keep(r)

    def _apply_keep(self, r: Any) -> None:
        st = self.settings
        r.set_keep(self._gate_cfg["keep"], st["history_s"], int(st["history_max_mb"] * 1e6))

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
        r, off = self.reader, self.offset_us
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
        r, off = self.reader, self.offset_us
        if r is None or off is None:
            return None
        from_ns, _ = r.kept()
        return None if from_ns is None else ((from_ns + 500) // 1000 + off) / 1e6

    def kept_limited(self) -> bool:
        r = self.reader
        return r is not None and r.kept()[1]

    def _slot_times(self, off: int) -> list[float]:
        times = []
        for s in self._gate_cfg["slots"]:
            us = to_us(s) - off
            times += [(us - SLOT_PAD_US) / 1e6, (us + SLOT_PAD_US) / 1e6]
        return sorted(t for t in times if t >= 0)

    def _apply_gate(self) -> None:
        """The exam's wishes as they stand (no replay) on the open pipeline's gate."""
        r, off = self.reader, self.offset_us
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
        opened_ns = 0
        while not self._quit.is_set():
            self._beat_ns = time.monotonic_ns()
            try:
                if self.reader is None:
                    wait = self._retry_at - time.monotonic()
                    if self.ended.is_set() or wait > 0:
                        self._idle(min(max(wait, 0.1), 0.5))
                        continue
                    if not self._open():
                        continue
                    opened_ns = time.monotonic_ns()
                try:
                    fr = self.reader.pull(0.1)
                except (EndOfStream, DamagedStream, InputError) as e:
                    self._lost(str(e) or "the source ended", isinstance(e, EndOfStream))
                    continue
                with self.lock:
                    if fr is not None:
                        self._taken += 1
                        self._frame(fr)
                    self._tick()
                if self.reopen:
                    self._check_stall(opened_ns)
            except Exception:  # never let the source's thread die
                log.exception("source %s: unexpected error (continuing)", self.name)
                self._idle(0.5)

    def _schedule_retry(self, got_frames: bool) -> float:
        """When to try the source again: 0.5 s after a pipeline that delivered frames, then
        doubling (1, 2, 4 s) while attempts fail, at most every ``reopen_max_s``."""
        st = self.settings
        if got_frames:
            self._backoff = st["reopen_min_s"]
        delay = self._backoff
        self._retry_at = time.monotonic() + delay
        self._backoff = min(delay * 2, st["reopen_max_s"])
        return delay

    def _check_stall(self, opened_ns: int) -> None:
        """A pipeline without its first frame after ``open_timeout_s``, or without any frame
        for ``reopen_after_s`` since, is given up and re-opened."""
        ready = getattr(self.reader, "ready_ns", None)
        if ready is not None:  # a source worker: counted from when its pipeline started
            if not ready:
                return  # still starting (the worker's own start limit applies)
            opened_ns = max(opened_ns, ready)
        waited = (time.monotonic_ns() - opened_ns) / 1e9
        if self._replaying:
            return  # frames (a replay's) are coming; the worker's own hang limit applies
        if self.offset_us is None:
            limit = self.settings["open_timeout_s"]
            if waited > limit:
                self._lost(f"no frame within {limit:g} s of opening", False)
            return
        limit = self.settings["reopen_after_s"]
        quiet = getattr(self.reader, "gate_silent_s", None)  # a worker: its own measure
        since = quiet() if quiet is not None else self.seconds_since_frame()
        if since is not None and since > limit:
            self._lost(f"no frame for {limit:g} s", False)

    def _idle(self, seconds: float) -> None:
        """Waits (the source is gone) while the exam's time goes on."""
        deadline = time.monotonic() + seconds
        while not self._quit.is_set() and time.monotonic() < deadline:
            with self.lock:
                self._tick()
            self._quit.wait(0.1)

    def _open(self) -> bool:
        try:
            r = self.open_reader(self.generation)
            r.set_pass_all(True)  # until its first frame sets the clock; then the exam's wishes
            r.open()
        except CeusError as e:
            text = redact(str(e))
            self.state = "reconnecting"
            if not self.reopen:
                log.error("source %s: cannot open (%s)", self.name, text)
                self._gone("source_error")
                return False
            delay = self._schedule_retry(False)
            if self.last_error != text:
                log.warning("source %s: cannot open (%s); retrying in %.1f s", self.name,
                            text, delay)
            self.last_error = text
            return False
        with self.lock, self._count_lock:
            self.reader = r
            self.generation += 1
            self.xclock.new_pipeline()
            self._want_epoch = 0  # a new gate: what it passes is the exam's wishes as they stand
            self._replaying = False
            self._fps = None
            self._frozen_after = 0
            self._taken = 0
            self.state = "opening"
        log.info("source %s: pipeline %d opened", self.name, self.generation)
        return True

    def _lost(self, why: str, eos: bool) -> None:
        """The pipeline failed, ended or stalled: close it; re-open later (or end)."""
        with self.lock:
            r = self._drop_reader()
            got_frames = self.offset_us is not None
            self.state = "reconnecting" if self.reopen else "ended"
            self._set_warning("no_signal", True)
            self._set_warning("frozen_frame", False)
        text = redact(why)
        if r is not None:
            r.close()
            ended = getattr(r, "exit", None)  # a source worker: how its process ended
            if ended is not None:
                self.worker_exit = ended
        if not self.reopen:
            log.warning("source %s: %s; the source has ended", self.name, text)
            self._gone("source_ended" if eos else "source_error")
            return
        delay = self._schedule_retry(got_frames)
        if got_frames or text != self.last_error:  # a failing source is not logged each try
            log.warning("source %s: %s; re-opening in %.1f s", self.name, text, delay)
        self.last_error = text
        self.reconnects += 1
        self.clock["reconnects"] = self.reconnects

    def _gone(self, reason: str) -> None:
        with self.lock:
            if self.exam is not None and self.exam.stage != "ended":
                self._finish(reason)
            self.ended.set()

    # -- frames ----------------------------------------------------------------------------
    def _frame(self, fr) -> None:
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
            if self.reader is not None:  # a new pipeline, or a new timeline: kept anew
                self._apply_keep(self.reader)
        if us is None:
            # a repeated or out-of-order frame, or one with a time far back that the next
            # frames do not confirm yet (a decoder fed a damaged stream puts out such frames):
            # the earlier one stands
            return
        self.lag_s = max(0.0, (time.monotonic_ns() - mono) / 1e9)
        self._set_warning("no_signal", False)
        self.state = "playing"
        ex = self.exam
        if ex is None or ex.stage == "ended":
            return
        s = ex.s
        if s.frame_size is None:  # the exam started before the first frame
            s.frame_size = (fr.width, fr.height)
            try:
                s.roi.check_inside(fr.width, fr.height, "the video frame")
            except CeusError as e:
                log.error("exam %s: %s; set_roi to a box inside the frame", s.exam, e)
                s.frame_size = None
                self._set_warning("roi_outside_frame", True)
                return
            self._set_warning("roi_outside_frame", False)
            s.announce()
        if (fr.width, fr.height) != tuple(s.frame_size):
            self._set_warning("source_changed", True)
            return
        self._set_warning("source_changed", False)
        s.lag_s = max(0.0, (time.monotonic_ns() - mono) / 1e9)
        roi = s.roi
        crop = np.ascontiguousarray(fr.region(roi.x, roi.y, roi.w, roi.h))
        ex.feed(Kept(us, crop, fr.mono_ns, stream_ns=pts_ns))
        if ex.stage == "ended":
            self._exam_ended()

    def _past_frame(self, fr, raw: int, pts_ns: int) -> None:
        """A kept frame the gate replayed for a late mark: on the exam clock by the open
        pipeline's offset (it was on screen before the newest frame; the clock is not
        moved)."""
        us = self.xclock.exam_us(raw)
        ex = self.exam
        if us is None or ex is None or ex.stage == "ended" or ex.s.frame_size is None:
            return
        roi = ex.s.roi
        crop = np.ascontiguousarray(fr.region(roi.x, roi.y, roi.w, roi.h))
        if crop.shape != (roi.h, roi.w):
            return  # kept for another ROI (the gate's keep-roi changed meanwhile)
        ex.feed(Kept(us, crop, fr.mono_ns, context=fr.past == "context", stream_ns=pts_ns))
        if ex.stage == "ended":
            self._exam_ended()

    # -- periodic --------------------------------------------------------------------------
    def _tick(self) -> None:
        since = self.seconds_since_frame()
        no_signal = self.reader is None or since is None or since > self.settings["no_signal_s"]
        # a replay's frames on their way carry the gate's state as it was when each was sent:
        # its clock reads late until they are through, not a source without signal
        no_signal = no_signal and not (self._replaying and self.reader is not None)
        self._set_warning("no_signal", no_signal)
        r = self.reader
        if r is not None and self.offset_us is not None:
            self._frozen(r, no_signal)
            st = r.stream_ns()  # every frame at the gate, passed or not
            if st is not None and not no_signal:
                arrival = r.arrival_ns()
                self._speed.add(arrival, (st + 500) // 1000 + self.offset_us)
                self.xclock.observe_gate((st + 500) // 1000, arrival)
        now = self.now_s()
        ex = self.exam
        if ex is not None and ex.stage != "ended":
            ex.s.speed = 0.0 if no_signal else self._speed.speed(time.monotonic_ns())
            lag = self.engine_lag_s()  # status carries it (also between slot frames)
            if lag is not None:
                ex.s.lag_s = lag
            if now is not None:
                # slots are given up for want of frames only when the gate itself saw none (as
                # its worker last reported): a worker slow to report on a busy machine delays
                # its frames, it does not lose them
                quiet = getattr(r, "gate_silent_s", None)
                silent = quiet() if r is not None and quiet is not None else None
                ex.tick(now, no_signal and (r is None or silent is None or
                                            silent > self.settings["no_signal_s"]))
            if ex.stage == "ended":
                self._exam_ended()

    def _frozen(self, r, no_signal: bool) -> None:
        """Sets the gate's frozen-after from the measured frame rate, then reads it."""
        seen, st = r.frames_seen(), r.stream_ns()
        if not self._frozen_after:  # until measured: the caps' frame rate, else 30 fps
            self._frozen_after = max(2, int(math.ceil((r.nominal_fps() or 30.0) *
                                                      self.settings["frozen_s"])))
            r.set_frozen_after(self._frozen_after)
        if st is not None:
            if self._fps is None or st < self._fps[1] or seen < self._fps[0]:
                self._fps = (seen, st)
            elif st - self._fps[1] >= 1_000_000_000 and seen > self._fps[0]:
                fps = (seen - self._fps[0]) * 1e9 / (st - self._fps[1])
                self.fps = round(fps, 3)
                n = max(2, int(math.ceil(fps * self.settings["frozen_s"])))
                if abs(n - self._frozen_after) > max(1, self._frozen_after // 10):
                    self._frozen_after = n
                    r.set_frozen_after(n)
                self._fps = (seen, st)
        self._set_warning("frozen_frame", bool(self._frozen_after and not no_signal and
                                               r.frozen()))

    def _picture_frozen(self) -> bool:
        """The gate has seen the whole picture byte-identical (``frozen-after`` frames)."""
        if "frozen_frame" in self.warnings:
            return True
        r = self.reader
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
        if ex is not None and ex.stage != "ended":
            ex.s.set_warning(name, on)

    # -- exams (under the lock) ------------------------------------------------------------
    def open_exam(self) -> LiveExam | None:
        ex = self.exam
        return ex if ex is not None and ex.stage != "ended" else None

    def need_exam(self) -> LiveExam:
        ex = self.open_exam()
        if ex is None:
            raise UsageError("no exam running: send start_exam first")
        return ex

    def start_exam(self, exam: str | None, roi: list[int] | None) -> dict[str, Any]:
        ctx = self.ctx
        if self.open_exam() is not None:
            raise UsageError(f"exam {self.exam.s.exam} is running: stop_exam first")
        if roi is None:
            raise UsageError("start_exam needs roi [x, y, w, h] (or run with --roi)")
        r = Roi(*roi)
        size = self.frame_size()
        if size is not None:
            r.check_inside(size[0], size[1], "the video frame")
        exam = exam or "x" + secrets.token_hex(6)
        lease = ctx.slot.lease() if ctx.slot is not None else None
        model, backend, note = (lease.model, lease.backend, lease.note) if lease else \
            (ctx.model, ctx.backend, ctx.note)
        try:
            session = ExamSession(exam, model, backend, r, speed=0.0,
                                  frame_size=size, backend_note=note, clock=self.now_s,
                                  source=self.name,
                                  max_copied=int(ctx.cfg["engine"]["max_copied_slots"]),
                                  picture_frozen=self._picture_frozen)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        self._lease = lease
        session.info["clock"] = self.clock
        session.info["source"] = self.name
        jr = None
        if ctx.journal:
            jr = Journal(default_dir(ctx.cfg), exam,
                         on_error=lambda text, s=session: self._journal_error(s, text))
        attach(session, ctx.publisher, jr, ctx.on_score)
        if ctx.telemetry is not None:
            ctx.telemetry.watch(session)
        session.subscribe(SlotWatch(float(ctx.cfg["engine"]["slot_late_s"]), ctx.telemetry))
        self._journal = jr
        session.warnings.update(self.warnings)
        self.exam = LiveExam(session, ctx.cfg, self)
        session.start()
        log.info("exam %s started (ROI %s); waiting for the injection mark", exam, r)
        return {"exam": exam, "phase": session.phase}

    def _journal_error(self, session: ExamSession, text: str) -> None:
        session.flags.add("journal_error")
        session.set_warning("journal_error", True)

    def set_roi(self, roi: list[int]) -> dict[str, Any]:
        ex = self.need_exam()
        if ex.stage != "waiting":
            raise UsageError("the ROI is fixed once contrast is being watched")
        r = Roi(*roi)
        size = self.frame_size()
        if size is not None:
            r.check_inside(size[0], size[1], "the video frame")
        ex.s.roi = r
        ex.roi_changed()
        ex.s.announce()
        return {"roi": r.as_list()}

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the video: of the newest frame, else of the caps the pipeline
        negotiated (known before a frame reaches the engine)."""
        if self.size is not None:
            return self.size
        r = self.reader
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
                 ex.s.exam, t, "" if now is None or now - t < 1.0 else
                 f" ({now - t:.1f} s ago: from the kept frames)")
        if ex.stage == "ended":
            self._exam_ended()
        return {"exam": ex.s.exam, "injection": t}

    def mark_arrival(self, t: float | None) -> dict[str, Any]:
        ex = self.need_exam()
        t, now = self._mark_time(t, "mark_arrival")
        if now is not None and t == now:
            t = now + 0.02  # without a time: the next frame is slot 0
        t = ex.mark_arrival(t, now)
        log.info("exam %s: contrast arrival marked: t0 = %.2f s", ex.s.exam, t)
        if ex.stage == "ended":
            self._exam_ended()
        return {"exam": ex.s.exam, "t0": t}

    def stop_exam(self, reason: str = "stopped_early") -> dict[str, Any]:
        ex = self.need_exam()
        self._finish(reason)
        return {"exam": ex.s.exam, "result": self.results[-1] if self.results else None}

    def _finish(self, reason: str | None) -> None:
        ex = self.exam
        ex.finish(reason)
        self._exam_ended()

    def _exam_ended(self) -> None:
        ex = self.exam
        if ex is None or ex.result is None or ex.reported:
            return
        ex.reported = True
        self.close_gate()
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._lease is not None:  # a replaced model is closed with its last exam
            self._lease.release()
            self._lease = None
        self.results.append(ex.result)
        if self.ctx.on_done:
            try:
                self.ctx.on_done(ex.result)
            except Exception:
                log.exception("exam %s: the result callback failed", ex.s.exam)

    def engine_lag_s(self) -> float | None:
        """How far the engine is behind this source now: the lag at the newest frame taken,
        or, when the source's thread has not come round for a while (stuck in scoring),
        the time since it last did."""
        stuck = (time.monotonic_ns() - self._beat_ns) / 1e9
        if self.reader is not None and stuck > 0.5:
            return round(max(self.lag_s or 0.0, stuck), 4)
        return None if self.lag_s is None else round(self.lag_s, 4)

    def numbers(self) -> dict[str, Any]:
        """The source's numbers for ``health`` and the metrics (read at any time)."""
        ex = self.exam
        with self._count_lock:  # one count over every pipeline (a metrics counter)
            r, frames = self.reader, self._frames_before
            if r is not None:
                try:
                    frames += int(r.frames_seen())
                    passed = r.counters()[0]
                    # the appsink holds at most max_buffers; beyond that the engine was behind
                    # and the appsink dropped them (``pipelines.live``): counted, never queued
                    held = int(getattr(r, "max_buffers", 4))
                    self.engine_dropped = max(self.engine_dropped, passed - self._taken - held)
                except Exception:  # a pipeline being closed: its count is added when it is
                    log.debug("source %s: no frame count this time", self.name)
            self._frames_hi = frames = max(self._frames_hi, frames)
        return {"uri": redact(self.uri), "state": self.state, "warnings": names(self.warnings),
                "reconnects": self.reconnects, "stream_time_s": self.now_s(),
                "fps": self.fps if "no_signal" not in self.warnings else 0.0,
                "lag_s": self.engine_lag_s(), "frames_total": frames,
                "frames_dropped": self.engine_dropped,
                "worker": {"pid": getattr(r, "pid", None), "last_exit": self.worker_exit,
                           "ready": bool(getattr(r, "ready_ns", 0)),
                           "last_error": self.last_error},
                "up": self.state == "playing" and "no_signal" not in self.warnings,
                "exam": ex.s.exam if ex is not None and ex.stage != "ended" else None,
                "phase": ex.s.phase if ex is not None else "idle"}

    def status(self) -> dict[str, Any]:
        """The exam's status and the source's state; read without the runner's lock (the
        session has its own, never held while scoring)."""
        ex = self.exam
        st = status_message(ex.s) if ex is not None else {"phase": "idle"}
        return {"status": st, "source": {
            "name": self.name, "state": self.state, "warnings": names(self.warnings),
            "reconnects": self.reconnects, "stream_time_s": self.now_s(),
            "speed": self._speed.speed(time.monotonic_ns())}}


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
        with r.lock:
            if r.open_exam() is not None:
                result = r.stop_exam("source_removed")["result"]
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
                    if ex is not None and ex.s.exam == exam:
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
        with r.lock:
            if cmd == "start_exam":
                return r.start_exam(req.get("exam"), req.get("roi"))
            if cmd == "set_roi":
                return r.set_roi(req["roi"])
            if cmd == "mark_injection":
                return r.mark_injection(req.get("t"))
            if cmd == "mark_arrival":
                return r.mark_arrival(req.get("t"))
            if cmd == "stop_exam":
                return r.stop_exam()
        raise UsageError(f"unknown command {cmd!r}")

    def _check_exam_free(self, exam: str | None, target: SourceRunner) -> None:
        """An exam id is one exam: its topics (``score.<exam>``) never mix two sources."""
        if exam is None:
            return
        for r in self.snapshot():
            ex = r.open_exam()
            if r is not target and ex is not None and ex.s.exam == exam:
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
        return any(r.open_exam() is not None for r in self.snapshot())

    def all_ended(self) -> bool:
        """Every source has ended for good (files that ended; live sources never do)."""
        runners = self.snapshot()
        return bool(runners) and all(r.ended.is_set() for r in runners)

    def stop_all(self, reason: str = "stopped_early") -> list[dict]:
        """Stops every running exam (a clean shutdown): partial results, journaled and
        published."""
        out = []
        for r in self.snapshot():
            with r.lock:
                if r.open_exam() is not None:
                    out.append(r.stop_exam(reason)["result"])
        return out

    def close(self) -> None:
        runners = self.snapshot()
        closers = [threading.Thread(target=r.close, daemon=True) for r in runners]
        for t in closers:  # in parallel: one stuck pipeline never delays the others
            t.start()
        for t in closers:
            t.join(15)
