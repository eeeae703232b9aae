"""``ceustream train``: the paper's protocol on a simulated cohort or on a user's data (clips,
or recordings taken through the engine itself), every input checked before work starts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ceustream.engine.core.errors import InputError, UsageError

from . import common

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = common.command(sub, "train", "train a network (needs the train extra: torch)")
    p.add_argument("--network", default="cnn3d",
                   choices=["cnn3d", "res3d", "dense3d", "vgg", "resnet", "densenet"],
                   help="the paper's networks: 3D clip models (cnn3d, res3d, dense3d) or 2D "
                   "B-mode baselines (vgg, resnet, densenet); default cnn3d")
    src = p.add_argument_group("data (give one)").add_mutually_exclusive_group(required=True)
    src.add_argument("--cohort", help="N[:SEED] simulated patients (balanced classes)")
    src.add_argument("--data", help="folder of clips (*.npy, 30x64x64 uint8) with labels.csv "
                     "(id,label), or of recordings with manifest.csv (path,label,roi and t0 "
                     "and/or injection, seconds from each recording's first frame): video "
                     "files, DICOM cines or image folders, read by the engine itself")
    p.add_argument("--jobs", type=common.count, default=None,
                   help="worker processes that take clips from recordings (--data with "
                   "manifest.csv; default: all cores)")
    p.add_argument("--epochs", type=common.count, default=100, help="training epochs (default 100, "
                   "the paper's)")
    p.add_argument("--batch", type=common.count, default=16, help="batch size (default 16)")
    p.add_argument("--lr", type=common.positive, default=1e-4,
                   help="Adam learning rate (default 1e-4)")
    p.add_argument("--no-expand", action="store_true",
                   help="skip the paper's minority-class expansion")
    p.add_argument("--input", choices=["liver_rank", "scale"], default="liver_rank",
                   help="3D networks: how a clip becomes the input (stored in the model): "
                   "liver_rank (default: every pixel ranked among the liver's, so another "
                   "scanner's gain, dynamic range or colour map does not matter) or scale "
                   "(grey levels / 255, the paper's)")
    p.add_argument("--no-augment", action="store_true",
                   help="3D networks: no augmentations (default: gain, dynamic range, colour "
                   "map, blur, codec, noise and flip drawn per sample and epoch)")
    p.add_argument("--out", required=True, help="folder for checkpoints, model.onnx, report")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out instead of starting afresh")
    p.add_argument("--seed", type=int, default=0, help="split and initialisation seed (default 0)")
    common.add_model_options(p)


def need_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("training needs PyTorch: `pip install torch==2.13.0` (the CPU build)") \
            from None


def run(args) -> int:
    need_torch()
    from ceustream.engine.core.modelmeta import ModelMeta
    from ceustream.models import export, metrics
    from ceustream.models import train as tr
    from ceustream.models.networks import NETWORKS_3D

    is_3d = args.network in NETWORKS_3D
    out = Path(args.out)
    extra_views: dict[int, list[np.ndarray]] = {}
    provenance: dict = {}
    if args.cohort:
        try:
            parts = args.cohort.split(":")
            n, seed = int(parts[0]), int(parts[1]) if len(parts) > 1 else 1
        except (ValueError, IndexError):
            raise UsageError(f"--cohort {args.cohort}: expected N or N:SEED") from None
        if n < 20:
            raise UsageError("--cohort: at least 20 patients")
        from ceustream.models.simulator.cohort import expansion_views, make_cohort
        from ceustream.models.simulator.physiology import sample_case

        log.info(f"simulating {n} patients (seed {seed}), each as a different recording would give "
             "it (smoothing, codec loss, t0 error) ...")
        co = make_cohort(n, seed, bmode=not is_3d, varied=True)
        x, y, ids = (co.clips if is_3d else co.bmode), co.labels, [str(s) for s in co.seeds]
        trained_on = "simulated"
        provenance = {"data": "ceustream simulator", "cohort": {"n": n, "seed": seed},
                      "acquisition": "varied"}

        def views(i: int) -> list[np.ndarray]:
            return expansion_views(sample_case(int(co.seeds[i]), int(co.labels[i])), is_3d,
                                   varied=True)
    else:
        folder = Path(args.data)
        if not folder.is_dir():
            raise InputError(f"--data {folder}: not a folder")
        if not is_3d:
            raise UsageError("--data trains the 3D networks on clips; the 2D baselines train on "
                             "the simulator's B-mode images (--cohort)")
        if (folder / "manifest.csv").is_file():
            from ceustream.engine.app.trainingdata import clips_from_recordings

            x, y, ids = clips_from_recordings(folder, common.load_config(args), args.jobs)
        else:
            from ceustream.models.data import load_clip_folder

            x, y, ids = load_clip_folder(folder)
        trained_on = "real"
        provenance = {"data": f"user data ({len(y)} clips from {folder.name})"}
        views = None
    split = tr.patient_split(y, args.seed)
    x_tr, y_tr = x[split.train], y[split.train]
    if not args.no_expand:
        if views is not None:
            extra_views = {i: views(int(split.train[i])) for i in np.flatnonzero(y_tr == 0)}
        else:
            log.info("expansion: user clips get horizontal flips only (no source video for the "
                 "+-1 s shifts)")
        n0 = int((y_tr == 0).sum())
        x_tr, y_tr = tr.expand_minority(x_tr, y_tr, extra_views, is_3d)
        log.info(f"expansion (after the patient split): non-HCC {n0} -> {int((y_tr == 0).sum())} "
             f"training samples")
    from ceustream.models import recipe

    rank = is_3d and args.input == "liver_rank"
    cfg = tr.TrainConfig(network=args.network, epochs=args.epochs, batch=args.batch, lr=args.lr,
                         seed=args.seed,
                         preprocessing=dict(recipe.PREPROCESSING) if rank else {"kind": "scale"},
                         norm=recipe.NORM if rank else (1 / 255, 0.0, 1.0),
                         augment=() if args.no_augment or not is_3d else recipe.RECIPE.augment)
    net, hist = tr.fit(x_tr, y_tr, x[split.val], y[split.val], cfg, out, resume=args.resume,
                       log=log.info)
    p = tr.predict(net, x[split.test], is_3d, cfg=cfg)
    ev = metrics.evaluate(y[split.test], p, 0.5)
    report = {"network": args.network, "split": {k: len(getattr(split, k)) for k in
                                                 ("train", "val", "test")},
              "expanded": not args.no_expand, "evaluation": ev, "history": hist}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    metrics.plot_roc({args.network: (y[split.test], p)}, out / "roc.png", f"{args.network}: test")
    metrics.plot_confusion(metrics.Confusion(**ev["confusion"]), out / "confusion.png")
    if is_3d:
        analysis = recipe.fit_analysis(x[split.train], y[split.train], x[split.val]) \
            if len(split.val) >= 2 else {}
        meta = ModelMeta(name=args.network, trained_on=trained_on,
                         norm_scale=cfg.norm[0], norm_mean=cfg.norm[1], norm_std=cfg.norm[2],
                         preprocessing=dict(cfg.preprocessing), analysis=analysis,
                         provenance={**provenance, "epochs": args.epochs, "lr": args.lr,
                                     "batch": args.batch, "expanded": not args.no_expand,
                                     "augment": list(cfg.augment)},
                         metrics={"test": ev["metrics"], "test_ci95": ev["ci95"]})
        paths = export.to_onnx(net, meta, out / "model.onnx")
        log.info(f"model: {paths['fp32']} (+ {paths['fp16'].name})")
    m = ev["metrics"]
    print(json.dumps({"test_roc_auc": m["ROC_AUC"], "ACC": m["ACC"], "SE": m["SE"], "SP": m["SP"],
                      "out": str(out)}))
    return 0
