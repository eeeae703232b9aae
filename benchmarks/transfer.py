"""Zero-shot transfer: what the engine's score is worth on exams of a renderer it never saw.
``python -m ceustream.benchmarks.transfer``

1. The site sample (``../shared/site-sample``: 12 exams of an independent renderer; an
   evaluation here, never training data), through the engine (``replay``), t0 given and
   detected: ROC AUC of the published ``score`` (the network's inside its domain, the
   physiology reading's outside it: ``score_basis``), of the network's own P(HCC)
   (``score_network``) and of the physiology reading alone (``core.physiology`` on the result's
   TIC reading), with bootstrap 95 % CIs (wide: 12 exams).
2. Held-out clips of this project's two renderers (A and B, 150 patients each, seed 2024): the
   network (trained on both) and the physiology reading. The physiology reading is fitted to no
   renderer at all (its likelihoods are the literature's), so each of its numbers is zero-shot:
   leave-one-renderer-out holds for it by construction.

Prints a table, writes benchmarks/results/transfer.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("ceustream.benchmarks.transfer")

#: weights of the reading's log-likelihood ratio added to the network's logit (in-domain check)
FUSION_WEIGHTS = (0.25, 0.5, 1.0)


def auc_ci(y, s) -> dict:
    from ceustream.models.metrics import evaluate

    e = evaluate(np.asarray(y), np.asarray(s, np.float64), n_boot=2000)
    lo, hi = e["ci95"]["ROC_AUC"]
    return {"auc": round(e["metrics"]["ROC_AUC"], 3), "ci95": [round(lo, 3), round(hi, 3)],
            "n": len(y)}


def site(folder: Path) -> dict:
    from ceustream.engine.core import physiology

    from .common import site_replays

    out = {}
    for mode, runs in site_replays(folder).items():
        y, score, net, phys, basis, exams = [], [], [], [], [], []
        for r, res in runs:
            p = physiology.probability(res.get("features"))
            y.append(int(r["label"]))
            score.append(res["score"])
            net.append(res["score_network"])
            phys.append(0.5 if p is None else p)
            basis.append(res.get("score_basis"))
            f = res.get("features") or {}
            if not res["final"]:
                log.warning("%s (%s): partial result, %d/%d slots, flags %s", r["path"], mode,
                            res["slots_filled"], res["slots_total"], ",".join(res["flags"]))
            exams.append({"path": r["path"], "label": int(r["label"]), "score": res["score"],
                          "final": res["final"], "slots_filled": res["slots_filled"],
                          "flags": res["flags"],
                          "score_network": res["score_network"], "basis": res.get("score_basis"),
                          "domain": (res.get("domain") or {}).get("state"),
                          "reading": [f.get("aphe"), f.get("washout"), f.get("washout_degree")]})
        out[mode] = {"published_score": auc_ci(y, score), "network": auc_ci(y, net),
                     "physiology_reading": auc_ci(y, phys),
                     "basis": {b: basis.count(b) for b in sorted(set(map(str, basis)))},
                     "final": sum(e["final"] for e in exams),
                     "exams": exams}
    return out


def renderers(work: Path, n: int) -> dict:
    from ceustream.engine.core import modelmeta, physiology, tic
    from ceustream.models.cohorts import cached
    from ceustream.models.domainref import embeddings

    path = modelmeta.shipped_model_path()
    loaded = modelmeta.read(path)
    out = {}
    for r in ("A", "B"):
        c = cached(work, r, n, 2024)
        p_net = embeddings(path.read_bytes(), loaded.meta, c.clips, output="prob")[:, 1]
        phys, llr = [], []
        for clip in c.clips:
            rd = tic.read(clip, np.ones(len(clip), bool), loaded.meta.offsets_s,
                          loaded.meta.preprocessing_spec().ring)
            reading = {"aphe": rd.aphe, "washout": rd.washout, "washout_degree": rd.washout_degree}
            p = physiology.probability(reading)
            phys.append(0.5 if p is None else p)
            llr.append(physiology.log_likelihood_ratio(reading)[0])
        q = np.clip(p_net, 1e-6, 1 - 1e-6)
        logit = np.log(q / (1 - q))
        out[r] = {"network": auc_ci(c.labels, p_net), "physiology_reading": auc_ci(c.labels, phys),
                  # would a fusion help inside the domain? logit + w * the reading's log-LR
                  "fusion": {f"w={w:g}": auc_ci(c.labels, logit + w * np.asarray(llr))
                             for w in FUSION_WEIGHTS}}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ceustream.benchmarks.transfer",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--site", default="../shared/site-sample", help="the site sample's folder "
                    "(manifest.csv + recordings; default: beside the checkout)")
    ap.add_argument("--work", default="runs/domain_shift", help="cached held-out clips")
    ap.add_argument("--n", type=int, default=150, help="held-out patients per renderer")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    t = time.monotonic()
    res: dict = {"command": "python -m ceustream.benchmarks.transfer " +
                 " ".join(argv if argv is not None else sys.argv[1:])}
    if (Path(args.site) / "manifest.csv").is_file():
        res["site_sample"] = site(Path(args.site))
    else:
        log.warning("%s: no site sample there; its part is skipped", args.site)
    res["held_out_clips"] = renderers(Path(args.work), args.n)
    res["wall_s"] = round(time.monotonic() - t, 1)

    def cell(v: dict) -> str:
        return f"{v['auc']:.2f} ({v['ci95'][0]:.2f}-{v['ci95'][1]:.2f})"

    print("| exams | n | published score | network alone | physiology reading alone |")
    print("| --- | --- | --- | --- | --- |")
    for mode, v in res.get("site_sample", {}).items():
        print(f"| site sample (independent renderer), {mode} | {v['network']['n']} | "
              f"{cell(v['published_score'])} | {cell(v['network'])} | "
              f"{cell(v['physiology_reading'])} |")
    for r, v in res["held_out_clips"].items():
        print(f"| held-out clips, renderer {r} | {v['network']['n']} | - | {cell(v['network'])} | "
              f"{cell(v['physiology_reading'])} |")
    print("\nInside the domain, network logit + w x the reading's log-likelihood ratio:")
    for r, v in res["held_out_clips"].items():
        print(f"  renderer {r}: network {v['network']['auc']:.3f}; " + ", ".join(
            f"{k} {x['auc']:.3f}" for k, x in v["fusion"].items()))
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "transfer.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
