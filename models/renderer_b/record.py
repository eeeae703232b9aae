"""Renderer B's recordings: an exam's frames pushed through GStreamer (appsrc with
explicit timestamps k / fps) into H.264 in MP4 or Matroska, or MJPEG in AVI, with the
truth written next to the file as ``<path>.json``."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from .exam import CONTAINERS, Exam
from .render import Screen, frame_time

log = logging.getLogger(__name__)

#: encoder and muxer chain per container (after videoconvert to I420)
X264 = "x264enc speed-preset=superfast key-int-max={gop} bframes=0 pass=qual quantizer={q}"
CHAINS = {
    "mp4": X264 + " ! h264parse ! mp4mux",
    "mkv": X264 + " ! h264parse ! matroskamux",
    "avi": "jpegenc quality={jq} ! avimux",
}
ELEMENTS = {"mp4": ("x264enc", "h264parse", "mp4mux"), "mkv": ("x264enc", "h264parse", "matroskamux"),
            "avi": ("jpegenc", "avimux")}
#: seconds to wait for the muxer to finish the file after the last frame
EOS_TIMEOUT_S = 60.0


class RecordingError(RuntimeError):
    """A recording could not be written (GStreamer missing, an element failed, I/O)."""


@lru_cache(maxsize=1)
def gst():
    """The GStreamer module, initialised once; RecordingError if that is impossible."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError) as e:
        raise RecordingError(f"GStreamer (PyGObject 'gi', Gst 1.0) is not available: {e}") from None
    ok, _ = Gst.init_check(None)
    if not ok:
        raise RecordingError("GStreamer could not be initialised (Gst.init_check failed)")
    return Gst


def container_of(path: Path, container: str | None, exam: Exam) -> str:
    """The container to write: the argument, else the file's extension if it names
    one, else the exam's own choice."""
    if container is None:
        ext = path.suffix.lower().lstrip(".")
        container = ext if ext in CONTAINERS else exam.container
    if container not in CONTAINERS:
        raise ValueError(f"container must be one of {', '.join(CONTAINERS)}, not {container!r}")
    return container


def check_elements(container: str) -> None:
    """RecordingError naming the first GStreamer element the container needs but lacks."""
    Gst = gst()
    for name in ("appsrc", "videoconvert", "filesink") + ELEMENTS[container]:
        if Gst.ElementFactory.find(name) is None:
            raise RecordingError(f"GStreamer element '{name}' is missing (needed for {container})")


def fraction(fps: float) -> tuple[int, int]:
    """A frame rate as the numerator/denominator GStreamer caps take (7.5 -> 15/2)."""
    from fractions import Fraction

    f = Fraction(fps).limit_denominator(1001)
    return f.numerator, f.denominator


def build_pipeline(exam: Exam, path: Path, container: str):
    """The (pipeline, appsrc) that encodes RGB frames of the exam's size to ``path``."""
    Gst = gst()
    w, h = exam.size
    num, den = fraction(exam.fps)
    gop = max(1, int(round(2.0 * exam.fps)))
    q = int(round(38 - 14 * exam.codec_quality))
    jq = int(round(50 + 40 * exam.codec_quality))
    desc = (f"appsrc name=src format=time is-live=false block=true max-bytes={4 * w * h * 3} "
            f"caps=video/x-raw,format=RGB,width={w},height={h},framerate={num}/{den} "
            f"! videoconvert ! video/x-raw,format=I420 ! {CHAINS[container].format(gop=gop, q=q, jq=jq)} "
            f"! filesink name=sink")
    try:
        pipe = Gst.parse_launch(desc)
    except Exception as e:  # GLib.Error
        raise RecordingError(f"{path}: cannot build the GStreamer pipeline: {e}") from None
    pipe.get_by_name("sink").set_property("location", str(path))
    return pipe, pipe.get_by_name("src")


def pack_rgb(frame: np.ndarray) -> bytes:
    """Frame bytes in GStreamer's RGB layout (rows padded to a multiple of 4 bytes)."""
    h, w, _ = frame.shape
    stride = (w * 3 + 3) // 4 * 4
    if stride == w * 3:
        return frame.tobytes()
    out = np.zeros((h, stride), dtype=np.uint8)
    out[:, :w * 3] = frame.reshape(h, w * 3)
    return out.tobytes()


def bus_error(bus) -> str | None:
    """The text of a pending GStreamer error message, if any (non-blocking)."""
    Gst = gst()
    msg = bus.pop_filtered(Gst.MessageType.ERROR)
    if msg is None:
        return None
    err, debug = msg.parse_error()
    return f"{err.message} ({debug})" if debug else err.message


def push_frames(exam: Exam, pipe, src, path: Path) -> int:
    """Render and push every frame with PTS k / fps and its duration; the frame count."""
    Gst = gst()
    bus = pipe.get_bus()
    n = exam.frame_count
    screen = Screen(exam, [frame_time(exam, k) for k in range(n)])
    for k in range(n):
        t = frame_time(exam, k)
        buf = Gst.Buffer.new_wrapped(pack_rgb(screen.frame(t)))
        pts = int(round(k * 1e9 / exam.fps))
        buf.pts = buf.dts = pts
        buf.duration = int(round((k + 1) * 1e9 / exam.fps)) - pts
        ret = src.emit("push-buffer", buf)
        err = bus_error(bus)
        if err is not None or ret != Gst.FlowReturn.OK:
            raise RecordingError(f"{path}: GStreamer stopped at frame {k}: {err or ret.value_nick}")
    return n


def finish(pipe, src, path: Path) -> None:
    """Send end-of-stream and wait until the muxer has finished the file."""
    Gst = gst()
    src.emit("end-of-stream")
    msg = pipe.get_bus().timed_pop_filtered(int(EOS_TIMEOUT_S * Gst.SECOND),
                                            Gst.MessageType.EOS | Gst.MessageType.ERROR)
    if msg is None:
        raise RecordingError(f"{path}: GStreamer did not finish within {EOS_TIMEOUT_S:.0f} s")
    if msg.type == Gst.MessageType.ERROR:
        err, debug = msg.parse_error()
        raise RecordingError(f"{path}: GStreamer error: {err.message}")


def write_recording(exam: Exam, path, container: str | None = None,
                    duration_s: float | None = None) -> dict:
    """Encode the exam's screen to ``path`` and write its truth to ``<path>.json``.
    ``container`` 'mp4' | 'mkv' (H.264) or 'avi' (MJPEG); None: the file's extension,
    else the exam's choice. ``duration_s`` overrides the recording's length (tests).
    Returns the truth dict (with 'path' and 'seconds'). Raises RecordingError."""
    path = Path(path)
    if duration_s is not None:
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"duration_s must be a positive number of seconds, not {duration_s!r}")
        exam = replace(exam, duration_s=float(duration_s))
    container = container_of(path, container, exam)
    check_elements(container)
    if not path.parent.is_dir():
        raise RecordingError(f"{path}: folder {path.parent} does not exist")
    Gst = gst()
    started = time.perf_counter()
    pipe, src = build_pipeline(exam, path, container)
    try:
        if pipe.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise RecordingError(f"{path}: GStreamer could not start: "
                                 f"{bus_error(pipe.get_bus()) or 'state change failed'}")
        n = push_frames(exam, pipe, src, path)
        finish(pipe, src, path)
    except BaseException:
        pipe.set_state(Gst.State.NULL)
        if path.exists():
            os.unlink(path)
        raise
    pipe.set_state(Gst.State.NULL)
    truth = exam.truth(container)
    truth["frames"] = n
    try:
        Path(str(path) + ".json").write_text(json.dumps(truth, indent=1) + "\n")
    except OSError as e:
        raise RecordingError(f"{path}.json: cannot write the truth: {e.strerror}") from None
    seconds = time.perf_counter() - started
    log.info("%s: %d frames %dx%d @ %g fps (%s) in %.1f s", path, n, *exam.size, exam.fps, container, seconds)
    return {**truth, "path": str(path), "seconds": round(seconds, 2)}
