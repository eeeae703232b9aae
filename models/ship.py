"""How the shipped weights are made: ``python -m ceustream.models.ship``.

Trains the 3D-CNN by the recipe (``models.recipe``: liver-rank input, every augmentation) on
clips of BOTH renderers (``models.cohorts``: renderer A = ``models/simulator``, renderer B =
``models/renderer_b``), fits the TIC model and the out-of-distribution reference beside it,
evaluates everything on held-out patients of each renderer (seeds never used in training),
exports FP32 and FP16 ONNX with the metadata, and writes ``report.json`` and the ROC plot to
``--work``. The model card's numbers come from this report and from
``python -m ceustream.benchmarks.cross_renderer`` (train on one renderer, test on the other,
through clips and through the engine); ``--card`` rewrites ``MODEL_CARD.md`` from both.
Deterministic in its seeds; cohorts are cached in ``--work``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("ceustream.models.ship")


def subgroup_auc(labels, names, p) -> dict:
    """AUC of each pattern/washout group of a class against all of the other class."""
    from .metrics import roc_auc

    out = {}
    y = np.asarray(labels)
    for lab, cls in ((1, "HCC"), (0, "non-HCC")):
        for key, values in names.items():
            values = np.asarray(values)
            for v in sorted(set(values[y == lab])):
                idx = np.flatnonzero((y == lab) & (values == v))
                sel = np.concatenate([idx, np.flatnonzero(y != lab)])
                out[f"{cls} {key}={v}"] = {"n": int(len(idx)),
                                          "auc_vs_other_class": round(roc_auc(y[sel], p[sel]), 3)}
    return out


def fp16_agreement(paths: dict, meta, clips: dict) -> dict:
    """The FP16 model against the FP32 one in ONNX Runtime on held-out clips, prepared as the
    engine prepares them: max |dP(HCC)| and how often the labels agree."""
    import onnxruntime as ort

    from ceustream.engine.core.clip import normalise

    s32, s16 = (ort.InferenceSession(str(paths[k]), providers=["CPUExecutionProvider"])
                for k in ("fp32", "fp16"))
    diffs, agree, n = [], 0, 0
    for c in np.concatenate(list(clips.values())):
        x = normalise(c, meta)
        p32 = float(s32.run(None, {meta.input_name: x})[0][0, meta.positive_index])
        p16 = float(s16.run(None, {meta.input_name: x})[0][0, meta.positive_index])
        diffs.append(abs(p32 - p16))
        agree += (p32 >= meta.threshold) == (p16 >= meta.threshold)
        n += 1
    return {"max_abs_diff": round(float(np.max(diffs)), 5),
            "mean_abs_diff": round(float(np.mean(diffs)), 6),
            "label_agreement": round(agree / n, 4), "n": n}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ceustream.models.ship",
                                 description="train, evaluate and export the shipped 3D-CNN")
    ap.add_argument("--out", default="models/weights", help="where cnn3d.onnx (+ _fp16) go")
    ap.add_argument("--work", default="runs/ship", help="cohort cache, checkpoints, report")
    ap.add_argument("--train", type=int, default=2500, help="training patients per renderer")
    ap.add_argument("--val", type=int, default=300, help="validation patients per renderer")
    ap.add_argument("--test", type=int, default=600, help="held-out patients per renderer")
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--card", action="store_true", help="only rewrite MODEL_CARD.md from the "
                    "reports in --work and benchmarks/results/cross_renderer.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("ceustream").setLevel(logging.INFO)
    work = Path(args.work)
    if args.card:
        from .card import write_card

        path = write_card(Path(args.out) / "MODEL_CARD.md", work / "report.json")
        print(path)
        return 0

    import torch

    from ceustream.engine.core.modelmeta import ModelMeta

    from . import cohorts, export, metrics, recipe
    from .train import predict, prepare_batch

    t = time.monotonic()
    cfg = recipe.config(epochs=args.epochs) if args.epochs else recipe.RECIPE
    parts = {}
    for r in cohorts.RENDERERS:
        parts[r] = {
            "train": cohorts.cached(work, r, args.train, recipe.TRAIN_SEED),
            "val": cohorts.cached(work, r, args.val, recipe.VAL_SEED),
            "test": cohorts.cached(work, r, args.test, recipe.TEST_SEED)}
    x_tr, y_tr = cohorts.join(parts["A"]["train"], parts["B"]["train"])
    x_va, y_va = cohorts.join(parts["A"]["val"], parts["B"]["val"])
    log.info("training %s on %d clips (renderers A + B), %d epochs", cfg.network, len(y_tr),
             cfg.epochs)
    net, hist = recipe.fit(x_tr, y_tr, x_va, y_va, cfg, work / "checkpoint", resume=True)
    analysis = recipe.fit_analysis(x_tr, y_tr, x_va)
    evaluation, curves = {}, {}
    for r in cohorts.RENDERERS:
        te = parts[r]["test"]
        p = predict(net, te.clips, True, cfg=cfg)
        p_tic = recipe.tic_scores(analysis["tic"], te.clips)
        ev = metrics.evaluate(te.labels, p, 0.5, n_boot=2000)
        ev["subgroups"] = subgroup_auc(te.labels, {"pattern": te.patterns,
                                                   "washout": te.washouts}, p)
        ev_tic = metrics.evaluate(te.labels, p_tic, 0.5, n_boot=2000)
        evaluation[r] = {"network": ev, "tic_model": ev_tic, "n": len(te)}
        curves[f"3D-CNN, renderer {r} held-out"] = (te.labels, p)
        curves[f"TIC model, renderer {r} held-out"] = (te.labels, p_tic)
        log.info("held-out renderer %s: network ROC AUC %.3f (%.3f-%.3f), TIC model %.3f", r,
                 ev["metrics"]["ROC_AUC"], *ev["ci95"]["ROC_AUC"], ev_tic["metrics"]["ROC_AUC"])
    meta = ModelMeta(
        name="cnn3d", trained_on="simulated",
        norm_scale=cfg.norm[0], norm_mean=cfg.norm[1], norm_std=cfg.norm[2],
        preprocessing=dict(cfg.preprocessing), analysis=analysis,
        provenance={"data": "two independent CEUS renderers (models/simulator, "
                            "models/renderer_b), no patient data",
                    "train": {r: {"n": args.train, "seed": recipe.TRAIN_SEED} for r in "AB"},
                    "val": {r: {"n": args.val, "seed": recipe.VAL_SEED} for r in "AB"},
                    "test": {r: {"n": args.test, "seed": recipe.TEST_SEED} for r in "AB"},
                    "recipe": "models/recipe.py: liver_rank input, augmentations "
                              + ", ".join(cfg.augment) + f"; Adam {cfg.lr:g}, batch "
                              f"{cfg.batch}, best validation AUC of {cfg.epochs} epochs",
                    "torch": torch.__version__},
        metrics={r: {k: round(v, 4) for k, v in evaluation[r]["network"]["metrics"].items()}
                 for r in evaluation})
    out = Path(args.out)
    paths = export.to_onnx(net, meta, out / "cnn3d.onnx")
    sample = prepare_batch(parts["A"]["test"].clips[:32], cfg)[:, None]
    chk32 = export.compare_with_torch(net, paths["fp32"], sample, 1e-4)
    chk16 = export.compare_with_torch(net, paths["fp16"], sample, 1e-2)
    fp16 = fp16_agreement(paths, meta, {r: parts[r]["test"].clips for r in cohorts.RENDERERS})
    log.info("FP16 vs FP32 (ONNX Runtime, held-out clips): max |dP| %.4f, labels agree %.1f %%",
             fp16["max_abs_diff"], 100 * fp16["label_agreement"])
    report = {"evaluation": evaluation, "history": hist, "onnx_vs_torch_fp32": chk32,
              "onnx_vs_torch_fp16": chk16, "fp16_vs_fp32": fp16, "recipe": {k: v for k, v in cfg.__dict__.items()},
              "sizes": {"train_per_renderer": args.train, "val_per_renderer": args.val,
                        "test_per_renderer": args.test},
              "minutes": round((time.monotonic() - t) / 60, 1),
              "command": "python -m ceustream.models.ship" + (f" --epochs {args.epochs}"
                                                             if args.epochs else "")}
    work.mkdir(parents=True, exist_ok=True)
    (work / "report.json").write_text(json.dumps(report, indent=1, default=str))
    metrics.plot_roc(curves, work / "roc.png", "Shipped 3D-CNN and TIC model, held-out patients")
    log.info("done in %.1f min: %s", report["minutes"], paths["fp32"])
    print(json.dumps({r: {"network_auc": evaluation[r]["network"]["metrics"]["ROC_AUC"],
                          "tic_auc": evaluation[r]["tic_model"]["metrics"]["ROC_AUC"]}
                      for r in evaluation} | {"fp32": chk32["max_abs_diff"],
                                              "fp16": chk16["max_abs_diff"]}))
    return 0 if chk32["ok"] and chk16["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
