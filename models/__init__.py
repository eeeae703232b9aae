"""Models: the paper's six networks (PyTorch, the ``train`` extra), the CEUS simulator
(NumPy/OpenCV only), training, ONNX export, metrics, and the shipped weights in
``weights/``. Importing this package does not import torch."""
