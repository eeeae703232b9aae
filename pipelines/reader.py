"""What every ceustream frame source shares: a pipeline ending in ``ceusgate`` → GRAY8 →
appsink, the gate's controls (slots, monitor window), and turning samples into frames with
stream timestamps, a decoder-exit stamp and full-range luma."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from ceustream.engine.core.errors import InputError
from ceustream.engine.core.source import DamagedStream, EndOfStream, Frame, SourceStats

from . import gst
from .gst import ns, seconds

log = logging.getLogger(__name__)

def tail(frame: tuple[int, int] | None = None, box: tuple[int, int, int, int] | None = None,
         max_buffers: int = 4) -> tuple[str, tuple[int, int]]:
    """The engine's end of a pipeline, cropped to ``box`` (x, y, w, h) of a ``frame`` (w, h)
    when both are known, so only the ROI is converted and copied for the frames that pass.
    Returns the description and the crop's origin in the frame (even, so chroma planes crop
    cleanly)."""
    crop, origin = "", (0, 0)
    if frame is not None and box is not None:
        W, H = frame
        x, y, w, h = box
        x0, y0 = x & ~1, y & ~1
        x1, y1 = min(W, x + w + ((x + w) & 1)), min(H, y + h + ((y + h) & 1))
        crop, origin = f"videocrop left={x0} top={y0} right={W - x1} bottom={H - y1} ! ", (x0, y0)
    return (f"ceusgate name=gate ! {crop}videoconvert ! {LUMA_FORMATS} ! "
            f"appsink name=sink sync=false async=false max-buffers={max_buffers} drop=false "
            "enable-last-sample=false"), origin


#: what the engine's appsink takes: a picture whose first plane is its 8-bit luma, one byte
#: a pixel. The planar YUV a decoder gives passes ``videoconvert`` untouched and the luma
#: plane is read out of the buffer as it is (converting a 720p frame to GRAY8 costs
#: videoconvert ~2 ms here); packed YUV and RGB are converted once.
LUMA_FORMATS = "video/x-raw,format={GRAY8,I420,YV12,NV12,NV21,Y42B,Y444,Y41B}"


#: the engine's end of every pipeline that does not crop
TAIL = tail()[0]


def range_lut(caps):
    """Studio-range (16-235) YUV is stretched to full range, so every source gives the model
    the same luma scale (videoconvert copies Y into GRAY8 as it is); False = nothing to do."""
    from gi.repository import GstVideo

    if caps is None:
        return False
    info = GstVideo.VideoInfo.new_from_caps(caps)
    if info is None or not (info.finfo.flags & GstVideo.VideoFormatFlags.YUV):
        return False
    if info.colorimetry.range != getattr(GstVideo.VideoColorRange, "16_235"):
        return False
    y = (np.arange(256, dtype=np.float64) - 16.0) * 255.0 / 219.0
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


class GateReader:
    """A pipeline whose engine branch ends in ``TAIL``; implements the engine's
    ``FrameSource`` (``ceustream.engine.core.source``). Not thread-safe: one consumer pulls."""

    seekable = False

    def __init__(self, desc: str, what: str, origin: tuple[int, int] = (0, 0)):
        self.what = what
        self.origin = origin
        try:
            self.pipeline = gst.Gst.parse_launch(desc)
        except Exception as e:
            raise InputError(f"{what}: cannot build the pipeline ({e})") from None
        self.gate = self.pipeline.get_by_name("gate")
        self.sink = self.pipeline.get_by_name("sink")
        self.bus = self.pipeline.get_bus()
        self._stamp_caps = gst.Gst.Caps.from_string(gst.STAMP_CAPS)
        self.stats = SourceStats()
        self._size: tuple[int, int] | None = None
        self._full: tuple[int, int] | None = None
        self._range_lut = None
        #: (x, y, w, h) of the full frame: the only part of a passed frame taken (its rows
        #: copied out of the buffer, its origin set); None: the whole frame
        self.crop_box: tuple[int, int, int, int] | None = None
        self._layout: tuple | None = None  # (caps, luma offset, luma stride)
        self.last_pts_s: float | None = None
        self._stop = threading.Event()

    # -- the gate ------------------------------------------------------------------------
    def set_monitor(self, start_s: float, stop_s: float, interval_s: float) -> None:
        self.gate.set_property("monitor-start", ns(max(start_s, 0.0)))
        self.gate.set_property("monitor-stop", ns(stop_s))
        self.gate.set_property("monitor-interval", ns(interval_s))  # unchanged: no reset

    def stop_monitor(self) -> None:
        self.gate.set_property("monitor-interval", 0)

    def set_slots(self, times_s: list[float]) -> None:
        self.gate.set_property("slots", ",".join(f"{t:.6f}" for t in times_s if t >= 0))

    def counters(self) -> tuple[int, int]:
        return int(self.gate.get_property("passed")), int(self.gate.get_property("dropped"))

    def stream_time(self) -> float | None:
        """Stream time of the newest frame the gate saw (None before the first)."""
        st = self.gate.get_property("last-stream-time")
        return None if st >= (1 << 63) else seconds(st)

    def seconds_since_frame(self) -> float | None:
        last = self.gate.get_property("last-arrival")
        return None if last == 0 else (time.monotonic_ns() - last) / 1e9

    def frame_size(self, decoded: bool = False) -> tuple[int, int] | None:
        """(width, height) of the video entering the gate (before any crop), known before
        any frame reached Python."""
        if self._size is not None and not decoded and self.origin == (0, 0):
            return self._size
        caps = self.gate.get_static_pad("sink").get_current_caps()
        if caps is None or caps.get_size() == 0:
            return None
        st = caps.get_structure(0)
        return int(st.get_value("width")), int(st.get_value("height"))

    def frozen(self) -> bool:
        return bool(self.gate.get_property("frozen"))

    def seek(self, t_s: float) -> None:
        raise DamagedStream(f"{self.what}: this source cannot seek", self.last_pts_s)

    def request_stop(self) -> None:
        """Makes the consumer's next ``pull`` end the stream (an exam stopped)."""
        self._stop.set()

    def clear_stop(self) -> None:
        self._stop.clear()

    # -- the pipeline --------------------------------------------------------------------
    def _set_state(self, state) -> None:
        Gst = gst.Gst
        if self.pipeline.set_state(state) == Gst.StateChangeReturn.FAILURE:
            msg = self.bus.pop_filtered(Gst.MessageType.ERROR)
            why = gst.error_line(msg) if msg is not None else "the pipeline cannot start"
            raise InputError(f"{self.what}: {why}")

    def _wait(self, timeout_s: float, done, stop_on_eos: bool) -> None:
        """Until ``done()`` (or EOS), raising a one-line error on a bus ERROR or timeout."""
        Gst = gst.Gst
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = self.bus.timed_pop_filtered(ns(0.02), Gst.MessageType.ERROR | Gst.MessageType.EOS)
            if msg is not None and msg.type == Gst.MessageType.ERROR:
                raise InputError(f"{self.what}: cannot be decoded ({gst.error_line(msg)})")
            if msg is not None and msg.type == Gst.MessageType.EOS and stop_on_eos:
                return
            if done():
                return
        raise InputError(f"{self.what}: no frame decoded within {timeout_s:.0f} s")

    def _bus_errors(self) -> None:
        Gst = gst.Gst
        while True:
            msg = self.bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.WARNING)
            if msg is None:
                return
            if msg.type == Gst.MessageType.ERROR:
                raise DamagedStream(gst.error_line(msg), self.last_pts_s)
            line = gst.error_line(msg)
            if line not in self.stats.warnings:
                self.stats.warnings.append(line)

    def poll(self) -> None:
        """Between pulls: raises DamagedStream on a pipeline error, EndOfStream once the
        source ended and every frame was taken."""
        self._bus_errors()
        if self.sink.is_eos():
            raise EndOfStream()

    def _try_pull(self, timeout_s: float) -> Frame | None:
        """A frame within ``timeout_s``, or None; raises EndOfStream / DamagedStream."""
        self._bus_errors()
        sample = self.sink.try_pull_sample(ns(timeout_s))
        if sample is not None:
            return self._frame(sample)
        if self.sink.is_eos():
            self._bus_errors()
            raise EndOfStream()
        return None

    def _frame(self, sample) -> Frame | None:
        Gst = gst.Gst
        buf = sample.get_buffer()
        if buf.pts == Gst.CLOCK_TIME_NONE:
            # a decoder fed a damaged stream can put out a frame without a time: it cannot
            # be placed on the exam's clock, so it is not a frame the engine can use
            log.debug("%s: a frame without a timestamp skipped", self.what)
            return None
        caps = sample.get_caps()
        st = caps.get_structure(0)
        w, h = st.get_value("width"), st.get_value("height")
        if self._size is None:
            self._size = (w, h)
            self._full = self.frame_size(decoded=True)
        elif self._size != (w, h):
            now = self.frame_size(decoded=True) or (w, h)
            was = self._full or self._size
            raise InputError(
                f"{self.what}: resolution changed mid-stream at "
                f"{seconds(buf.pts):.2f} s ({was[0]}x{was[1]} -> {now[0]}x{now[1]}); "
                "the ROI no longer means the same place")
        seg = sample.get_segment()
        pts = seg.to_stream_time(Gst.Format.TIME, buf.pts)
        if pts == Gst.CLOCK_TIME_NONE or pts < 0:
            pts = buf.pts
        offset, stride = self._luma_plane(caps, buf)
        origin, box = self.origin, self.crop_box
        x0, y0, x1, y1 = 0, 0, w, h
        if box is not None and origin == (0, 0):
            # only the box's rows leave the buffer (a live source's ROI: a few kB a frame,
            # not the whole picture)
            x0, y0 = max(0, min(int(box[0]), w - 1)), max(0, min(int(box[1]), h - 1))
            x1, y1 = max(x0 + 1, min(w, int(box[0] + box[2]))), \
                max(y0 + 1, min(h, int(box[1] + box[3])))
            origin = (x0, y0)
        # the rows y0..y1 of the luma plane (the last row needs only its pixels)
        n = (y1 - y0 - 1) * stride + x1
        data = buf.extract_dup(offset + y0 * stride, n)
        if len(data) < n:
            raise DamagedStream(f"{self.what}: a frame of {buf.get_size()} bytes is too "
                                f"short for {w}x{h}", self.last_pts_s)
        luma = np.lib.stride_tricks.as_strided(
            np.frombuffer(data, np.uint8), (y1 - y0, x1), (stride, 1))[:, x0:x1]
        if self._range_lut is None:
            self._range_lut = range_lut(self.gate.get_static_pad("sink").get_current_caps())
        if self._range_lut is not False:
            import cv2

            luma = cv2.LUT(luma, self._range_lut)
        meta = buf.get_reference_timestamp_meta(self._stamp_caps)
        mono = int(meta.timestamp) if meta is not None else None
        self.last_pts_s = seconds(pts)
        return Frame(self.last_pts_s, luma, mono, w, h, origin)

    def _luma_plane(self, caps, buf) -> tuple[int, int]:
        """(offset, stride) of the luma plane in ``buf``: its video meta's when it has one,
        else the default layout of ``caps`` (found once per caps)."""
        from gi.repository import GstVideo

        meta = GstVideo.buffer_get_video_meta(buf)
        if meta is not None:
            return int(meta.offset[0]), int(meta.stride[0])
        if self._layout is None or self._layout[0] is not caps and \
                not self._layout[0].is_equal(caps):
            info = GstVideo.VideoInfo.new_from_caps(caps)
            if info is None:
                raise DamagedStream(f"{self.what}: frames of unreadable caps {caps}",
                                    self.last_pts_s)
            self._layout = (caps, int(info.offset[0]), int(info.stride[0]))
        return self._layout[1], self._layout[2]

    def close(self) -> None:
        self.stats.passed, self.stats.dropped = self.counters()
        self.pipeline.set_state(gst.Gst.State.NULL)
