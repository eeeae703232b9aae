"""Inference backends behind one small interface.

Every backend loads a ``LoadedModel``, warms up, scores a batch of clips and describes
itself; the runner never knows which one it holds (MONAI Deploy's rule: a remote or GPU
model has the same call API as a local one).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..errors import BackendUnavailable, UsageError
from ..modelmeta import LoadedModel

NAMES = ("auto", "onnxruntime", "tensorrt")


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


def create(name: str, model: LoadedModel, threads: int = 0, **options: Any) -> tuple[Backend, str]:
    """Returns the backend and one line saying why it was chosen."""
    if name not in NAMES:
        raise UsageError(f"--backend {name}: expected one of {', '.join(NAMES)}")
    if name in ("auto", "tensorrt"):
        from . import tensorrt as trt_backend

        why_not = trt_backend.unavailable_reason()
        if why_not is None:
            try:
                return trt_backend.TensorRTBackend(model, **options), "TensorRT plan loaded"
            except BackendUnavailable as e:
                why_not = str(e)
        if name == "tensorrt":
            raise BackendUnavailable(f"--backend tensorrt: {why_not}")
        from .onnxruntime import OnnxRuntimeBackend

        return (OnnxRuntimeBackend(model, threads=threads),
                f"CPU fallback: {why_not}; using ONNX Runtime")
    from .onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model, threads=threads), "ONNX Runtime requested"
