"""The live engine in the caller's process (exported as ``ceustream.Engine``).

    import ceustream
    with ceustream.Engine({"cam": "sim://11?speed=10&size=320x240"}) as eng:
        eng.wait_for_video()
        exam = eng.start_exam(roi=(120, 80, 48, 48))
        eng.mark_injection(6.0)              # seconds on the exam clock
        for s in eng.scores(exam):           # a SlotScore after every slot, until the end
            print(s.headline())
        print(eng.result(exam).headline())

The same engine as ``ceustream run`` (``live.LiveEngine``: a source worker per source,
re-opened with backoff when it fails, one shared batching scorer, the journal): every
command goes through the control socket's validation and handler, so a refused command
raises a ``CeusError`` with the one line the socket would answer, and changes nothing. ZeroMQ
publishing and the control socket are off unless asked for (``publish=``, ``control=``).

Times are seconds on the exam clock: from the first frame the engine received from the
source. The shipped weights are trained on simulated data (``ceustream.DISCLAIMER``).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ceustream.engine.core import config as config_mod
from ceustream.engine.core.errors import UsageError
from ceustream.engine.core.roi import Roi

from .api import Result, SlotScore, slot_score
from .livesources import reader_factory

log = logging.getLogger(__name__)

__all__ = ["Engine"]


def source_table(sources: Mapping[str, str] | Sequence[str] | str) -> list[tuple[str, str]]:
    """(name, URI) pairs: a mapping as given; one URI is ``main``; a list is s1, s2, ...
    Names are checked as the control socket checks them."""
    from ceustream.engine.wire.messages import check_source_name

    if isinstance(sources, str):
        pairs = [("main", sources)]
    elif isinstance(sources, Mapping):
        pairs = [(str(k), v) for k, v in sources.items()]
    else:
        pairs = [(f"s{i}", v) for i, v in enumerate(sources, 1)]
    if not pairs:
        raise UsageError("Engine: give at least one source (name -> URI)")
    for name, uri in pairs:
        try:
            check_source_name(name)
        except ValueError as e:
            raise UsageError(f"Engine sources: {e}") from None
        if not isinstance(uri, str) or not uri:
            raise UsageError(f"Engine sources: {name}: the URI must be a non-empty string")
    return pairs


def roi_list(roi: Roi | Sequence[int] | str) -> list[int]:
    """[x, y, w, h] from a ``Roi``, a sequence or ``"X,Y,W,H"`` (one-line ``UsageError``)."""
    if isinstance(roi, str):
        roi = Roi.parse(roi)
    if isinstance(roi, Roi):
        return roi.as_list()
    try:
        out = [v if isinstance(v, int) and not isinstance(v, bool) else None for v in roi]
    except TypeError:
        out = [None]
    if len(out) != 4 or None in out:
        raise UsageError(f"roi {roi!r}: expected (x, y, w, h), four integers")
    return out


class Engine:
    """A live engine with ``sources`` (``{"name": URI}``, one URI, or a list of URIs: any
    ``ceustream run --source`` URI: ``v4l2:///dev/video0``, ``rtsp://…``, ``udp://…``,
    ``test://PATTERN``, ``sim://SEED?speed=S``, a file, ...).

    ``config``: a settings dict (``load_config``), a TOML file, or None for the defaults
    (then $CEUSTREAM_CONFIG and $CEUSTREAM_* variables). ``backend`` and ``model`` override
    ``model.backend`` / ``model.path``. ``publish``: True for the configured PUB endpoint, or
    an endpoint, to publish score and status messages; ``control``: likewise for the REP
    control socket (so the overlay or ``ceustream control`` can drive this engine).
    ``journal``: journal the sampled frames as ``ceustream run`` does (off by default).

    Use it as a context manager (or call :meth:`close`): closing stops a running exam (its
    partial result is kept), the sources, the scorer and the sockets. Bad settings, sources
    or commands raise a ``CeusError`` with one line; a source that fails later is re-opened
    with backoff and shows in :meth:`status` and the warnings, never as an exception."""

    def __init__(self, sources: Mapping[str, str] | Sequence[str] | str, *,
                 config: dict | str | Path | None = None, backend: str | None = None,
                 model: str | Path | None = None, publish: bool | str = False,
                 control: bool | str = False, journal: bool = False):
        from ceustream.engine import backends
        from ceustream.pipelines.source import kind, reopens, source_description

        cfg = copy.deepcopy(config) if isinstance(config, dict) else config_mod.load(config)
        if backend is not None:
            cfg["model"]["backend"] = backend
        if model is not None:
            cfg["model"]["path"] = str(model)
        if cfg["model"]["backend"] not in backends.names():
            raise UsageError(f"backend {cfg['model']['backend']!r}: expected one of "
                             f"{', '.join(backends.names())}")
        pairs = source_table(sources)
        for _, uri in pairs:  # a bad URI fails here, in one line, before anything starts
            if kind(uri) != "sim":
                source_description(uri)
        self.cfg = cfg
        self._cond = threading.Condition()
        self._scores: list[SlotScore] = []
        self._results: list[Result] = []
        self._last_exam: str | None = None
        self._closed = False
        self._pub = self._server = self._slot = self._live = None
        try:
            self._open(pairs, publish, control, journal, reopens)
        except BaseException:
            self.close()
            raise

    def _open(self, pairs, publish, control, journal, reopens) -> None:
        from ceustream.engine.wire import security
        from ceustream.engine.wire.control import ControlServer
        from ceustream.engine.wire.publisher import Publisher

        from .live import ExamContext, LiveEngine
        from .loading import load_model_and_backend
        from .modelslot import ModelSlot

        cfg = self.cfg
        pub_ep = _endpoint(publish, cfg["zmq"]["pub"])
        ctl_ep = _endpoint(control, cfg["zmq"]["control"])
        curve = None
        if pub_ep or ctl_ep:
            import zmq

            curve = security.curve_for(zmq.Context.instance(), cfg,
                                       [e for e in (ctl_ep, pub_ep) if e])
        model, backend, note = load_model_and_backend(None, cfg["model"]["backend"], cfg)
        self._slot = ModelSlot.open(model, cfg["model"]["backend"], cfg, backend, note)
        log.info("backend: %s (%s)", backend.describe()["name"], note)
        if pub_ep:
            self._pub = Publisher(pub_ep, cfg, curve=curve)
        workers = bool(cfg["live"]["workers"])
        nice = int(cfg["live"]["worker_nice"])
        ctx = ExamContext(cfg, model, self._slot.current.scorer, note, publisher=self._pub,
                          journal=journal, on_score=self._on_score, on_done=self._on_done,
                          slot=self._slot)
        self._live = LiveEngine(ctx, lambda name, uri: (
            reader_factory(uri, None, None, name, workers, nice), reopens(uri)))
        several = len(pairs) > 1
        for name, uri in pairs:
            self._live.add_source(name, uri,
                                  reader_factory(uri, None, None, name if several else None,
                                                 workers, nice), reopens(uri))
        if ctl_ep:
            self._server = ControlServer(ctl_ep, self._live.handle, cfg, curve=curve)
        log.info("engine: %d source(s); control %s; scores %s", len(pairs), ctl_ep or "off",
                 pub_ep or "off")

    # -- callbacks (the sources' threads) --------------------------------------------------
    def _on_score(self, score: Any, session: Any) -> None:
        s = slot_score(score, session)
        with self._cond:
            self._scores.append(s)
            self._cond.notify_all()

    def _on_done(self, result: dict) -> None:
        r = Result.from_json(json.loads(json.dumps(result)))
        with self._cond:
            self._results.append(r)
            self._cond.notify_all()

    # -- commands --------------------------------------------------------------------------
    def command(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Any control command (``status``, ``health``, ``start_exam``, ``add_source``, ...)
        with the fields the control socket takes, validated as the socket validates it;
        returns the answer without ``ok``. Refused: a ``CeusError`` (``UsageError``,
        ``InputError``) with the one-line reason; the engine's state is unchanged."""
        from ceustream.engine.wire.messages import parse_command

        if self._closed or self._live is None:
            raise UsageError(f"{cmd}: the engine is closed")
        req = {"cmd": cmd, **{k: v for k, v in fields.items() if v is not None}}
        try:
            req = parse_command(json.dumps(req, allow_nan=True).encode())
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
        return self._live.handle(req)

    def start_exam(self, roi: Roi | Sequence[int] | str, *, exam: str | None = None,
                   source: str | None = None) -> str:
        """Starts an exam on ``source`` (needed with several) with the lesion's ``roi`` in
        the video's pixels; returns its id (``exam``, or a random opaque one: never a
        patient's name). The schedule starts at a mark: :meth:`mark_injection` or
        :meth:`mark_arrival`."""
        exam_id = self.command("start_exam", exam=exam, roi=roi_list(roi), source=source)["exam"]
        with self._cond:
            self._last_exam = exam_id
        return exam_id

    def mark_injection(self, t: float | None = None, *, exam: str | None = None,
                       source: str | None = None) -> float:
        """Marks the injection at ``t`` s on the exam clock (None: now); contrast arrival
        (t0) is then detected in the ROI. A past time is served from the kept frames.
        Returns the time marked."""
        return self.command("mark_injection", t=t, exam=exam, source=source)["injection"]

    def mark_arrival(self, t: float | None = None, *, exam: str | None = None,
                     source: str | None = None) -> float:
        """Marks contrast arrival (t0, slot 0) at ``t`` s on the exam clock (None: now)."""
        return self.command("mark_arrival", t=t, exam=exam, source=source)["t0"]

    def set_roi(self, roi: Roi | Sequence[int] | str, *, exam: str | None = None,
                source: str | None = None) -> list[int]:
        """Moves the ROI of an exam still waiting for its mark."""
        return self.command("set_roi", roi=roi_list(roi), exam=exam, source=source)["roi"]

    def stop_exam(self, *, exam: str | None = None, source: str | None = None) -> Result:
        """Stops an exam now: its partial result (``final`` False, flag ``stopped_early``)."""
        out = self.command("stop_exam", exam=exam, source=source)
        return Result.from_json(json.loads(json.dumps(out["result"])))

    def status(self, source: str | None = None) -> dict[str, Any]:
        """The control socket's ``status`` answer: the exam's status message and the
        source's state (with several sources and no ``source``: every source's)."""
        return self.command("status", source=source)

    def health(self) -> dict[str, Any]:
        """Every source's state and numbers, the model, the backend, the engine's lag."""
        return self.command("health")

    def stream_time(self, source: str | None = None) -> float | None:
        """Seconds on ``source``'s exam clock now (None before its first frame)."""
        st = self.status(source)
        if "sources" in st:
            raise UsageError("stream_time: the engine has several sources: name one")
        return st["source"]["stream_time_s"]

    def wait_for_video(self, timeout_s: float = 60.0, source: str | None = None) -> bool:
        """True once ``source`` (every source, when None) delivered a frame; False after
        ``timeout_s`` or when a file source ended without one."""
        runners = [self._live.pick({"cmd": "status", "source": source})] if source else \
            self._live.snapshot()
        deadline = time.monotonic() + timeout_s
        return all(r.wait_for_video(max(0.0, deadline - time.monotonic())) for r in runners)

    def wait_until(self, t: float, timeout_s: float = 600.0,
                   source: str | None = None) -> bool:
        """True once ``source``'s exam clock reached ``t`` s (e.g. before marking a time
        that is still ahead); False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._closed:
            now = self.stream_time(source)
            if now is not None and now >= t:
                return True
            time.sleep(0.02)
        return False

    # -- what comes out --------------------------------------------------------------------
    def scores(self, exam: str | None = None, timeout_s: float = 600.0) -> Iterator[SlotScore]:
        """The exam's scores as they come (a ``SlotScore`` after every slot, from the one
        that made the exam's first score), ending when the exam ends (final, stopped, or
        its source removed). ``exam``: the last one started when None. ``TimeoutError`` when
        nothing comes for ``timeout_s`` seconds (a source without video, an exam never
        marked)."""
        with self._cond:
            exam = exam or self._last_exam
        if exam is None:
            raise UsageError("scores: no exam started (start_exam first)")
        i = 0
        while True:
            with self._cond:
                ok = self._cond.wait_for(
                    lambda: len(self._scores) > i or self._done(exam) or self._closed,
                    timeout_s)
                if not ok:
                    raise TimeoutError(f"exam {exam}: no score for {timeout_s:g} s")
                batch = self._scores[i:]
                i = len(self._scores)
                done = self._done(exam) is not None or self._closed
            for s in batch:
                if s.exam == exam:
                    yield s
            if done and not batch:
                return

    def _done(self, exam: str) -> Result | None:
        for r in self._results:
            if r.exam == exam:
                return r
        return None

    def result(self, exam: str | None = None, timeout_s: float = 600.0) -> Result:
        """The exam's result once it ended (waits up to ``timeout_s``; ``TimeoutError``
        after). ``exam``: the last one started when None."""
        with self._cond:
            exam = exam or self._last_exam
            if exam is None:
                raise UsageError("result: no exam started (start_exam first)")
            if not self._cond.wait_for(lambda: self._done(exam) is not None, timeout_s):
                raise TimeoutError(f"exam {exam}: no result within {timeout_s:g} s")
            return self._done(exam)

    @property
    def results(self) -> list[Result]:
        """Every exam's result so far, in the order they ended."""
        with self._cond:
            return list(self._results)

    # -- the end ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stops a running exam (partial result kept in :attr:`results`), then the
        sources, the control socket, the scorer and the publisher. Safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        live, self._live = self._live, None
        if live is not None:
            if live.busy():
                live.stop_all("stopped_early")
        if self._server is not None:
            self._server.close()
        if live is not None:
            live.close()
        if self._slot is not None:
            self._slot.close()
        if self._pub is not None:
            self._pub.close()
        log.info("engine closed")

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _endpoint(value: bool | str | None, configured: str) -> str | None:
    if value is True:
        return configured
    if not value:
        return None
    if not isinstance(value, str):
        raise UsageError(f"endpoint {value!r}: True, False or a ZeroMQ endpoint")
    return value
