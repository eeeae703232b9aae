"""Live capture for the engine: any source URI (capture card, DeckLink, RTSP, test pattern)
or a frame generator (a simulated scanner pushing a CEUS exam in real time) into
``ceusgate``.

Live sources cannot seek; everything else is the same reader as for files.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from ceustream.engine.core.source import EndOfStream, Frame

from . import gst
from .reader import TAIL, GateReader
from .source import source_description

log = logging.getLogger(__name__)


class FramePusher:
    """Pushes a frame generator's RGB frames into an ``appsrc`` as a live source, paced at
    ``speed`` times real time (timestamps = the generator's times). The generator is anything
    with ``size`` (w, h), ``fps``, ``speed`` and ``frames()`` yielding (seconds, RGB array):
    e.g. the simulated scanner of ``ceustream.models.simulator.scanner``."""

    def __init__(self, generator):
        self.gen = generator
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    def description(self) -> str:
        w, h = self.gen.size
        return (f"appsrc name=simsrc is-live=true format=time do-timestamp=false block=false "
                f"max-bytes={w * h * 3 * 4} caps=video/x-raw,format=RGB,width={w},height={h},"
                f"framerate={int(round(self.gen.fps))}/1 ! queue max-size-buffers=4 "
                "leaky=downstream ! videoconvert")

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
            wait = t_start + t / self.gen.speed - time.monotonic()
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


class LiveReader(GateReader):
    """A live source for the engine: ``uri`` (see ``source.py``) or ``generator`` (frames
    pushed by a ``FramePusher``)."""

    def __init__(self, uri: str | None = None, branch: str | None = None, generator=None):
        gst.require("ceusgate", "videoconvert", "appsink")
        self.uri = uri or "generator"
        self.sim = FramePusher(generator) if generator is not None else None
        head = self.sim.description() if self.sim else source_description(uri)
        if branch:
            desc = f"{head} ! tee name=t t. ! queue ! {TAIL} t. ! queue leaky=downstream ! {branch}"
        else:
            desc = f"{head} ! {TAIL}"
        super().__init__(desc, self.uri)

    def start(self, timeout_s: float = 15.0) -> None:
        self._set_state(gst.Gst.State.PLAYING)
        if self.sim:
            self.sim.start(self.pipeline)
        self._wait(timeout_s, lambda: self.gate.get_property("last-arrival") > 0, stop_on_eos=True)

    def pull(self, timeout_s: float = 0.25) -> Frame | None:
        """A frame, or None when none came within ``timeout_s`` (no signal so far)."""
        if self._stop.is_set():
            raise EndOfStream()
        return self._try_pull(timeout_s)

    def close(self) -> None:
        if self.sim:
            self.sim.stop()
        super().close()
