"""``ceustream overlay --source URI``: the engine's scores drawn over a video by ``ceushud``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ceustream.engine.core.errors import InputError

from . import common

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = common.command(sub, "overlay", "draw the engine's scores over a video source")
    p.add_argument("--source", required=True, help="the video to draw on: a file, "
                   "v4l2:///dev/videoN, decklink://N, rtsp://... or test://PATTERN")
    p.add_argument("--engine", default=None, help="the engine's PUB endpoint "
                   "(default tcp://127.0.0.1:5556)")
    p.add_argument("--sink", default="auto", help="auto (window if there is a display, else "
                   "ceustream-overlay.mp4), FILE.mp4, or a folder for PNG snapshots")
    p.add_argument("--exam", help="show only this exam (default: the newest one)")
    p.add_argument("--keys", help="folder made by `ceustream keys` (CURVE, off loopback)")
    p.add_argument("--duration", type=common.seconds, help="stop after this many seconds")
    p.add_argument("--disclaimer-position", default=None,
                   choices=["bottom-left", "bottom-right", "top-left", "top-right", "bottom-center"],
                   help="the corner for the 'trained on simulated data' line, away from the "
                   "scanner's own text (default bottom-left; layout=over)")
    p.add_argument("--layout", default=None, choices=["auto", "beside", "over"],
                   help="auto (default): learn the scanner's screen and put the panels where "
                   "neither the image nor its text is, beside a 4:3 picture on a wider canvas; "
                   "beside: always a wider canvas; over: fixed corners over the video")
    p.add_argument("--output-size", default=None, metavar="WxH",
                   help="the canvas when the panels go beside the video (the second monitor's "
                   "size, e.g. 1920x1080); default 16:9 at the video's height")
    p.add_argument("--config", help="settings file (TOML) over the defaults")


def read_keys(folder: str | None) -> dict | None:
    if not folder:
        return None
    import zmq.auth

    base = Path(folder)
    try:
        spub, _ = zmq.auth.load_certificate(str(base / "server.key"))
        cpub, csec = zmq.auth.load_certificate(str(base / "client.key_secret"))
    except (OSError, ValueError) as e:
        raise InputError(f"--keys {folder}: {e}") from None
    return {"server_public": spub.decode(), "client_public": cpub.decode(),
            "client_secret": csec.decode()}


def run(args) -> int:
    from ceustream.engine.core import config
    from ceustream.pipelines import gst
    from ceustream.pipelines.overlay import display_pipeline

    cfg = config.load(args.config)
    endpoint = args.engine or cfg["zmq"]["pub"]
    from ceustream.pipelines.overlay import output_size

    size = output_size(args.output_size) if args.output_size else None
    desc, where = display_pipeline(args.source, endpoint, args.sink, args.exam,
                                   read_keys(args.keys), args.disclaimer_position,
                                   args.layout, size)
    Gst = gst.Gst
    p = Gst.parse_launch(desc)
    bus = p.get_bus()
    p.set_state(Gst.State.PLAYING)
    log.info("overlay: %s -> %s (engine %s); Ctrl-C to stop", args.source, where, endpoint)
    start = time.monotonic()
    code = 0
    try:
        while True:
            msg = bus.timed_pop_filtered(int(0.1e9), Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if msg is not None:
                if msg.type == Gst.MessageType.ERROR:
                    log.error("overlay: %s", gst.error_line(msg))
                    code = 3
                break
            if args.duration and time.monotonic() - start > args.duration:
                break
    except KeyboardInterrupt:
        pass
    p.send_event(Gst.Event.new_eos())
    bus.timed_pop_filtered(int(5e9), Gst.MessageType.EOS | Gst.MessageType.ERROR)
    p.set_state(Gst.State.NULL)
    print(f"overlay written to {where}")
    return code
