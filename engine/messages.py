"""ZeroMQ message schema, version 1 (see DESIGN.md "Messages").

PUB frames are ``[topic, payload]``: topic ``score.<exam>`` or ``status.<exam>``, payload
UTF-8 JSON with ``"v": 1``. Every message of an exam carries ``seq`` (1, 2, 3, ... per exam)
so a subscriber tells a lost message (a gap) from a stalled engine (no heartbeat).
No patient name or identifier is ever put in a message: exam ids are opaque.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from . import DISCLAIMER

VERSION = 1
EXAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PHASES = ("waiting", "pre_arrival", "video_phase", "late_phase", "complete", "partial",
          "stopped", "idle")
COMMANDS = ("start_exam", "mark_injection", "mark_arrival", "set_roi", "stop_exam", "status")
IDLE_EXAM = "idle"


def check_exam_id(exam: Any) -> str:
    if not isinstance(exam, str) or not EXAM_ID.match(exam) or exam == IDLE_EXAM:
        raise ValueError(f"exam id {exam!r}: use 1-64 letters, digits, '-' or '_' "
                         "(an opaque id, never a patient name)")
    return exam


def topic(kind: str, exam: str) -> bytes:
    return f"{kind}.{exam}".encode()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def score(exam: str, *, slot: int | None, slots_filled: int, slots_total: int, score: float,
          label: str | None, final: bool, flags: list[str], model: dict, backend: dict,
          latency_ms: float | None, frame_mono_ns: int | None, t0_s: float | None,
          frame_times_s: list[float | None], slot_states: list[str | None],
          threshold: float) -> dict[str, Any]:
    return {
        "v": VERSION, "type": "score", "exam": exam, "t_wall": time.time(),
        "slot": slot, "slots_filled": slots_filled, "slots_total": slots_total,
        "score": float(score), "label": label, "final": final, "provisional": not final,
        "threshold": threshold, "flags": sorted(set(flags)), "model": model, "backend": backend,
        "latency_ms": latency_ms, "frame_mono_ns": frame_mono_ns, "t0_s": t0_s,
        "frame_times_s": frame_times_s, "slot_states": slot_states, "disclaimer": DISCLAIMER,
    }


def status(exam: str, *, phase: str, slots_filled: int, slots_total: int,
           next_slot: int | None, next_slot_due_s: float | None,
           next_slot_in_s: float | None, speed: float, t0_s: float | None,
           injection_s: float | None, warnings: list[str], roi: list[int] | None,
           frame_size: list[int] | None, model: dict | None, backend: dict | None,
           slot_states: list[str | None] | None = None, score: float | None = None,
           final: bool = False, label: str | None = None, flags: list[str] | None = None,
           heartbeat: bool = False) -> dict[str, Any]:
    assert phase in PHASES, phase
    return {
        "v": VERSION, "type": "status", "exam": exam, "t_wall": time.time(),
        "phase": phase, "slots_filled": slots_filled, "slots_total": slots_total,
        "next_slot": next_slot, "next_slot_due_s": next_slot_due_s,
        "next_slot_in_s": next_slot_in_s, "speed": speed, "t0_s": t0_s,
        "injection_s": injection_s, "warnings": sorted(set(warnings)), "roi": roi,
        "frame_size": frame_size, "model": model, "backend": backend,
        "slot_states": slot_states, "score": score, "final": final, "label": label,
        "flags": sorted(set(flags or [])), "heartbeat": heartbeat, "disclaimer": DISCLAIMER,
    }


def parse_command(raw: bytes) -> dict[str, Any]:
    """Validates a control request; raises ValueError with a one-line reason."""
    try:
        req = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"request is not UTF-8 JSON ({e.__class__.__name__})") from None
    if not isinstance(req, dict):
        raise ValueError("request must be a JSON object")
    cmd = req.get("cmd")
    if cmd not in COMMANDS:
        raise ValueError(f"unknown command {cmd!r} (known: {', '.join(COMMANDS)})")
    if "exam" in req and req["exam"] is not None:
        check_exam_id(req["exam"])
    if cmd == "set_roi" or ("roi" in req and req["roi"] is not None):
        roi = req.get("roi")
        if (not isinstance(roi, list) or len(roi) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi)
                or roi[2] <= 0 or roi[3] <= 0 or roi[0] < 0 or roi[1] < 0):
            raise ValueError("roi must be [x, y, w, h]: four integers, w and h > 0")
    for key in ("t", "t0", "injection"):
        if key in req and req[key] is not None:
            if not isinstance(req[key], (int, float)) or isinstance(req[key], bool) or req[key] < 0:
                raise ValueError(f"{key} must be a number of seconds >= 0")
    return req


def decode(frames: list[bytes]) -> tuple[str, dict[str, Any]]:
    """Subscriber side: ``[topic, payload]`` → (topic, message); raises ValueError."""
    if len(frames) != 2:
        raise ValueError(f"expected 2 frames, got {len(frames)}")
    msg = json.loads(frames[1].decode("utf-8"))
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        raise ValueError(f"unsupported schema version {msg.get('v') if isinstance(msg, dict) else None!r}")
    return frames[0].decode(), msg
