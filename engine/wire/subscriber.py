"""The client side of the PUB socket: one subscriber for integrators, the demo, the tests and
the benchmarks.

:class:`Subscriber` receives in the caller's thread (``receive(timeout_s)`` or iterate);
each message is decoded, checked against the bundled v1 schema (``schemas.bundle``: unknown
fields are allowed, as the compatibility policy asks of consumers), and returned as a typed
view (``types.ScoreMessage`` / ``types.StatusMessage``). A message that is not valid v1 is
counted in ``invalid`` (the reason in ``last_error``) and skipped, never raised. Sequence
numbers are followed per exam: ``gaps`` counts messages lost in between.

:class:`Collector` is a subscriber on its own thread that keeps every message, for code that
waits for something to arrive (``wait_for``) or for everything a publisher sent (``drain``).

    from ceustream import Subscriber
    with Subscriber("tcp://127.0.0.1:5556") as sub:
        for m in sub:
            if m.kind == "score":
                print(m.exam, m.headline(), m.disclaimer)
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import zmq

from . import messages, types
from .schemas import RECEIVED, bundle

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5556"

__all__ = ["Subscriber", "Collector", "DEFAULT_ENDPOINT"]

_validators: dict = {}
_validators_lock = threading.Lock()


def validator(kind: str):
    """The jsonschema validator of the bundled (consumer) schema of ``kind``."""
    with _validators_lock:
        if kind not in _validators:
            try:
                from jsonschema import Draft202012Validator
            except ImportError as e:  # a dependency of the package; a broken install
                raise ImportError(f"validating messages needs jsonschema ({e})") from None
            _validators[kind] = Draft202012Validator(bundle(kind))
        return _validators[kind]


def check(msg: dict) -> None:
    """Raises ValueError naming the first field of ``msg`` that breaks its v1 schema."""
    kind = msg.get("type")
    if kind not in RECEIVED:
        raise ValueError(f"type {kind!r}: expected one of {', '.join(RECEIVED)}")
    err = next(iter(validator(kind).iter_errors(msg)), None)
    if err is not None:
        where = "/".join(map(str, err.absolute_path)) or "message"
        raise ValueError(f"{kind} {where}: {err.message[:200]}")


class Subscriber:
    """A ZeroMQ SUB socket for an engine's score and status messages.

    ``topics``: prefixes to subscribe to (``"score."``, ``"status.<exam>"``; default all);
    ``validate``: check each message against the schema (off: only decode and type it);
    ``curve``: (this client's secret key file, the server's public key file), as made by
    ``ceustream keys``, for an engine off loopback; ``rcvhwm``: the receive queue's limit
    (0: none). Not thread-safe, like the socket it holds: one thread receives."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, topics: tuple[str, ...] = ("",),
                 validate: bool = True, curve: tuple[str, str] | None = None,
                 rcvhwm: int | None = None, ctx: zmq.Context | None = None):
        self.endpoint = endpoint
        self.validate = validate
        if validate:
            for k in RECEIVED:
                validator(k)  # fail here, not at the first message
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, 1 << 22)  # no message of ours comes near 4 MiB
        if rcvhwm is not None:
            self.sock.setsockopt(zmq.RCVHWM, rcvhwm)
        if curve is not None:
            _apply_curve(self.sock, *curve)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        self.sock.connect(endpoint)
        self.received = 0
        self.invalid = 0
        self.gaps = 0
        self.last_error: str | None = None
        self.last_seq: dict[str, int] = {}
        self.last_frames: list[bytes] | None = None

    # -- receiving ------------------------------------------------------------------------
    def receive(self, timeout_s: float | None = None) -> types.Message | None:
        """The next valid message, or None when none came within ``timeout_s`` (None: wait
        for ever). Invalid messages are counted and skipped."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self.sock.poll(None if left is None else int(left * 1000)):
                return None
            frames = self.sock.recv_multipart()
            m = self.accept(frames, time.monotonic_ns())
            if m is not None:
                return m
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def accept(self, frames: list[bytes], received_mono_ns: int) -> types.Message | None:
        """One received message → its typed view, or None (counted in ``invalid``)."""
        try:
            topic, msg = messages.decode(frames)
            if self.validate:
                check(msg)
            m = types.parse(topic, msg, received_mono_ns)
        except (ValueError, KeyError, TypeError) as e:
            self.invalid += 1
            self.last_error = str(e).splitlines()[0] if str(e) else type(e).__name__
            log.debug("subscriber: skipped an invalid message: %s", self.last_error)
            return None
        self.received += 1
        self.last_frames = frames
        prev = self.last_seq.get(m.exam)
        if prev is not None and m.seq > prev + 1:
            self.gaps += m.seq - prev - 1
        self.last_seq[m.exam] = max(m.seq, prev or 0)
        return m

    def __iter__(self) -> Iterator[types.Message]:
        while True:
            m = self.receive()
            if m is not None:
                yield m

    # -- the end --------------------------------------------------------------------------
    def close(self) -> None:
        self.sock.close(0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _apply_curve(sock: zmq.Socket, client_secret_file: str, server_public_file: str) -> None:
    import zmq.auth

    for f in (client_secret_file, server_public_file):
        if not Path(f).is_file():
            raise ValueError(f"CURVE key {f}: file not found")
    pub, sec = zmq.auth.load_certificate(client_secret_file)
    if sec is None:
        raise ValueError(f"CURVE key {client_secret_file}: holds no secret key")
    server_pub, _ = zmq.auth.load_certificate(server_public_file)
    sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = pub, sec, server_pub


class Collector(Subscriber):
    """A :class:`Subscriber` receiving on its own thread and keeping every message in
    ``messages`` (and, with ``keep_frames``, each message's raw frames in ``frames``)."""

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, *, keep_frames: bool = False,
                 **kw):
        super().__init__(endpoint, **kw)
        self.messages: list[types.Message] = []
        self.frames: list[list[bytes]] = []
        self.keep_frames = keep_frames
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="ceus-subscriber", daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.sock.poll(50):
                    continue
                frames = self.sock.recv_multipart()
            except zmq.ZMQError:
                if self._stop.is_set():
                    return
                raise
            m = self.accept(frames, time.monotonic_ns())
            if m is None:
                continue
            with self._cond:
                self.messages.append(m)
                if self.keep_frames:
                    self.frames.append(frames)
                self._cond.notify_all()

    def of(self, kind: str, exam: str | None = None) -> list[types.Message]:
        """The messages of ``kind`` ("score" or "status"), of ``exam`` when given."""
        with self._cond:
            return [m for m in self.messages if m.kind == kind and
                    (exam is None or m.exam == exam)]

    def wait_for(self, pred: Callable[[types.Message], bool],
                 timeout_s: float) -> types.Message | None:
        """The first message (kept or to come) for which ``pred`` holds; None at the
        deadline."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        with self._cond:
            while True:
                for m in self.messages[seen:]:
                    if pred(m):
                        return m
                seen = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.1))

    def drain(self, sequences: dict[str, int], timeout_s: float) -> bool:
        """Waits until every exam's message number ``sequences[exam]`` (a publisher's
        ``sequences()``) has arrived or been counted as a gap; False at the deadline."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not all(self.last_seq.get(e, 0) >= n for e, n in sequences.items()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
            return True

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        super().close()
