"""Live capture for the engine: any source URI (capture card, DeckLink, RTSP, MPEG-TS over UDP
or SRT, a GStreamer fragment, a test pattern) or a frame generator (a simulated scanner
pushing a CEUS exam in real time) into ``ceusgate``.

Live sources cannot seek; everything else is the same reader as for files. A reader is one
pipeline: the live engine (``engine.app.live``) opens a new one when a source fails, ends or
stalls, and keeps the exam's clock continuous across them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ceustream.engine.core.source import EndOfStream, Frame

from . import gst
from .gst import ns
from .reader import TAIL, GateReader, range_lut
from .source import redact, source_description

log = logging.getLogger(__name__)

#: the reference-timestamp caps ``ceusgate`` stamps a replay request's epoch with
EPOCH_CAPS = "timestamp/x-ceus-epoch"


@dataclass
class GateFrame(Frame):
    """A frame from a live gate: ``epoch``, the latest replay request when the gate chose it
    (``ceusgate`` stamps it), and ``past``: ``""`` for a live frame, ``"chosen"`` for a kept
    frame the gate's rule chose in a replay, ``"context"`` for a kept frame before the monitor
    window (the replay's ``pre_from``), ``"end"`` for the empty frame that follows a replay's
    last one. A kept frame's ``luma`` is the kept box only
    (``origin`` = its corner), already full-range like every frame's."""

    epoch: int = 0
    past: str = ""

#: decoded frames a live source's appsink holds while the engine is busy before it drops the
#: oldest: one second at 30 fps, so a burst (a sender that writes several frames in one
#: datagram, a decoder that outputs frames in batches, a scoring call) is absorbed, and a
#: backlog never grows beyond it. Memory: at most this many decoded pictures (4:2:0: width x
#: height x 1.5 bytes each, 720p: 41 MB, 1080p: 93 MB), held only while the engine is behind.
LIVE_MAX_BUFFERS = 30

#: what ``ceusgate`` is given: a picture with an 8-bit luma plane it can keep (the kept past);
#: a source already in one of these passes the converter untouched (no cost), others (RGB,
#: 10-bit) are converted once, before the gate
GATE_FORMATS = "video/x-raw,format={I420,YV12,NV12,NV21,Y42B,Y444,Y41B,GRAY8,YUY2,UYVY,YVYU}"


class FramePusher:
    """Pushes a frame generator's RGB frames into an ``appsrc`` as a live source, paced at
    ``speed`` times real time (timestamps = the generator's times). The generator is anything
    with ``size`` (w, h), ``fps``, ``speed`` and ``frames()`` yielding (seconds, RGB array):
    e.g. the simulated scanner of ``ceustream.models.simulator.scanner``.

    No frame is dropped on the way (``block=true``, no leaky queue): when the machine is busy
    the frames come late rather than not at all, so a simulated exam gives the same frames,
    and so the same score, every time it is run."""

    def __init__(self, generator):
        self.gen = generator
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    def description(self) -> str:
        w, h = self.gen.size
        return (f"appsrc name=simsrc is-live=true format=time do-timestamp=false block=true "
                f"max-bytes={w * h * 3 * 4} caps=video/x-raw,format=RGB,width={w},height={h},"
                f"framerate={int(round(self.gen.fps))}/1 ! queue max-size-buffers=4 "
                "! videoconvert")

    def start(self, pipeline) -> None:
        src = pipeline.get_by_name("simsrc")
        self._t = threading.Thread(target=self._run, args=(src,), name="frame-pusher",
                                   daemon=True)
        self._t.start()

    def _run(self, src) -> None:
        Gst = gst.Gst
        t_start = time.monotonic()
        dur = int(1e9 / self.gen.fps)
        for t, rgb in self.gen.frames():
            if self._stop.is_set():
                return
            now = time.monotonic()
            wait = t_start + t / self.gen.speed - now
            if wait < -0.1:
                # behind (a busy machine): go on from here at the set pace, never faster, as a
                # scanner that cannot catch up on frames it did not show in time
                t_start, wait = now - t / self.gen.speed, 0.0
            if wait > 0 and self._stop.wait(wait):
                return
            buf = Gst.Buffer.new_wrapped(np.ascontiguousarray(rgb).tobytes())
            buf.pts = int(round(t * 1e9))
            buf.duration = dur
            if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                return
        src.emit("end-of-stream")

    def stop(self) -> None:
        self._stop.set()
        if self._t:
            self._t.join(2)


def record_description(path: str | Path) -> str:
    """A branch writing the decoded video losslessly (H.264 at quantizer 0, so every decoded
    luma value comes back unchanged) into Matroska with microsecond timestamps: the exam as the
    engine received it, which ``ceustream replay`` scores to the same frames and score."""
    gst.require("x264enc", "matroskamux", "filesink")
    loc = str(path).replace("\\", "\\\\").replace('"', '\\"')
    return ("queue name=recq max-size-buffers=120 max-size-bytes=0 max-size-time=0 ! "
            "x264enc pass=quant quantizer=0 speed-preset=ultrafast tune=zerolatency "
            "key-int-max=60 ! h264parse ! matroskamux timecodescale=1000 ! "
            f'filesink name=recsink location="{loc}"')


class LiveReader(GateReader):
    """A live source for the engine: ``uri`` (see ``source.py``) or ``generator`` (frames
    pushed by a ``FramePusher``). ``branch``: an extra branch fed the same decoded video (the
    overlay display); ``record``: a file to write the decoded video to (``record_description``).
    """

    def __init__(self, uri: str | None = None, branch: str | None = None, generator=None,
                 record: str | Path | None = None):
        gst.require("ceusgate", "videoconvert", "appsink")
        self.uri = uri or "generator"
        self.sim = FramePusher(generator) if generator is not None else None
        head = self.sim.description() if self.sim else source_description(uri)
        head = f"{head} ! videoconvert ! {GATE_FORMATS}"
        self.record = Path(record) if record else None
        extra = []
        if branch:
            extra.append(f"queue leaky=downstream ! {branch}")
        if self.record is not None:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            extra.append(record_description(self.record))
        if extra:
            desc = f"{head} ! tee name=t t. ! queue ! {TAIL} " + " ".join(f"t. ! {b}" for b in extra)
        else:
            desc = f"{head} ! {TAIL}"
        super().__init__(desc, redact(self.uri))
        self.gate.set_property("frozen-after", 0)  # the engine sets it from the frame rate
        #: frames kept out of the recording because their time was missing or not after the
        #: previous frame's (see ``_in_order``)
        self.record_skipped = 0
        self._record_last_pts: int | None = None
        if self.record is not None:
            pad = self.pipeline.get_by_name("recq").get_static_pad("src")
            pad.add_probe(gst.Gst.PadProbeType.BUFFER, self._in_order)
        #: kept frames returned by a replay, served by ``pull`` before the live ones; a live
        #: frame pulled while some wait goes behind them (``_past_lock``: the order holds)
        self._past: deque[GateFrame] = deque()
        self._past_lock = threading.Lock()
        self._epoch_caps = gst.Gst.Caps.from_string(EPOCH_CAPS)
        self._keep_box: tuple[int, int, int, int] | None = None
        #: frames the appsink may hold for the engine (see LIVE_MAX_BUFFERS)
        self.max_buffers = int(self.sink.get_property("max-buffers"))
        if self.sim is None:
            # A live source never waits for the engine: when the engine is behind (more than
            # LIVE_MAX_BUFFERS frames passed by the gate and not taken yet) the appsink drops
            # the oldest, so memory stays bounded, the decoder never blocks and no packet is
            # lost in the kernel; the engine counts them and says so (slot_late /
            # slot_missed). The simulator (appsrc, block=true) keeps every frame: its exams
            # are reproducible.
            self.max_buffers = LIVE_MAX_BUFFERS
            self.sink.set_property("max-buffers", LIVE_MAX_BUFFERS)
            self.sink.set_property("drop", True)

    def _in_order(self, pad, info):
        """The recording keeps only frames whose time is after the previous one's: the rule
        the engine itself applies (``SourceRunner._frame``). A decoder fed a damaged stream
        (UDP loss under load) can put out a frame without a time or with a decreasing one;
        encoded, such a frame is dropped by the muxer, and every frame predicted from it
        then decodes wrong until the next key frame: the recording would replay other
        pictures than the ones the engine scored."""
        Gst = gst.Gst
        pts = info.get_buffer().pts
        if pts == Gst.CLOCK_TIME_NONE or (self._record_last_pts is not None
                                          and pts <= self._record_last_pts):
            self.record_skipped += 1
            if self.record_skipped == 1 or self.record_skipped % 100 == 0:
                log.warning("%s: recording: %d frame(s) without a time or out of order left "
                            "out (the engine skips them too)", self.what, self.record_skipped)
            return Gst.PadProbeReturn.DROP
        self._record_last_pts = pts
        return Gst.PadProbeReturn.OK

    def open(self) -> None:
        """Starts the pipeline and returns at once; frames (or a bus error) follow."""
        self._set_state(gst.Gst.State.PLAYING)
        if self.sim:
            self.sim.start(self.pipeline)

    def start(self, timeout_s: float = 15.0) -> None:
        self.open()
        self._wait(timeout_s, lambda: self.gate.get_property("last-arrival") > 0, stop_on_eos=True)

    def pull(self, timeout_s: float = 0.25) -> Frame | None:
        """A frame, or None when none came within ``timeout_s`` (no signal so far)."""
        if self._stop.is_set():
            raise EndOfStream()
        if self._past:
            # while kept frames wait, live ones are taken from the appsink all the same (so
            # it never drops one for being full) and queued behind them
            while True:
                fr = self._try_pull(0)
                if fr is None:
                    break
                with self._past_lock:
                    self._past.append(fr)
            with self._past_lock:
                return self._past.popleft() if self._past else None
        fr = self._try_pull(timeout_s)
        if fr is not None and self._past:
            with self._past_lock:  # a replay came meanwhile: its frames go first
                self._past.append(fr)
                return self._past.popleft()
        return fr

    def _frame(self, sample) -> GateFrame | None:
        fr = super()._frame(sample)
        if fr is None:
            return None
        meta = sample.get_buffer().get_reference_timestamp_meta(self._epoch_caps)
        return GateFrame(fr.pts_s, fr.luma, fr.mono_ns, fr.width, fr.height, fr.origin,
                         epoch=int(meta.timestamp) if meta is not None else 0)

    # -- the kept past (``ceusgate``'s ring) ------------------------------------------------
    def set_keep(self, box: tuple[int, int, int, int] | None, horizon_s: float = 120.0,
                 max_bytes: int = 256_000_000) -> None:
        """Keeps the luma of ``box`` (x, y, w, h) of every frame in the gate, for
        ``horizon_s`` seconds within ``max_bytes``; None: keeps nothing (and forgets)."""
        self._keep_box = tuple(int(v) for v in box) if box else None
        self.gate.set_property("keep-time", ns(max(0.0, horizon_s)))
        self.gate.set_property("keep-max-bytes", max(0, int(max_bytes)))
        self.gate.set_property("keep-roi", ",".join(str(v) for v in self._keep_box)
                               if self._keep_box else "")

    def set_crop(self, box: tuple[int, int, int, int] | None) -> None:
        """Passed live frames carry only ``box`` (x, y, w, h) of the picture (their origin
        says where); None: the whole picture."""
        self.crop_box = tuple(int(v) for v in box) if box else None

    def kept(self) -> tuple[int | None, bool]:
        """(stream time in ns of the oldest kept frame or None, whether the memory bound
        rather than the time horizon decided how far back it goes)."""
        v = int(self.gate.get_property("kept-from"))
        return (None if v >= (1 << 63) else v), bool(self.gate.get_property("kept-limited"))

    def replay(self, epoch: int, from_ns: int, pre_from_ns: int | None,
               monitor: tuple[float, float, float] | None, last_monitor_ns: int | None,
               slots_s: list[float]) -> int:
        """Sets the gate's rule (``monitor``: start, stop, interval in seconds of stream time;
        its rhythm going on from ``last_monitor_ns``; the slots) and runs the kept past from
        ``from_ns`` through it (``ceusgate``'s ``replay``). The chosen frames (and the kept
        ones from ``pre_from_ns`` to ``from_ns`` as context) are served by ``pull`` before any
        live frame; every frame passed from now on carries ``epoch``. Returns how many."""
        none = (1 << 64) - 1
        start, stop, interval = monitor if monitor is not None else (0.0, 0.0, 0.0)
        text = ",".join(f"{t:.6f}" for t in slots_s if t >= 0)
        with self._past_lock:
            bl = self.gate.emit("replay", int(epoch), max(0, int(from_ns)),
                                none if pre_from_ns is None else max(0, int(pre_from_ns)),
                                ns(max(start, 0.0)), ns(max(stop, 0.0)), ns(interval),
                                none if last_monitor_ns is None else int(last_monitor_ns), text)
            return self._queue_past(bl, epoch)

    def _queue_past(self, bl, epoch: int) -> int:
        """Kept crops → frames (full-range luma, as ``_frame`` makes it); lock held."""
        x, y, w, h = self._keep_box or (0, 0, 0, 0)
        size = self.frame_size(decoded=True) or (0, 0)
        if self._range_lut is None:
            self._range_lut = range_lut(self.gate.get_static_pad("sink").get_current_caps())
        n = bl.length()
        for i in range(n):
            b = bl.get(i)
            crop = np.frombuffer(b.extract_dup(0, b.get_size()), np.uint8).reshape(h, w)
            if self._range_lut is not False:
                import cv2

                crop = cv2.LUT(crop, self._range_lut)
            mono = b.get_reference_timestamp_meta(self._stamp_caps)
            ep = b.get_reference_timestamp_meta(self._epoch_caps)
            self._past.append(GateFrame(
                gst.seconds(b.pts), crop, int(mono.timestamp) if mono is not None else None,
                size[0], size[1], (x, y), epoch=int(ep.timestamp) if ep is not None else 0,
                past="chosen" if b.offset == 1 else "context"))
        # the end of the replay: the engine decides nothing by the clock before it (a slot
        # whose frames are still on their way is not missing)
        self._past.append(GateFrame(0.0, np.zeros((0, 0), np.uint8), None, size[0], size[1],
                                    (x, y), epoch=int(epoch), past="end"))
        log.debug("%s: %d kept frame(s) replayed", self.what, n)
        return n

    # -- the gate, as the live engine drives it -------------------------------------------
    def set_pass_all(self, on: bool) -> None:
        """Every frame to the engine (an exam open and t0 not known yet: the recent past is
        kept), or only those the slots and monitor ask for."""
        self.gate.set_property("pass-all", bool(on))

    def set_frozen_after(self, frames: int) -> None:
        """Identical consecutive frames after which the gate reports a frozen picture."""
        self.gate.set_property("frozen-after", max(0, int(frames)))

    def nominal_fps(self) -> float | None:
        """The frame rate the caps announce (None when variable or unknown)."""
        caps = self.gate.get_static_pad("sink").get_current_caps()
        if caps is None or caps.get_size() == 0:
            return None
        ok, num, den = caps.get_structure(0).get_fraction("framerate")
        return num / den if ok and num > 0 and den > 0 else None

    def frames_seen(self) -> int:
        """Every frame that reached the gate (passed or dropped)."""
        passed, dropped = self.counters()
        return passed + dropped

    def arrival_ns(self) -> int:
        """CLOCK_MONOTONIC (ns) of the newest frame at the gate; 0 before any."""
        return int(self.gate.get_property("last-arrival"))

    def gate_silent_s(self) -> float | None:
        """How long the gate has seen no frame (None before any)."""
        a = self.arrival_ns()
        return None if a == 0 else max(0, time.monotonic_ns() - a) / 1e9

    def stream_ns(self) -> int | None:
        """Stream time (ns) of the newest frame at the gate (None before any)."""
        st = self.gate.get_property("last-stream-time")
        return None if st >= (1 << 63) else int(st)

    def close(self) -> None:
        if self.sim:
            self.sim.stop()
        if self.record is not None:
            self._finish_recording()
        super().close()

    def _finish_recording(self, timeout_s: float = 5.0) -> None:
        """Ends the recording branch with EOS so the file is complete (indexed), without
        stopping the rest; a stuck branch is given ``timeout_s``."""
        Gst = gst.Gst
        q, sink = self.pipeline.get_by_name("recq"), self.pipeline.get_by_name("recsink")
        if q is None or sink is None:
            return
        done = threading.Event()

        def probe(pad, info):
            ev = info.get_event()
            if ev is not None and ev.type == Gst.EventType.EOS:
                done.set()
            return Gst.PadProbeReturn.OK

        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, probe)
        q.get_static_pad("sink").send_event(Gst.Event.new_eos())
        if not done.wait(timeout_s):
            log.warning("recording %s: not finalised within %.0f s (the file may lack its "
                        "index)", self.record, timeout_s)

