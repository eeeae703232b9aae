"""Recorded exams: discovery, and a reader that hands the engine only the frames it asks for.

A recording is a video file (any container and codec the installed GStreamer decodes), a DICOM
ultrasound cine (``pipelines.dicom``) or a folder of images with a timestamps file
(``pipelines.images``); ``discover`` tells them apart and ``open_reader`` gives the matching
``FrameSource``. All of them end in the same gate, sampler and journal.

Two ways through a video file, choosing the same frames:
- stream: decode every frame; ``ceusgate`` drops all but the two frames around each slot
  (and one per monitor interval while contrast arrival is detected);
- seek: FLUSH|ACCURATE seek to just before each slot; the gate holds the stream (like a
  prerolled sink) as soon as the slot's frames are through, so only the GOPs around the
  slots are decoded.

**Times.** The engine's clock for a recording is seconds from its FIRST FRAME (what a user
reads off a player). The reader converts at its boundary: slot and monitor times, seeks and
stream positions go to the gate on the stream clock (the first frame's stream time added, in
integer nanoseconds, so slot times reach the gate exactly), and frames come back with the
first frame's stream time taken off. ``first_frame_s`` says where the first frame is on the
stream clock (0.77 s for an ffmpeg-written MPEG-TS, 5 s for an MP4 with a start offset).

**Seeks verify themselves.** The first frame's segment fixes how buffer timestamps map to
stream time. Every frame delivered in seek mode is checked against it: a demuxer whose new
segment disagrees (GStreamer 1.22's tsdemux after an ACCURATE seek landed 0.4-12 s past its
target while the segment claimed the target) raises ``SeekMismatch``, and the consumer falls
back to decoding the file through (``stream_through``), flagged ``seek_fallback``.

**Clipped frames.** An ACCURATE seek whose target falls between two frames of a variable-rate
file makes the decoder clip the frame before the target to the new segment and stamp it with
the target itself, a time the file has no frame at. Seek targets sit one nanosecond before
the time asked for (no container timebase lands there), so a frame stamped exactly with the
target is a clipped one: it is skipped, and the seek consumer seeks further back for the
real frame before the slot.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ceustream.engine.core.errors import InputError
from ceustream.engine.core.schedule import to_ns
from ceustream.engine.core.source import DamagedStream, EndOfStream, Frame, SeekMismatch

from . import gst
from .appsrc import ns_text
from .gst import ns, seconds
from .reader import GateReader, tail

log = logging.getLogger(__name__)

#: a frame whose segment maps its timestamp more than this far from the first segment's
#: mapping was delivered by a seek that landed elsewhere
MAPPING_SLACK_NS = 1_000


@dataclass(frozen=True)
class VideoInfo:
    """What a recording is, before any frame is read."""

    path: str
    duration_s: float | None
    width: int
    height: int
    fps: float | None
    seekable: bool
    codec: str
    container: str
    #: video (GStreamer decodes the file) | dicom | images
    kind: str = "video"
    #: the first frame on the recording's own clock, when known before reading (DICOM:
    #: Frame Delay; image folders: the first timestamp); for video the reader measures it
    first_frame_s: float | None = None
    frames: int | None = None


def _caps_str(caps) -> str:
    if caps is None or caps.get_size() == 0:
        return "unknown"
    return caps.get_structure(0).get_name()


def _real_time_segments(pad, info):
    Gst = gst.Gst
    ev = info.get_event()
    if ev is not None and ev.type == Gst.EventType.SEGMENT:
        seg = ev.parse_segment().copy()
        if seg.rate != 1.0:
            seg.rate = 1.0
            pad.push_event(Gst.Event.new_segment(seg))  # passes this probe: rate is 1 now
            return Gst.PadProbeReturn.DROP
    return Gst.PadProbeReturn.OK


def check_readable(p: Path) -> None:
    """One-line errors for a path that cannot be a recording file."""
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")
    try:
        with open(p, "rb"):
            pass
    except OSError as e:
        raise InputError(f"{p}: cannot be read ({e.strerror})") from None


def is_dicom(p: Path) -> bool:
    """A DICOM Part 10 file (the 'DICM' magic after the 128-byte preamble), or a ``.dcm``."""
    if p.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def discover(path: str | Path, timeout_s: float = 15.0) -> VideoInfo:
    """Checks that ``path`` is a recording the engine reads (video file, DICOM cine, image
    folder with ``timestamps.csv``) and reads its size, rate and duration."""
    p = Path(path)
    if p.is_dir():
        from . import images

        return images.discover(p)
    check_readable(p)
    if is_dicom(p):
        from . import dicom

        return dicom.discover(p)
    return discover_video(p, timeout_s)


def discover_video(p: Path, timeout_s: float = 15.0) -> VideoInfo:
    gst.init()
    from gi.repository import GLib

    Pb = gst.GstPbutils
    disc = Pb.Discoverer.new(ns(timeout_s))
    try:
        info = disc.discover_uri(p.resolve().as_uri())
    except GLib.Error as e:
        raise InputError(f"{p}: not a playable video ({e.message})") from None
    res = info.get_result()
    if res == Pb.DiscovererResult.TIMEOUT:
        raise InputError(f"{p}: timed out reading the file (damaged or not a video)")
    if res == Pb.DiscovererResult.MISSING_PLUGINS:
        raise InputError(f"{p}: no installed GStreamer decoder for this format "
                         "(install gstreamer1.0-libav / -plugins-bad / -ugly)")
    if res != Pb.DiscovererResult.OK:
        raise InputError(f"{p}: not a playable video ({res.value_nick})")
    videos = info.get_video_streams()
    if not videos:
        raise InputError(f"{p}: not a video (no video stream found)")
    v = videos[0]
    if v.get_width() <= 0 or v.get_height() <= 0:
        raise InputError(f"{p}: video stream has no frame size")
    num, den = v.get_framerate_num(), v.get_framerate_denom()
    fps = num / den if num > 0 and den > 0 else None
    dur = info.get_duration()
    top = info.get_stream_info()
    return VideoInfo(
        path=str(p), duration_s=seconds(dur) if dur and dur > 0 else None,
        width=v.get_width(), height=v.get_height(), fps=fps, seekable=bool(info.get_seekable()),
        codec=_caps_str(v.get_caps()), container=_caps_str(top.get_caps()) if top else "unknown")


def content_id(info: VideoInfo) -> str:
    """An opaque, stable exam id from the recording's content (never its name, which may
    hold a patient's; for DICOM only the pixel data, never the header)."""
    if info.kind == "dicom":
        from . import dicom

        return dicom.content_id(Path(info.path))
    if info.kind == "images":
        from . import images

        return images.content_id(Path(info.path))
    path = Path(info.path)
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(size - (1 << 20))
            h.update(f.read())
    h.update(str(size).encode())
    return "r" + h.hexdigest()[:15]


def open_reader(info: VideoInfo, *, seek_mode: bool, speed: float | None = None,
                branch: str | None = None, crop: tuple[int, int, int, int] | None = None):
    """The ``FrameSource`` for a discovered recording."""
    if info.kind == "video":
        return FileReader(info, seek_mode=seek_mode, speed=speed, branch=branch, crop=crop)
    if branch:
        raise InputError(f"{info.path}: an overlay branch needs a video file")
    if info.kind == "dicom":
        from . import dicom

        return dicom.DicomReader(info, speed=speed, crop=crop)
    from . import images

    return images.ImageFolderReader(info, speed=speed, crop=crop)


class FileReader(GateReader):
    """A video recording opened for the engine (stream or seek mode, at max or a paced
    speed), on the first-frame clock (see the module's docstring)."""

    def __init__(self, info: VideoInfo, *, seek_mode: bool, speed: float | None = None,
                 branch: str | None = None, crop: tuple[int, int, int, int] | None = None):
        gst.require("ceusgate", "decodebin", "videoconvert", "appsink")
        self.info = info
        self.seekable = info.seekable
        self.seek_mode = seek_mode
        self.speed = speed  # None = as fast as possible
        self.branch = branch
        loc = info.path.replace("\\", "\\\\").replace('"', '\\"')
        pace = " ! clocksync name=pace" if speed else ""
        head = f'filesrc location="{loc}" ! decodebin name=dec{pace}'
        # at most two passed frames queue up: a streaming file cannot run more than a few
        # monitor intervals ahead of the engine, whose slots it must not skip
        end, origin = tail((info.width, info.height), crop, max_buffers=2)
        if branch:
            desc = f"{head} ! tee name=t t. ! queue ! {end} t. ! queue name=branchq ! {branch}"
        else:
            desc = f"{head} ! {end}"
        self._desc = desc
        #: why this reader stopped seeking and decoded through (None while it seeks)
        self.fallback: str | None = None
        self._first_ns: int | None = None   # the first frame's stream time
        self._first_file_ns: int | None = None  # ... on the file's own clock (reported)
        self._ref: tuple[int, int, float] | None = None  # its segment: start, time, applied rate
        self._slots: list[float] | None = None
        self._monitor: tuple[float, float, float] | None = None
        self._carried = (0, 0)  # gate counters of pipelines replaced by stream_through
        self._seek_segments = 1 << 30  # no frame counts as "after the last seek" before one
        self._seek_target_ns: int | None = None  # stream time of the last seek's target
        self._lock = threading.Lock()
        self._build(desc, origin)

    def _build(self, desc: str, origin: tuple[int, int]) -> None:
        stats = getattr(self, "stats", None)
        GateReader.__init__(self, desc, self.info.path, origin)
        if stats is not None:
            self.stats = stats
        pad = self.gate.get_static_pad("sink")
        pad.add_probe(gst.Gst.PadProbeType.BUFFER, self._first_frame)
        if self.branch and self.speed and self.speed != 1.0:
            # the branch records what it is shown: its segments play at rate 1, so a video
            # written there has the exam's own timing whatever speed it was replayed at
            q = self.pipeline.get_by_name("branchq")
            q.get_static_pad("src").add_probe(gst.Gst.PadProbeType.EVENT_DOWNSTREAM,
                                              _real_time_segments)

    # -- the first-frame clock -------------------------------------------------------------
    def _first_frame(self, pad, info):
        """Buffer probe on the gate's sink pad, run once on the streaming thread before the
        gate sees the first frame: fixes the clock and hands the gate what was listed so far
        (so no slot of a streamed file can go by)."""
        Gst = gst.Gst
        buf = info.get_buffer()
        ev = pad.get_sticky_event(Gst.EventType.SEGMENT, 0)
        st, ref, file_ns = buf.pts, None, None
        if ev is not None:
            seg = ev.parse_segment()
            if seg.format == Gst.Format.TIME:
                ref = (int(seg.start), int(seg.time), float(seg.applied_rate))
                if buf.pts != Gst.CLOCK_TIME_NONE:
                    s = seg.to_stream_time(Gst.Format.TIME, buf.pts)
                    if s != Gst.CLOCK_TIME_NONE:
                        st = s
                    if seg.time == 0 and seg.start > 0 and buf.pts >= seg.start:
                        # matroskademux maps the file's first timestamp (5 s for an MKV
                        # written with a start offset) to stream time 0: the file's own clock
                        # is the timestamp itself (what ffprobe reports)
                        file_ns = int(buf.pts)
        if st == Gst.CLOCK_TIME_NONE:
            st = 0
        with self._lock:
            if self._first_ns is None:
                self._first_ns = int(st)
                self._first_file_ns = int(st) if file_ns is None else file_ns
                log.debug("%s: first frame at stream time %s s", Path(self.info.path).name,
                          ns_text(self._first_ns))
            self._ref = ref
            self._apply()
        return Gst.PadProbeReturn.REMOVE

    @property
    def first_frame_s(self) -> float | None:
        """Where the first frame sits on the file's own clock (seconds), once the reader
        started: its stream time, or for a demuxer that maps the file's first timestamp to
        stream zero (Matroska), that timestamp."""
        if self._first_ns is None:
            return None
        return (self._first_file_ns if self._first_file_ns is not None else self._first_ns) / 1e9

    def _stream_ns(self, t_s: float) -> int:
        return self._first_ns + to_ns(t_s)

    def _apply(self) -> None:
        """Hands the listed slots and monitor window to the gate (lock held, clock known)."""
        if self._slots is not None:
            times = [self._stream_ns(t) for t in self._slots]
            self.gate.set_property("slots", ",".join(ns_text(t) for t in times if t >= 0))
        if self._monitor is not None:
            start, stop, interval = self._monitor
            self.gate.set_property("monitor-start", max(self._stream_ns(start), 0))
            self.gate.set_property("monitor-stop", max(self._stream_ns(stop), 0))
            self.gate.set_property("monitor-interval", to_ns(interval))

    def set_slots(self, times_s: list[float]) -> None:
        """Slot times on the first-frame clock; listed before the first frame they wait for
        it (the gate gets them before it sees any frame)."""
        with self._lock:
            self._slots = list(times_s)
            if self._first_ns is not None:
                self._apply()

    def set_monitor(self, start_s: float, stop_s: float, interval_s: float) -> None:
        with self._lock:
            self._monitor = (start_s, stop_s, interval_s)
            if self._first_ns is not None:
                self._apply()

    def stop_monitor(self) -> None:
        with self._lock:
            self._monitor = None
            self.gate.set_property("monitor-interval", 0)

    def stream_time(self) -> float | None:
        st = super().stream_time()
        if st is None or self._first_ns is None:
            return st
        return (to_ns(st) - self._first_ns) / 1e9

    # -- running -----------------------------------------------------------------------------
    def start(self, timeout_s: float = 15.0) -> None:
        Gst = gst.Gst
        if self.seek_mode:
            # Nothing is listed yet: the gate holds the stream at its first frame, which leaves
            # the pipeline linked and idle until the first seek.
            self.gate.set_property("hold-after-slots", True)
            self.gate.set_property("slots", "")
        if self.speed and self.speed != 1.0:
            # Paced at another rate: clocksync holds the data in PAUSED, the rate seek happens
            # before any frame reaches a branch (a muxer must not see a flush).
            self._set_state(Gst.State.PAUSED)
            pad = self.pipeline.get_by_name("pace").get_static_pad("sink")
            self._wait(timeout_s, lambda: pad.get_current_caps() is not None, stop_on_eos=False)
            self._seek_ns(0, rate=self.speed)
        self._set_state(Gst.State.PLAYING)
        self._wait(timeout_s, lambda: self.gate.get_property("last-arrival") > 0, stop_on_eos=True)

    def seek(self, t_s: float) -> None:
        """Flushing, accurate seek to ``t_s`` seconds from the first frame (clamped there)."""
        if self._first_ns is None:
            raise DamagedStream(f"{self.what}: seek before the first frame was read", None)
        # the gate's segment count: a seek's own frames come after its segment, and a frame
        # the gate decided before the flush reached it is never taken for one of them
        self._seek_segments = self.gate.get_property("segments")
        target = self._first_ns + max(to_ns(t_s), 0)
        if target > self._first_ns:
            # one nanosecond before a round time: no container timebase (90 kHz, ms, 1/fps)
            # puts a real frame there, so a frame stamped with it is one the decoder clipped
            target -= 1
        self._seek_target_ns = target if target > self._first_ns else None
        self._seek_ns(target, rate=self.speed if self.speed else 1.0)

    def _seek_ns(self, t_ns: int, rate: float) -> None:
        Gst = gst.Gst
        flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE
        pace = self.pipeline.get_by_name("pace")
        if pace is not None:
            # upstream from the pacing element, so a branch's muxer and file sink (still
            # prerolling, in bytes) never have to handle a time seek themselves
            ev = Gst.Event.new_seek(rate, Gst.Format.TIME, flags, Gst.SeekType.SET, t_ns,
                                    Gst.SeekType.NONE, -1)
            ok = pace.get_static_pad("src").send_event(ev)
        else:
            ok = self.pipeline.seek(rate, Gst.Format.TIME, flags, Gst.SeekType.SET, t_ns,
                                    Gst.SeekType.NONE, -1)
        self.stats.seeks += 1
        if not ok:
            raise DamagedStream(f"seek to {t_ns / 1e9:.2f} s refused", self.last_pts_s)

    def _frame(self, sample) -> Frame | None:
        """A sample as a frame on the first-frame clock; in seek mode, checked against the
        first segment's timestamp mapping (``SeekMismatch`` when a seek landed elsewhere)."""
        Gst = gst.Gst
        fr = super()._frame(sample)
        if fr is None:
            return None
        st_ns = to_ns(fr.pts_s)
        buf = sample.get_buffer()
        if self.seek_mode and self._ref is not None and buf.pts != Gst.CLOCK_TIME_NONE:
            start, t, applied = self._ref
            true_ns = int(round((buf.pts - start) * abs(applied))) + t
            if abs(true_ns - st_ns) > MAPPING_SLACK_NS:
                first = self._first_ns or 0
                raise SeekMismatch(
                    f"{Path(self.what).name}: a seek landed at {(true_ns - first) / 1e9:.3f} s "
                    f"while its segment said {(st_ns - first) / 1e9:.3f} s")
        if self.seek_mode and self._seek_target_ns is not None and st_ns == self._seek_target_ns:
            # An ACCURATE seek into a gap of a variable-rate file: the decoder clips the frame
            # that began before the target and stamps it WITH the target, a time the file has
            # no frame at. Its real time is unknown here, so it is not offered; the seek
            # consumer sees the next frame come after the slot and seeks further back.
            log.debug("%s: a frame clipped to the seek target %s s skipped",
                      Path(self.what).name, ns_text(st_ns))
            return None
        if self._first_ns is not None:
            fr.pts_s = (st_ns - self._first_ns) / 1e9
        self.last_pts_s = fr.pts_s
        return fr

    def pull(self, timeout_s: float = 10.0) -> Frame:
        """The next frame the gate let through. Raises EndOfStream, DamagedStream or (seek
        mode) SeekMismatch."""
        if self._stop.is_set():
            raise EndOfStream()
        deadline = time.monotonic() + timeout_s
        while True:
            fr = self._try_pull(0.05)
            if fr is not None:
                return fr
            if self._held():
                fr = self._try_pull(0.05)  # a frame the gate pushed just before holding
                if fr is not None:
                    return fr
                raise EndOfStream()  # every listed slot and the monitor window are served
            if time.monotonic() > deadline:
                raise DamagedStream(f"no frame for {timeout_s:.0f} s (stalled)", self.last_pts_s)

    def _held(self) -> bool:
        """Seek mode: the gate holds the stream because it saw the last seek's frames and
        nothing listed lies ahead (no slot pending, the monitor window passed): its streaming
        thread is parked, so every frame it passed is already in the sink, and no frame will
        come until the next seek. (Reading "no slot pending" alone races the thread: a frame
        decided but still on its way through the crop, or a frame decided before the seek's
        flush, would be taken for the end.)"""
        g = self.gate
        if not self.seek_mode or g.get_property("segments") <= self._seek_segments:
            return False
        return bool(g.get_property("holding"))

    def stream_through(self, slots_s: list[float] | None = None,
                       monitor: tuple[float, float, float] | None = None,
                       why: str = "seek landed elsewhere", start: bool = True) -> None:
        """Stops seeking for good: a fresh pipeline decodes the file from its start with the
        gate listing ``slots_s`` (and the ``monitor`` window), as in stream mode. For a
        container whose seeks cannot be trusted. ``start=False``: the caller lists more
        (slots, monitor) and starts it."""
        passed, dropped = self.counters()
        self._carried = (self._carried[0] + passed, self._carried[1] + dropped)
        self.pipeline.set_state(gst.Gst.State.NULL)
        self.fallback = why
        self.seek_mode = False
        first = self._first_ns
        with self._lock:
            self._first_ns = None
            self._first_file_ns = None
            self._slots = list(slots_s) if slots_s is not None else None
            self._monitor = monitor
        self._build(self._desc, self.origin)
        if not start:
            return
        self.start()
        if first is not None and self._first_ns != first:
            log.warning("%s: the first frame moved from %s to %s s on reopening",
                        Path(self.what).name, ns_text(first), ns_text(self._first_ns or 0))

    def counters(self) -> tuple[int, int]:
        passed, dropped = super().counters()
        return passed + self._carried[0], dropped + self._carried[1]

    def run_to_end(self, timeout_s: float = 600.0) -> None:
        """Lets the rest of the file play (an overlay branch is still recording)."""
        Gst = gst.Gst
        self.stop_monitor()
        self.set_slots([])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sink.try_pull_sample(ns(0.01))
            msg = self.bus.timed_pop_filtered(ns(0.05), Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if msg is not None:
                return


def decode_all(path: str | Path) -> list[Frame]:
    """Every frame of a recording, on the first-frame clock (tests and offline reference
    scoring)."""
    info = discover(path)
    r = open_reader(info, seek_mode=False)
    r.gate.set_property("pass-all", True)
    r.start()
    out = []
    try:
        while True:
            out.append(r.pull())
    except EndOfStream:
        pass
    finally:
        r.close()
    return out
