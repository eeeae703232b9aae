"""``ceustream demo``: the whole system on a fresh machine in about a minute.

A simulated CEUS exam is recorded with GStreamer's own encoder, then replayed through the
real pipeline: the slot gate, arrival detection from the injection time, the 30-slot
schedule, ONNX Runtime scoring, ZeroMQ publishing, and the ``ceushud`` overlay drawn over the
video and written to an MP4 (and a window when there is a display).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from . import DISCLAIMER


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "ceustream" / "demo"


def ensure_recording(out: Path, seed: int, say) -> tuple[Path, dict]:
    """The demo exam (made once per seed and simulator version, then reused)."""
    from ceustream.models.simulator.physiology import sample_case
    from ceustream.models.simulator.recording import write_exam
    from ceustream.models.simulator.scene import Scene

    from . import __version__

    rec = out / f"exam_seed{seed}_v{__version__}.mp4"
    meta = Path(str(rec) + ".json")
    if rec.exists() and meta.exists():
        say(f"using the recorded exam {rec}")
        return rec, json.loads(meta.read_text())
    out.mkdir(parents=True, exist_ok=True)
    case = sample_case(seed)
    scene = Scene(case, injection_s=6.0)
    say(f"recording a simulated CEUS exam (seed {seed}, 640x480, 30 fps, H.264) ...")
    t = time.monotonic()

    def prog(f: float) -> None:
        sys.stderr.write(f"\r  {100 * f:5.1f} %")
        sys.stderr.flush()

    truth = write_exam(scene, rec, fps=30.0, progress=prog)
    sys.stderr.write("\r")
    say(f"recorded {truth['duration_s']:.0f} s of exam in {time.monotonic() - t:.1f} s: {rec}")
    return rec, truth


class _Listener:
    """A plain ZeroMQ subscriber, as any bedside client would be: counts what arrives."""

    def __init__(self, endpoint: str):
        import zmq

        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.setsockopt(zmq.RCVTIMEO, 200)
        self.sock.connect(endpoint)
        self.scores = self.status = self.gaps = 0
        self.last_seq: dict[str, int] = {}
        self._stop = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        import zmq

        from .messages import decode

        while not self._stop:
            try:
                topic, msg = decode(self.sock.recv_multipart())
            except zmq.Again:
                continue
            except ValueError:
                continue
            if msg["type"] == "score":
                self.scores += 1
            else:
                self.status += 1
            prev = self.last_seq.get(msg["exam"])
            if prev is not None and msg["seq"] != prev + 1:
                self.gaps += 1
            self.last_seq[msg["exam"]] = msg["seq"]

    def close(self) -> None:
        self._stop = True
        self.t.join(1)
        self.sock.close()


def run(args, cfg) -> int:
    from ceustream.pipelines import gst
    from ceustream.pipelines.overlay import has_display, hud_description

    from .cli import Progress, _finish, _publisher
    from .replay import ReplayOptions, replay
    from .roi import Roi

    say = Progress(True)
    say("ceustream demo - " + DISCLAIMER)
    out = Path(args.out) if args.out else default_dir()
    rec, truth = ensure_recording(out, args.seed, say)
    exam = f"demo-{args.seed}"
    branch = None
    overlay_path = out / "demo_overlay.mp4"
    if not args.no_overlay:
        gst.init()
        if gst.Gst.ElementFactory.find("ceushud") is None:
            say("note: the ceushud overlay element is not built; skipping the overlay video")
        else:
            hud = hud_description(cfg["zmq"]["pub"], exam)
            enc = ('videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast '
                   f'key-int-max=60 ! h264parse ! mp4mux fragment-duration=1000 ! '
                   f'filesink location="{overlay_path}"')
            if not args.no_window and has_display():
                branch = f"{hud} ! tee name=ov ov. ! queue ! {enc} ov. ! queue ! videoconvert ! autovideosink sync=false"
            else:
                branch = f"{hud} ! {enc}"
    pub = _publisher(args, cfg)
    listener = _Listener(cfg["zmq"]["pub"]) if pub is not None else None
    time.sleep(0.3)  # let the subscribers connect before the first message
    roi = Roi(*truth["roi"])
    say(f"replaying at {'max' if args.speed is None else f'{args.speed:g}x'} speed: ROI {roi}, "
        f"injection at {truth['injection_s']:.1f} s, contrast arrival detected from the video")
    opts = ReplayOptions(roi=roi, injection=truth["injection_s"], speed=args.speed,
                         backend=cfg["model"]["backend"], model_path=cfg["model"]["path"] or None,
                         exam=exam, seek="never" if branch or args.speed else "auto",
                         branch=branch)
    try:
        result = replay(rec, opts, cfg, pub, say, say.score)
    finally:
        time.sleep(0.3)
        if pub is not None:
            pub.close()
        if listener is not None:
            listener.close()
    err = result["t0"] - truth["t0_s"] if result["t0"] is not None else None
    print(f"simulated truth: {truth['label']} ({truth['case']['subtype']}, "
          f"{truth['case']['pattern']} enhancement, {truth['case']['washout']} washout); "
          f"t0 {truth['t0_s']:.2f} s, detected {result['t0']:.2f} s"
          + (f" ({err:+.2f} s)" if err is not None else ""))
    if listener is not None:
        print(f"ZeroMQ {cfg['zmq']['pub']}: a subscriber received {listener.scores} score and "
              f"{listener.status} status messages, {listener.gaps} sequence gaps")
    code = _finish(result, False, say)
    if branch and overlay_path.exists():
        print(f"overlay video: {overlay_path}")
    return code
