"""The REP side: JSON commands from the overlay, the CLI or a scanner integration
(``start_exam``, ``mark_injection``, ``mark_arrival``, ``set_roi``, ``stop_exam``,
``status``; for an engine of many scanners ``add_source``, ``remove_source``, ``health``,
``reload_model``: ``messages.COMMANDS``). Every answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``; a bad
request never reaches the engine, and nothing a peer sends stops the server: oversized
messages are cut by ZMQ_MAXMSGSIZE, multipart requests are answered with an error, socket
errors recreate the socket.

The socket is a ROUTER speaking REQ/REP's envelope (REQ and DEALER clients see a REP), not a
REP: a REP socket's strict receive/send cycle can be wedged by raw TCP garbage that libzmq
reads as legacy ZMTP/1.0 messages without an envelope (tested: every later request timed
out). The ROUTER reads each message with its peer's identity, drops what has no envelope,
and answers each request to the peer that sent it, never blocking on one that is gone."""

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
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, messages.MAX_REQUEST_BYTES)
        sock.setsockopt(zmq.SNDTIMEO, 0)
        sock.setsockopt(zmq.RCVHWM, 1000)
        security.bind(sock, self.endpoint, self.cfg, self.curve, "control")
        return sock

    def answer(self, frames: list[bytes]) -> bytes:
        """The reply to one request (any thread; never raises)."""
        if len(frames) != 1:
            self.refused += 1
            return messages.reply(False, error=f"request must be one frame, got {len(frames)}")
        try:
            req = messages.parse_command(frames[0])
        except Exception as e:  # every malformed request is answered, never skipped
            self.refused += 1
            text = (str(e).splitlines() or [type(e).__name__])[0][:200]
            log.info("control: refused a request: %s", text)
            return messages.reply(False, error=text)
        try:
            result = self.handler(req)
        except Exception as e:  # the engine's refusal, as one line
            text = (str(e).splitlines() or [type(e).__name__])[0][:300]
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
                envelope, body = split_envelope(frames)
                if envelope is None:
                    self.refused += 1  # no REQ/DEALER envelope: not a client, nothing to answer
                    continue
                try:
                    self.sock.send_multipart(envelope + [self.answer(body)], zmq.NOBLOCK)
                except zmq.Again:
                    log.info("control: a peer left before its answer")
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


def split_envelope(frames: list[bytes]) -> tuple[list[bytes] | None, list[bytes]]:
    """A ROUTER message → (routing envelope up to and including the empty delimiter, the
    request's frames); (None, []) when there is no delimiter after the peer's identity."""
    for i in range(1, len(frames)):
        if frames[i] == b"":
            return frames[:i + 1], frames[i + 1:]
    return None, []


#: the ``error`` text that :func:`request` answers with when no engine answered
NO_ANSWER = "no answer from"


def request(endpoint: str, req: dict[str, Any], timeout_s: float = 3.0,
            ctx: zmq.Context | None = None) -> dict[str, Any]:
    """One command to a running engine (the CLI's client side). When nothing answers within
    ``timeout_s`` the answer is ``{"ok": False, "error": "no answer from ...", "answered":
    False}``: ``answered`` is only ever present (and false) in that case."""
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
        log.debug("control: no answer from %s within %g s", endpoint, timeout_s)
        return {"ok": False, "error": f"{NO_ANSWER} {endpoint} within {timeout_s:g} s",
                "answered": False}
    finally:
        s.close()
