"""What the engine needs from a frame source, whatever builds it (a GStreamer pipeline over a
file, a network stream, a capture card or a DICOM cine; a simulated scanner).

A source hands over only the frames the schedule asks for: the engine lists the slot times
(``set_slots``) and, while contrast arrival is awaited, a monitor window sampled every
``interval_s`` (``set_monitor``); everything else is dropped before it reaches Python.
Frames carry their stream time, a crop of the luma plane and the moment they left the
decoder (CLOCK_MONOTONIC ns), so per-stage latency can be measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class EndOfStream(Exception):
    """The source has no more frames: the end of a file (or of the slots a seeking reader
    was asked for), or an exam stopped on purpose."""


class DamagedStream(Exception):
    """The source failed mid-stream (damaged data, a lost connection); ``at_s`` is the last
    good stream time."""

    def __init__(self, text: str, at_s: float | None = None):
        super().__init__(text)
        self.at_s = at_s


class SeekMismatch(Exception):
    """A seeking source found that a seek landed somewhere other than its timestamps say
    (a container whose new segment disagrees with the frames' own timestamps). Raised by
    ``pull``; the frame is withheld, and the consumer decodes the file through instead."""


@dataclass
class Frame:
    """One frame as the engine sees it: full-range luma (possibly cropped around the ROI)."""

    pts_s: float
    luma: np.ndarray
    mono_ns: int | None
    width: int
    height: int
    #: where ``luma`` starts in the full frame (the source may crop to the ROI)
    origin: tuple[int, int] = (0, 0)

    def region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """A box given in full-frame pixels."""
        ox, oy = self.origin
        return self.luma[y - oy:y - oy + h, x - ox:x - ox + w]


@dataclass
class SourceStats:
    passed: int = 0
    dropped: int = 0
    seeks: int = 0
    warnings: list[str] | None = None

    def __post_init__(self) -> None:
        if self.warnings is None:
            self.warnings = []


@runtime_checkable
class FrameSource(Protocol):
    """The complete interface the use cases (replay, live, QA, training data) call."""

    #: True when ``seek`` works (recordings); live sources are never seekable
    seekable: bool
    stats: SourceStats

    def start(self, timeout_s: float = ...) -> None:
        """Starts the flow; returns once the first frame reached the gate (raises
        ``InputError`` when none comes)."""

    def pull(self, timeout_s: float = ...) -> Frame | None:
        """The next frame let through; ``None`` when none came within ``timeout_s`` (live
        sources only). Raises ``EndOfStream`` or ``DamagedStream``."""

    def set_slots(self, times_s: list[float]) -> None:
        """Stream times of the slots to serve: the frame before and the frame at/after each."""

    def set_monitor(self, start_s: float, stop_s: float, interval_s: float) -> None:
        """One frame per ``interval_s`` between ``start_s`` and ``stop_s``."""

    def stop_monitor(self) -> None: ...

    def seek(self, t_s: float) -> None:
        """Flushing seek to stream time ``t_s`` (seekable sources only)."""

    def stream_time(self) -> float | None:
        """Stream time of the newest frame the source saw, passed or not (None before any)."""

    def seconds_since_frame(self) -> float | None:
        """Wall seconds since the newest frame arrived (None before any)."""

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the full frame, once known."""

    def frozen(self) -> bool:
        """True while the picture has not changed for the source's frozen-frame window."""

    def request_stop(self) -> None:
        """Makes the consumer's next ``pull`` raise ``EndOfStream`` (an exam stopped)."""

    def clear_stop(self) -> None: ...

    def poll(self) -> None:
        """Checks the source's health between pulls; raises ``EndOfStream`` /
        ``DamagedStream`` when it ended or failed."""

    def close(self) -> None: ...
