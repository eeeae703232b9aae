#!/usr/bin/env bash
# The GPU check: one command, no network, well under 5 minutes on a GPU machine.
#   bash benchmarks/gpu_check.sh            (writes to $OUT, else benchmarks/results/gpu)
# Detects TensorRT (wheels carried in .whl/ are installed first) or its absence, checks GPU
# scores against ONNX Runtime on the CPU for the shipped model, and runs the backends
# benchmark with whatever GPU runtimes exist. Needs python3 with numpy, onnxruntime and
# (for the GPU rows) PyTorch with CUDA; GStreamer is not needed. PYTHON=... picks the interpreter.
set -u
cd "$(dirname "$0")/.."
dest=${OUT:-benchmarks/results/gpu}
mkdir -p "$dest"
if ls .whl/*.whl >/dev/null 2>&1; then
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# ceustream.* straight from the source tree, without installing it
shim=$(mktemp -d)
mkdir -p "$shim/ceustream"
for d in engine models benchmarks pipelines; do ln -s "$PWD/$d" "$shim/ceustream/$d"; done
export PYTHONPATH=$shim${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || echo "no nvidia-smi") \
  > "$dest/nvidia-smi.txt" 2>&1
timeout 280 "${PYTHON:-python3}" -m ceustream.benchmarks.gpu_check --out "$dest" 2>&1 | tee "$dest/log.txt"
exit "${PIPESTATUS[0]}"
