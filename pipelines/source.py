"""Source URIs, the same for the engine and the display:

  /path/exam.mp4, file:///path/exam.mkv   a recording (any container GStreamer decodes)
  v4l2:///dev/video0                      a capture card or webcam (Video4Linux)
  decklink://0                            a Blackmagic DeckLink input (device number)
  rtsp://host/stream, http(s)://...       a network stream
  test://smpte                            GStreamer's test pattern (any videotestsrc pattern)
  sim://7?speed=1&size=640x480            a simulated scanner playing CEUS exam no. 7 live
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from ceustream.engine.core.errors import InputError, UsageError

from . import gst


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def kind(uri: str) -> str:
    u = urlparse(uri)
    if u.scheme in ("", "file"):
        return "file"
    if u.scheme in ("v4l2", "decklink", "rtsp", "http", "https", "test", "sim"):
        return u.scheme
    raise UsageError(f"--source {uri}: unknown scheme '{u.scheme}' (file, v4l2, decklink, rtsp, "
                     "http(s), test, sim)")


def is_live(uri: str) -> bool:
    return kind(uri) != "file"


def source_description(uri: str, paced: bool = False) -> str:
    """A GStreamer description producing decoded video/x-raw. ``paced``: play files in real
    time (a display), not as fast as possible."""
    gst.init()
    k = kind(uri)
    u = urlparse(uri)
    if k == "file":
        path = Path(u.path if u.scheme == "file" else uri)
        if not path.exists():
            raise InputError(f"{path}: file not found")
        return f'filesrc location="{_quote(str(path))}" ! decodebin' + (" ! clocksync" if paced else "")
    if k == "v4l2":
        dev = u.path or "/dev/video0"
        gst.require("v4l2src")
        if not Path(dev).exists():
            raise InputError(f"--source {uri}: {dev} does not exist")
        return f'v4l2src device="{_quote(dev)}" ! decodebin'
    if k == "decklink":
        gst.require("decklinkvideosrc")
        return f"decklinkvideosrc device-number={int(u.netloc or 0)} ! videoconvert"
    if k in ("rtsp", "http", "https"):
        return f'uridecodebin uri="{_quote(uri)}"'
    if k == "sim":
        raise UsageError(f"--source {uri}: a simulated scanner is a frame generator; "
                         "`ceustream run` builds it (the overlay needs a video source)")
    pattern = u.netloc or "smpte"
    return f"videotestsrc is-live=true pattern={pattern} ! video/x-raw,framerate=30/1"
