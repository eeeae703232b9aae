"""``ceustream export CHECKPOINT --out model.onnx``: ONNX (+ FP16) with the model's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ceustream.engine.core.errors import InputError, UsageError

from . import common


def add_parser(sub) -> None:
    p = common.command(sub, "export", "checkpoint -> ONNX (+ FP16) with metadata")
    p.add_argument("checkpoint", help="checkpoint.pt written by `ceustream train`")
    p.add_argument("--out", required=True, help="model.onnx (model_fp16.onnx is written beside it)")
    p.add_argument("--trained-on", default="simulated",
                   choices=["real", "simulated", "untrained"],
                   help="what the weights were trained on (shown with every score; default "
                   "simulated, as `ceustream train` trains on the simulator unless given --data "
                   "of real exams)")


def run(args) -> int:
    from .train import need_torch

    need_torch()
    import torch

    from ceustream.engine.core.modelmeta import ModelMeta
    from ceustream.models import export as ex
    from ceustream.models.networks import NETWORKS_3D, build

    ck = Path(args.checkpoint)
    if not ck.is_file():
        raise InputError(f"{ck}: file not found")
    try:
        state = torch.load(ck, weights_only=False, map_location="cpu")
        conf = state["config"]
        net = build(conf["network"], **conf.get("net_kwargs", {}))
        net.load_state_dict(state["best_state"] or state["net"])
    except Exception as e:
        raise InputError(f"{ck}: not a ceustream training checkpoint ({type(e).__name__}: {e})") from None
    if conf["network"] not in NETWORKS_3D:
        raise UsageError(f"{conf['network']} is a 2D B-mode baseline; only 3D clip models are "
                         "served by the engine")
    meta = ModelMeta(name=conf["network"], trained_on=args.trained_on,
                     provenance={"checkpoint": ck.name, "epochs_run": state["epoch"] + 1})
    paths = ex.to_onnx(net, meta, Path(args.out))
    x = np.random.default_rng(0).random((4, 1, 30, 64, 64), np.float32)
    c32 = ex.compare_with_torch(net, paths["fp32"], x, 1e-4)
    c16 = ex.compare_with_torch(net, paths["fp16"], x, 1e-2)
    print(json.dumps({"fp32": str(paths["fp32"]), "fp16": str(paths["fp16"]),
                      "max_abs_diff_fp32": c32["max_abs_diff"],
                      "max_abs_diff_fp16": c16["max_abs_diff"]}))
    if not (c32["ok"] and c16["ok"]):
        raise InputError("export: ONNX Runtime output differs from PyTorch beyond tolerance")
    return 0
