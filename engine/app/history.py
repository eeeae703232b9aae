"""The recent past of a live exam: every ROI crop since the exam started (or its ROI was set),
for a bounded horizon, so that a mark given late (``mark_injection`` / ``mark_arrival`` with
a time in the past) is served from the frames that were on screen then, exactly as if it had
been given on time.

Times are on the exam's clock in whole microseconds (``Kept.us``): the same numbers a
recording of the exam gives back when replayed (Matroska at microsecond resolution), so live,
late and replayed runs compare frame times exactly, never through float rounding.

Memory: one ROI crop per frame (``w * h`` bytes, GRAY8) for ``horizon_s`` seconds of video,
and never more than ``max_bytes`` (the oldest frames go first). E.g. a 200x200 ROI at 30 fps
for 120 s is 144 MB.

``MonitorPicker`` is ``ceusgate``'s monitor rule (one frame per interval, chained from the
first frame at or after the window's start) on the same integer clock, so the frames a late
mark examines are the frames the gate would have passed on time.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from dataclasses import dataclass
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)


def to_us(seconds: float) -> int:
    """Seconds → whole microseconds (the exam clock's unit)."""
    return int(round(seconds * 1e6))


def slot_us(due_s: float) -> int:
    """A slot time as ``ceusgate`` holds it (``"%.6f"`` seconds, rounded to ns), in µs."""
    return ceil_us(int(float(f"{due_s:.6f}") * 1e9 + 0.5))


@dataclass(frozen=True)
class Kept:
    """One frame as the exam keeps it: exam time (µs), the ROI crop, decoder-exit stamp."""

    us: int
    crop: np.ndarray
    mono_ns: int | None

    @property
    def pts_s(self) -> float:
        return self.us / 1e6


class History:
    """A time-ordered ring of kept frames, bounded by time (``horizon_s``) and bytes."""

    def __init__(self, horizon_s: float, max_bytes: int):
        if not horizon_s > 0 or max_bytes <= 0:
            raise ValueError("history: horizon and memory bound must be > 0")
        self.horizon_us = to_us(horizon_s)
        self.max_bytes = int(max_bytes)
        self._frames: deque[Kept] = deque()
        self._us: deque[int] = deque()
        self.nbytes = 0
        #: the earliest exam time the ring still covers (frames before it were dropped or
        #: never kept); None until the first frame
        self.covers_from_us: int | None = None
        #: seconds of the past actually kept when the memory bound, not the horizon, decided
        #: (None while the horizon decides)
        self.bytes_limited_s: float | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, k: Kept) -> None:
        """Appends a frame (in time order; an out-of-order frame is ignored) and drops what
        falls out of the horizon or the memory bound."""
        if self._us and k.us <= self._us[-1]:
            return
        if self.covers_from_us is None:
            self.covers_from_us = k.us
        self._frames.append(k)
        self._us.append(k.us)
        self.nbytes += k.crop.nbytes
        while self._frames and (k.us - self._us[0] > self.horizon_us or
                                self.nbytes > self.max_bytes):
            if k.us - self._us[0] <= self.horizon_us:
                self.bytes_limited_s = (k.us - self._us[0]) / 1e6
            old = self._frames.popleft()
            self._us.popleft()
            self.nbytes -= old.crop.nbytes
            self.covers_from_us = self._us[0] if self._us else k.us

    def clear(self) -> None:
        """Forgets everything (a new ROI: the old crops show another place)."""
        self._frames.clear()
        self._us.clear()
        self.nbytes = 0
        self.covers_from_us = None

    @property
    def newest_us(self) -> int | None:
        return self._us[-1] if self._us else None

    def since(self, us: int) -> Iterator[Kept]:
        """The kept frames at or after ``us``, oldest first."""
        i = bisect.bisect_left(self._us, us) if self._us else 0
        for j in range(i, len(self._frames)):
            yield self._frames[j]

    def before(self, us: int) -> list[Kept]:
        """The kept frames before ``us``, oldest first."""
        i = bisect.bisect_left(self._us, us) if self._us else 0
        return [self._frames[j] for j in range(i)]


def ns(seconds: float) -> int:
    """Seconds → nanoseconds, rounded as the pipelines round them for ``ceusgate``."""
    return int(round(seconds * 1e9))


def ceil_us(ns_: int) -> int:
    return -(-ns_ // 1000)


class MonitorPicker:
    """ceusgate's monitor window on the exam clock: passes the first frame at or after
    ``start_us``, then each frame at least ``interval_us`` after the last one passed, up to
    ``stop_us`` inclusive (the rule of ``plugins/gstceusgate.c``). The gate compares
    nanoseconds; frames on this clock are whole microseconds, so the bounds are rounded the
    way that keeps every comparison's outcome (``from_seconds``)."""

    def __init__(self, start_us: int, stop_us: int, interval_us: int):
        self.start_us = max(0, start_us)
        self.stop_us = stop_us
        self.interval_us = interval_us
        self.last_us: int | None = None

    @classmethod
    def from_seconds(cls, start_s: float, stop_s: float, interval_s: float) -> "MonitorPicker":
        return cls(ceil_us(ns(max(start_s, 0.0))), ns(stop_s) // 1000, ceil_us(ns(interval_s)))

    def stop_at(self, stop_s: float) -> None:
        """Moves the window's end (the gate's ``monitor-stop``), keeping the rhythm."""
        self.stop_us = ns(stop_s) // 1000

    def pick(self, us: int) -> bool:
        if not self.start_us <= us <= self.stop_us:
            return False
        if self.last_us is None or us < self.last_us or us >= self.last_us + self.interval_us:
            self.last_us = us
            return True
        return False
