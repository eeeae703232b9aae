"""Recorded exams: discovery, and a reader that hands the engine only the frames it asks for.

Two ways through a file, choosing the same frames:
- stream: decode every frame; ``ceusgate`` drops all but the two frames around each slot
  (and one per monitor interval while contrast arrival is detected);
- seek: FLUSH|ACCURATE seek to just before each slot; the gate holds the stream (like a
  prerolled sink) as soon as the slot's frames are through, so only the GOPs around the
  slots are decoded.
Timestamps are the stream's own (buffer PTS mapped to stream time), never frame counts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ceustream.engine.core.errors import InputError
from ceustream.engine.core.source import DamagedStream, EndOfStream, Frame

from . import gst
from .gst import ns, seconds
from .reader import GateReader, tail

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    duration_s: float | None
    width: int
    height: int
    fps: float | None
    seekable: bool
    codec: str
    container: str


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


def discover(path: str | Path, timeout_s: float = 15.0) -> VideoInfo:
    """Checks that ``path`` is a playable video and reads its size, rate and duration."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a recording")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")
    try:
        with open(p, "rb"):
            pass
    except OSError as e:
        raise InputError(f"{p}: cannot be read ({e.strerror})") from None
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


class FileReader(GateReader):
    """A recording opened for the engine (stream or seek mode, at max or a paced speed)."""

    def __init__(self, info: VideoInfo, *, seek_mode: bool, speed: float | None = None,
                 branch: str | None = None, crop: tuple[int, int, int, int] | None = None):
        gst.require("ceusgate", "decodebin", "videoconvert", "appsink")
        self.info = info
        self.seekable = info.seekable
        self.seek_mode = seek_mode
        self.speed = speed  # None = as fast as possible
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
        super().__init__(desc, info.path, origin)
        if branch and speed and speed != 1.0:
            # the branch records what it is shown: its segments play at rate 1, so a video
            # written there has the exam's own timing whatever speed it was replayed at
            q = self.pipeline.get_by_name("branchq")
            q.get_static_pad("src").add_probe(gst.Gst.PadProbeType.EVENT_DOWNSTREAM,
                                              _real_time_segments)

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
            self._seek(0.0, rate=self.speed)
        self._set_state(Gst.State.PLAYING)
        self._wait(timeout_s, lambda: self.gate.get_property("last-arrival") > 0, stop_on_eos=True)

    def seek(self, t_s: float) -> None:
        """Flushing, accurate seek to stream time ``t_s`` (clamped at 0)."""
        self._seek(max(t_s, 0.0), rate=self.speed if self.speed else 1.0)

    def _seek(self, t_s: float, rate: float) -> None:
        Gst = gst.Gst
        flags = Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE
        pace = self.pipeline.get_by_name("pace")
        if pace is not None:
            # upstream from the pacing element, so a branch's muxer and file sink (still
            # prerolling, in bytes) never have to handle a time seek themselves
            ev = Gst.Event.new_seek(rate, Gst.Format.TIME, flags, Gst.SeekType.SET, ns(t_s),
                                    Gst.SeekType.NONE, -1)
            ok = pace.get_static_pad("src").send_event(ev)
        else:
            ok = self.pipeline.seek(rate, Gst.Format.TIME, flags, Gst.SeekType.SET, ns(t_s),
                                    Gst.SeekType.NONE, -1)
        self.stats.seeks += 1
        if not ok:
            raise DamagedStream(f"seek to {t_s:.2f} s refused", self.last_pts_s)

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
    """Every frame of a recording (tests and offline reference scoring)."""
    info = discover(path)
    r = FileReader(info, seek_mode=False)
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
