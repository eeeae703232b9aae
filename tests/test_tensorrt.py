"""The TensorRT backend: everything around the TensorRT calls is tested here (plan keys, the
plan store, stale/foreign/corrupt plans, the fallback choice, batches); the TensorRT calls
themselves are real tests that skip, saying why, where there is no GPU or TensorRT."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from ceustream.engine.backends import create, positive_probability
from ceustream.engine.backends.plancache import PROFILE, PlanKey, PlanStore
from ceustream.engine.backends.tensorrt import unavailable_reason
from ceustream.engine.core.errors import BackendUnavailable
from ceustream.engine.core.modelmeta import read, shipped_model_path

from conftest import run_cli

KEY = PlanKey("ab" * 32, "10.16.0", "NVIDIA H100 80GB HBM3", "9.0", "fp16", PROFILE)
TRT_WHY = unavailable_reason()
needs_trt = pytest.mark.skipif(TRT_WHY is not None, reason=f"no TensorRT here: {TRT_WHY}")


def test_plan_key_changes_with_everything_a_plan_depends_on():
    seen = {KEY.digest}
    for field, value in (("onnx_sha256", "cd" * 32), ("trt_version", "11.1.0"),
                         ("gpu_name", "NVIDIA L4"), ("compute_capability", "8.9"),
                         ("precision", "fp32"), ("profile", (1, 4, 16)), ("os", "Linux-aarch64")):
        seen.add(replace(KEY, **{field: value}).digest)
    assert len(seen) == 8
    assert KEY.digest == PlanKey(*[getattr(KEY, f) for f in KEY.__dataclass_fields__]).digest


def test_plan_store_round_trip(tmp_path):
    store = PlanStore(tmp_path)
    assert store.load(KEY) == (None, "no cached plan")
    store.save(KEY, b"PLAN" * 100, 12.3)
    data, why = store.load(KEY)
    assert data == b"PLAN" * 100 and why == "cached plan matches"
    meta = json.loads((store.path(KEY) / "plan.json").read_text())
    assert meta["trt_version"] == "10.16.0" and meta["build_s"] == 12.3


def test_a_plan_for_another_gpu_or_version_is_refused(tmp_path):
    store = PlanStore(tmp_path)
    store.save(KEY, b"PLAN", 1.0)
    # someone copied a plan built elsewhere into this machine's slot
    meta_p = store.path(KEY) / "plan.json"
    meta = json.loads(meta_p.read_text())
    meta["compute_capability"] = "8.6"
    meta_p.write_text(json.dumps(meta))
    data, why = store.load(KEY)
    assert data is None and "compute_capability" in why
    meta["compute_capability"], meta["trt_version"] = "9.0", "10.0.1"
    meta_p.write_text(json.dumps(meta))
    data, why = store.load(KEY)
    assert data is None and "trt_version" in why


def test_a_corrupt_plan_is_refused(tmp_path):
    store = PlanStore(tmp_path)
    store.save(KEY, b"PLAN" * 10, 1.0)
    (store.path(KEY) / "plan.bin").write_bytes(b"PLAN" * 9 + b"XXXX")
    data, why = store.load(KEY)
    assert data is None and "corrupt" in why
    (store.path(KEY) / "plan.json").write_text("{not json")
    assert store.load(KEY)[0] is None
    store.invalidate(KEY)
    assert store.load(KEY) == (None, "no cached plan")


def test_auto_falls_back_to_the_cpu_and_says_why():
    if TRT_WHY is None:
        pytest.skip("TensorRT is usable here; the fallback is not taken")
    m = read(shipped_model_path())
    be, why = create("auto", m)
    assert be.name == "onnxruntime" and why.startswith("CPU fallback:")
    with pytest.raises(BackendUnavailable):
        create("tensorrt", m)


def test_batches_score_like_single_exams():
    m = read(shipped_model_path())
    be, _ = create("onnxruntime", m)
    rng = np.random.default_rng(0)
    x = rng.random((8, 1, 30, 64, 64), dtype=np.float32)
    batch = be.infer(x)
    singles = np.array([be.infer(x[i:i + 1])[0] for i in range(8)])
    assert batch.shape == (8,) and np.allclose(batch, singles, atol=1e-5)


def test_logit_models_are_turned_into_probabilities():
    m = read(shipped_model_path())
    lm = replace(m, meta=replace(m.meta, output_kind="logits"))
    p = positive_probability(np.array([[0.0, 0.0], [0.0, np.log(3.0)]]), lm)
    assert p == pytest.approx([0.5, 0.75])


def test_engine_info_reports_the_state_without_a_gpu(env):
    p = run_cli(["engine", "info"], env)
    assert p.returncode == 0
    info = json.loads(p.stdout)
    assert "tensorrt" in info and "cache" in info
    if TRT_WHY is not None:
        r = run_cli(["engine", "build"], env)
        assert r.returncode == 5 and "engine build" in r.stderr


@needs_trt
def test_tensorrt_fp16_matches_onnx_runtime(tmp_path):
    from ceustream.engine.backends.tensorrt import TensorRTBackend, build_plan
    from ceustream.models.simulator.cohort import make_cohort

    m = read(shipped_model_path())
    store = PlanStore(tmp_path)
    build_plan(m, "fp16", store)
    trt_be = TensorRTBackend(m, "fp16", store)
    cpu, _ = create("onnxruntime", m)
    x = make_cohort(64, 99).clips[:, None].astype(np.float32) / 255.0
    for b in (1, 8):
        a = np.concatenate([trt_be.infer(x[i:i + b]) for i in range(0, 64, b)])
        c = np.concatenate([cpu.infer(x[i:i + b]) for i in range(0, 64, b)])
        assert np.abs(a - c).max() < 0.01
    d = trt_be.describe()
    assert d["precision"] == "fp16" and d["plan_key"]
    trt_be.close()
    # the cached plan is reused, not rebuilt
    assert store.load(trt_be.key)[1] == "cached plan matches"


def test_a_failed_cuda_graph_capture_is_logged_and_the_stream_released(caplog):
    """A stand-in for the GPU only (CUDA and the execution context): the capture fails inside
    BeginCapture/EndCapture; the batch size runs without a graph, and the log says why."""
    from types import SimpleNamespace

    from ceustream.engine.backends.tensorrt import _Context

    calls = []

    class Cudart:
        cudaStreamCaptureMode = SimpleNamespace(cudaStreamCaptureModeThreadLocal=2)

        def cudaStreamSynchronize(self, s):
            return (0,)

        def cudaStreamBeginCapture(self, s, mode):
            calls.append("begin")
            return (0,)

        def cudaStreamEndCapture(self, s):
            calls.append("end")
            return (0, "graph")

    runs = iter([True, RuntimeError("illegal operation during capture")])

    def execute(stream):
        r = next(runs)
        if isinstance(r, Exception):
            raise r
        return r

    c = object.__new__(_Context)
    c.cudart, c.stream = Cudart(), "stream"
    c.ctx = SimpleNamespace(execute_async_v3=execute)
    with caplog.at_level("WARNING", logger="ceustream.engine.backends.tensorrt"):
        assert c._capture(4) is None
    assert calls == ["begin", "end"]
    assert "no CUDA graph for batch 4 (RuntimeError: illegal operation during capture)" \
        in caplog.text
