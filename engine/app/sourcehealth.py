"""The health room of a live source: frame rate, frozen picture, speed, lag and the frame
counters, measured from what the gate reports (``supervisor.Reader``'s numbers).

Counters are one count per source across every pipeline generation (a reconnect never resets
them; they never go back): what ``health`` answers and what the Prometheus metrics export per
source (``ceustream_source_frames_total``, ``ceustream_source_frames_dropped_total``). It
holds no exam and no clock of its own: the runner gives it the reader and the exam-clock
offset, and reads its decisions (``frozen``, ``fps``, ``speed``, ``lag_s``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque

from .supervisor import Reader

log = logging.getLogger(__name__)


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


def frozen_after_frames(fps: float, frozen_s: float) -> int:
    """Identical frames in a row that make a frozen picture at ``fps`` (at least 2)."""
    return max(2, int(math.ceil(fps * frozen_s)))


class HealthMonitor:
    """One source's measured numbers. ``observe`` is called by the source's thread; the
    readers (``totals``, ``engine_lag_s``, ``speed``) by any."""

    def __init__(self, name: str, frozen_s: float):
        self.name = name
        self.frozen_s = frozen_s
        self.fps: float | None = None     # measured at the gate (stream time)
        #: how far behind its source the engine was at the newest frame it took (seconds)
        self.lag_s: float | None = None
        self.speed_meter = SpeedMeter()
        self._fps_mark: tuple[int, int] | None = None  # (frames seen, stream ns) last check
        self._frozen_after = 0
        self._beat_ns = time.monotonic_ns()   # the source thread's last loop
        self._lock = threading.Lock()
        self._frames_before = 0   # frames at the gate of the pipelines closed so far
        self._frames_hi = 0       # the highest total reported (a counter never goes back)
        self._taken = 0           # frames the open pipeline handed to the engine
        self._dropped = 0         # frames the gate passed that the engine never took
        self._dropped_before = 0  # ... in the pipelines closed so far

    # -- the source's thread ---------------------------------------------------------------
    def beat(self) -> None:
        self._beat_ns = time.monotonic_ns()

    def new_pipeline(self) -> None:
        with self._lock:
            self._fps_mark = None
            self._frozen_after = 0
            self._taken = 0

    def retire(self, r: Reader | None) -> None:
        """A pipeline is closed: its frames stay in the count."""
        if r is None:
            return
        try:
            seen = int(r.frames_seen())
        except Exception:  # a pipeline that failed: its count is gone with it
            log.debug("source %s: no frame count from the closed pipeline", self.name)
            seen = 0
        with self._lock:
            self._frames_before += seen
            self._dropped_before = self._dropped  # its drops stay counted too

    def took(self) -> None:
        """The engine took a frame the gate passed."""
        self._taken += 1

    def lag(self, frame_mono_ns: int) -> float:
        """The newest frame taken left the decoder at ``frame_mono_ns``: the engine's lag."""
        self.lag_s = lag = max(0.0, (time.monotonic_ns() - frame_mono_ns) / 1e9)
        return lag

    def observe(self, r: Reader, offset_us: int, no_signal: bool) -> bool:
        """Reads the gate: frame rate (and the gate's frozen-after from it), speed on the
        exam clock (``offset_us``: exam = stream + offset). True when the picture is frozen."""
        seen, st = r.frames_seen(), r.stream_ns()
        if not self._frozen_after:  # until measured: the caps' frame rate, else 30 fps
            self._frozen_after = frozen_after_frames(r.nominal_fps() or 30.0, self.frozen_s)
            r.set_frozen_after(self._frozen_after)
        if st is not None:
            mark = self._fps_mark
            if mark is None or st < mark[1] or seen < mark[0]:
                self._fps_mark = (seen, st)
            elif st - mark[1] >= 1_000_000_000 and seen > mark[0]:
                fps = (seen - mark[0]) * 1e9 / (st - mark[1])
                self.fps = round(fps, 3)
                n = frozen_after_frames(fps, self.frozen_s)
                if abs(n - self._frozen_after) > max(1, self._frozen_after // 10):
                    self._frozen_after = n
                    r.set_frozen_after(n)
                self._fps_mark = (seen, st)
            if not no_signal:
                self.speed_meter.add(r.arrival_ns(), (st + 500) // 1000 + offset_us)
        return bool(self._frozen_after and not no_signal and r.frozen())

    # -- any thread ------------------------------------------------------------------------
    def speed(self) -> float:
        return self.speed_meter.speed(time.monotonic_ns())

    def engine_lag_s(self, open_: bool) -> float | None:
        """How far the engine is behind this source now: the lag at the newest frame taken,
        or, when the source's thread has not come round for a while (``open_``: a pipeline
        is open), the time since it last did."""
        stuck = (time.monotonic_ns() - self._beat_ns) / 1e9
        if open_ and stuck > 0.5:
            return round(max(self.lag_s or 0.0, stuck), 4)
        return None if self.lag_s is None else round(self.lag_s, 4)

    def totals(self, r: Reader | None) -> tuple[int, int]:
        """(frames at the gate over every pipeline, frames the engine could not take in
        time): both cumulative, never going back."""
        with self._lock:
            frames = self._frames_before
            if r is not None:
                try:
                    frames += int(r.frames_seen())
                    passed = r.counters()[0]
                    # the appsink holds at most max_buffers; beyond that the engine was behind
                    # and the appsink dropped them (``pipelines.live``): counted, never queued
                    held = int(getattr(r, "max_buffers", 4))
                    self._dropped = max(self._dropped,
                                        self._dropped_before + passed - self._taken - held)
                except Exception:  # a pipeline being closed: its count is added when it is
                    log.debug("source %s: no frame count this time", self.name)
            self._frames_hi = frames = max(self._frames_hi, frames)
            return frames, self._dropped
