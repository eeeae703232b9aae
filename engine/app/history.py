"""A frame of a live exam as the exam takes it, on the exam's clock.

The recent past itself is not kept here: the source's ``ceusgate`` keeps the ROI's luma of
every frame (its ``keep-roi`` ring, bounded by ``live.history_s`` and ``live.history_max_mb``)
and, when a mark names a time in the past, runs those frames through its own selection rule
(the one rule the live frames take) and hands back only the chosen ones
(``pipelines.live.LiveReader.replay_monitor`` / ``replay_slots``).

Times are on the exam's clock in whole microseconds (``Kept.us``): the same numbers a
recording of the exam gives back when replayed (Matroska at microsecond resolution), so live,
late and replayed runs compare frame times exactly, never through float rounding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


def to_us(seconds: float) -> int:
    """Seconds → whole microseconds (the exam clock's unit)."""
    return int(round(seconds * 1e6))


@dataclass(frozen=True)
class Kept:
    """One frame as the exam takes it: exam time (µs), the ROI crop, decoder-exit stamp;
    ``context``: a kept frame from before the monitor window (the baseline check reads it,
    arrival detection does not); ``stream_ns``: its exact time in the source's pipeline (what
    the gate is told when its rule goes on from this frame)."""

    us: int
    crop: np.ndarray
    mono_ns: int | None
    context: bool = False
    stream_ns: int | None = None

    @property
    def pts_s(self) -> float:
        return self.us / 1e6
