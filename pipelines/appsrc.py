"""Recordings that GStreamer cannot demux by itself (DICOM cine, image folders) enter the same
gate as any video: a feeder thread pushes their frames, still JPEG-encoded or already decoded
to full-range luma, into ``appsrc`` with timestamps from the recording's own timing, so
``ceusgate``, arrival detection, the sampler and the journal are unchanged.

Timestamps are integer nanoseconds from the first frame: the stream clock of these sources
IS the engine's first-frame clock; where the first frame sat on the recording's own clock
(DICOM Frame Delay, an image folder's first timestamp) is ``first_frame_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterator

import numpy as np

from ceustream.engine.core.source import DamagedStream, EndOfStream, Frame

from . import gst
from .reader import GateReader, tail

log = logging.getLogger(__name__)

#: BT.601 luma weights (R, G, B), full range: what the engine's luma means for colour frames
BT601 = (0.299, 0.587, 0.114)


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 full-range luma of an RGB frame (H x W x 3), rounded, uint8."""
    import cv2

    if rgb.dtype != np.uint8:
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def gray8_bytes(luma: np.ndarray) -> bytes:
    """A GRAY8 frame as GStreamer lays it out: rows padded to a multiple of 4 bytes."""
    h, w = luma.shape
    pad = (-w) % 4
    if pad:
        luma = np.pad(luma, ((0, 0), (0, pad)))
    return np.ascontiguousarray(luma, dtype=np.uint8).tobytes()


def ns_text(t_ns: int) -> str:
    """Integer nanoseconds as exact decimal seconds (the gate parses 9 decimals exactly)."""
    return f"{t_ns // 1_000_000_000}.{t_ns % 1_000_000_000:09d}"


class FeedReader(GateReader):
    """A ``FrameSource`` fed from Python: ``frames()`` yields each frame's bytes (JPEG, or
    GRAY8 rows from ``gray8_bytes``) in order; ``times_ns`` are their times from the first
    frame. Streams only (no seek); ``speed`` paces the feeder (None = as fast as possible)."""

    seekable = False

    def __init__(self, what: str, size: tuple[int, int], times_ns: list[int],
                 frames: Callable[[], Iterator[bytes]], *, jpeg: bool,
                 speed: float | None = None, crop: tuple[int, int, int, int] | None = None,
                 first_frame_s: float = 0.0):
        w, h = size
        gst.require("appsrc", "ceusgate", "videoconvert", "appsink",
                    *(("jpegparse", "jpegdec") if jpeg else ()))
        end, origin = tail((w, h), crop, max_buffers=2)
        if jpeg:
            caps = f"image/jpeg,width={w},height={h},framerate=0/1"
            head = "jpegparse ! jpegdec ! "
            frame_bytes = w * h
        else:
            caps = f"video/x-raw,format=GRAY8,width={w},height={h},framerate=0/1"
            head = ""
            frame_bytes = (w + (-w) % 4) * h
        desc = (f"appsrc name=src format=time is-live=false block=true "
                f"max-bytes={max(frame_bytes * 4, 1 << 16)} caps={caps} ! {head}{end}")
        super().__init__(desc, what, origin)
        self.src = self.pipeline.get_by_name("src")
        self.times_ns = [t - times_ns[0] for t in times_ns]
        self.frames = frames
        self.speed = speed
        self.first_frame_s = first_frame_s
        self.fallback = None
        self._halt = threading.Event()
        self._feed_error: str | None = None
        self._thread: threading.Thread | None = None

    # -- the gate (exact slot times: this source's stream clock is the engine's) ----------
    def set_slots(self, times_s: list[float]) -> None:
        from ceustream.engine.core.schedule import to_ns

        self.gate.set_property("slots", ",".join(ns_text(to_ns(t)) for t in times_s if t >= 0))

    # -- feeding -------------------------------------------------------------------------------
    def _feed(self) -> None:
        Gst = gst.Gst
        times = self.times_ns
        gaps = np.diff(times) if len(times) > 1 else np.array([40_000_000])
        tail_dur = int(np.median(gaps)) if len(gaps) else 40_000_000
        wall0 = time.monotonic()
        k = -1
        try:
            for k, data in enumerate(self.frames()):
                if self._halt.is_set() or k >= len(times):
                    return
                if self.speed:
                    due = wall0 + times[k] / 1e9 / self.speed
                    if self._halt.wait(max(0.0, due - time.monotonic())):
                        return
                buf = Gst.Buffer.new_wrapped(data)
                buf.pts = times[k]
                buf.dts = times[k]
                buf.duration = (times[k + 1] - times[k]) if k + 1 < len(times) else tail_dur
                if self.src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                    return  # flushing: the reader is closing
        except Exception as e:  # a frame that cannot be read or decoded
            at = times[k] / 1e9 if 0 <= k < len(times) else None
            self._feed_error = f"{self.what}: frame {k + 1} cannot be read ({e})"
            log.debug("feeder stopped at frame %d: %s", k + 1, e)
            self._feed_at = at
        self.src.emit("end-of-stream")

    def start(self, timeout_s: float = 15.0) -> None:
        Gst = gst.Gst
        self._set_state(Gst.State.PLAYING)
        self._thread = threading.Thread(target=self._feed, name="ceus-feed", daemon=True)
        self._thread.start()
        self._wait(timeout_s, lambda: self.gate.get_property("last-arrival") > 0, stop_on_eos=True)
        if self._feed_error and self.gate.get_property("last-arrival") == 0:
            from ceustream.engine.core.errors import InputError

            raise InputError(self._feed_error)

    def _try_pull(self, timeout_s: float) -> Frame | None:
        try:
            return super()._try_pull(timeout_s)
        except EndOfStream:
            if self._feed_error:
                raise DamagedStream(self._feed_error, getattr(self, "_feed_at", None)) from None
            raise

    def pull(self, timeout_s: float = 10.0) -> Frame:
        """The next frame the gate let through. Raises EndOfStream or DamagedStream."""
        if self._stop.is_set():
            raise EndOfStream()
        deadline = time.monotonic() + timeout_s
        while True:
            fr = self._try_pull(0.05)
            if fr is not None:
                return fr
            if time.monotonic() > deadline:
                raise DamagedStream(f"no frame for {timeout_s:.0f} s (stalled)", self.last_pts_s)

    def close(self) -> None:
        self._halt.set()
        super().close()  # NULL state: a blocked push returns FLUSHING
        if self._thread is not None:
            self._thread.join(5)


def monotonic_ns_list(times_ns: list[int], what: str) -> None:
    """Refuses times that go backwards (one line naming the first)."""
    from ceustream.engine.core.errors import InputError

    for k in range(1, len(times_ns)):
        if times_ns[k] < times_ns[k - 1]:
            raise InputError(f"{what}: frame {k + 1} is timed before frame {k} "
                             f"({times_ns[k] / 1e9:.6f} s < {times_ns[k - 1] / 1e9:.6f} s)")

