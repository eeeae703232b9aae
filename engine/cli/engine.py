"""``ceustream engine build|info``: TensorRT plans built ahead of time (an exam never waits)."""

from __future__ import annotations

import json
import logging

from ceustream.engine.core.errors import BackendUnavailable

from . import common

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = common.command(sub, "engine", "TensorRT engine plans", codes=(0, 1, 2, 3, 5),
                       description="TensorRT engine plans: `build` builds (or confirms) the plan "
                       "for this GPU, TensorRT version and model; `info` says whether TensorRT "
                       "can run here and what is cached")
    p.add_argument("action", choices=["build", "info"], help="build the plan, or print what is known")
    p.add_argument("--onnx", help="the model (default: the shipped 3D-CNN; its _fp16 sibling "
                   "is used for fp16)")
    p.add_argument("--precision", default="fp16", choices=["fp16", "fp32"],
                   help="plan precision (default fp16)")
    p.add_argument("--cache", help="plan folder (default ~/.cache/ceustream/trt)")


def run(args) -> int:
    from ceustream.engine.backends.plancache import PlanStore
    from ceustream.engine.backends.tensorrt import build_plan, plan_key, unavailable_reason
    from ceustream.engine.core.modelmeta import read, shipped_model_path

    model = read(args.onnx or shipped_model_path())
    store = PlanStore(args.cache)
    why = unavailable_reason()
    if args.action == "info":
        info = {"tensorrt": why or "usable", "cache": str(store.root)}
        if why is None:
            key = plan_key(model, args.precision)
            info["plan_key"] = key.describe()
            info["cached"] = store.load(key)[1]
        print(json.dumps(info, indent=1))
        return 0
    if why is not None:
        raise BackendUnavailable(f"engine build: {why}")
    key = plan_key(model, args.precision)
    data, reason = store.load(key)
    if data is not None:
        print(f"plan already built and valid: {store.path(key)}")
        return 0
    log.info("building because: %s", reason)
    build_plan(model, args.precision, store, log.info)
    print(f"plan built: {store.path(key)}")
    return 0
