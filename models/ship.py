"""How the shipped weights are made (``python -m ceustream.models.ship``): train the 3D-CNN on a
simulated cohort, evaluate it on a held-out cohort from a seed never used in training, export
FP32 and FP16 ONNX with the metadata, and write the model card. Deterministic in its seeds."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

TRAIN_SEED, VAL_SEED, TEST_SEED = 1001, 1002, 2024


def subgroup_auc(cohort, p) -> dict:
    """AUC of each LI-RADS pattern group against all of the other class (the exceptions)."""
    from .metrics import roc_auc

    out = {}
    y = cohort.labels
    for lab, name in ((1, "HCC"), (0, "non-HCC")):
        for key, values in (("pattern", cohort.patterns), ("washout", cohort.washouts)):
            for v in sorted(set(values[i] for i in np.flatnonzero(y == lab))):
                idx = np.flatnonzero((y == lab) & (np.array(values) == v))
                other = np.flatnonzero(y != lab)
                sel = np.concatenate([idx, other])
                auc = roc_auc(y[sel], p[sel])
                out[f"{name} {key}={v}"] = {"n": int(len(idx)), "auc_vs_other_class": round(auc, 3)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ceustream.models.ship")
    ap.add_argument("--out", default="models/weights")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--test", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--work", default="runs/ship")
    args = ap.parse_args(argv)

    import torch

    from ceustream.engine.core.modelmeta import ModelMeta

    from . import export, metrics, train
    from .simulator.cohort import make_cohort

    t = time.monotonic()
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    say(f"simulating cohorts: train {args.train} (seed {TRAIN_SEED}), val {args.val} "
        f"(seed {VAL_SEED}), test {args.test} (seed {TEST_SEED})")
    # training and validation clips vary as recordings do (smoothing, codec loss, t0 error);
    # the held-out cohort is scored both pristine and varied
    tr = make_cohort(args.train, TRAIN_SEED, varied=True)
    va = make_cohort(args.val, VAL_SEED, varied=True)
    te = make_cohort(args.test, TEST_SEED)
    te_var = make_cohort(args.test, TEST_SEED, varied=True)
    cfg = train.TrainConfig(network="cnn3d", epochs=args.epochs, batch=16, lr=1e-4, seed=0)
    net, hist = train.fit(tr.clips, tr.labels, va.clips, va.labels, cfg, args.work, resume=True,
                          log=say)
    p = train.predict(net, te.clips, True)
    ev = metrics.evaluate(te.labels, p, 0.5, n_boot=2000)
    ev["subgroups"] = subgroup_auc(te, p)
    p_var = train.predict(net, te_var.clips, True)
    ev_var = metrics.evaluate(te_var.labels, p_var, 0.5, n_boot=2000)
    ev_var["subgroups"] = subgroup_auc(te_var, p_var)
    ev_var["label_agreement_with_pristine"] = float(((p > 0.5) == (p_var > 0.5)).mean())
    for what, e in (("pristine", ev), ("as recorded (varied)", ev_var)):
        say(f"held-out ROC AUC, {what}: {e['metrics']['ROC_AUC']:.4f} "
            f"(95% CI {e['ci95']['ROC_AUC'][0]:.3f}-{e['ci95']['ROC_AUC'][1]:.3f})")
    out = Path(args.out)
    meta = ModelMeta(
        name="cnn3d", trained_on="simulated",
        provenance={"data": "ceustream CEUS simulator (models/simulator), no patient data",
                    "train": {"n": args.train, "seed": TRAIN_SEED, "hcc_fraction": 0.5,
                              "acquisition": "varied (blur 0-1.2 px, JPEG 30-90 on half, "
                                             "t0 error +-1 s)"},
                    "val": {"n": args.val, "seed": VAL_SEED, "acquisition": "varied"},
                    "test": {"n": args.test, "seed": TEST_SEED},
                    "protocol": "Adam 1e-4, batch 16, cross-entropy, best val AUC of "
                                f"{args.epochs} epochs", "torch": torch.__version__},
        metrics={"test": {k: round(v, 4) for k, v in ev["metrics"].items()},
                 "test_ci95": ev["ci95"],
                 "test_varied": {k: round(v, 4) for k, v in ev_var["metrics"].items()},
                 "test_varied_ci95": ev_var["ci95"]})
    paths = export.to_onnx(net, meta, out / "cnn3d.onnx")
    chk32 = export.compare_with_torch(net, paths["fp32"], te.clips[:64, None].astype(np.float32) / 255, 1e-4)
    chk16 = export.compare_with_torch(net, paths["fp16"], te.clips[:64, None].astype(np.float32) / 255, 1e-2)
    report = {"evaluation": ev, "evaluation_varied": ev_var, "history": hist, "onnx_vs_torch_fp32": chk32,
              "onnx_vs_torch_fp16": chk16, "minutes": round((time.monotonic() - t) / 60, 1)}
    Path(args.work).mkdir(parents=True, exist_ok=True)
    (Path(args.work) / "report.json").write_text(json.dumps(report, indent=1))
    metrics.plot_roc({"3D-CNN, held-out simulated, pristine": (te.labels, p),
                      "3D-CNN, held-out simulated, as recorded": (te_var.labels, p_var)},
                     Path(args.work) / "roc.png", "Shipped 3D-CNN, held-out simulated cohort")
    say(json.dumps({"auc": ev["metrics"]["ROC_AUC"], "ci": ev["ci95"]["ROC_AUC"],
                    "auc_varied": ev_var["metrics"]["ROC_AUC"],
                    "fp32": chk32, "fp16": chk16}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
