"""Live capture for the engine: any source URI (capture card, DeckLink, RTSP, test pattern,
or ``sim://SEED`` — a simulated scanner pushing a CEUS exam in real time) into ``ceusgate``.

Live sources cannot seek; everything else is the same reader as for files.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlparse

from ceustream.engine.errors import UsageError

from . import gst
from .reader import TAIL, Frame, GateReader, StreamEnded, StreamError
from .source import source_description


class SimScanner:
    """``sim://SEED?speed=S&size=WxH&injection=T``: a simulated scanner's video output, pushed
    into an ``appsrc`` as a live source (timestamps = exam time), ``speed`` times real time."""

    def __init__(self, uri: str):
        u = urlparse(uri)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        try:
            self.seed = int(u.netloc or "7")
            self.speed = float(q.get("speed", "1"))
            w, h = (int(x) for x in q.get("size", "640x480").split("x"))
            self.injection = float(q.get("injection", "6"))
            self.fps = float(q.get("fps", "30"))
        except ValueError:
            raise UsageError(f"--source {uri}: expected sim://SEED?speed=S&size=WxH&injection=T&fps=F") from None
        if not (self.speed > 0 and w >= 160 and h >= 120 and self.fps > 0):
            raise UsageError(f"--source {uri}: speed and fps must be > 0, size at least 160x120")
        from ceustream.models.simulator.physiology import sample_case
        from ceustream.models.simulator.scene import Layout, Scene
        from ceustream.models.simulator.screen import Screen

        self.scene = Scene(sample_case(self.seed), Layout(w, h), self.injection)
        self.screen = Screen(self.scene)
        self.size = (w, h)
        self.duration = self.injection + max(200.0, self.scene.case.lesion_arrival + 185.0)
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    @property
    def truth(self) -> dict:
        return {"roi": list(self.scene.roi()), "injection_s": self.injection,
                "t0_s": self.injection + self.scene.case.lesion_arrival,
                "label": "HCC" if self.scene.case.label == 1 else "non-HCC"}

    def description(self) -> str:
        w, h = self.size
        return (f"appsrc name=simsrc is-live=true format=time do-timestamp=false block=false "
                f"max-bytes={w * h * 3 * 4} caps=video/x-raw,format=RGB,width={w},height={h},"
                f"framerate={int(self.fps)}/1 ! queue max-size-buffers=4 leaky=downstream ! "
                "videoconvert")

    def start(self, pipeline) -> None:
        src = pipeline.get_by_name("simsrc")
        self._t = threading.Thread(target=self._run, args=(src,), name="sim-scanner", daemon=True)
        self._t.start()

    def _run(self, src) -> None:
        Gst = gst.Gst
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set():
            t = k / self.fps
            if t > self.duration:
                src.emit("end-of-stream")
                return
            wait = t0 + t / self.speed - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            buf = Gst.Buffer.new_wrapped(self.screen.render(t).tobytes())
            buf.pts = int(t * 1e9)
            buf.duration = int(1e9 / self.fps)
            if src.emit("push-buffer", buf) not in (Gst.FlowReturn.OK,):
                return
            k += 1

    def stop(self) -> None:
        self._stop.set()
        if self._t:
            self._t.join(2)


class LiveReader(GateReader):
    def __init__(self, uri: str, branch: str | None = None):
        gst.require("ceusgate", "videoconvert", "appsink")
        self.uri = uri
        self.sim = SimScanner(uri) if uri.startswith("sim://") else None
        head = self.sim.description() if self.sim else source_description(uri)
        if branch:
            desc = f"{head} ! tee name=t t. ! queue ! {TAIL} t. ! queue leaky=downstream ! {branch}"
        else:
            desc = f"{head} ! {TAIL}"
        super().__init__(desc, uri)
        self._stop = threading.Event()

    def start(self, timeout_s: float = 15.0) -> None:
        self._set_state(gst.Gst.State.PLAYING)
        if self.sim:
            self.sim.start(self.pipeline)
        self._wait(timeout_s, lambda: self.gate.get_property("last-arrival") > 0, stop_on_eos=True)

    def seek(self, t_s: float) -> None:
        raise StreamError("a live source cannot seek", self.last_pts_s)

    def pull(self, timeout_s: float = 0.25) -> Frame | None:
        """A frame, or None when none came within ``timeout_s`` (no signal so far)."""
        if self._stop.is_set():
            raise StreamEnded()
        return self._try_pull(timeout_s)

    def request_stop(self) -> None:
        """Makes the consumer's next ``pull`` end the stream (exam stopped)."""
        self._stop.set()

    def clear_stop(self) -> None:
        self._stop.clear()

    def close(self) -> None:
        if self.sim:
            self.sim.stop()
        super().close()
