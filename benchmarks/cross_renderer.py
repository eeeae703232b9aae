"""Leave-one-renderer-out: does the model learn CEUS physiology or one renderer's pixels?

``python -m ceustream.benchmarks.cross_renderer`` trains the recipe (``models.recipe``) on
renderer A only and on renderer B only, and scores each on the OTHER renderer's held-out
patients:

1. through clips (``models.cohorts``): ROC AUC with a bootstrap 95 % CI, for the network and
   for the TIC model fitted on the same side;
2. through the engine from recordings: each renderer's archive (made by the commands a user
   would run: ``ceustream simulate --n N`` and ``python -m ceustream.models.renderer_b --n N``),
   replayed by ``ceustream qa`` with t0 detected from the injection; the A-only model on B's
   archive, the B-only model on A's, and the shipped model on both;
3. ``--ablation``: the same, smaller, leaving one augmentation out at a time (and the old
   ``scale`` input instead of ``liver_rank``): which ones matter;
4. ``--networks``: the other 3D networks of the paper by the same recipe.

Prints tables and writes ``benchmarks/results/cross_renderer.json`` (the model card reads it).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

from .common import machine, out_dir, table, write

log = logging.getLogger("ceustream.benchmarks.cross_renderer")
OTHER = {"A": "B", "B": "A"}


def auc_ci(y, p) -> dict:
    from ceustream.models import metrics

    ev = metrics.evaluate(y, p, 0.5, n_boot=2000)
    lo, hi = ev["ci95"]["ROC_AUC"]
    return {"auc": round(ev["metrics"]["ROC_AUC"], 4), "ci95": [round(lo, 3), round(hi, 3)],
            "acc": round(ev["metrics"]["ACC"], 4), "n": int(len(y))}


def train_on(src: str, parts: dict, cfg, work: Path):
    from ceustream.models import recipe

    tr, va = parts[src]["train"], parts[src]["val"]
    net, hist = recipe.fit(tr.clips, tr.labels, va.clips, va.labels, cfg, work, resume=True)
    return net, recipe.fit_analysis(tr.clips, tr.labels, va.clips)


def export(net, cfg, analysis: dict, path: Path, note: str) -> Path:
    from ceustream.engine.core.modelmeta import ModelMeta
    from ceustream.models import export as ex

    meta = ModelMeta(name=f"{cfg.network}", trained_on="simulated",
                     norm_scale=cfg.norm[0], norm_mean=cfg.norm[1], norm_std=cfg.norm[2],
                     preprocessing=dict(cfg.preprocessing), analysis=analysis,
                     provenance={"benchmark": "cross_renderer", "trained_on_renderer": note})
    return ex.to_onnx(net, meta, path, fp16=False)["fp32"]


def archive(kind: str, folder: Path, n: int, seed: int) -> tuple[Path, str]:
    """A renderer's archive of recordings + manifest (made once), by its user command."""
    if kind == "A":
        cmd = [sys.executable, "-m", "ceustream", "simulate", "--n", str(n), "--seed", str(seed),
               "--fps", "10", "--out", str(folder), "-q"]
    else:
        cmd = [sys.executable, "-m", "ceustream.models.renderer_b", "--n", str(n), "--seed",
               str(seed), "--out", str(folder), "--times", "injection"]
    shown = ("ceustream " if kind == "A" else "python -m ceustream.models.renderer_b ") + \
        " ".join(cmd[3:])
    if not (folder / "manifest.csv").exists():
        log.info("recording archive %s: %s", kind, shown)
        subprocess.run(cmd, check=True)
    return folder / "manifest.csv", shown


def through_engine(manifest: Path, model: Path | None, out: Path) -> dict:
    """``ceustream qa`` of an archive with a model (None: the shipped one)."""
    from ceustream.engine.app import qa
    from ceustream.engine.core import config

    cfg = config.load(env={})
    cfg["model"]["backend"] = "onnxruntime"
    if model is not None:
        cfg["model"]["path"] = str(model)
    report, _ = qa.run(manifest, out, cfg)
    ev = report.get("evaluation")
    if not ev:
        return {"auc": None, "scored": report["scored_final"], "exams": report["exams"]}
    return {"auc": round(ev["metrics"]["ROC_AUC"], 4),
            "ci95": [round(x, 3) for x in ev["ci95"]["ROC_AUC"]],
            "acc": round(ev["metrics"]["ACC"], 4), "scored": report["scored_final"],
            "exams": report["exams"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ceustream.benchmarks.cross_renderer")
    ap.add_argument("--work", default="runs/cross", help="checkpoints, models, archives")
    ap.add_argument("--cohorts", default="runs/ship", help="cohort cache (shared with ship)")
    ap.add_argument("--train", type=int, default=2500, help="training patients per renderer")
    ap.add_argument("--val", type=int, default=300)
    ap.add_argument("--test", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    ap.add_argument("--archive", type=int, default=40, help="recordings per renderer archive")
    ap.add_argument("--no-engine", action="store_true", help="skip the recordings and qa")
    ap.add_argument("--ablation", action="store_true", help="leave one augmentation out")
    ap.add_argument("--ablation-train", type=int, default=1200)
    ap.add_argument("--ablation-epochs", type=int, default=4)
    ap.add_argument("--networks", action="store_true", help="res3d and dense3d too")
    ap.add_argument("--only-extra", action="store_true", help="skip the headline runs: only "
                    "--ablation / --networks, merged into the last results file")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("ceustream").setLevel(logging.INFO)
    from ceustream.models import cohorts, recipe
    from ceustream.models.augment import CLIP_LEVEL, RENDER_LEVEL
    from ceustream.models.train import predict

    t_start = time.monotonic()
    work, cache = Path(args.work), Path(args.cohorts)
    cfg = recipe.config(epochs=args.epochs) if args.epochs else recipe.RECIPE
    parts = {r: {"train": cohorts.cached(cache, r, args.train, recipe.TRAIN_SEED),
                 "val": cohorts.cached(cache, r, args.val, recipe.VAL_SEED),
                 "test": cohorts.cached(cache, r, args.test, recipe.TEST_SEED)}
             for r in cohorts.RENDERERS}
    res: dict = {"machine": machine(), "recipe": {k: v for k, v in cfg.__dict__.items()},
                 "sizes": {"train": args.train, "val": args.val, "test": args.test},
                 "clips": {}, "engine": {}, "ablation": [], "networks": []}
    previous = out_dir() / "cross_renderer.json"
    if args.only_extra:
        if not previous.exists():
            raise SystemExit(f"--only-extra: no {previous} to add to; run without it first")
        res = {k: v for k, v in json.loads(previous.read_text()).items()
               if k not in ("benchmark", "machine")}
        res["machine"] = machine()
        res.setdefault("ablation", [])
        res.setdefault("networks", [])
    models = {}
    for src in (() if args.only_extra else ("A", "B")):
        net, analysis = train_on(src, parts, cfg, work / f"train_{src}")
        row = {}
        for tgt in ("A", "B"):
            te = parts[tgt]["test"]
            row[tgt] = {"network": auc_ci(te.labels, predict(net, te.clips, True, cfg=cfg)),
                        "tic_model": auc_ci(te.labels,
                                            recipe.tic_scores(analysis["tic"], te.clips))}
        res["clips"][src] = row
        models[src] = export(net, cfg, analysis, work / f"model_{src}.onnx", src)
    rows = [[f"{s} -> {t}", res["clips"][s][t]["network"]["auc"],
             "-".join(map(str, res["clips"][s][t]["network"]["ci95"])),
             res["clips"][s][t]["tic_model"]["auc"]] for s in "AB" for t in "AB"]
    table("Clips: trained on -> tested on (held-out patients)",
          ["direction", "3D-CNN ROC AUC", "95% CI", "TIC model AUC"], rows)
    if not args.no_engine and not args.only_extra:
        arch = {}
        for kind in ("A", "B"):
            arch[kind] = archive(kind, work / f"archive_{kind}", args.archive, 31)
        res["archives"] = {k: {"manifest": str(v[0]), "command": v[1]} for k, v in arch.items()}
        for src, tgt in (("A", "B"), ("B", "A")):
            res["engine"][f"{src}->{tgt}"] = through_engine(
                arch[tgt][0], models[src], work / f"qa_{src}_on_{tgt}")
        for tgt in ("A", "B"):
            res["engine"][f"shipped->{tgt}"] = through_engine(
                arch[tgt][0], None, work / f"qa_shipped_on_{tgt}")
        table("Through the engine: ceustream qa of recordings (t0 detected from the injection)",
              ["model -> archive", "ROC AUC", "95% CI", "scored"],
              [[k, v["auc"], "-".join(map(str, v.get("ci95", []))), f"{v['scored']}/{v['exams']}"]
               for k, v in res["engine"].items()])
    if args.ablation:
        res["ablation"] = []
        small = {r: {"train": parts[r]["train"].head(args.ablation_train),
                     "val": parts[r]["val"], "test": parts[r]["test"]} for r in "AB"}
        settings = [("all (the recipe)", {}, None)]
        settings += [(f"without {a}", {"augment": tuple(x for x in CLIP_LEVEL if x != a)}, None)
                     for a in CLIP_LEVEL]
        settings += [(f"without {a}", {}, tuple(x for x in RENDER_LEVEL if x != a))
                     for a in RENDER_LEVEL]
        settings += [("no augmentation", {"augment": ()}, ()),
                     ("scale input (no liver_rank)", {"preprocessing": {"kind": "scale"},
                                                      "norm": (1 / 255, 0.0, 1.0), "lr": 1e-4}, None)]
        for name, change, variations in settings:
            c = recipe.config(epochs=args.ablation_epochs, **change)
            row = {"setting": name}
            for src in ("A", "B"):
                p = dict(small)
                if variations is not None:
                    p = {**small, src: {**small[src], "train": cohorts.cached(
                        cache, src, args.ablation_train, recipe.TRAIN_SEED, True, variations)}}
                tag = name.replace(" ", "_").replace("(", "").replace(")", "")
                net, _ = recipe.fit(p[src]["train"].clips, p[src]["train"].labels,
                                    p[src]["val"].clips, p[src]["val"].labels, c,
                                    work / f"ablation_{tag}_{src}")
                te = parts[OTHER[src]]["test"]
                row[f"{src}->{OTHER[src]}"] = round(
                    auc_ci(te.labels, predict(net, te.clips, True, cfg=c))["auc"], 4)
            row["mean"] = round((row["A->B"] + row["B->A"]) / 2, 4)
            res["ablation"].append(row)
            log.info("ablation %s: %s", name, row)
        table(f"Ablation ({args.ablation_train} patients per renderer, {args.ablation_epochs} "
              "epochs): cross-renderer ROC AUC", ["setting", "A -> B", "B -> A", "mean"],
              [[r["setting"], r["A->B"], r["B->A"], r["mean"]] for r in res["ablation"]])
    if args.networks:
        res["networks"] = []
        for network in ("res3d", "dense3d"):
            c = recipe.config(network=network, epochs=args.ablation_epochs)
            row = {"network": network}
            for src in ("A", "B"):
                small_tr = parts[src]["train"].head(args.ablation_train)
                net, _ = recipe.fit(small_tr.clips, small_tr.labels, parts[src]["val"].clips,
                                    parts[src]["val"].labels, c, work / f"net_{network}_{src}")
                for tgt in ("A", "B"):
                    te = parts[tgt]["test"]
                    row[f"{src}->{tgt}"] = auc_ci(te.labels, predict(net, te.clips, True, cfg=c))["auc"]
            res["networks"].append(row)
        table("Other 3D networks by the recipe (clips)", ["network", "A->A", "A->B", "B->B", "B->A"],
              [[r["network"], r["A->A"], r["A->B"], r["B->B"], r["B->A"]] for r in res["networks"]])
    res["minutes_extra" if args.only_extra else "minutes"] = \
        round((time.monotonic() - t_start) / 60, 1)
    cmd = "python -m ceustream.benchmarks.cross_renderer " + " ".join(argv or sys.argv[1:])
    res["commands"] = sorted(set(res.get("commands", []) + [cmd.strip()]))
    write("cross_renderer", res)
    print(json.dumps({"clips": {f"{s}->{t}": res["clips"][s][t]["network"]["auc"]
                                for s in "AB" for t in "AB"},
                      "engine": {k: v["auc"] for k, v in res["engine"].items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
