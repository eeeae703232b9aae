"""TensorRT FP16 backend (NVIDIA GPU), behind the same interface as ONNX Runtime.

Written against TensorRT 10/11 as documented in shared/reference/tensorrt.md:
- build from ONNX with a STRONGLY_TYPED network (accepted by 10.x, always on in 11.x); FP16
  comes from the FP16 ONNX (precision in the graph, softmax and head FP32). On 10.x without
  an FP16 ONNX the legacy ``BuilderFlag.FP16`` is used, guarded by ``hasattr``;
- optimisation profile for batch 1..32, timing cache kept; plans cached under a key of ONNX
  sha256, TensorRT version, GPU name, compute capability, precision, profile and OS; a
  stale, foreign or corrupt plan is rebuilt, never loaded blindly;
- inference through the tensor-name API and ``execute_async_v3`` on a dedicated stream,
  pinned host buffers, I/O dtypes read from the engine, one execution context per thread,
  objects released in reverse order; an optional CUDA graph per batch size, falling back to
  plain execution when capture fails;
- CUDA through cuda-python (``cuda.bindings``), as NVIDIA's samples do since 10.14.

An exam never waits for a build: ``ceustream engine build`` builds ahead of time, and the
engine builds on first use only when ``build_on_load=True``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ceustream.engine.core.errors import BackendUnavailable
from ceustream.engine.core.modelmeta import LoadedModel

log = logging.getLogger(__name__)
from . import positive_probability
from .plancache import PROFILE, PlanKey, PlanStore


def _import_trt():
    import tensorrt as trt  # noqa: F401

    return trt


def _import_cuda():
    from cuda.bindings import runtime as cudart  # cuda-python >= 12.6

    return cudart


def cuda_call(call):
    """cuda-python returns (err, *results); raise on error (NVIDIA's samples' helper)."""
    err, res = call[0], call[1:]
    if int(err) != 0:
        cudart = _import_cuda()
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError(f"CUDA error {int(err)} ({name.decode() if isinstance(name, bytes) else name})")
    return res[0] if len(res) == 1 else (None if not res else res)


def unavailable_reason() -> str | None:
    """None when TensorRT can run here, else why not (one line)."""
    try:
        trt = _import_trt()
    except Exception as e:
        return f"TensorRT is not installed ({type(e).__name__})"
    try:
        cudart = _import_cuda()
    except Exception:
        return "cuda-python (cuda.bindings) is not installed"
    try:
        n = cuda_call(cudart.cudaGetDeviceCount())
    except Exception as e:
        return f"no usable CUDA device ({e})"
    if not n:
        return "no NVIDIA GPU found"
    del trt
    return None


def device_identity() -> tuple[str, str]:
    cudart = _import_cuda()
    props = cuda_call(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.strip("\x00 "), f"{props.major}.{props.minor}"


def plan_key(model: LoadedModel, precision: str, trt_version: str | None = None,
             gpu: tuple[str, str] | None = None) -> PlanKey:
    onnx_path = source_onnx(model, precision)
    from ceustream.engine.core.modelmeta import file_sha256

    if trt_version is None:
        trt_version = _import_trt().__version__
    name, cc = gpu if gpu is not None else device_identity()
    return PlanKey(file_sha256(onnx_path), trt_version, name, cc, precision, PROFILE)


def source_onnx(model: LoadedModel, precision: str) -> Path:
    """FP16 builds from the FP16 ONNX when it exists (TensorRT 11's way)."""
    if precision == "fp16" and model.fp16_path is not None:
        return model.fp16_path
    return model.path


def build_plan(model: LoadedModel, precision: str, store: PlanStore,
               progress=None) -> tuple[bytes, PlanKey, float]:
    trt = _import_trt()
    key = plan_key(model, precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    onnx_path = source_onnx(model, precision)
    legacy_fp16 = precision == "fp16" and onnx_path == model.path and hasattr(trt.BuilderFlag, "FP16")
    if precision == "fp16" and onnx_path == model.path and not legacy_fp16:
        raise BackendUnavailable(f"TensorRT {trt.__version__} needs an FP16 ONNX for FP16 "
                                 f"({model.path.stem}_fp16.onnx; `ceustream export` writes it)")
    flags = 0 if legacy_fp16 else (1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailable(f"TensorRT cannot parse {onnx_path.name}: {errs[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    if legacy_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    meta = model.meta
    prof = builder.create_optimization_profile()
    prof.set_shape(meta.input_name, meta.input_shape(PROFILE[0]), meta.input_shape(PROFILE[1]),
                   meta.input_shape(PROFILE[2]))
    if config.add_optimization_profile(prof) < 0:
        raise BackendUnavailable("TensorRT rejected the batch 1..32 optimisation profile")
    tc_path = store.timing_cache_path(key)
    cache = config.create_timing_cache(tc_path.read_bytes() if tc_path.exists() else b"")
    config.set_timing_cache(cache, True)
    if progress:
        progress(f"building a TensorRT {precision} plan for {onnx_path.name} "
                 f"(TensorRT {trt.__version__}, {key.gpu_name}, sm {key.compute_capability}) ...")
    if hasattr(trt, "IProgressMonitor") and progress:
        config.progress_monitor = _Progress(trt, progress)
    t = time.monotonic()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendUnavailable("TensorRT failed to build the plan (see its log above)")
    build_s = time.monotonic() - t
    tc_path.parent.mkdir(parents=True, exist_ok=True)
    tc_path.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    data = bytes(plan)
    store.save(key, data, build_s)
    if progress:
        progress(f"plan built in {build_s:.1f} s: {store.path(key)}")
    return data, key, build_s


class _Progress:
    """TensorRT's IProgressMonitor, printing phases as they start."""

    def __new__(cls, trt, say):
        class Monitor(trt.IProgressMonitor):
            def __init__(self):
                trt.IProgressMonitor.__init__(self)

            def phase_start(self, phase_name, parent_phase, num_steps):
                say(f"  {phase_name} ({num_steps} steps)")

            def step_complete(self, phase_name, step):
                return True

            def phase_finish(self, phase_name):
                pass

        return Monitor()


class _Context:
    """One execution context, stream and pinned buffers: owned by one thread."""

    def __init__(self, engine, trt, cudart, meta, use_graphs: bool):
        self.trt, self.cudart, self.meta = trt, cudart, meta
        self.ctx = engine.create_execution_context()
        self.stream = cuda_call(cudart.cudaStreamCreate())
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtype = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in names}
        self.buffers: dict[int, dict] = {}  # batch size -> host/device buffers, graph
        self.use_graphs = use_graphs

    def _alloc(self, b: int) -> dict:
        cudart = self.cudart
        self.ctx.set_input_shape(self.meta.input_name, self.meta.input_shape(b))
        bufs = {}
        for n in self.inputs + self.outputs:
            shape = tuple(self.ctx.get_tensor_shape(n))
            nbytes = int(np.prod(shape)) * self.dtype[n].itemsize
            host_ptr = cuda_call(cudart.cudaMallocHost(nbytes))
            import ctypes

            arr = np.ctypeslib.as_array(ctypes.cast(host_ptr, ctypes.POINTER(ctypes.c_uint8)),
                                        (nbytes,)).view(self.dtype[n]).reshape(shape)
            dev = cuda_call(cudart.cudaMalloc(nbytes))
            bufs[n] = {"host_ptr": host_ptr, "host": arr, "dev": dev, "nbytes": nbytes}
            self.ctx.set_tensor_address(n, int(dev))
        entry = {"bufs": bufs, "graph": None}
        if self.use_graphs:
            entry["graph"] = self._capture(b)
        self.buffers[b] = entry
        return entry

    def _capture(self, b: int):
        """A CUDA graph of batch size ``b``; None (logged, with the reason) when capture is
        not possible: the batch then runs without a graph, which is slower, not wrong."""
        cudart = self.cudart
        capturing = False
        try:
            self.ctx.execute_async_v3(self.stream)  # warm-up: no initialisation inside the graph
            cuda_call(cudart.cudaStreamSynchronize(self.stream))
            cuda_call(cudart.cudaStreamBeginCapture(
                self.stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal))
            capturing = True
            ok = self.ctx.execute_async_v3(self.stream)
            graph = cuda_call(cudart.cudaStreamEndCapture(self.stream))
            capturing = False
            if not ok:
                log.warning("tensorrt: no CUDA graph for batch %d (execute_async_v3 failed "
                            "during capture); that batch size runs without one", b)
                return None
            return cuda_call(cudart.cudaGraphInstantiate(graph, 0))
        except Exception as e:
            if capturing:  # leave the stream usable for plain execution
                try:
                    cudart.cudaStreamEndCapture(self.stream)
                except Exception:
                    log.debug("tensorrt: ending the failed capture failed too", exc_info=True)
            log.warning("tensorrt: no CUDA graph for batch %d (%s: %s); that batch size runs "
                        "without one", b, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            return None

    def run(self, x: np.ndarray) -> np.ndarray:
        cudart = self.cudart
        b = x.shape[0]
        entry = self.buffers.get(b) or self._alloc(b)
        bufs = entry["bufs"]
        # by name: a model may have more outputs than the probabilities (``embedding``)
        inp, out = bufs[self.meta.input_name], bufs[self.meta.output_name]
        np.copyto(inp["host"], x.astype(inp["host"].dtype, copy=False))
        H2D, D2H = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cuda_call(cudart.cudaMemcpyAsync(inp["dev"], inp["host_ptr"], inp["nbytes"], H2D, self.stream))
        if entry["graph"] is not None:
            cuda_call(cudart.cudaGraphLaunch(entry["graph"], self.stream))
        else:
            self.ctx.set_input_shape(self.meta.input_name, self.meta.input_shape(b))
            for n, bf in bufs.items():
                self.ctx.set_tensor_address(n, int(bf["dev"]))
            if not self.ctx.execute_async_v3(self.stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
        cuda_call(cudart.cudaMemcpyAsync(out["host_ptr"], out["dev"], out["nbytes"], D2H, self.stream))
        cuda_call(cudart.cudaStreamSynchronize(self.stream))
        return out["host"].copy()

    def release(self) -> None:
        cudart = self.cudart
        for entry in self.buffers.values():
            if entry["graph"] is not None:
                cudart.cudaGraphExecDestroy(entry["graph"])
            for bf in entry["bufs"].values():
                cudart.cudaFree(bf["dev"])
                cudart.cudaFreeHost(bf["host_ptr"])
        self.buffers.clear()
        cudart.cudaStreamDestroy(self.stream)
        del self.ctx


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, model: LoadedModel, precision: str = "fp16", store: PlanStore | None = None,
                 build_on_load: bool = False, cuda_graphs: bool = True, progress=None):
        why = unavailable_reason()
        if why is not None:
            raise BackendUnavailable(f"TensorRT backend: {why}")
        self.trt = _import_trt()
        self.cudart = _import_cuda()
        self.model, self.precision = model, precision
        self.store = store or PlanStore()
        self.key = plan_key(model, precision)
        data, why = self.store.load(self.key)
        if data is None:
            if not build_on_load:
                raise BackendUnavailable(
                    f"no TensorRT plan for this model on this GPU ({why}); build it ahead of the "
                    "exam with `ceustream engine build`")
            data, self.key, _ = build_plan(model, precision, self.store, progress)
        self.logger = self.trt.Logger(self.trt.Logger.WARNING)
        self.runtime = self.trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            self.store.invalidate(self.key)  # corrupt or incompatible: rebuilt next time
            raise BackendUnavailable("TensorRT could not deserialise the cached plan; it was "
                                     "removed, rebuild it with `ceustream engine build`")
        self.cuda_graphs = cuda_graphs
        self._local = threading.local()
        self._contexts: list[_Context] = []
        self._lock = threading.Lock()

    def _ctx(self) -> _Context:
        c = getattr(self._local, "ctx", None)
        if c is None:
            c = _Context(self.engine, self.trt, self.cudart, self.model.meta, self.cuda_graphs)
            self._local.ctx = c
            with self._lock:
                self._contexts.append(c)
        return c

    def warmup(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        for b in batch_sizes:
            self.infer(np.zeros(self.model.meta.input_shape(b), np.float32))

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if not 1 <= batch.shape[0] <= PROFILE[2]:
            raise ValueError(f"batch {batch.shape[0]} outside the plan's profile 1..{PROFILE[2]}")
        return positive_probability(self._ctx().run(batch), self.model)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "precision": self.precision, "device": self.key.gpu_name,
                "version": self.trt.__version__, "plan_key": self.key.digest}

    def close(self) -> None:
        # reverse order of creation: contexts, engine, runtime (tensorrt.md, pitfall 1)
        with self._lock:
            for c in reversed(self._contexts):
                c.release()
            self._contexts.clear()
        self.engine = None
        self.runtime = None
