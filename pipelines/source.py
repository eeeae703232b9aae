"""Source URIs, the same for the engine and the display:

  /path/exam.mp4, file:///path/exam.mkv   a recording (any container GStreamer decodes)
  v4l2:///dev/video0                      a capture card or webcam (Video4Linux)
  decklink://0                            a Blackmagic DeckLink input (device number)
  rtsp://host/stream, http(s)://...       a network stream
  udp://HOST:PORT                         MPEG-TS over UDP (what hardware encoders send);
                                          a multicast HOST joins the group
  srt://HOST:PORT?mode=caller|listener    MPEG-TS over SRT (caller: connect to HOST:PORT;
                                          listener: wait on PORT for the sender)
  gst:LAUNCH-LINE                         any GStreamer fragment ending in raw video
                                          (for integrators), e.g. gst:videotestsrc ! videoconvert
  test://smpte                            GStreamer's test pattern (any videotestsrc pattern)
  sim://7?speed=1&size=640x480            a simulated scanner playing CEUS exam no. 7 live

Every kind except a file is live; the live engine re-opens a live source that fails, ends or
stalls (``reopens``). ``redact`` removes credentials from a URI before it is logged or shown.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from ceustream.engine.core.errors import InputError, UsageError

from . import gst

log = logging.getLogger(__name__)

#: URI schemes, in the order the help lists them
SCHEMES = ("file", "v4l2", "decklink", "rtsp", "http", "https", "udp", "srt", "gst", "test",
           "sim")
#: SRT connection modes a ``srt://`` URI may ask for
SRT_MODES = ("caller", "listener", "rendezvous")
_TEST_PATTERN = re.compile(r"^[a-z0-9-]{1,32}\Z")
_CREDENTIALS = re.compile(r"://[^/@\s\"']+@")


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def kind(uri: str) -> str:
    """The source's kind (its scheme; "file" for a path); a one-line error for anything else."""
    if uri.startswith("gst:") and not uri.startswith("gst://"):
        return "gst"
    u = urlparse(uri)
    if u.scheme in ("", "file"):
        return "file"
    if u.scheme in SCHEMES:
        return u.scheme
    raise UsageError(f"--source {redact(uri)}: unknown scheme '{u.scheme}' "
                     f"({', '.join(SCHEMES)})")


def is_live(uri: str) -> bool:
    return kind(uri) != "file"


def reopens(uri: str) -> bool:
    """True when the live engine re-opens this source after a fault, an end or a stall (every
    live kind; a simulated scanner starts its exam again). A file that ends has ended."""
    return is_live(uri)


def redact(uri: str) -> str:
    """The URI (or launch line) without user names or passwords (rtsp://user:pass@host →
    rtsp://host), so logs, status and results never carry credentials."""
    return _CREDENTIALS.sub("://", uri)


def _host_port(uri: str, u) -> tuple[str, int]:
    try:
        port = u.port
    except ValueError:
        port = None
    if not u.hostname or port is None or not 0 < port < 65536:
        raise UsageError(f"--source {redact(uri)}: expected {u.scheme}://HOST:PORT with a port "
                         "from 1 to 65535")
    if not re.match(r"^[A-Za-z0-9.:_-]{1,253}\Z", u.hostname):
        raise UsageError(f"--source {redact(uri)}: '{u.hostname}' is not a host name or address")
    return u.hostname, port


def udp_description(uri: str) -> str:
    """MPEG-TS over UDP: udpsrc (joins a multicast group by itself) → decodebin."""
    u = urlparse(uri)
    host, port = _host_port(uri, u)
    gst.require("udpsrc", "tsdemux")
    return (f'udpsrc address="{_quote(host)}" port={port} buffer-size=4194304 '
            'caps="video/mpegts,systemstream=(boolean)true,packetsize=(int)188" ! decodebin')


def srt_description(uri: str) -> str:
    """MPEG-TS over SRT, as caller (default) or listener."""
    u = urlparse(uri)
    host, port = _host_port(uri, u)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    mode = q.get("mode", "caller")
    if mode not in SRT_MODES or set(q) - {"mode", "latency"}:
        raise UsageError(f"--source {redact(uri)}: expected srt://HOST:PORT?mode="
                         f"{'|'.join(SRT_MODES)} (and optionally latency=MS)")
    extra = ""
    if "latency" in q:
        if not q["latency"].isdigit() or not 0 <= int(q["latency"]) <= 60000:
            raise UsageError(f"--source {redact(uri)}: latency must be 0-60000 ms")
        extra = f"&latency={int(q['latency'])}"
    gst.require("srtsrc", "tsdemux")
    return f'srtsrc uri="srt://{_quote(host)}:{port}?mode={mode}{extra}" ! decodebin'


def gst_description(uri: str) -> str:
    """An integrator's own GStreamer fragment, used as given: it must end in raw video."""
    frag = uri[len("gst:"):].strip()
    if not frag:
        raise UsageError("--source gst:LAUNCH-LINE: the launch line is empty "
                         "(e.g. gst:videotestsrc is-live=true ! videoconvert)")
    if "\n" in frag or "\x00" in frag:
        raise UsageError("--source gst:LAUNCH-LINE: one line, no control characters")
    try:  # parsed (not started) once here, so a typo fails in one line before anything runs
        gst.Gst.parse_launch(f"{frag} ! fakesink")
    except Exception as e:
        raise UsageError(f"--source gst:{frag}: not a GStreamer launch line ({e})") from None
    return frag


def source_description(uri: str, paced: bool = False) -> str:
    """A GStreamer description producing decoded video/x-raw. ``paced``: play files in real
    time (a display), not as fast as possible."""
    gst.init()
    k = kind(uri)
    log.debug("source %s: kind %s", redact(uri), k)
    u = urlparse(uri) if k != "gst" else None
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
        if u.netloc and not u.netloc.isdigit():
            raise UsageError(f"--source {uri}: expected decklink://N (a device number)")
        return f"decklinkvideosrc device-number={int(u.netloc or 0)} ! videoconvert"
    if k in ("rtsp", "http", "https"):
        return f'uridecodebin uri="{_quote(uri)}"'
    if k == "udp":
        return udp_description(uri)
    if k == "srt":
        return srt_description(uri)
    if k == "gst":
        return gst_description(uri)
    if k == "sim":
        raise UsageError(f"--source {uri}: a simulated scanner is a frame generator; "
                         "`ceustream run` builds it (the overlay needs a video source)")
    pattern = u.netloc or "smpte"
    if not _TEST_PATTERN.match(pattern):
        raise UsageError(f"--source {uri}: '{pattern}' is not a videotestsrc pattern name")
    return f"videotestsrc is-live=true pattern={pattern} ! video/x-raw,framerate=30/1"
