"""The bedside display: any source, the ``ceushud`` overlay, and a window, an MP4 or PNG
snapshots."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ceustream.engine.core.errors import UsageError

from . import gst
from .source import source_description

log = logging.getLogger(__name__)


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def sink_description(sink: str) -> tuple[str, str]:
    """(GStreamer description of the sink branch, what it writes to in words)."""
    if sink == "auto":
        if has_display():
            return "videoconvert ! autovideosink sync=true", "a window"
        sink = "ceustream-overlay.mp4"
    p = Path(sink)
    if p.suffix.lower() == ".mp4":
        p.parent.mkdir(parents=True, exist_ok=True)
        loc = str(p).replace('"', '\\"')
        return ("videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=veryfast "
                f'key-int-max=60 ! h264parse ! mp4mux fragment-duration=1000 ! filesink location="{loc}"',
                str(p))
    if p.suffix:
        raise UsageError(f"--sink {sink}: expected auto, a .mp4 file or a folder for PNG snapshots")
    p.mkdir(parents=True, exist_ok=True)
    loc = str(p / "overlay_%05d.png").replace('"', '\\"')
    return ("videorate drop-only=true ! video/x-raw,framerate=1/1 ! videoconvert ! pngenc ! "
            f'multifilesink location="{loc}"', f"PNG snapshots in {p}/ (one per second)")


#: where the panels go (``ceushud``'s ``layout``): auto learns the scanner's screen and uses
#: the space that is neither image nor scanner text (a picture narrower than 16:10 gets a
#: wider canvas); beside always widens; over draws in fixed corners over the video
LAYOUTS = ("auto", "beside", "over")

#: where the overlay may put its disclaimer (``ceushud``'s ``disclaimer-position``)
DISCLAIMER_POSITIONS = ("bottom-left", "bottom-right", "top-left", "top-right", "bottom-center")


def output_size(text: str) -> tuple[int, int]:
    """``WxH`` (the second monitor's size, e.g. 1920x1080) as two positive integers."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"output size {text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise UsageError(f"output size {text!r}: each side 16..16384 pixels")
    return w, h


def hud_description(endpoint: str, exam: str | None = None, keys: dict | None = None,
                    name: str = "hud", disclaimer_position: str | None = None,
                    layout: str | None = None, size: tuple[int, int] | None = None) -> str:
    gst.require("ceushud")
    props = [f'endpoint="{endpoint}"']
    if layout:
        if layout not in LAYOUTS:
            raise UsageError(f"layout {layout!r}: one of {', '.join(LAYOUTS)}")
        props.append(f"layout={layout}")
    if size:
        props.append(f"output-width={size[0]} output-height={size[1]}")
    if disclaimer_position:
        if disclaimer_position not in DISCLAIMER_POSITIONS:
            raise UsageError(f"disclaimer position {disclaimer_position!r}: one of "
                             f"{', '.join(DISCLAIMER_POSITIONS)}")
        props.append(f"disclaimer-position={disclaimer_position}")
    if exam:
        props.append(f'exam="{exam}"')
    for prop, key in (("server-public-key", "server_public"), ("client-public-key", "client_public"),
                      ("client-secret-key", "client_secret")):
        if keys and keys.get(key):
            props.append(f'{prop}="{keys[key]}"')
    return f"videoconvert ! ceushud name={name} {' '.join(props)}"


def display_pipeline(source: str, endpoint: str, sink: str = "auto", exam: str | None = None,
                     keys: dict | None = None,
                     disclaimer_position: str | None = None, layout: str | None = None,
                     size: tuple[int, int] | None = None) -> tuple[str, str]:
    """(pipeline description, where it goes) for ``ceustream overlay``."""
    src = source_description(source, paced=True)
    out, where = sink_description(sink)
    hud = hud_description(endpoint, exam, keys, disclaimer_position=disclaimer_position,
                          layout=layout, size=size)
    return f"{src} ! {hud} ! {out}", where
