"""``ceustream run --source URI``: the live engine (one source, exams one after another)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time

from ceustream.engine.core.errors import UsageError
from ceustream.engine.core.roi import Roi
from ceustream.engine.core.source import DamagedStream, EndOfStream

from . import common

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = common.command(sub, "run", "a live exam from a capture source", codes=(0, 1, 2, 3, 4, 5))
    p.add_argument("--source", required=True, help="file, v4l2:///dev/videoN, decklink://N, "
                   "rtsp://..., test://PATTERN or sim://SEED?speed=S (a simulated scanner)")
    p.add_argument("--roi", help="X,Y,W,H: start an exam at once with this ROI")
    p.add_argument("--exam", help="exam id for the first exam (default: random, opaque)")
    p.add_argument("--injection", type=common.seconds,
                   help="mark the injection at this stream time (needs --roi)")
    p.add_argument("--t0", type=common.seconds,
                   help="mark contrast arrival at this stream time (needs --roi)")
    p.add_argument("--control", help="ZeroMQ REP endpoint for commands "
                   "(default tcp://127.0.0.1:5557)")
    p.add_argument("--display", default="none", help="none (default), auto (window or MP4), "
                   "FILE.mp4 or a folder for PNG snapshots: the overlay drawn by ceushud")
    p.add_argument("--exit-after-exam", action="store_true",
                   help="stop when the first exam ends (scripts, tests)")
    p.add_argument("--json", action="store_true", help="print each result as a JSON line")
    p.add_argument("--no-journal", action="store_true", help="do not journal the slots")
    common.add_model_options(p)
    common.add_zmq_options(p)


def make_reader(source: str, branch: str | None):
    """The live reader for ``source``; a ``sim://`` source is the simulator's frame generator."""
    from ceustream.pipelines.live import LiveReader

    if source.startswith("sim://"):
        from ceustream.models.simulator.scanner import SimScanner

        sim = SimScanner(source)
        log.info("simulated scanner: %s", json.dumps(sim.truth))
        return LiveReader(source, branch, generator=sim)
    return LiveReader(source, branch)


def run(args) -> int:
    import zmq

    from ceustream.engine.app.live import LiveEngine
    from ceustream.engine.app.loading import load_model_and_backend
    from ceustream.engine.wire import security
    from ceustream.engine.wire.control import ControlServer
    from ceustream.engine.wire.publisher import Publisher
    from ceustream.pipelines.overlay import hud_description, sink_description

    cfg = common.load_config(args)
    if args.control:
        cfg["zmq"]["control"] = args.control
    roi = Roi.parse(args.roi) if args.roi else None
    if (args.injection is not None or args.t0 is not None) and roi is None:
        raise UsageError("--injection/--t0 need --roi (they mark the first exam)")
    if args.exam:
        from ceustream.engine.wire.messages import check_exam_id

        try:
            check_exam_id(args.exam)
        except ValueError as e:
            raise UsageError(f"--exam: {e}") from None
    ctx = zmq.Context.instance()
    endpoints = [cfg["zmq"]["control"]] + ([] if args.no_publish else [cfg["zmq"]["pub"]])
    curve = security.curve_for(ctx, cfg, endpoints)
    loaded = load_model_and_backend(None, cfg["model"]["backend"], cfg)
    log.info("backend: %s (%s)", loaded[1].describe()["name"], loaded[2])
    branch = None
    if args.display != "none":
        out, where = sink_description(args.display)
        branch = f"{hud_description(cfg['zmq']['pub'])} ! {out}"
        log.info("overlay: %s", where)
    reader = make_reader(args.source, branch)
    pub = None if args.no_publish else Publisher(cfg["zmq"]["pub"], cfg, ctx, curve)
    done: list[dict] = []
    finished = threading.Event()

    def on_done(r: dict) -> None:
        done.append(r)
        if args.json:
            print(json.dumps(r, separators=(",", ":")), flush=True)
        else:
            common.print_result(r)
        finished.set()

    eng = LiveEngine(reader, cfg, pub, loaded, journal=not args.no_journal,
                     on_score=common.progress_scores(not args.json and not args.quiet),
                     on_done=on_done)
    server = ControlServer(cfg["zmq"]["control"], eng.handle, cfg, ctx, curve)
    log.info("control: %s  scores: %s", cfg["zmq"]["control"],
             "off" if pub is None else cfg["zmq"]["pub"])
    try:
        reader.start()
        if roi is not None:
            with eng.lock:
                eng.start_exam(args.exam, roi.as_list())
                if args.t0 is not None:
                    eng.mark_arrival(args.t0)
                elif args.injection is not None:
                    _wait_for_stream(reader, args.injection)
                    eng.mark_injection(args.injection)
        keys = _Keyboard(eng) if sys.stdin.isatty() else None
        while True:
            if args.exit_after_exam and done:
                break
            if keys is not None and keys.quit:
                break
            if not eng.busy():
                try:
                    reader.poll()
                except EndOfStream:
                    log.info("the source ended")
                    break
                except DamagedStream as e:
                    log.error("source error: %s", e)
                    break
            finished.wait(0.1)
    finally:
        if eng.busy():
            with eng.lock:
                eng.stop_exam()
        server.close()
        reader.close()
        if pub is not None:
            pub.close()
    return 0 if not done or all(r["final"] for r in done) else 4


def _wait_for_stream(reader, t: float, timeout_s: float = 600) -> None:
    """Scripted marks (--injection) wait for the stream to get there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = reader.stream_time()
        if st is not None and st >= t:
            return
        time.sleep(0.02)


class _Keyboard:
    """i = injection, a = arrival, s = stop the exam, q = quit (each followed by Enter)."""

    def __init__(self, eng):
        self.quit = False
        self.eng = eng
        log.info("keys: i = injection now, a = contrast arrival now, s = stop exam, q = quit")
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        cmds = {"i": "mark_injection", "a": "mark_arrival", "s": "stop_exam"}
        for line in sys.stdin:
            k = line.strip().lower()[:1]
            if k == "q":
                self.quit = True
                return
            if k in cmds:
                try:
                    self.eng.handle({"cmd": cmds[k]})
                except Exception as e:
                    log.warning("refused: %s", e)
