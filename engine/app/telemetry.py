"""What a server operator watches: Prometheus metrics of one engine, and the HTTP endpoint
that serves them.

``Telemetry`` owns its own ``CollectorRegistry`` (never prometheus-client's global default
one), so two engines in one process, or two tests, never share a counter. The app layer
updates it in three ways:

- **events** it already has: exam sessions (``watch(session)`` subscribes to started /
  slot / score / status / finished), batches (``observe_batch``, a ``BatchingScorer``
  observer), model reloads, late and missed slots;
- **probes** read at scrape time: each source registers a function returning its frame
  counter, frame rate, lag and signal state (``add_source``), and the publisher's message
  counters are read the same way (``bind_publisher``). Nothing runs per video frame;
- ``snapshot()`` gives the same numbers as a dict (the control socket's ``health``).

``MetricsServer`` serves the registry over HTTP (``[metrics] listen``): off by default,
loopback only unless ``[metrics] allow_remote`` says otherwise (the same rule as the ZeroMQ
sockets; the metrics carry source names and counts, never an exam id or a patient's).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ceustream.engine.core.errors import UsageError

log = logging.getLogger(__name__)

#: a source's numbers at scrape time: frames_total, frames_dropped, fps, lag_s, up (any may
#: be missing or None)
SourceProbe = Callable[[], dict[str, Any]]

INFERENCE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Telemetry:
    """The engine's metrics (see the module's docstring)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.warnings_raised = Counter(
            "ceustream_warnings", "Warnings raised on exams (each rise counts once)",
            ["source", "warning"], registry=r)
        self.warnings_active = Gauge(
            "ceustream_warnings_active", "Exams that show this warning now",
            ["source", "warning"], registry=r)
        self.slots = Counter(
            "ceustream_slots", "Decided slots by how they were filled (frame, neighbour, "
            "missing)", ["source", "fill"], registry=r)
        self.slots_late = Counter(
            "ceustream_slots_late", "Slots decided late because the engine could not keep up",
            ["source"], registry=r)
        self.slots_missed = Counter(
            "ceustream_slots_missed", "Slots neighbour-filled or missing, by cause: overload "
            "(the engine dropped the frames: it could not keep up) or no_signal",
            ["source", "cause"], registry=r)
        self.inference = Histogram(
            "ceustream_inference_seconds", "Time of one backend call (one batch of clips)",
            ["backend"], buckets=INFERENCE_BUCKETS, registry=r)
        self.batch_size = Histogram(
            "ceustream_inference_batch_size", "Clips scored per backend call", ["backend"],
            buckets=BATCH_BUCKETS, registry=r)
        self.queue_wait = Histogram(
            "ceustream_inference_queue_seconds", "Time a clip waited for its batch to run",
            ["backend"], buckets=INFERENCE_BUCKETS, registry=r)
        self.score_latency = Histogram(
            "ceustream_score_latency_seconds", "Decoder exit of a slot's frame to its score",
            ["source"], buckets=LATENCY_BUCKETS, registry=r)
        self.scores = Counter(
            "ceustream_scores", "Scores computed", ["source", "final"], registry=r)
        self.exams_started = Counter(
            "ceustream_exams_started", "Exams started", ["source"], registry=r)
        self.exams_ended = Counter(
            "ceustream_exams_ended", "Exams ended, by phase (complete, partial, stopped)",
            ["source", "phase"], registry=r)
        self.exams_active = Gauge(
            "ceustream_exams_active", "Exams running now", ["source"], registry=r)
        self.model_reloads = Counter(
            "ceustream_model_reloads", "reload_model requests by result (ok, refused)",
            ["result"], registry=r)
        self._lock = threading.Lock()
        self._sources: dict[str, SourceProbe] = {}
        self._publishers: list[Any] = []
        #: exam id → (source label, warnings it shows); cleared when the exam ends
        self._exam_warnings: dict[str, tuple[str, set[str]]] = {}
        r.register(_Probes(self))

    # -- sources (pull) ------------------------------------------------------------------
    def add_source(self, name: str, probe: SourceProbe) -> None:
        """``probe()`` is called at every scrape: frames_total, fps, lag_s, up."""
        with self._lock:
            self._sources[name] = probe

    def remove_source(self, name: str) -> None:
        with self._lock:
            self._sources.pop(name, None)

    def bind_publisher(self, publisher: Any) -> None:
        """Reads ``publisher.sent`` / ``publisher.refused`` at every scrape."""
        with self._lock:
            self._publishers.append(publisher)

    def source_numbers(self) -> dict[str, dict[str, Any]]:
        """Every source's probe, read now; a failing probe reads as {"error": ...}."""
        with self._lock:
            probes = list(self._sources.items())
        out = {}
        for name, probe in probes:
            try:
                out[name] = dict(probe() or {})
            except Exception as e:  # a probe must never break a scrape
                log.debug("source %s: probe failed: %s", name, e)
                out[name] = {"error": str(e)[:120]}
        return out

    def messages(self) -> tuple[int, int]:
        """(sent, refused) over every bound publisher."""
        with self._lock:
            pubs = list(self._publishers)
        return (sum(int(getattr(p, "sent", 0)) for p in pubs),
                sum(int(getattr(p, "refused", 0)) for p in pubs))

    # -- events (push) -------------------------------------------------------------------
    def observe_batch(self, size: int, seconds: float, waits: list[float],
                      backend: str = "") -> None:
        """A ``BatchingScorer`` observer: one backend call of ``size`` clips."""
        self.inference.labels(backend).observe(seconds)
        self.batch_size.labels(backend).observe(size)
        for w in waits:
            self.queue_wait.labels(backend).observe(max(0.0, w))

    def batch_observer(self, backend: str) -> Callable[[int, float, list[float]], None]:
        return lambda size, seconds, waits: self.observe_batch(size, seconds, waits, backend)

    def slot_late(self, source: str, n: int = 1) -> None:
        self.slots_late.labels(source).inc(n)

    def slot_missed(self, source: str, n: int = 1, cause: str = "overload") -> None:
        self.slots_missed.labels(source, cause).inc(n)

    def reload(self, ok: bool) -> None:
        self.model_reloads.labels("ok" if ok else "refused").inc()

    def watch(self, session: Any) -> None:
        """Subscribes to an ``ExamSession``'s events (its ``source`` labels the numbers)."""
        session.subscribe(self.on_event)

    def on_event(self, ev: Any) -> None:
        """One exam event → counters (see ``app.session.EVENT_KINDS``)."""
        s = ev.session
        src = s.source or ""
        if ev.kind == "started":
            self.exams_started.labels(src).inc()
            self.exams_active.labels(src).inc()
            with self._lock:
                self._exam_warnings[s.exam] = (src, set())
        elif ev.kind == "slot":
            fill = ev.data[0]
            self.slots.labels(src, str(fill.source)).inc()
        elif ev.kind == "score":
            sc = ev.data
            self.scores.labels(src, "true" if sc.final else "false").inc()
            t = sc.timing or {}
            if t.get("frame_mono_ns") and t.get("scored_mono_ns"):
                self.score_latency.labels(src).observe(
                    max(0.0, (t["scored_mono_ns"] - t["frame_mono_ns"]) / 1e9))
        elif ev.kind == "status":
            self._warnings_now(s.exam, src, _copy(s.warnings))
        elif ev.kind == "finished":
            self._warnings_now(s.exam, src, set())
            with self._lock:
                known = self._exam_warnings.pop(s.exam, None)
            if known is not None:
                self.exams_active.labels(src).dec()
            self.exams_ended.labels(src, s.phase).inc()

    def _warnings_now(self, exam: str, src: str, now: set[str]) -> None:
        """Counts warnings that rose since the exam's last status; keeps the gauge of exams
        showing each warning."""
        with self._lock:
            _, before = self._exam_warnings.get(exam, (src, set()))
            self._exam_warnings[exam] = (src, now)
        for w in now - before:
            self.warnings_raised.labels(src, w).inc()
            self.warnings_active.labels(src, w).inc()
        for w in before - now:
            self.warnings_active.labels(src, w).dec()

    # -- reading -------------------------------------------------------------------------
    def scrape(self) -> bytes:
        """The text exposition format, as the endpoint serves it."""
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """The numbers as a dict (for ``health``): sources, exams, messages, batches."""
        sent, refused = self.messages()
        with self._lock:
            active = sum(1 for _ in self._exam_warnings)
        return {"sources": self.source_numbers(), "exams_active": active,
                "messages_sent": sent, "messages_refused": refused}


class _Probes:
    """A collector that reads the sources' probes and the publishers at scrape time."""

    def __init__(self, tel: Telemetry):
        self.tel = tel

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        frames = CounterMetricFamily("ceustream_source_frames", "Frames that reached the "
                                     "engine's gate (passed or dropped)", labels=["source"])
        fps = GaugeMetricFamily("ceustream_source_fps", "Frame rate measured at the gate",
                                labels=["source"])
        lag = GaugeMetricFamily("ceustream_source_lag_seconds", "How far the engine is "
                                "behind the source's newest frame", labels=["source"])
        up = GaugeMetricFamily("ceustream_source_up", "1 while the source delivers frames",
                               labels=["source"])
        dropped = CounterMetricFamily("ceustream_source_frames_dropped", "Frames the gate "
                                      "passed that the engine could not take in time (dropped "
                                      "by the appsink, never queued)", labels=["source"])
        for name, n in self.tel.source_numbers().items():
            if _number(n.get("frames_total")):
                frames.add_metric([name], float(n["frames_total"]))
            if _number(n.get("fps")):
                fps.add_metric([name], float(n["fps"]))
            if _number(n.get("lag_s")):
                lag.add_metric([name], float(n["lag_s"]))
            if n.get("up") is not None:
                up.add_metric([name], 1.0 if n.get("up") else 0.0)
            if _number(n.get("frames_dropped")):
                dropped.add_metric([name], float(n["frames_dropped"]))
        sent, refused = self.tel.messages()
        msgs = CounterMetricFamily("ceustream_messages_published",
                                   "Score and status messages sent on the PUB socket")
        msgs.add_metric([], sent)
        bad = CounterMetricFamily("ceustream_messages_refused",
                                  "Messages the publisher refused to send (failed checks)")
        bad.add_metric([], refused)
        return [frames, fps, lag, up, dropped, msgs, bad]


def _copy(names: set[str]) -> set[str]:
    """A copy of a set another thread may be changing (retried, never an error)."""
    for _ in range(100):
        try:
            return set(names)
        except RuntimeError:  # "set changed size during iteration"
            continue
    return set()


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v \
        and v not in (float("inf"), float("-inf"))


# -- the HTTP endpoint ---------------------------------------------------------------------
def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) → (host, port); port 0 picks a free one."""
    text = str(listen).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"metrics.listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:9108")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"metrics.listen {listen!r}: port must be a number in 0..65535")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MetricsServer:
    """The registry served at ``http://HOST:PORT/metrics`` by a daemon thread."""

    def __init__(self, telemetry: Telemetry, listen: str, allow_remote: bool = False):
        from prometheus_client import make_wsgi_app

        from . import health

        host, port = parse_listen(listen)
        if not is_loopback_host(host) and not allow_remote:
            raise UsageError(f"metrics.listen {listen}: not a loopback address; set "
                             "metrics.allow_remote = true to serve metrics off this machine "
                             "(the endpoint has no authentication)")
        #: /readyz's check (``health.ReadyCheck``), set once the engine has its sources;
        #: /healthz and /readyz answer beside /metrics (``health``)
        self.ready: health.ReadyCheck | None = None
        try:
            self._httpd, self._thread = health.start(
                host, port, health.wsgi_app(make_wsgi_app(telemetry.registry), self))
        except (OSError, ValueError) as e:
            raise UsageError(f"metrics.listen {listen}: cannot listen ({e})") from None
        self.host = host
        self.port = int(self._httpd.server_address[1])
        log.info("metrics at http://%s:%d/metrics (and /healthz, /readyz)", host, self.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(2.0)


def serve(telemetry: Telemetry, cfg: dict) -> MetricsServer | None:
    """The endpoint the config asks for (``[metrics] listen``), or None when it is off."""
    m = cfg["metrics"]
    if not m["listen"]:
        return None
    return MetricsServer(telemetry, m["listen"], bool(m["allow_remote"]))
