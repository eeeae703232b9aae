"""ceustream engine, in layers that import one way (DESIGN.md, checked by import-linter):

- ``core``: schedule, sampler, clip buffer, arrival detection, ROI, model metadata, config,
  manifest rows, errors, the ``FrameSource`` protocol (NumPy/OpenCV only);
- ``wire``: ZeroMQ message building/validation (+ JSON Schema files), publisher, control, CURVE;
- ``backends``: the inference backends' registry (ONNX Runtime, TensorRT);
- ``app``: the use cases (exam session, replay, live engine, QA, journal, demo);
- ``cli``: one module per command.
"""

from .core import DISCLAIMER, __version__  # noqa: F401
