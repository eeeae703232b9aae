"""Full scanner-screen recordings of simulated exams, written with GStreamer's own encoders
(appsrc → x264enc/jpegenc → mp4mux/matroskamux/avimux), for the demo and pipeline tests."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ceustream.engine.core.errors import InputError

log = logging.getLogger(__name__)

CONTAINERS = {
    # name: (encoder chain, muxer, extension)
    "mp4": ("x264enc speed-preset={preset} key-int-max={keyint} pass=qual quantizer={q} "
            "! h264parse", "mp4mux faststart=true", ".mp4"),
    "mkv": ("x264enc speed-preset={preset} key-int-max={keyint} pass=qual quantizer={q} "
            "! h264parse", "matroskamux", ".mkv"),
    "avi": ("jpegenc quality=85", "avimux", ".avi"),
    "ts": ("x264enc speed-preset={preset} key-int-max={keyint} pass=qual quantizer={q} "
           "! h264parse", "mpegtsmux", ".ts"),
}


def gstreamer(*elements: str):
    """GStreamer, initialised, with ``elements`` checked (one-line error when missing)."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError) as e:
        raise InputError(f"GStreamer Python bindings missing ({e}); install the Debian "
                         "packages listed in the README") from None
    Gst.init(None)
    missing = [e for e in elements if Gst.ElementFactory.find(e) is None]
    if missing:
        raise InputError(f"GStreamer element(s) not available: {', '.join(missing)}")
    return Gst


class VideoWriter:
    """Pushes RGB frames with explicit timestamps into an encoder and a muxer."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float,
                 container: str = "mp4", keyint_s: float = 2.0, preset: str = "superfast",
                 quantizer: int = 23, variable_rate: bool = False, fmt: str = "RGB"):
        Gst = gstreamer("appsrc", "videoconvert", "filesink")
        if container not in CONTAINERS:
            raise InputError(f"container {container!r}: expected one of {', '.join(CONTAINERS)}")
        enc, mux, _ = CONTAINERS[container]
        enc = enc.format(preset=preset, keyint=max(1, int(round(keyint_s * fps))), q=quantizer)
        rate = "0/1" if variable_rate else f"{int(round(fps * 1000))}/1000"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loc = str(self.path).replace('"', '\\"')
        desc = (f"appsrc name=src format=time block=true max-bytes={width * height * 3 * 8} "
                f"caps=video/x-raw,format={fmt},width={width},height={height},framerate={rate} "
                f"! videoconvert ! video/x-raw,format=I420 ! {enc} ! {mux} ! "
                f'filesink location="{loc}"')
        self.pipeline = Gst.parse_launch(desc)
        self.src = self.pipeline.get_by_name("src")
        self.bus = self.pipeline.get_bus()
        self.pipeline.set_state(Gst.State.PLAYING)
        self.Gst = Gst
        self.frames = 0

    def push(self, rgb: np.ndarray, pts_s: float, duration_s: float | None = None) -> None:
        Gst = self.Gst
        buf = Gst.Buffer.new_wrapped(np.ascontiguousarray(rgb).tobytes())
        buf.pts = int(round(pts_s * 1e9))
        if duration_s is not None:
            buf.duration = int(round(duration_s * 1e9))
        ret = self.src.emit("push-buffer", buf)
        if ret != Gst.FlowReturn.OK:
            self._fail(f"encoder refused a frame ({ret.value_nick})")
        self.frames += 1

    def _fail(self, why: str) -> None:
        msg = self.bus.pop_filtered(self.Gst.MessageType.ERROR)
        if msg is not None:
            err, _ = msg.parse_error()
            why = f"{why}: {err.message}"
        self.pipeline.set_state(self.Gst.State.NULL)
        raise InputError(f"writing {self.path}: {why}")

    def close(self) -> None:
        Gst = self.Gst
        self.src.emit("end-of-stream")
        msg = self.bus.timed_pop_filtered(120 * Gst.SECOND,
                                          Gst.MessageType.EOS | Gst.MessageType.ERROR)
        self.pipeline.set_state(Gst.State.NULL)
        if msg is None or msg.type == Gst.MessageType.ERROR:
            why = "timed out finishing the file" if msg is None else msg.parse_error()[0].message
            raise InputError(f"writing {self.path}: {why}")


def write_exam(scene, path: str | Path, *, fps: float = 30.0, duration_s: float | None = None,
               container: str = "mp4", keyint_s: float = 2.0, preset: str = "superfast",
               times: Iterable[float] | None = None, output_size: tuple[int, int] | None = None,
               progress: Callable[[float], None] | None = None) -> dict:
    """Renders ``scene`` (a ``Scene``) to a recording; returns the ground truth (also written
    as ``<path>.json``). ``times`` gives explicit frame times (variable frame rate)."""
    import cv2

    from .screen import Screen

    screen = Screen(scene)
    case = scene.case
    if duration_s is None:
        duration_s = scene.injection_s + max(200.0, case.lesion_arrival + 185.0)
    if times is None:
        n = int(np.floor(duration_s * fps + 1e-9))
        times = [k / fps for k in range(n)]
        vfr = False
    else:
        times = list(times)
        vfr = True
    L = scene.layout
    out_w, out_h = output_size or (L.width, L.height)
    writer = VideoWriter(path, out_w, out_h, fps, container, keyint_s, preset, variable_rate=vfr)
    started = time.monotonic()
    try:
        for i, t in enumerate(times):
            frame = screen.render(t)
            if (out_w, out_h) != (L.width, L.height):
                frame = cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
            dur = (times[i + 1] - t) if i + 1 < len(times) else 1.0 / fps
            writer.push(frame, t, dur)
            if progress and i % 300 == 0:
                progress(t / times[-1])
    except BaseException as e:
        writer.pipeline.set_state(writer.Gst.State.NULL)
        Path(path).unlink(missing_ok=True)
        log.warning("recording %s abandoned (%s); the partial file is removed", path,
                    type(e).__name__)
        raise
    writer.close()
    sx, sy = out_w / L.width, out_h / L.height
    x, y, w, h = scene.roi()
    truth = {
        "simulated": True,
        "path": Path(path).name,
        "label": "HCC" if case.label == 1 else "non-HCC",
        "injection_s": scene.injection_s,
        "t0_s": scene.injection_s + case.lesion_arrival,
        "roi": [int(x * sx), int(y * sy), int(w * sx), int(h * sy)],
        "fps": fps, "frames": len(times), "duration_s": times[-1] + 1.0 / fps,
        "size": [out_w, out_h], "container": container,
        "case": case.describe(),
        "render_s": round(time.monotonic() - started, 2),
    }
    Path(str(path) + ".json").write_text(json.dumps(truth, indent=1, default=float))
    log.debug("recorded %s: %d frames, %.1f s, %dx%d %s, in %.1f s", path, len(times),
              truth["duration_s"], out_w, out_h, container, truth["render_s"])
    return truth
