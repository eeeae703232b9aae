"""The PUB side: one thread owns the socket (ZeroMQ sockets are not thread-safe), numbers
every exam's messages and sends a status heartbeat when an exam has been quiet for
``heartbeat_s``, so a subscriber can tell a lost message from a stalled engine.

The socket is an XPUB (a PUB that also sees subscriptions), so the engine knows how many
subscribers it has and a caller can wait for the first one instead of sleeping."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

import zmq

from . import messages, security

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, endpoint: str, cfg: dict, ctx: zmq.Context | None = None,
                 curve: "security.CurveServer | None" = None):
        self.ctx = ctx or zmq.Context.instance()
        self.endpoint = endpoint
        self.heartbeat_s = float(cfg["zmq"]["heartbeat_s"])
        self._sock = self.ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.LINGER, 1000)
        self._sock.setsockopt(zmq.SNDHWM, 10000)
        security.bind(self._sock, endpoint, cfg, curve, "PUB")
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._seq: dict[str, int] = {}
        self._last_sent: dict[str, float] = {}
        self._status: dict[str, Callable[[], dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.sent = 0
        self.refused = 0
        #: subscriptions currently held by peers (one per subscriber and topic prefix)
        self.subscriptions = 0
        self._subscribed = threading.Event()
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

    def wait_for_subscriber(self, timeout_s: float = 5.0) -> bool:
        """True once a subscriber's subscription reached the socket (no slow-joiner loss)."""
        return self._subscribed.wait(timeout_s)

    def last_seq(self, exam: str) -> int:
        """The newest sequence number sent for ``exam`` (0: none)."""
        return self._seq.get(exam, 0)

    def sequences(self) -> dict[str, int]:
        """Every exam published so far and its newest sequence number."""
        return dict(self._seq)

    def close(self, timeout: float = 2.0) -> None:
        self._q.put(None)
        self._thread.join(timeout)
        self._sock.close()

    # -- the socket's thread -------------------------------------------------------------
    def _send(self, kind: str, payload: dict[str, Any]) -> None:
        """Numbers, checks and sends one message. A message that fails its check or cannot be
        sent is logged and dropped (its seq is not used): the thread never dies of it."""
        try:
            exam = payload["exam"]
            if payload.get("type") == "score":
                now = time.monotonic_ns()
                if payload.get("frame_mono_ns"):
                    payload["latency_ms"] = round((now - payload["frame_mono_ns"]) / 1e6, 3)
                if isinstance(payload.get("timing"), dict):
                    payload["timing"]["published_mono_ns"] = now
            payload["t_wall"] = time.time()
            messages.check_outgoing(payload)
            seq = self._seq.get(exam, 0) + 1
            payload["seq"] = seq
            data = messages.encode(payload)
        except (KeyError, TypeError, ValueError) as e:
            self.refused += 1
            log.error("%s message for exam %r not sent: %s", kind, payload.get("exam"), e)
            return
        try:
            self._sock.send_multipart([messages.topic(kind, exam), data])
        except zmq.ZMQError as e:
            self.refused += 1
            log.error("%s message for exam %s not sent: %s", kind, exam, e)
            return
        self._seq[exam] = seq
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
                    log.exception("exam %s: status for the heartbeat failed", exam)
                    self._last_sent[exam] = now
                    continue
                msg["heartbeat"] = True
                self._send("status", msg)
            else:
                wait = min(wait, due - now)
        return max(wait, 0.005)

    def _subscriptions(self) -> None:
        """Reads the subscribe/unsubscribe messages an XPUB receives."""
        while True:
            try:
                msg = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                self.subscriptions += 1
                self._subscribed.set()
            elif msg[:1] == b"\x00":
                self.subscriptions = max(0, self.subscriptions - 1)
            log.debug("subscriptions: %d", self.subscriptions)

    def _run(self) -> None:
        wait = self.heartbeat_s
        while True:
            try:
                item = self._q.get(timeout=min(wait, 0.05))
            except queue.Empty:
                item = ()
            try:
                self._subscriptions()
            except zmq.ZMQError as e:
                log.warning("publisher: reading subscriptions failed (%s)", e)
            if item is None:
                while True:  # drain what was queued before close
                    try:
                        rest = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if rest:
                        self._send(*rest)
                return
            try:
                if item:
                    self._send(*item)
                wait = self._heartbeats()
            except Exception:  # never let the publishing thread die
                log.exception("publisher: unexpected error (continuing)")
                wait = self.heartbeat_s
