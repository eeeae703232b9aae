#!/usr/bin/env bash
# The GPU check: one command, no network, well under 5 minutes on a GPU machine (plus the
# issue-13 capacity run, up to CAPACITY_TIMEOUT=900 s; CAPACITY=0 skips it).
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
rc=${PIPESTATUS[0]}
# Issue 13: many live sources into one TensorRT engine (needs GStreamer, PyGObject, the
# ceusgate plugin and a 720p recording it makes once; several minutes). CAPACITY=0 skips it.
if [ "${CAPACITY:-1}" != 0 ]; then
  if command -v gst-launch-1.0 >/dev/null && "${PYTHON:-python3}" -c "import gi" 2>/dev/null; then
    CEUSTREAM_BENCH_DIR="$dest" timeout "${CAPACITY_TIMEOUT:-900}" "${PYTHON:-python3}" \
      -m ceustream.benchmarks.capacity --backend tensorrt --sizes 720p,1080p \
      --levels "${CAPACITY_LEVELS:-1,4,8,16,24}" 2>&1 | tee "$dest/capacity_log.txt"
  else
    echo "capacity (issue 13): skipped, no GStreamer/PyGObject here" | tee "$dest/capacity_log.txt"
  fi
fi
exit "$rc"
