"""ONNX Runtime on the CPU: the default backend, and the reference every other is checked
against."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ceustream.engine.core.errors import ModelError
from ceustream.engine.core.modelmeta import LoadedModel
from . import positive_probability

log = logging.getLogger(__name__)


def quiet_threads(so: Any) -> None:
    """ONNX Runtime's thread pool spins for a while after each run, waiting for the next:
    ~45 ms of a core per inference here (a 3.7 ms inference of the shipped model), for a
    live exam that scores once every two seconds. Off: the pool's threads sleep between
    runs (the run itself is as fast; measured in the capacity benchmark's CPU per source)."""
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model: LoadedModel, threads: int = 0, precision: str = "fp32"):
        import onnxruntime as ort

        self.model = model
        self.precision = precision
        path: Path = model.path
        if precision == "fp16":
            if model.fp16_path is None:
                raise ModelError(f"model {model.path}: no FP16 sibling "
                                 f"({model.path.stem}_fp16.onnx) next to it")
            path = model.fp16_path
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        quiet_threads(so)
        if threads:
            so.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"model {path}: ONNX Runtime cannot load it "
                             f"({str(e).splitlines()[0][:200]})") from None
        self.path = path
        inp = self.session.get_inputs()[0]
        self._input_name = model.meta.input_name
        self._input_dtype = np.float16 if "float16" in inp.type else np.float32
        self._output_name = model.meta.output_name

    def warmup(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        for b in batch_sizes:
            self.infer(np.zeros(self.model.meta.input_shape(b), np.float32))

    def raw(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=self._input_dtype)
        return self.session.run([self._output_name], {self._input_name: x})[0]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return positive_probability(self.raw(batch), self.model)

    def has_side(self, output: str) -> bool:
        """Whether ``infer_side`` can give ``output`` from the scoring run itself: only from
        the FP32 file (the domain reference was made from its numbers) with that output."""
        return self.path == self.model.path and \
            output in {o.name for o in self.session.get_outputs()}

    def infer_side(self, batch: np.ndarray, output: str) -> tuple[np.ndarray, np.ndarray]:
        """``infer`` and the graph's ``output`` (the domain check's embedding) from one run:
        the network is not run a second time for its embedding."""
        x = np.ascontiguousarray(batch, dtype=self._input_dtype)
        out, side = self.session.run([self._output_name, output], {self._input_name: x})
        return positive_probability(out, self.model), side

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {"name": self.name, "precision": self.precision, "device": "cpu",
                "version": ort.__version__, "plan_key": None}

    def close(self) -> None:
        self.session = None


class EmbeddingRunner:
    """The model's ``embedding`` output (``core.domain``), always on ONNX Runtime on the CPU
    from the FP32 file, whatever backend scores: the out-of-distribution reference was made
    from these numbers, so the check must not depend on the backend's precision. One small
    session per model; a few milliseconds per call, made only from ``domain.MIN_SLOTS`` slots
    on."""

    def __init__(self, model: LoadedModel, output: str):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = 1
        quiet_threads(so)
        try:
            self.session = ort.InferenceSession(str(model.path), so,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"model {model.path}: ONNX Runtime cannot load it "
                             f"({str(e).splitlines()[0][:200]})") from None
        names = [o.name for o in self.session.get_outputs()]
        if output not in names:
            raise ModelError(f"model {model.path}: its metadata names an embedding output "
                             f"{output!r}, the graph has {names}")
        self.output = output
        self.input_name = model.meta.input_name
        log.debug("embedding runner for %s (output %s)", model.path, output)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run([self.output], {self.input_name: x})[0]
