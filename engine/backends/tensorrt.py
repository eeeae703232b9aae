"""TensorRT FP16 backend (GPU). Filled in by the TensorRT work; see plancache.py."""

from __future__ import annotations


def unavailable_reason() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except Exception:
        return "TensorRT is not installed"
    return "TensorRT backend not implemented yet"


class TensorRTBackend:  # pragma: no cover - placeholder
    def __init__(self, *a, **k):
        raise RuntimeError("not implemented")
