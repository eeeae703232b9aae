"""Issue 5 benchmark 1: the backends side by side in one run, batch 1 and 8, p50/p99 after a
warm-up, with the ratio to the best CPU path, a table, JSON and a PNG plot.

CPU: PyTorch eager FP32 (the same 3D-CNN architecture; speed does not depend on the weights),
ONNX Runtime FP32 and FP16 (the shipped files). GPU, when present: PyTorch CUDA FP32/FP16,
TensorRT FP32/FP16 (plans built on the spot into a temporary cache).

    python -m ceustream.benchmarks.backends [--iters 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np

from .common import out_dir, summary, table, write


def timeit(fn, x, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn(x)
    out = []
    for _ in range(iters):
        t = time.perf_counter_ns()
        fn(x)
        out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args(argv)
    from ceustream.engine.backends.onnxruntime import OnnxRuntimeBackend
    from ceustream.engine.backends.tensorrt import unavailable_reason
    from ceustream.engine.core.modelmeta import read, shipped_model_path

    model = read(shipped_model_path())
    rng = np.random.default_rng(0)
    paths: dict[str, object] = {}
    notes = []
    paths["ONNX Runtime CPU FP32"] = OnnxRuntimeBackend(model).infer
    try:
        paths["ONNX Runtime CPU FP16"] = OnnxRuntimeBackend(model, precision="fp16").infer
    except Exception as e:  # noqa: BLE001
        notes.append(f"ONNX Runtime FP16 did not run: {e}")
    cuda = False
    try:
        import torch

        from ceustream.models.networks import CNN3D, WithSoftmax

        net = WithSoftmax(CNN3D()).eval()
        torch.set_num_threads(max(1, torch.get_num_threads()))

        def torch_cpu(x):
            with torch.inference_mode():
                return net(torch.from_numpy(x)).numpy()

        paths["PyTorch eager CPU FP32"] = torch_cpu
        if torch.cuda.is_available():
            from .onnx_torch import TorchFromOnnx

            cuda = True
            # the shipped weights, op by op on the GPU (as the parity check runs them)
            paths["PyTorch CUDA FP32"] = TorchFromOnnx(model.path, "cuda", "float32")
            paths["PyTorch CUDA FP16"] = TorchFromOnnx(model.path, "cuda", "float16")
    except ImportError:
        notes.append("PyTorch not installed: eager baselines skipped")
    why = unavailable_reason()
    if why is None:
        from ceustream.engine.backends.plancache import PlanStore
        from ceustream.engine.backends.tensorrt import TensorRTBackend, build_plan

        store = PlanStore(tempfile.mkdtemp(prefix="ceus-trt-"))
        for prec in ("fp32", "fp16"):
            build_plan(model, prec, store, lambda s: print(s, file=sys.stderr))
            paths[f"TensorRT {prec.upper()}"] = TensorRTBackend(model, prec, store).infer
    else:
        notes.append(f"TensorRT: {why}")
    results = {}
    for name, fn in paths.items():
        results[name] = {}
        for b in (1, 8):
            x = rng.random(model.meta.input_shape(b), dtype=np.float32)
            results[name][f"batch{b}"] = summary(timeit(fn, x, args.warmup, args.iters))
    cpu = [n for n in results if "CPU" in n]
    best_cpu = min(cpu, key=lambda n: results[n]["batch1"]["p50_ms"])
    rows = []
    for name, r in results.items():
        ratio = results[best_cpu]["batch1"]["p50_ms"] / r["batch1"]["p50_ms"]
        rows.append([name, r["batch1"]["p50_ms"], r["batch1"]["p99_ms"], r["batch8"]["p50_ms"],
                     r["batch8"]["p99_ms"], ratio])
    table(f"Backends, 3D-CNN 1x30x64x64 (after {args.warmup} warm-up runs, {args.iters} timed)",
          ["backend", "b1 p50 ms", "b1 p99 ms", "b8 p50 ms", "b8 p99 ms",
           f"speed vs {best_cpu} (b1)"], rows)
    for n in notes:
        print("note: " + n)
    goals = {}
    if "PyTorch eager CPU FP32" in results:
        g = results["PyTorch eager CPU FP32"]["batch1"]["p50_ms"] / \
            results["ONNX Runtime CPU FP32"]["batch1"]["p50_ms"]
        goals["onnxruntime_vs_torch_eager_cpu_b1"] = g
        print(f"ONNX Runtime CPU is {g:.2f}x faster than PyTorch eager at batch 1 (goal >= 4x)")
    _plot(results, out_dir() / "backends.png")
    write("backends", {"results": results, "best_cpu": best_cpu, "notes": notes,
                       "gpu": cuda, "goals": goals})
    return 0


def _plot(results: dict, path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib not installed: no plot")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.5), dpi=110)
    y = np.arange(len(names))
    for k, (b, col) in enumerate((("batch1", "#3b7dd8"), ("batch8", "#e59a2f"))):
        p50 = [results[n][b]["p50_ms"] for n in names]
        p99 = [results[n][b]["p99_ms"] for n in names]
        ax.barh(y + (k - 0.5) * 0.38, p50, 0.36, color=col, label=f"{b} p50")
        ax.errorbar(p99, y + (k - 0.5) * 0.38, fmt="|", color="k", ms=10, label="p99 (tick)" if k == 0 else None)
    ax.set_yticks(y, names)
    ax.set_xscale("log")
    ax.set_xlabel("milliseconds per call (log scale)")
    ax.set_title("3D-CNN inference per backend")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
