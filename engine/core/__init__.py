"""The framework-free core: schedule, sampler, clip ring, arrival detection, ROI, model
metadata, configuration, manifest rows, errors and the ``FrameSource`` protocol.

NumPy and OpenCV only: no GStreamer, ZeroMQ, ONNX Runtime or PyTorch is imported here (an
import-linter contract in ``pyproject.toml`` checks it), so everything in this package runs
and is tested anywhere.
"""

__version__ = "0.2.0"

#: Shown with every score, in every output: the shipped weights never saw a patient.
DISCLAIMER = "Model trained on simulated data only; not a medical device, not for diagnosis."
