"""One defaults file (``defaults.toml``), a user file and environment overrides, validated at
start so a typo fails before an exam does, not during one."""

from __future__ import annotations

import copy
import math
import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import UsageError

DEFAULTS_PATH = Path(__file__).with_name("defaults.toml")
ENV_PREFIX = "CEUSTREAM_"

# Extra checks beyond "same type as the default".
_CHOICES = {
    ("replay", "seek"): {"auto", "always", "never"},
}
# model.backend is checked against the backends' registry when a backend is created
_POSITIVE = {
    ("zmq", "heartbeat_s"), ("arrival", "window_s"), ("arrival", "baseline_s"),
    ("arrival", "monitor_hz"), ("arrival", "k_sigma"), ("arrival", "sustain_s"),
    ("arrival", "fallback_delay_s"), ("replay", "seek_lead_s"),
    ("live", "no_signal_s"), ("live", "reopen_after_s"), ("live", "open_timeout_s"),
    ("live", "reopen_min_s"), ("live", "reopen_max_s"), ("live", "frozen_s"),
    ("live", "history_s"), ("live", "history_max_mb"), ("engine", "max_batch"),
    ("engine", "slot_late_s"), ("engine", "max_model_mb"),
}
_NON_NEGATIVE = {("live", "worker_nice"), ("model", "threads"), ("arrival", "min_rise"), ("replay", "seek_min_gap_s"),
                 ("engine", "batch_window_ms"), ("engine", "max_copied_slots")}


def _defaults() -> dict[str, dict[str, Any]]:
    with open(DEFAULTS_PATH, "rb") as f:
        return tomllib.load(f)


def _coerce(value: str, like: Any, where: str) -> Any:
    try:
        if isinstance(like, bool):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(like, int):
            return int(value)
        if isinstance(like, float):
            return float(value)
    except ValueError:
        raise UsageError(f"{where}: '{value}' is not a valid {type(like).__name__}") from None
    return value


def _sources(value: Any, origin: str) -> list[dict[str, str]]:
    """``[[sources]]``: a list of {uri, name?} tables of strings (names checked by the engine)."""
    if not isinstance(value, list):
        raise UsageError(f"{origin}: sources must be [[sources]] tables (name, uri)")
    out = []
    for i, entry in enumerate(value, 1):
        if not isinstance(entry, dict) or set(entry) - {"name", "uri"} or \
                not isinstance(entry.get("uri"), str) or not entry["uri"].strip() or \
                not isinstance(entry.get("name", ""), str):
            raise UsageError(f"{origin}: [[sources]] entry {i} must have a uri and optionally "
                             "a name (both strings), nothing else")
        out.append({k: str(v) for k, v in entry.items()})
    return out


def _merge(base: dict, extra: dict, origin: str) -> None:
    for table, values in extra.items():
        if table == "sources":
            base["sources"] = _sources(values, origin)
            continue
        if table not in base or not isinstance(values, dict):
            raise UsageError(f"{origin}: unknown setting table [{table}]"
                             f" (known: {', '.join(sorted(base))})")
        for key, value in values.items():
            if key not in base[table]:
                raise UsageError(f"{origin}: unknown setting {table}.{key}"
                                 f" (known: {', '.join(sorted(base[table]))})")
            like = base[table][key]
            if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not type(like):
                raise UsageError(f"{origin}: {table}.{key} must be a {type(like).__name__},"
                                 f" got {value!r}")
            base[table][key] = value


def _validate(cfg: dict) -> None:
    for (table, key), allowed in _CHOICES.items():
        if cfg[table][key] not in allowed:
            raise UsageError(f"setting {table}.{key}={cfg[table][key]!r}: expected one of "
                             f"{', '.join(sorted(allowed))}")
    for table, key in _POSITIVE:
        if not (cfg[table][key] > 0 and math.isfinite(cfg[table][key])):
            raise UsageError(f"setting {table}.{key} must be a finite number > 0, "
                             f"got {cfg[table][key]}")
    for table, key in _NON_NEGATIVE:
        if not (cfg[table][key] >= 0 and math.isfinite(cfg[table][key])):
            raise UsageError(f"setting {table}.{key} must be a finite number >= 0, "
                             f"got {cfg[table][key]}")
    if cfg["live"]["worker_nice"] > 19:
        raise UsageError(f"setting live.worker_nice must be 0-19, got {cfg['live']['worker_nice']}")


def load(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> dict:
    """Defaults, then the user file (``path`` or $CEUSTREAM_CONFIG), then environment."""
    env = os.environ if env is None else env
    cfg = _defaults()
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    if path:
        p = Path(path)
        try:
            with open(p, "rb") as f:
                user = tomllib.load(f)
        except FileNotFoundError:
            raise UsageError(f"config file {p}: not found") from None
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"config file {p}: not valid TOML ({e})") from None
        _merge(cfg, user, f"config file {p}")
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        table, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        if table not in cfg or key not in cfg[table]:
            raise UsageError(f"environment variable {name}: no setting {table}.{key}")
        cfg[table][key] = _coerce(value, cfg[table][key], f"environment variable {name}")
    _validate(cfg)
    return cfg


def defaults() -> dict:
    return copy.deepcopy(load(env={}))
