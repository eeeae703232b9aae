"""PyTorch → ONNX (opset 17, dynamic batch) with the ceustream metadata, plus the FP16
sibling for TensorRT 11 (precision in the graph; softmax and the classifier head kept FP32,
I/O kept FP32), as ``<name>_fp16.onnx`` next to the FP32 file."""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ceustream.engine.core.errors import InputError
from ceustream.engine.core.modelmeta import ModelMeta, write

log = logging.getLogger(__name__)

OPSET = 17


def weights_sha256(net) -> str:
    h = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def to_onnx(net, meta: ModelMeta, out: str | Path, fp16: bool = True) -> dict[str, Path]:
    """Writes ``out`` (FP32) and, with ``fp16``, ``<stem>_fp16.onnx``. Returns their paths.
    Nothing is left half-written: files are written to a temporary name and renamed."""
    import onnx
    import torch

    from .networks import WithSoftmax

    out = Path(out)
    if out.suffix != ".onnx":
        raise InputError(f"export: output {out} must end in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval()
    wrapped = WithSoftmax(net).eval()
    x = torch.zeros(meta.input_shape(1))
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(wrapped, (x,), buf, input_names=[meta.input_name],
                          output_names=[meta.output_name], opset_version=OPSET,
                          dynamic_axes={meta.input_name: {0: "batch"}, meta.output_name: {0: "batch"}},
                          dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    add_embedding_output(model)  # core.domain's out-of-distribution check reads it
    prov = dict(meta.provenance)
    prov["weights_sha256"] = weights_sha256(net)
    meta = replace(meta, provenance=prov)
    write(model, meta)
    onnx.checker.check_model(model)
    paths = {"fp32": out}
    atomic_save(model, out)
    if fp16:
        half = fp16_model(model)
        write(half, replace(meta, provenance={**prov, "precision": "fp16",
                                              "fp32_sibling": out.name}))
        p16 = out.with_name(out.stem + "_fp16.onnx")
        atomic_save(half, p16)
        paths["fp16"] = p16
    return paths


def atomic_save(model, path: Path) -> None:
    import onnx

    tmp = path.with_suffix(".onnx.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    log.info("model written: %s (%d bytes)", path, path.stat().st_size)


def fp16_model(model):
    """FP16 weights and activations for the convolutional body; the last Gemm/MatMul layers
    (the classifier head) and Softmax stay FP32, as do the graph's inputs and outputs."""
    from onnxconverter_common import float16

    nodes = list(model.graph.node)
    head: list[str] = []
    # the head: everything from the first Flatten/GlobalAveragePool/ReduceMean onwards
    start = None
    for i, n in enumerate(nodes):
        if n.op_type in ("Flatten", "GlobalAveragePool", "ReduceMean") and start is None:
            start = i
    if start is not None:
        head = [n.name for n in nodes[start:]]
    return float16.convert_float_to_float16(model, keep_io_types=True,
                                           op_block_list=["Softmax"], node_block_list=head)


def compare_with_torch(net, onnx_path: Path, clips: np.ndarray, tol: float) -> dict[str, Any]:
    """Max |ONNX Runtime - PyTorch| of P(HCC) on ``clips`` (N, 1, D, H, W)."""
    import onnxruntime as ort
    import torch

    from .networks import WithSoftmax

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    with torch.no_grad():
        ref = WithSoftmax(net.eval())(torch.from_numpy(clips)).numpy()[:, 1]
    got = np.concatenate([sess.run(None, {name: clips[i:i + 16]})[0][:, 1]
                          for i in range(0, len(clips), 16)])
    err = float(np.abs(got - ref).max())
    return {"max_abs_diff": err, "tolerance": tol, "ok": err <= tol, "n": int(len(clips))}


EMBEDDING = "embedding"


def add_embedding_output(model, name: str = EMBEDDING):
    """Adds the graph output ``name`` to an in-memory ``onnx.ModelProto``: the channel means
    of the feature map the classifier head reads (the input of the first Flatten /
    GlobalAveragePool / ReduceMean), (batch, channels). The probabilities are untouched (the
    same nodes compute them); ``core.domain`` measures how far a clip is from the training
    clips in these numbers. A no-op when the output exists."""
    import onnx
    from onnx import helper

    if any(o.name == name for o in model.graph.output):
        return model
    head = next((n for n in model.graph.node
                 if n.op_type in ("Flatten", "GlobalAveragePool", "ReduceMean")), None)
    if head is None:
        raise InputError("export: no Flatten/GlobalAveragePool/ReduceMean node: cannot find "
                         "the feature map for the embedding output")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if opset >= 18:
        axes = helper.make_tensor(name + "_axes", onnx.TensorProto.INT64, [3], [2, 3, 4])
        model.graph.initializer.append(axes)
        node = helper.make_node("ReduceMean", [head.input[0], axes.name], [name], keepdims=0,
                                name=name + "_mean")
    else:
        node = helper.make_node("ReduceMean", [head.input[0]], [name], axes=[2, 3, 4],
                                keepdims=0, name=name + "_mean")
    model.graph.node.append(node)
    model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                            ["batch", None]))
    return model
