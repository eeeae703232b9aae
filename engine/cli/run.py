"""``ceustream run --source [NAME=]URI ...``: the live engine (one or several sources, each
with its exams one after another; every exam scored by one shared batching scorer).

The engine outlives its source: a live source that fails, ends or stalls is re-opened with
backoff while the exam goes on (warnings published). It exits on ``q`` (keyboard), SIGINT or
SIGTERM (a docker/systemd stop): a running exam is stopped cleanly (its partial result
journaled and published) and the exit code is 0; with ``--exit-after-exam`` it exits when
the first exam ends, 0 for a final score and 4 for a partial one. A recording given as the
source ends when the file does (exit 0, or 4 when its exam could not complete); with several
sources the engine ends when every one has.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
import threading
import time
from pathlib import Path

from ceustream.engine.app.livesources import reader_factory
from ceustream.engine.core.errors import UsageError
from ceustream.engine.core.roi import Roi

from . import common

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = common.command(sub, "run", "a live exam from a capture source", codes=(0, 1, 2, 3, 4, 5),
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("--source", action="append", metavar="[NAME=]URI",
                   help="file, v4l2:///dev/videoN, decklink://N, "
                   "rtsp://..., udp://HOST:PORT (MPEG-TS), srt://HOST:PORT?mode=caller|listener, "
                   "gst:LAUNCH-LINE (ending in raw video), test://PATTERN or sim://SEED?speed=S "
                   "(a simulated scanner). Repeat it for several scanners, optionally named "
                   "NAME=URI (1-32 letters, digits, - or _; default main, or s1, s2, ... when "
                   "there are several); commands and status name the source. Without "
                   "--source: the config's [[sources]] tables")
    p.add_argument("--metrics", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics, liveness at /healthz and "
                   "readiness at /readyz (default: "
                   "metrics.listen, off; loopback unless metrics.allow_remote)")
    p.add_argument("--roi", help="X,Y,W,H: start an exam at once with this ROI (one source)")
    p.add_argument("--exam", type=common.exam_id,
                   help="exam id for the first exam (default: random, opaque): 1-64 letters, "
                   "digits, - or _, never a patient name")
    p.add_argument("--injection", type=common.seconds,
                   help="mark the injection at this time on the exam clock (needs --roi)")
    p.add_argument("--t0", type=common.seconds,
                   help="mark contrast arrival at this time on the exam clock (needs --roi)")
    p.add_argument("--control", help="ZeroMQ REP endpoint for commands "
                   "(default tcp://127.0.0.1:5557)")
    p.add_argument("--display", default="none", help="none (default), auto (window or MP4), "
                   "FILE.mp4 or a folder for PNG snapshots: the overlay drawn by ceushud")
    p.add_argument("--record", metavar="FILE.mkv",
                   help="also write the decoded video as received (lossless H.264 in Matroska, "
                   "microsecond timestamps): `ceustream replay` of it gives the live exam's "
                   "frames and score; after a reconnect the next pipeline writes FILE.1.mkv, ...")
    p.add_argument("--exit-after-exam", action="store_true",
                   help="stop when the first exam ends (scripts, tests)")
    p.add_argument("--json", action="store_true", help="print each result as a JSON line")
    p.add_argument("--no-journal", action="store_true", help="do not journal the slots")
    common.add_model_options(p)
    common.add_zmq_options(p)


_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]{0,31})=(.+)\Z")


def split_source(text: str) -> tuple[str | None, str]:
    """``NAME=URI`` → (NAME, URI); a plain URI → (None, URI). A launch line or path whose
    text before its first '=' is not a bare name (``gst:videotestsrc pattern=ball``,
    ``/data/a=b.mp4``) is a plain URI; write ``./x=y.mp4`` for a file named like ``x=y``."""
    m = _NAMED.match(text)
    if m and "://" not in m.group(1) and ":" not in m.group(1):
        return m.group(1), m.group(2)
    return None, text


def sources_from(given: list[str] | None, configured: list[dict]) -> list[tuple[str, str]]:
    """(name, URI) of every source: ``--source`` options, else the config's [[sources]]."""
    from ceustream.engine.wire.messages import check_source_name

    if given:
        pairs = [split_source(t) for t in given]
        what = "--source"
    else:
        pairs = [(c.get("name") or None, c["uri"]) for c in configured]
        what = "[[sources]]"
    if not pairs:
        raise UsageError("give --source URI (or [[sources]] tables in the config)")
    out, seen = [], set()
    for i, (name, uri) in enumerate(pairs, 1):
        name = name or ("main" if len(pairs) == 1 else f"s{i}")
        try:
            check_source_name(name)
        except ValueError as e:
            raise UsageError(f"{what}: {e}") from None
        if name in seen:
            raise UsageError(f"{what}: the source name {name!r} is given twice")
        seen.add(name)
        out.append((name, uri))
    return out


def run(args) -> int:
    import zmq

    from ceustream.engine.app.live import ExamContext, LiveEngine
    from ceustream.engine.app.loading import load_model_and_backend
    from ceustream.engine.app.modelslot import ModelSlot
    from ceustream.engine.app.telemetry import Telemetry, serve
    from ceustream.engine.wire import security
    from ceustream.engine.wire.control import ControlServer
    from ceustream.engine.wire.publisher import Publisher
    from ceustream.pipelines.overlay import hud_description, sink_description
    from ceustream.pipelines.source import kind, reopens, source_description

    cfg = common.load_config(args)
    if args.control:
        cfg["zmq"]["control"] = args.control
    roi = Roi.parse(args.roi) if args.roi else None
    if (args.injection is not None or args.t0 is not None) and roi is None:
        raise UsageError("--injection/--t0 need --roi (they mark the first exam)")
    if args.record and Path(args.record).suffix.lower() not in (".mkv", ""):
        raise UsageError(f"--record {args.record}: the recording is Matroska (.mkv)")
    if args.metrics is not None:
        cfg["metrics"]["listen"] = args.metrics
    sources = sources_from(args.source, cfg["sources"])
    several = len(sources) > 1
    if several and roi is not None:
        raise UsageError("--roi/--exam/--injection/--t0 script the exam of one source; with "
                         "several, start exams over the control socket (start_exam with "
                         "'source')")
    if several and args.display != "none":
        raise UsageError("--display draws one source; with several, run `ceustream overlay` "
                         "per screen")
    for _, uri in sources:
        if kind(uri) != "sim":
            source_description(uri)  # a bad URI fails here, in one line
    ctx = zmq.Context.instance()
    endpoints = [cfg["zmq"]["control"]] + ([] if args.no_publish else [cfg["zmq"]["pub"]])
    curve = security.curve_for(ctx, cfg, endpoints)
    model, backend, note = load_model_and_backend(None, cfg["model"]["backend"], cfg)
    log.info("backend: %s (%s)", backend.describe()["name"], note)
    slot = ModelSlot.open(model, cfg["model"]["backend"], cfg, backend, note)
    tel = Telemetry()
    slot.on_new_scorer(lambda sc: sc.observe(tel.batch_observer(sc.name)))
    branch = None
    if args.display != "none":
        out, where = sink_description(args.display)
        branch = f"{hud_description(cfg['zmq']['pub'])} ! {out}"
        log.info("overlay: %s", where)
    pub = None if args.no_publish else Publisher(cfg["zmq"]["pub"], cfg, ctx, curve)
    if pub is not None:
        tel.bind_publisher(pub)
    done: list[dict] = []
    wake = threading.Event()

    def on_done(r: dict) -> None:
        done.append(r)
        if args.json:
            print(json.dumps(r, separators=(",", ":")), flush=True)
        else:
            common.print_result(r)
        wake.set()

    workers = bool(cfg["live"]["workers"])
    nice = int(cfg["live"]["worker_nice"])

    def opener(name: str, uri: str):
        """A source added over the control socket (``add_source``)."""
        if kind(uri) != "sim":
            source_description(uri)
        return reader_factory(uri, None, None, name, workers, nice), reopens(uri)

    eng = LiveEngine(ExamContext(cfg, model, slot.current.scorer, note, publisher=pub,
                                 journal=not args.no_journal,
                                 on_score=common.progress_scores(not args.json and not args.quiet),
                                 on_done=on_done, slot=slot, telemetry=tel), opener)
    server = metrics = None
    stop = _Stop(wake)
    try:
        metrics = serve(tel, cfg)
        for name, uri in sources:  # before the control socket: its first answer knows them
            open_reader = reader_factory(uri, branch, args.record, name if several else None,
                                         workers, nice)
            eng.add_source(name, uri, open_reader, reopens(uri))
        if metrics is not None:  # /readyz: from now on, every source is known
            from ceustream.engine.app.health import engine_readiness

            metrics.ready = lambda: engine_readiness(eng, cfg)
        runner = eng.runner
        server = ControlServer(cfg["zmq"]["control"], eng.handle, cfg, ctx, curve)
        log.info("control: %s  scores: %s  metrics: %s", cfg["zmq"]["control"],
                 "off" if pub is None else cfg["zmq"]["pub"],
                 "off" if metrics is None else metrics.url)
        if roi is not None:
            _first_exam(eng, runner, args, roi, stop)
        keys = _Keyboard(eng, stop) if sys.stdin.isatty() else None
        while not stop.reason:
            if args.exit_after_exam and done:
                break
            if eng.all_ended() and not eng.busy():
                log.info("the source has ended" if not several else "every source has ended")
                break
            wake.wait(0.2)
            wake.clear()
        if stop.reason:
            log.info("%s: stopping", stop.reason)
        if keys is not None:
            keys.quit = True
    finally:
        stop.restore()
        if eng.busy():
            eng.stop_all("stopped_early")
        if server is not None:
            server.close()
        eng.close()
        if metrics is not None:
            metrics.close()
        slot.close()
        if pub is not None:
            pub.close()
    if args.exit_after_exam or (done and eng.all_ended()):
        return 0 if done and all(r["final"] for r in done) else 4
    return 0


def _first_exam(eng, runner, args, roi: Roi, stop: "_Stop") -> None:
    """``--roi`` (with ``--injection``/``--t0``): the first exam, scripted. Waits for video
    (and for the stream to reach the mark) as long as the engine is not told to stop."""
    if not _wait_for(lambda: runner.last_us is not None or runner.ended.is_set(), stop, 60):
        log.warning("no video from the source yet; the exam starts anyway")
    if stop.reason:
        return
    eng.handle({"cmd": "start_exam", "exam": args.exam, "roi": roi.as_list()})
    t = args.t0 if args.t0 is not None else args.injection
    if t is None:
        return
    if not _wait_for(lambda: (runner.now_s() or -1.0) >= t, stop, 3600) or stop.reason:
        return
    cmd = "mark_arrival" if args.t0 is not None else "mark_injection"
    try:
        eng.handle({"cmd": cmd, "t": t})
    except UsageError as e:  # the source restarted before the mark: the exam goes on unmarked
        log.error("--%s %g: %s", "t0" if args.t0 is not None else "injection", t, e)


def _wait_for(cond, stop: "_Stop", timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.reason:
        if cond():
            return True
        time.sleep(0.02)
    return False


class _Stop:
    """SIGTERM (docker/systemd stop) and SIGINT (Ctrl-C) end the engine cleanly."""

    def __init__(self, wake: threading.Event):
        self.reason: str | None = None
        self.wake = wake
        self._old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread (an embedding application)
                pass

    def _handler(self, signum, frame) -> None:
        self.reason = signal.Signals(signum).name
        self.wake.set()

    def quit(self, why: str) -> None:
        self.reason = why
        self.wake.set()

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class _Keyboard:
    """i = injection, a = arrival, s = stop the exam, q = quit (each followed by Enter)."""

    def __init__(self, eng, stop: _Stop):
        self.quit = False
        self.eng = eng
        self.stop = stop
        log.info("keys: i = injection now, a = contrast arrival now, s = stop exam, q = quit")
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        cmds = {"i": "mark_injection", "a": "mark_arrival", "s": "stop_exam"}
        for line in sys.stdin:
            if self.quit:
                return
            k = line.strip().lower()[:1]
            if k == "q":
                self.stop.quit("quit")
                return
            if k in cmds:
                try:
                    self.eng.handle({"cmd": cmds[k]})
                except Exception as e:
                    log.warning("refused: %s", e)
