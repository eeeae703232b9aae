"""The REP side: JSON commands from the overlay, the CLI or a scanner integration
(``start_exam``, ``mark_injection``, ``mark_arrival``, ``set_roi``, ``stop_exam``,
``status``). Every answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``; a bad
request never reaches the engine, and nothing a peer sends stops the server: oversized
messages are cut by ZMQ_MAXMSGSIZE, multipart requests are answered with an error, socket
errors recreate the socket."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable

import zmq

from . import messages, security

log = logging.getLogger(__name__)


class ControlServer:
    def __init__(self, endpoint: str, handler: Callable[[dict[str, Any]], dict[str, Any]],
                 cfg: dict, ctx: zmq.Context | None = None,
                 curve: "security.CurveServer | None" = None):
        self.ctx = ctx or zmq.Context.instance()
        self.handler = handler
        self.endpoint = endpoint
        self.cfg = cfg
        self.curve = curve
        self.answered = 0
        self.refused = 0
        self.sock = self._socket()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="ceus-control", daemon=True)
        self._t.start()

    def _socket(self) -> zmq.Socket:
        sock = self.ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, messages.MAX_REQUEST_BYTES)
        sock.setsockopt(zmq.SNDTIMEO, 1000)
        security.bind(sock, self.endpoint, self.cfg, self.curve, "control")
        return sock

    def answer(self, frames: list[bytes]) -> bytes:
        """The reply to one request (any thread; never raises)."""
        if len(frames) != 1:
            self.refused += 1
            return messages.reply(False, error=f"request must be one frame, got {len(frames)}")
        try:
            req = messages.parse_command(frames[0])
        except ValueError as e:
            self.refused += 1
            log.info("control: refused a request: %s", e)
            return messages.reply(False, error=str(e))
        try:
            result = self.handler(req)
        except Exception as e:  # the engine's refusal, as one line
            text = str(e).splitlines()[0] if str(e) else type(e).__name__
            if not getattr(e, "exit_code", None):
                log.exception("control: %s failed", req["cmd"])
            return messages.reply(False, error=text)
        self.answered += 1
        return messages.reply(True, **result)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.sock.poll(100):
                    continue
                frames = self.sock.recv_multipart()
                self.sock.send(self.answer(frames))
            except zmq.ZMQError as e:
                if self._stop.is_set():
                    return
                # a REP socket in a bad state (a peer vanished mid-request): start afresh
                log.warning("control: socket error (%s); reopening %s", e, self.endpoint)
                try:
                    self.sock.close(0)
                    self.sock = self._socket()
                except Exception:
                    log.exception("control: cannot reopen %s; retrying", self.endpoint)
                    self._stop.wait(1.0)
            except Exception:  # never let the control thread die
                log.exception("control: unexpected error (continuing)")

    @property
    def alive(self) -> bool:
        return self._t.is_alive()

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close(0)


def request(endpoint: str, req: dict[str, Any], timeout_s: float = 3.0,
            ctx: zmq.Context | None = None) -> dict[str, Any]:
    """One command to a running engine (the CLI's client side)."""
    ctx = ctx or zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    s.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1000))
    s.connect(endpoint)
    try:
        s.send(json.dumps(req, allow_nan=True).encode())
        return json.loads(s.recv())
    except zmq.Again:
        return {"ok": False, "error": f"no answer from {endpoint} within {timeout_s:g} s"}
    finally:
        s.close()
