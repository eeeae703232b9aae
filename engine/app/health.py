"""Liveness and readiness over HTTP, beside ``/metrics`` on the same opt-in listener
(``[metrics] listen``), with Kubernetes' meaning:

- ``GET /healthz``: the process answers (200 ``ok``). A failing liveness probe means
  "restart me"; nothing here depends on sources or peers, so a lost scanner never gets the
  engine restarted.
- ``GET /readyz``: 200 when the engine can do its job, else 503; the body is JSON saying why
  (``{"ready": bool, "model": ..., "sources": {name: {"state", "ready", "down_s"}}}``). Ready
  means: a model is loaded, and every configured source is playing, or is opening or
  reconnecting for no longer than one full re-open cycle (``live.reopen_after_s +
  live.open_timeout_s + live.reopen_max_s``: the backoff has not run out of patience yet). A
  source that has ended for good is not ready.

Everything else is the Prometheus page, as before. No exam id or patient data is in any
answer: source names, states and seconds only.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger(__name__)

#: () -> (ready, the JSON body of /readyz)
ReadyCheck = Callable[[], "tuple[bool, dict[str, Any]]"]


@dataclass(frozen=True)
class SourceState:
    """What readiness needs of one source: its state ("opening", "playing", "reconnecting",
    "ended") and how long it has gone without a frame (None: it never had one)."""

    state: str
    down_s: float | None


def grace_s(cfg: dict) -> float:
    """How long a source may open or reconnect and still count as ready."""
    live = cfg["live"]
    return float(live["reopen_after_s"]) + float(live["open_timeout_s"]) + \
        float(live["reopen_max_s"])


def readiness(model_loaded: bool, sources: dict[str, SourceState], grace: float,
              uptime_s: float) -> tuple[bool, dict[str, Any]]:
    """The rule of the module's docstring, as a pure function. A source that never had a
    frame counts as down since the engine started (``uptime_s``)."""
    out: dict[str, Any] = {}
    for name, s in sources.items():
        down = s.down_s if s.down_s is not None else uptime_s
        if s.state == "playing":
            ok = True
        elif s.state in ("opening", "reconnecting"):
            ok = down <= grace
        else:
            ok = False
        out[name] = {"state": s.state, "ready": ok,
                     "down_s": None if s.state == "playing" else round(down, 1)}
    ready = model_loaded and all(v["ready"] for v in out.values())
    return ready, {"ready": ready, "model": "loaded" if model_loaded else "not loaded",
                   "grace_s": grace, "sources": out}


def engine_readiness(engine: Any, cfg: dict) -> tuple[bool, dict[str, Any]]:
    """:func:`readiness` of a running ``LiveEngine`` (its sources, read now)."""
    sources = {}
    for r in engine.snapshot():
        since = r.seconds_since_frame()
        sources[r.name] = SourceState("ended" if r.ended.is_set() else r.state, since)
    model_loaded = engine.ctx.model is not None or engine.ctx.slot is not None
    return readiness(model_loaded, sources, grace_s(cfg), time.monotonic() - engine.started)


def wsgi_app(metrics_app: Callable, holder: Any) -> Callable:
    """``/healthz`` and ``/readyz`` in front of the Prometheus WSGI app. ``holder.ready`` is
    the readiness check (a ``ReadyCheck``), read at each request: while it is None (the
    engine is still starting) ``/readyz`` answers 503."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path == "/readyz":
            ready = getattr(holder, "ready", None)
            try:
                ok, body = ready() if ready is not None else (False, {"ready": False,
                                                                       "why": "starting"})
            except Exception as e:  # a check that fails says "not ready", never crashes
                log.warning("readyz: the check failed: %s", e)
                ok, body = False, {"ready": False, "why": f"check failed: {type(e).__name__}"}
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json")])
            return [json.dumps(body).encode() + b"\n"]
        return metrics_app(environ, start_response)

    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        log.debug("http: " + format, *args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def start(host: str, port: int, app: Callable) -> tuple[WSGIServer, threading.Thread]:
    """Serves ``app`` on HOST:PORT in a daemon thread (as prometheus-client's server does);
    raises OSError when the address cannot be bound."""
    cls = _Server6 if ":" in host else _Server
    httpd = make_server(host, port, app, server_class=cls, handler_class=_Quiet)
    t = threading.Thread(target=httpd.serve_forever, name="ceus-http", daemon=True)
    t.start()
    return httpd, t
