"""ZeroMQ message schema, version 1: the one place messages are built, checked and parsed.

PUB frames are ``[topic, payload]``: topic ``score.<exam>`` or ``status.<exam>``, payload
UTF-8 JSON with ``"v": 1``. Every message of an exam carries ``seq`` (1, 2, 3, ... per exam)
so a subscriber tells a lost message (a gap) from a stalled engine (no heartbeat).
The JSON Schema files in ``schema/`` describe the same messages; the tests validate what
these builders make against them, in Python and in the C overlay's tests, so the two sides
cannot drift apart. No patient name or identifier is ever put in a message: exam ids are
opaque.
"""

from __future__ import annotations

import logging
import json
import math
import re
import time
from importlib import resources
from typing import Any

from ceustream.engine.core import DISCLAIMER

log = logging.getLogger(__name__)

VERSION = 1
EXAM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
PHASES = ("waiting", "pre_arrival", "video_phase", "late_phase", "complete", "partial",
          "stopped", "idle")
COMMANDS = ("start_exam", "mark_injection", "mark_arrival", "set_roi", "stop_exam", "status",
            "add_source", "remove_source", "health", "reload_model")
COMMAND_KEYS = ("cmd", "exam", "roi", "t", "source", "uri", "path")
#: a source's name in the engine (commands and status name it; a metrics label)
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}\Z")
#: the longest source URI or model path a command may carry
MAX_TEXT = 1024
IDLE_EXAM = "idle"
#: the largest request the control socket reads (also set as ZMQ_MAXMSGSIZE)
MAX_REQUEST_BYTES = 4096
#: the largest time a user may give, in seconds (about 115 days of stream)
MAX_SECONDS = 1e7
#: the largest frame coordinate (the overlay's renderer holds at most this)
MAX_PIXEL = 32767
SCHEMAS = ("common", "score", "status", "command")


def schema_text(name: str) -> str:
    """The JSON Schema file ``<name>.v1.json`` shipped with the package."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema {name!r}")
    return (resources.files("ceustream.engine.wire") / "schema" / f"{name}.v{VERSION}.json"
            ).read_text(encoding="utf-8")


def schema_dir() -> str:
    """The folder of the schema files (the C tests read them from there)."""
    return str(resources.files("ceustream.engine.wire") / "schema")


def check_exam_id(exam: Any) -> str:
    if not isinstance(exam, str) or not EXAM_ID.match(exam) or exam == IDLE_EXAM:
        raise ValueError(f"exam id {_show(exam)}: use 1-64 letters, digits, '-' or '_' "
                         "(an opaque id, never a patient name)")
    return exam


def check_source_name(name: Any) -> str:
    if not isinstance(name, str) or not SOURCE_NAME.match(name):
        raise ValueError(f"source name {_show(name)}: use 1-32 letters, digits, '-' or '_'")
    return name


def _check_text(req: dict[str, Any], key: str) -> None:
    """``uri`` / ``path``: one line of printable text, at most ``MAX_TEXT`` characters."""
    v = req.get(key)
    if v is None:
        if req["cmd"] == {"uri": "add_source", "path": "reload_model"}[key]:
            raise ValueError(f"{req['cmd']} needs {key}")
        return
    if not isinstance(v, str) or not v.strip() or len(v) > MAX_TEXT or \
            any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError(f"{key} must be one line of text (1-{MAX_TEXT} characters)")


def topic(kind: str, exam: str) -> bytes:
    return f"{kind}.{exam}".encode()


def encode(payload: dict[str, Any]) -> bytes:
    """Strict JSON: NaN and infinities are refused (ValueError), never sent."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def score(exam: str, *, slot: int | None, slots_filled: int, slots_total: int, score: float,
          label: str | None, final: bool, flags: list[str], model: dict, backend: dict,
          latency_ms: float | None, frame_mono_ns: int | None, t0_s: float | None,
          frame_times_s: list[float | None], slot_states: list[str | None],
          threshold: float, timing: dict[str, int | None] | None = None,
          features: dict[str, Any] | None = None, source: str | None = None,
          domain: dict[str, Any] | None = None,
          score_basis: str | None = None) -> dict[str, Any]:
    msg = {
        "v": VERSION, "type": "score", "exam": exam, "t_wall": time.time(),
        "slot": slot, "slots_filled": slots_filled, "slots_total": slots_total,
        "score": float(score), "label": label, "final": final, "provisional": not final,
        "threshold": threshold, "flags": sorted(set(flags)), "model": model, "backend": backend,
        "latency_ms": latency_ms, "frame_mono_ns": frame_mono_ns, "t0_s": t0_s,
        "frame_times_s": frame_times_s, "slot_states": slot_states, "features": features,
        "source": source, "disclaimer": DISCLAIMER,
    }
    if domain is not None:
        msg["domain"] = dict(domain)
    if score_basis is not None:
        msg["score_basis"] = score_basis
    if timing is not None:
        msg["timing"] = dict(timing)
    return msg


def status(exam: str, *, phase: str, slots_filled: int, slots_total: int,
           next_slot: int | None, next_slot_due_s: float | None,
           next_slot_in_s: float | None, speed: float, t0_s: float | None,
           injection_s: float | None, warnings: list[str], roi: list[int] | None,
           frame_size: list[int] | None, model: dict | None, backend: dict | None,
           slot_states: list[str | None] | None = None, score: float | None = None,
           final: bool = False, label: str | None = None, flags: list[str] | None = None,
           heartbeat: bool = False, features: dict[str, Any] | None = None,
           source: str | None = None, stream_time_s: float | None = None,
           lag_s: float | None = None, domain: dict[str, Any] | None = None,
           score_basis: str | None = None) -> dict[str, Any]:
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
    msg = {
        "v": VERSION, "type": "status", "exam": exam, "t_wall": time.time(),
        "phase": phase, "slots_filled": slots_filled, "slots_total": slots_total,
        "next_slot": next_slot, "next_slot_due_s": next_slot_due_s,
        "next_slot_in_s": next_slot_in_s, "speed": speed, "t0_s": t0_s,
        "injection_s": injection_s, "warnings": sorted(set(warnings)), "roi": roi,
        "frame_size": frame_size, "model": model, "backend": backend,
        "slot_states": slot_states, "score": score, "final": final, "label": label,
        "flags": sorted(set(flags or [])), "heartbeat": heartbeat, "features": features,
        "source": source, "stream_time_s": stream_time_s, "lag_s": lag_s,
        "disclaimer": DISCLAIMER,
    }
    if domain is not None:
        msg["domain"] = dict(domain)
    if score_basis is not None:
        msg["score_basis"] = score_basis
    return msg


def check_outgoing(msg: dict[str, Any]) -> None:
    """What the publisher checks before sending (cheap; the schema files say the rest):
    version, type, exam id, and every number finite. Raises ValueError naming the field."""
    if msg.get("v") != VERSION or msg.get("type") not in ("score", "status"):
        raise ValueError(f"not a v{VERSION} score/status message")
    check_exam_id(msg.get("exam"))
    _finite(msg, "")
    if msg["type"] == "score" and not 0.0 <= msg["score"] <= 1.0:
        raise ValueError(f"score {msg['score']!r} is not a probability")


def _finite(v: Any, where: str) -> None:
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{where or 'value'} is {v!r}, not a finite number")
    if isinstance(v, dict):
        for k, x in v.items():
            _finite(x, f"{where}.{k}" if where else str(k))
    elif isinstance(v, (list, tuple)):
        for i, x in enumerate(v):
            _finite(x, f"{where}[{i}]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique: ``{"cmd": "status", "cmd": "stop_exam"}`` means
    different things to different parsers, so it is refused."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {_show(k)}")
        out[k] = v
    return out


def _show(v: Any, limit: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_command(raw: bytes) -> dict[str, Any]:
    """Validates a control request before anything is touched; raises ValueError with a
    one-line reason. Refused: non-UTF-8, non-JSON, NaN/Infinity, anything but an object,
    unknown commands or keys, out-of-range or non-finite numbers, over-long requests."""
    if not isinstance(raw, (bytes, bytearray)):
        raise ValueError("request must be bytes")
    if len(raw) > MAX_REQUEST_BYTES:
        raise ValueError(f"request is {len(raw)} bytes (at most {MAX_REQUEST_BYTES})")
    try:
        req = json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                         object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"request is not UTF-8 JSON ({e.__class__.__name__})") from None
    except RecursionError:
        raise ValueError("request is nested too deeply") from None
    if not isinstance(req, dict):
        raise ValueError("request must be a JSON object")
    cmd = req.get("cmd")
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        raise ValueError(f"unknown command {_show(cmd)} (known: {', '.join(COMMANDS)})")
    extra = sorted(str(k) for k in req if k not in COMMAND_KEYS)
    if extra:
        raise ValueError(f"{cmd}: unknown field(s) {_show(', '.join(extra))} "
                         f"(known: {', '.join(COMMAND_KEYS)})")
    if req.get("exam") is not None:
        check_exam_id(req["exam"])
    if req.get("source") is not None:
        check_source_name(req["source"])
    elif cmd in ("add_source", "remove_source"):
        raise ValueError(f"{cmd} needs source (its name)")
    _check_text(req, "uri")
    _check_text(req, "path")
    if cmd == "set_roi" or req.get("roi") is not None:
        roi = req.get("roi")
        if (not isinstance(roi, list) or len(roi) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in roi)
                or not all(0 <= v <= MAX_PIXEL for v in roi) or roi[2] <= 0 or roi[3] <= 0):
            raise ValueError(f"roi must be [x, y, w, h]: four integers 0..{MAX_PIXEL}, "
                             "w and h > 0")
    t = req.get("t")
    if t is not None:
        # compared as given (a huge integer never goes through float()), finite, in range
        if not isinstance(t, (int, float)) or isinstance(t, bool) or \
                (isinstance(t, float) and not math.isfinite(t)) or not 0 <= t <= MAX_SECONDS:
            raise ValueError(f"t must be a number of seconds from 0 to {MAX_SECONDS:g}, "
                             f"got {_show(t)}")
        req["t"] = float(t)
    return req


def reply(ok: bool, **fields: Any) -> bytes:
    """A control answer, always strict JSON (a value that cannot be sent becomes an error)."""
    body = {"ok": ok, **fields}
    try:
        return encode(body)
    except (TypeError, ValueError) as e:
        return encode({"ok": False, "error": f"the answer could not be encoded ({e})"})


def decode(frames: list[bytes]) -> tuple[str, dict[str, Any]]:
    """Subscriber side: ``[topic, payload]`` → (topic, message); raises ValueError."""
    log.debug("decoding a %d-frame message", len(frames))
    if len(frames) != 2:
        raise ValueError(f"expected 2 frames, got {len(frames)}")
    try:
        msg = json.loads(frames[1].decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"payload is not UTF-8 JSON ({e.__class__.__name__})") from None
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        raise ValueError(f"unsupported schema version {msg.get('v') if isinstance(msg, dict) else None!r}")
    return frames[0].decode("utf-8", "replace"), msg
