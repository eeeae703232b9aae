"""Runs the shipped ONNX file's own weights in PyTorch (CPU or CUDA), op by op, for the GPU
parity check on machines that have PyTorch and a GPU but no GPU runtime for ONNX (no
TensorRT, no onnxruntime-gpu). Supports the ops our 3D networks export to."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class TorchFromOnnx:
    OPS = {"Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Softmax", "Cast", "Add",
           "BatchNormalization", "GlobalAveragePool", "Concat", "Identity"}

    def __init__(self, path: str | Path, device: str = "cpu", dtype: str = "float32"):
        import onnx
        import torch
        from onnx import numpy_helper

        m = onnx.load(str(path))
        bad = {n.op_type for n in m.graph.node} - self.OPS
        if bad:
            raise ValueError(f"{Path(path).name}: ops not supported here: {sorted(bad)}")
        self.torch = torch
        self.dtype = getattr(torch, dtype)
        self.device = device
        self.params = {i.name: torch.from_numpy(numpy_helper.to_array(i).astype(np.float32))
                       .to(device, self.dtype) for i in m.graph.initializer}
        self.nodes = list(m.graph.node)
        self.input = m.graph.input[0].name
        self.output = m.graph.output[0].name

    @staticmethod
    def _attrs(node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        F = torch.nn.functional
        v = {self.input: torch.from_numpy(np.ascontiguousarray(x)).to(self.device, self.dtype)}
        v.update(self.params)
        with torch.inference_mode():
            for n in self.nodes:
                a = self._attrs(n)
                i = [v[name] for name in n.input if name]
                if n.op_type == "Conv":
                    pads = a.get("pads", [0] * 6)
                    k = len(pads) // 2
                    conv = F.conv3d if k == 3 else F.conv2d
                    y = conv(i[0], i[1], i[2] if len(i) > 2 else None,
                             stride=a.get("strides", 1), padding=tuple(pads[:k]),
                             dilation=a.get("dilations", 1), groups=a.get("group", 1))
                elif n.op_type == "Relu":
                    y = F.relu(i[0])
                elif n.op_type == "MaxPool":
                    pads = a.get("pads", [0] * 6)
                    k = len(pads) // 2
                    pool = F.max_pool3d if k == 3 else F.max_pool2d
                    y = pool(i[0], a["kernel_shape"], a.get("strides"), tuple(pads[:k]),
                             ceil_mode=bool(a.get("ceil_mode", 0)))
                elif n.op_type == "Flatten":
                    y = torch.flatten(i[0], a.get("axis", 1))
                elif n.op_type == "Gemm":
                    w = i[1].t() if a.get("transB", 0) else i[1]
                    y = i[0] @ w * a.get("alpha", 1.0) + (i[2] * a.get("beta", 1.0) if len(i) > 2 else 0)
                elif n.op_type == "Softmax":
                    y = torch.softmax(i[0].float(), a.get("axis", -1)).to(self.dtype)
                elif n.op_type == "Add":
                    y = i[0] + i[1]
                elif n.op_type == "BatchNormalization":
                    y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a.get("epsilon", 1e-5))
                elif n.op_type == "GlobalAveragePool":
                    y = i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True)
                elif n.op_type == "Concat":
                    y = torch.cat(i, a["axis"])
                else:  # Cast, Identity: this runner keeps one dtype throughout
                    y = i[0]
                v[n.output[0]] = y
            return v[self.output].float().cpu().numpy()
