"""ceustream: streaming CEUS inference (HCC vs non-HCC) over GStreamer and ZeroMQ.

The Python API (kept within a major version; see CHANGELOG.md "Version policy"):

- :func:`replay_file` scores a recorded exam → :class:`Result` (``on_score`` gets a
  :class:`SlotScore` after every slot);
- :class:`Engine` runs a live engine with sources in this process (``start_exam``,
  ``mark_injection`` / ``mark_arrival``, ``scores()``, ``result()``), the same engine as
  ``ceustream run``;
- :class:`Subscriber` receives a running engine's messages, validated against the schema,
  as :class:`ScoreMessage` / :class:`StatusMessage`; :class:`Collector` keeps them on a
  thread;
- :class:`TicReading` (the time-intensity-curve reading beside every score) and
  :class:`Domain` (whether the model is inside the domain it was trained on);
- :func:`load_config` (the settings), :class:`Roi`, :func:`bundled_schema` /
  :func:`schema_dir` (the v1 message schemas), the errors (:class:`CeusError` and its
  subclasses, each with the CLI's ``exit_code``), ``DISCLAIMER`` and ``__version__``.

An engine in another process (``ceustream run``, a service: README "Deploy") is followed
with :class:`Subscriber` and driven with :func:`control`. The shipped weights are trained on
simulated data; nothing here is a medical device.

Installed as ``ceustream/__init__.py`` (see CMakeLists.txt); the code lives in the
subpackages ``ceustream.engine``, ``ceustream.pipelines``, ``ceustream.models`` and
``ceustream.benchmarks``, which are internal. Names are imported on first use, so
``import ceustream`` stays cheap (no GStreamer, no ONNX Runtime until needed).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: public name → module that defines it
_EXPORTS = {
    "replay_file": "ceustream.engine.app.api",
    "Result": "ceustream.engine.app.api",
    "SlotScore": "ceustream.engine.app.api",
    "load_config": "ceustream.engine.app.api",
    "Engine": "ceustream.engine.app.embed",
    "Subscriber": "ceustream.engine.wire.subscriber",
    "Collector": "ceustream.engine.wire.subscriber",
    "ScoreMessage": "ceustream.engine.wire.types",
    "StatusMessage": "ceustream.engine.wire.types",
    "TicReading": "ceustream.engine.wire.types",
    "Domain": "ceustream.engine.wire.types",
    "schema_dir": "ceustream.engine.wire.schemas",
    "Roi": "ceustream.engine.core.roi",
    "CeusError": "ceustream.engine.core.errors",
    "UsageError": "ceustream.engine.core.errors",
    "InputError": "ceustream.engine.core.errors",
    "ModelError": "ceustream.engine.core.errors",
    "BackendUnavailable": "ceustream.engine.core.errors",
    "DISCLAIMER": "ceustream.engine.core",
    "__version__": "ceustream.engine.core",
}
#: exported under another name than the module's
_RENAMED = {"bundled_schema": ("ceustream.engine.wire.schemas", "bundle"),
            "control": ("ceustream.engine.wire.control", "request")}

__all__ = sorted(set(_EXPORTS) | set(_RENAMED))


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        module, attr = _RENAMED[name]
    elif name in _EXPORTS:
        module, attr = _EXPORTS[name], name
    else:
        raise AttributeError(f"module 'ceustream' has no attribute {name!r}")
    value = getattr(import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
