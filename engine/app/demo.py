"""``ceustream demo``: the whole system on a fresh machine in about a minute.

A simulated CEUS exam is recorded with GStreamer's own encoder, then replayed through the
real pipeline: the slot gate, arrival detection from the injection time, the 30-slot
schedule, ONNX Runtime scoring, ZeroMQ publishing, and the ``ceushud`` overlay drawn over the
video and written to an MP4 (and a window when there is a display).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ceustream.engine.core import __version__
from ceustream.engine.core.roi import Roi
from ceustream.engine.wire.subscriber import Collector

from .replay import ReplayOptions, replay

log = logging.getLogger(__name__)


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "ceustream" / "demo"


def ensure_recording(out: Path, seed: int) -> tuple[Path, dict]:
    """The demo exam (made once per seed and simulator version, then reused)."""
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.recording import write_exam
    from ceustream.models.simulator.scene import Scene

    rec = out / f"exam_seed{seed}_v{__version__}.mp4"
    meta = Path(str(rec) + ".json")
    if rec.exists() and meta.exists():
        log.info("using the recorded exam %s", rec)
        return rec, json.loads(meta.read_text())
    out.mkdir(parents=True, exist_ok=True)
    case = sample_case(seed)
    scene = Scene(case, injection_s=6.0)
    log.info("recording a simulated CEUS exam (seed %d, 640x480, 30 fps, H.264) ...", seed)
    t = time.monotonic()

    def prog(f: float) -> None:
        sys.stderr.write(f"\r  {100 * f:5.1f} %")
        sys.stderr.flush()

    truth = write_exam(scene, rec, fps=30.0, progress=prog)
    sys.stderr.write("\r")
    log.info("recorded %.0f s of exam in %.1f s: %s", truth["duration_s"], time.monotonic() - t,
             rec)
    return rec, truth


@dataclass
class DemoRun:
    result: dict
    truth: dict
    listener: "Collector | None"  # a plain subscriber, as any bedside client would be
    overlay_path: Path | None


def run(cfg: dict, publisher, *, out: Path | None = None, seed: int = 7,
        speed: float | None = 8.0, overlay: bool = True, window: bool = True,
        on_score=None) -> DemoRun:
    """Records (once) and replays the demo exam through the real pipeline, publishing on
    ``publisher`` and drawing the overlay into an MP4 (and a window when there is one)."""
    from ceustream.pipelines import gst
    from ceustream.pipelines.overlay import has_display, hud_description

    out = out or default_dir()
    rec, truth = ensure_recording(out, seed)
    exam = f"demo-{seed}"
    branch = None
    overlay_path = out / "demo_overlay.mp4"
    if overlay:
        gst.init()
        if gst.Gst.ElementFactory.find("ceushud") is None:
            log.warning("the ceushud overlay element is not built; skipping the overlay video")
        else:
            hud = hud_description(cfg["zmq"]["pub"], exam)
            enc = ('videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast '
                   f'key-int-max=60 ! h264parse ! mp4mux fragment-duration=1000 ! '
                   f'filesink location="{overlay_path}"')
            if window and has_display():
                branch = (f"{hud} ! tee name=ov ov. ! queue ! {enc} ov. ! queue ! videoconvert ! "
                          "autovideosink sync=false")
            else:
                branch = f"{hud} ! {enc}"
    listener = Collector(cfg["zmq"]["pub"]) if publisher is not None else None
    if listener is not None and not publisher.wait_for_subscriber(5.0):
        log.warning("no subscriber connected to the publisher within 5 s")
    roi = Roi(*truth["roi"])
    log.info("replaying at %s speed: ROI %s, injection at %.1f s, contrast arrival detected "
             "from the video", "max" if speed is None else f"{speed:g}x", roi,
             truth["injection_s"])
    opts = ReplayOptions(roi=roi, injection=truth["injection_s"], speed=speed,
                         backend=cfg["model"]["backend"], model_path=cfg["model"]["path"] or None,
                         exam=exam, seek="never" if branch or speed else "auto",
                         branch=branch)
    try:
        result = replay(rec, opts, cfg, publisher, on_score)
    finally:
        if listener is not None:
            listener.drain(publisher.sequences(), 5.0)
            listener.close()
    return DemoRun(result, truth, listener, overlay_path if branch else None)
