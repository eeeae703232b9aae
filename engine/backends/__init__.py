"""Inference backends behind one small interface.

Every backend loads a ``LoadedModel``, warms up, scores a batch of clips and describes
itself; the runner never knows which one it holds (MONAI Deploy's rule: a remote or GPU
model has the same call API as a local one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from ceustream.engine.core.errors import BackendUnavailable, UsageError
from ceustream.engine.core.modelmeta import LoadedModel

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str
    precision: str

    def warmup(self, batch_sizes: tuple[int, ...] = (1,)) -> None: ...

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, D, H, W) float32 → (N,) probability of the positive class."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def positive_probability(out: np.ndarray, model: LoadedModel) -> np.ndarray:
    """The model's raw output (probabilities or logits, (N, 2) or (N,)) → (N,) P(positive)."""
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 1:
        out = out[:, None]
    if out.shape[1] == 1:
        p = out[:, 0]
        return 1.0 / (1.0 + np.exp(-p)) if model.meta.output_kind == "logits" else p
    if model.meta.output_kind == "logits":
        e = np.exp(out - out.max(axis=1, keepdims=True))
        out = e / e.sum(axis=1, keepdims=True)
    return out[:, model.meta.positive_index]


@dataclass(frozen=True)
class Entry:
    """A backend the engine can serve with: how to say why it cannot run here (None when it
    can) and how to build it."""

    name: str
    device: str
    unavailable: Callable[[], str | None]
    factory: Callable[..., Backend]
    about: str


def _ort_unavailable() -> str | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        return f"ONNX Runtime is not installed ({e})"
    return None


def _ort_factory(model: LoadedModel, threads: int = 0, **options: Any) -> Backend:
    from .onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, threads=threads, precision=options.get("precision", "fp32"))


def _trt_unavailable() -> str | None:
    from . import tensorrt

    return tensorrt.unavailable_reason()


def _trt_factory(model: LoadedModel, threads: int = 0, **options: Any) -> Backend:
    from .tensorrt import TensorRTBackend

    return TensorRTBackend(model, **options)


#: Every backend, best first: ``auto`` takes the first that can run here.
REGISTRY: dict[str, Entry] = {
    "tensorrt": Entry("tensorrt", "gpu", _trt_unavailable, _trt_factory,
                      "TensorRT FP16 on an NVIDIA GPU (plans cached per GPU and version)"),
    "onnxruntime": Entry("onnxruntime", "cpu", _ort_unavailable, _ort_factory,
                         "ONNX Runtime on the CPU (the reference)"),
}
AUTO = "auto"


def names() -> tuple[str, ...]:
    """The choices the CLI and the config accept: ``auto`` and every registered backend."""
    return (AUTO, *REGISTRY)


NAMES = names()


def create(name: str, model: LoadedModel, threads: int = 0, **options: Any) -> tuple[Backend, str]:
    """Returns the backend and one line saying why it was chosen. ``auto`` tries the
    registered backends in order and says why each better one could not run."""
    if name != AUTO and name not in REGISTRY:
        raise UsageError(f"--backend {name}: expected one of {', '.join(names())}")
    if name != AUTO:
        entry = REGISTRY[name]
        why_not = entry.unavailable()
        if why_not is not None:
            raise BackendUnavailable(f"--backend {name}: {why_not}")
        return entry.factory(model, threads, **options), f"{name} requested"
    reasons = []
    for entry in REGISTRY.values():
        why_not = entry.unavailable()
        if why_not is None:
            try:
                be = entry.factory(model, threads, **options)
            except BackendUnavailable as e:
                why_not = str(e)
            else:
                if not reasons:
                    return be, f"{entry.name}: the best backend available"
                return be, f"CPU fallback: {'; '.join(reasons)}; using {entry.about}" \
                    if entry.device == "cpu" else f"{entry.name}: {'; '.join(reasons)}"
        log.debug("backend %s cannot run here: %s", entry.name, why_not)
        reasons.append(why_not)
    raise BackendUnavailable("no backend can run here: " + "; ".join(reasons))
