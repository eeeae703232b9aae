"""The REP side: JSON commands from the overlay, the CLI or a scanner integration
(``start_exam``, ``mark_injection``, ``mark_arrival``, ``set_roi``, ``stop_exam``,
``status``). Every answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``; a bad
request never reaches the engine."""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

import zmq

from . import messages, security


class ControlServer:
    def __init__(self, endpoint: str, handler: Callable[[dict[str, Any]], dict[str, Any]],
                 cfg: dict, ctx: zmq.Context | None = None,
                 curve: "security.CurveServer | None" = None):
        self.ctx = ctx or zmq.Context.instance()
        self.handler = handler
        self.sock = self.ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        security.bind(self.sock, endpoint, cfg, curve, "control")
        self.endpoint = endpoint
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="ceus-control", daemon=True)
        self._t.start()

    def _answer(self, raw: bytes) -> dict[str, Any]:
        try:
            req = messages.parse_command(raw)
        except ValueError as e:
            return {"ok": False, "error": str(e)}
        try:
            reply = self.handler(req)
        except Exception as e:  # the engine's refusal, as one line
            return {"ok": False, "error": str(e).splitlines()[0] if str(e) else type(e).__name__}
        return {"ok": True, **reply}

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            raw = self.sock.recv()
            self.sock.send(json.dumps(self._answer(raw)).encode())

    def close(self) -> None:
        self._stop.set()
        self._t.join(2)
        self.sock.close()


def request(endpoint: str, req: dict[str, Any], timeout_s: float = 3.0) -> dict[str, Any]:
    """One command to a running engine (the CLI's client side)."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    s.connect(endpoint)
    try:
        s.send(json.dumps(req).encode())
        return json.loads(s.recv())
    except zmq.Again:
        return {"ok": False, "error": f"no answer from {endpoint} within {timeout_s:g} s"}
    finally:
        s.close()
