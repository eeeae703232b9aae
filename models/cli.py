"""``ceustream train`` and ``ceustream export``: the paper's protocol on a simulated cohort or
on user data, with every input checked before any work starts."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from ceustream.engine.errors import InputError, UsageError

CLIP_SHAPE = (30, 64, 64)


def _need_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("training needs PyTorch: `pip install torch==2.13.0` (the CPU build) "
                         "or `make train-deps`") from None


def _say(s: str) -> None:
    print(s, file=sys.stderr, flush=True)


def load_clip_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``labels.csv`` (id,label) + ``<id>.npy`` clips (30x64x64 uint8). Every bad row is
    reported at once; nothing is loaded half."""
    from ceustream.engine.qa import LABELS

    csv_path = folder / "labels.csv"
    if not csv_path.is_file():
        raise InputError(f"--data {folder}: no labels.csv (id,label) and no manifest.csv")
    rows = list(csv.DictReader(csv_path.read_text(encoding="utf-8-sig").splitlines()))
    errors, clips, labels, ids = [], [], [], []
    for n, r in enumerate(rows, start=2):
        r = {(k or "").strip().lower(): (v or "").strip() for k, v in r.items()}
        cid, lab = r.get("id", ""), LABELS.get(r.get("label", "").lower())
        why = []
        if not cid:
            why.append("id is empty")
        if lab is None:
            why.append(f"label {r.get('label')!r} is not HCC or non-HCC")
        f = folder / f"{cid}.npy"
        arr = None
        if cid and not f.is_file():
            why.append(f"{f.name} not found")
        elif cid:
            try:
                arr = np.load(f, allow_pickle=False)
            except (ValueError, OSError) as e:
                why.append(f"{f.name} unreadable ({e})")
            else:
                if arr.shape != CLIP_SHAPE:
                    why.append(f"{f.name} has shape {arr.shape}, expected {CLIP_SHAPE}")
                elif arr.dtype != np.uint8:
                    why.append(f"{f.name} is {arr.dtype}, expected uint8")
        if why:
            errors.append(f"row {n}: {'; '.join(why)}")
        else:
            clips.append(arr)
            labels.append(lab)
            ids.append(cid)
    if errors:
        raise InputError(f"{csv_path}: {len(errors)} bad row(s): " + " | ".join(errors[:20]))
    if len(set(labels)) < 2:
        raise InputError(f"{csv_path}: needs both HCC and non-HCC clips")
    return np.stack(clips), np.array(labels), ids


def clips_from_recordings(folder: Path, cfg: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Runs every recording of ``manifest.csv`` through the engine (the real pipeline) and
    keeps the 30 ROI slots at the model's size."""
    from ceustream.engine.errors import CeusError
    from ceustream.engine.qa import read_manifest
    from ceustream.engine.replay import ReplayOptions, replay
    from ceustream.engine.roi import resize

    rows = read_manifest(folder / "manifest.csv")
    clips, labels, ids = [], [], []
    for k, row in enumerate(rows, 1):
        cfg2 = json.loads(json.dumps(cfg))
        cfg2["journal"]["dir"] = str(folder / ".journal")
        try:
            r = replay(row.path, ReplayOptions(roi=row.roi, t0=row.t0, injection=row.injection,
                                               exam=f"train{row.line}"), cfg2)
        except CeusError as e:
            raise InputError(f"{folder / 'manifest.csv'} row {row.line}: {e}") from None
        if not r["final"]:
            raise InputError(f"{folder / 'manifest.csv'} row {row.line}: only "
                             f"{r['slots_filled']}/30 slots ({', '.join(r['flags'])})")
        from ceustream.engine import journal as jr

        _, _, crops = jr.load(folder / ".journal", r["exam"])
        clip = np.stack([resize(crops[i] if i in crops else crops[max(crops)], *CLIP_SHAPE[1:])
                         for i in range(30)])
        clips.append(clip)
        labels.append(row.label)
        ids.append(row.path.name)
        _say(f"[{k}/{len(rows)}] {row.path.name}: clip taken")
    return np.stack(clips), np.array(labels), ids


def train(args) -> int:
    _need_torch()
    from ceustream.engine import config
    from ceustream.engine.modelmeta import ModelMeta

    from . import export, metrics
    from . import train as tr
    from .networks import NETWORKS_3D

    is_3d = args.network in NETWORKS_3D
    if args.epochs < 1 or args.batch < 1 or not args.lr > 0:
        raise UsageError("--epochs and --batch must be >= 1 and --lr > 0")
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
        from .simulator.cohort import expansion_views, make_cohort
        from .simulator.physiology import sample_case

        _say(f"simulating {n} patients (seed {seed}), each as a different recording would give "
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
            x, y, ids = clips_from_recordings(folder, config.load())
        else:
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
            _say("expansion: user clips get horizontal flips only (no source video for the "
                 "+-1 s shifts)")
        n0 = int((y_tr == 0).sum())
        x_tr, y_tr = tr.expand_minority(x_tr, y_tr, extra_views, is_3d)
        _say(f"expansion (after the patient split): non-HCC {n0} -> {int((y_tr == 0).sum())} "
             f"training samples")
    cfg = tr.TrainConfig(network=args.network, epochs=args.epochs, batch=args.batch, lr=args.lr,
                         seed=args.seed)
    net, hist = tr.fit(x_tr, y_tr, x[split.val], y[split.val], cfg, out, resume=args.resume,
                       log=_say)
    p = tr.predict(net, x[split.test], is_3d)
    ev = metrics.evaluate(y[split.test], p, 0.5)
    report = {"network": args.network, "split": {k: len(getattr(split, k)) for k in
                                                 ("train", "val", "test")},
              "expanded": not args.no_expand, "evaluation": ev, "history": hist}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    metrics.plot_roc({args.network: (y[split.test], p)}, out / "roc.png", f"{args.network}: test")
    metrics.plot_confusion(metrics.Confusion(**ev["confusion"]), out / "confusion.png")
    if is_3d:
        meta = ModelMeta(name=args.network, trained_on=trained_on,
                         provenance={**provenance, "epochs": args.epochs, "lr": args.lr,
                                     "batch": args.batch, "expanded": not args.no_expand},
                         metrics={"test": ev["metrics"], "test_ci95": ev["ci95"]})
        paths = export.to_onnx(net, meta, out / "model.onnx")
        _say(f"model: {paths['fp32']} (+ {paths['fp16'].name})")
    m = ev["metrics"]
    print(json.dumps({"test_roc_auc": m["ROC_AUC"], "ACC": m["ACC"], "SE": m["SE"], "SP": m["SP"],
                      "out": str(out)}))
    return 0


def export(args) -> int:
    _need_torch()
    import torch

    from ceustream.engine.modelmeta import ModelMeta

    from . import export as ex
    from .networks import NETWORKS_3D, build

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
