"""Does the out-of-distribution check fire on a renderer the model never saw?
``python -m ceustream.benchmarks.domain_shift``

1. Leave one renderer out: a 3D-CNN trained by the recipe on renderer A alone (and one on B
   alone), its k-NN reference fitted on its own renderer (``models.domainref``: training
   clips as reference, validation clips for the threshold), then the share of held-out clips
   flagged on its own renderer (should be about 1 - quantile) and on the other renderer
   (should be high).
2. The shipped model (trained on A and B) on the site sample (``../shared/site-sample``, an
   independent renderer), through the engine, t0 given and detected: the share flagged; and on
   held-out clips of A and B.

Training here is smaller than the shipped model's (``--train`` patients, ``--epochs``) to fit a
2-core machine; the table says so. Prints a table, writes benchmarks/results/domain_shift.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("ceustream.benchmarks.domain_shift")


def loro(work: Path, n_train: int, n_val: int, n_test: int, epochs: int, k: int,
         quantile: float) -> dict:
    import onnx

    from ceustream.engine.core import domain
    from ceustream.engine.core.modelmeta import ModelMeta, read
    from ceustream.models import cohorts, export, recipe
    from ceustream.models.domainref import embeddings

    out = {}
    cfg = recipe.config(epochs=epochs)
    for src in cohorts.RENDERERS:
        other = [r for r in cohorts.RENDERERS if r != src][0]
        tr = cohorts.cached(work, src, n_train, recipe.TRAIN_SEED)
        va = cohorts.cached(work, src, n_val, recipe.VAL_SEED)
        path = work / f"cnn3d_{src}_only.onnx"
        if not path.exists():
            t = time.monotonic()
            net, _ = recipe.fit(tr.clips, tr.labels, va.clips, va.labels, cfg,
                                work / f"ckpt_{src}", resume=True)
            meta = ModelMeta(name=f"cnn3d-{src}", trained_on="simulated", norm_scale=cfg.norm[0],
                             norm_mean=cfg.norm[1], norm_std=cfg.norm[2],
                             preprocessing=dict(cfg.preprocessing))
            export.to_onnx(net, meta, path, fp16=False)
            log.info("trained on %s alone in %.1f min", src, (time.monotonic() - t) / 60)
        meta = read(path).meta
        mb = onnx.load(str(path)).SerializeToString()
        ref = domain.fit_knn(embeddings(mb, meta, tr.clips), embeddings(mb, meta, va.clips),
                             k=k, quantile=quantile)
        rates = {}
        for r in cohorts.RENDERERS:
            te = cohorts.cached(work, r, n_test, recipe.TEST_SEED)
            d = domain.knn_distances(embeddings(mb, meta, te.clips), ref)
            rates[r] = round(float(np.mean(d > ref["threshold"])), 4)
        out[f"trained on {src} alone"] = {"own_renderer_flagged": rates[src],
                                          "other_renderer_flagged": rates[other],
                                          "other": other, "threshold": round(ref["threshold"], 3)}
    return out


def site(folder: Path) -> dict:
    from .common import site_replays

    out = {}
    for mode, runs in site_replays(folder).items():
        states = [res["domain"]["state"] for _, res in runs]
        dist = [res["domain"]["distance"] / res["domain"]["threshold"] for _, res in runs]
        out[mode] = {"flagged": sum(s == "out" for s in states), "n": len(runs),
                     "distance_over_threshold": [round(x, 2) for x in sorted(dist)]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ceustream.benchmarks.domain_shift",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/domain_shift")
    ap.add_argument("--train", type=int, default=600, help="training patients (LORO models)")
    ap.add_argument("--val", type=int, default=150)
    ap.add_argument("--test", type=int, default=150)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--quantile", type=float, default=0.975)
    ap.add_argument("--no-loro", action="store_true", help="only the shipped model on the site")
    ap.add_argument("--site", default="../shared/site-sample", help="the site sample's folder "
                    "(manifest.csv + recordings; default: beside the checkout)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("ceustream").setLevel(logging.INFO)
    out = Path("benchmarks/results")
    prev = out / "domain_shift.json"
    # each part keeps the other's numbers from an earlier run (--no-loro reruns the site only)
    res = json.loads(prev.read_text()) if prev.exists() else {}
    res["command"] = "python -m ceustream.benchmarks.domain_shift " + " ".join(argv or sys.argv[1:])
    if (Path(args.site) / "manifest.csv").is_file():
        res["shipped_model_on_site_sample"] = site(Path(args.site))
    else:
        log.warning("%s: no site sample there; its part is skipped", args.site)
    if not args.no_loro:
        res["leave_one_renderer_out_setup"] = {
            "train_patients": args.train, "val_patients": args.val, "test_patients": args.test,
            "epochs": args.epochs, "k": args.k, "quantile": args.quantile,
            "note": "smaller training than the shipped model's (2500 patients, 8 epochs)"}
        res["leave_one_renderer_out"] = loro(Path(args.work), args.train, args.val, args.test,
                                             args.epochs, args.k, args.quantile)
    print("| check | flagged |\n| --- | --- |")
    for mode, v in res.get("shipped_model_on_site_sample", {}).items():
        print(f"| shipped model, site sample, {mode} | {v['flagged']}/{v['n']} |")
    for name, v in res.get("leave_one_renderer_out", {}).items():
        print(f"| {name}: held-out of its own renderer | {100 * v['own_renderer_flagged']:.1f} % |")
        print(f"| {name}: held-out of renderer {v['other']} | "
              f"{100 * v['other_renderer_flagged']:.1f} % |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "domain_shift.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
