"""The PUB side: one thread owns the socket (ZeroMQ sockets are not thread-safe), numbers
every exam's messages and sends a status heartbeat when an exam has been quiet for
``heartbeat_s``, so a subscriber can tell a lost message from a stalled engine."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

import zmq

from . import messages, security


class Publisher:
    def __init__(self, endpoint: str, cfg: dict, ctx: zmq.Context | None = None,
                 curve: "security.CurveServer | None" = None):
        self.ctx = ctx or zmq.Context.instance()
        self.endpoint = endpoint
        self.heartbeat_s = float(cfg["zmq"]["heartbeat_s"])
        self._sock = self.ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 1000)
        self._sock.setsockopt(zmq.SNDHWM, 10000)
        security.bind(self._sock, endpoint, cfg, curve, "PUB")
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._seq: dict[str, int] = {}
        self._last_sent: dict[str, float] = {}
        self._status: dict[str, Callable[[], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="ceus-pub", daemon=True)
        self._stop = False
        self._thread.start()

    # -- API (any thread) ---------------------------------------------------------------
    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        self._q.put((kind, payload))

    def watch(self, exam: str, status_fn: Callable[[], dict[str, Any]]) -> None:
        """Heartbeat ``exam`` with ``status_fn()`` while it is quiet."""
        with self._lock:
            self._status[exam] = status_fn

    def unwatch(self, exam: str) -> None:
        with self._lock:
            self._status.pop(exam, None)

    def close(self, timeout: float = 2.0) -> None:
        self._q.put(None)
        self._thread.join(timeout)
        self._sock.close()

    # -- the socket's thread -------------------------------------------------------------
    def _send(self, kind: str, payload: dict[str, Any]) -> None:
        exam = payload["exam"]
        seq = self._seq.get(exam, 0) + 1
        self._seq[exam] = seq
        payload["seq"] = seq
        payload["t_wall"] = time.time()
        if payload.get("type") == "score":
            now = time.monotonic_ns()
            if payload.get("frame_mono_ns"):
                payload["latency_ms"] = round((now - payload["frame_mono_ns"]) / 1e6, 3)
            if isinstance(payload.get("timing"), dict):
                payload["timing"]["published_mono_ns"] = now
        self._sock.send_multipart([messages.topic(kind, exam), messages.encode(payload)])
        self._last_sent[exam] = time.monotonic()
        self.sent += 1

    def _heartbeats(self) -> float:
        now = time.monotonic()
        wait = self.heartbeat_s
        with self._lock:
            watched = list(self._status.items())
        for exam, fn in watched:
            due = self._last_sent.get(exam, 0.0) + self.heartbeat_s
            if now >= due:
                try:
                    msg = fn()
                except Exception:  # a status callback must never kill the publisher
                    continue
                msg["heartbeat"] = True
                self._send("status", msg)
            else:
                wait = min(wait, due - now)
        return max(wait, 0.005)

    def _run(self) -> None:
        wait = self.heartbeat_s
        while True:
            try:
                item = self._q.get(timeout=wait)
            except queue.Empty:
                item = ()
            if item is None:
                while True:  # drain what was queued before close
                    try:
                        rest = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if rest:
                        self._send(*rest)
                return
            if item:
                self._send(*item)
            wait = self._heartbeats()
