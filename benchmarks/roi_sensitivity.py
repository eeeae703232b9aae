"""How the ROI is drawn moves the TIC reading (issue 18, item 6): the same exams replayed with
square ROIs of 1.6, 2.6 and 3.4 lesion radii around the lesion's centre, with the TIC
reading's parenchyma reference taken from the ROI's own border ring (``--ref-band 0``, the
old reading) and from a band of the frame around the ROI (the default).

``python -m ceustream.benchmarks.roi_sensitivity [--manifest M] [--sides 1.6 2.6 3.4]``

The manifest's ROIs are squares centred on the lesion, ``--manifest-side`` (2.6) radii wide:
the centre and radius come from them. Each exam goes through the real replay path (GStreamer,
the shipped model on ONNX Runtime), t0 as the manifest gives it. Reported per ROI side and
reference: ROC AUC of the TIC model (``features.p_hcc``), of the physiology reading
(``core.physiology`` on the reading's LI-RADS features), of the published score and of the
network (``score_network``), with bootstrap
95 % CIs, and the reading's agreement with the manifest's ``aphe`` / ``washout`` /
``washout_degree`` columns when it has them. Prints tables and writes
``benchmarks/results/roi_sensitivity.json``. With a dozen exams the intervals are wide.
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path

from .common import table, write

log = logging.getLogger("ceustream.benchmarks.roi_sensitivity")
SITE = Path("/work/shared/site-sample/manifest.csv")
READING = ("aphe", "washout", "washout_degree")


def roi_at(roi: list[int], manifest_side: float, side: float, width: int,
           height: int) -> list[int]:
    """A square of ``side`` lesion radii around the centre of a manifest ROI (a square of
    ``manifest_side`` radii centred on the lesion), shifted to lie inside the frame."""
    x, y, w, h = roi
    cx, cy, r = x + w / 2, y + h / 2, (w + h) / 2 / manifest_side
    s = max(8, int(round(side * r)))
    s = min(s, width, height)
    x0 = min(max(0, int(round(cx - s / 2))), width - s)
    y0 = min(max(0, int(round(cy - s / 2))), height - s)
    return [x0, y0, s, s]


def run_one(path: Path, roi: list[int], t0: float, band: float, cfg, loaded) -> dict:
    from ceustream.engine.app.replay import ReplayOptions, replay
    from ceustream.engine.core.roi import Roi

    r = replay(path, ReplayOptions(roi=Roi(*roi), t0=t0, journal=False, band=band), cfg,
               loaded=loaded)
    from ceustream.engine.core import physiology

    f = r.get("features") or {}
    return {"score": r["score"], "score_network": r.get("score_network"),
            "score_basis": r.get("score_basis"), "physiology": physiology.probability(f),
            "final": r["final"], "p_hcc": f.get("p_hcc"),
            "reference": f.get("reference"), **{k: f.get(k) for k in READING},
            "category": f.get("category")}


def main(argv: list[str] | None = None) -> int:
    from ceustream.engine.app.loading import load_model_and_backend
    from ceustream.engine.core import config
    from ceustream.pipelines.filesource import discover

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", type=Path, default=SITE)
    ap.add_argument("--manifest-side", type=float, default=2.6)
    ap.add_argument("--sides", type=float, nargs="+", default=[1.6, 2.6, 3.4])
    ap.add_argument("--bands", type=float, nargs="+", default=[0.0, 0.5],
                    help="reference band widths (x the ROI's side; 0 = the ROI's ring)")
    ap.add_argument("--out", default="roi_sensitivity", help="results file name (.json)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from .cross_renderer import auc_ci

    cfg = config.load()
    loaded = load_model_and_backend(None, "onnxruntime", cfg)
    rows = list(csv.DictReader(a.manifest.open()))
    base = a.manifest.parent
    labels = [int(r["label"]) for r in rows]
    runs: dict[str, list[dict]] = {}
    started = time.monotonic()
    for side in a.sides:
        for band in a.bands:
            key = f"{side:g}r/{'ring' if band == 0 else f'band{band:g}'}"
            out = []
            for r in rows:
                p = base / r["path"]
                info = discover(p)
                roi = roi_at([int(v) for v in r["roi"].split(",")], a.manifest_side, side,
                             info.width, info.height)
                res = run_one(p, roi, float(r["t0"]), band, cfg, loaded)
                out.append({"exam": r["path"], "label": int(r["label"]), "roi": roi, **res,
                            "truth": {k: r.get(k) for k in READING if r.get(k)}})
            runs[key] = out
            log.warning("%s done (%.0f s)", key, time.monotonic() - started)
    summary, trows = {}, []
    for key, out in runs.items():
        tic = auc_ci(labels, [o["p_hcc"] if o["p_hcc"] is not None else 0.5 for o in out])
        cnn = auc_ci(labels, [o["score_network"] if o.get("score_network") is not None
                              else o["score"] for o in out])
        phys = auc_ci(labels, [o["physiology"] if o["physiology"] is not None else 0.5
                               for o in out])
        pub = auc_ci(labels, [o["score"] for o in out])
        agree = {k: sum(o[k] == o["truth"].get(k) for o in out) for k in READING
                 if all(k in o["truth"] for o in out)}
        summary[key] = {"tic": tic, "cnn": cnn, "physiology": phys, "published": pub,
                        "agree": agree, "n": len(out),
                        "reference": sorted({str(o["reference"]) for o in out})}
        trows.append([key, f"{tic['auc']:.3f} [{tic['ci95'][0]:.2f}, {tic['ci95'][1]:.2f}]",
                      f"{phys['auc']:.3f} [{phys['ci95'][0]:.2f}, {phys['ci95'][1]:.2f}]",
                      f"{pub['auc']:.3f} [{pub['ci95'][0]:.2f}, {pub['ci95'][1]:.2f}]",
                      f"{cnn['auc']:.3f} [{cnn['ci95'][0]:.2f}, {cnn['ci95'][1]:.2f}]",
                      *[f"{agree.get(k, 'n/a')}/{len(out)}" for k in READING],
                      ",".join(summary[key]["reference"])])
    table(f"ROI size vs the TIC reading ({len(rows)} exams of {a.manifest}; 95 % CIs by "
          "bootstrap: wide with so few exams)",
          ["ROI / reference", "TIC model AUC [95% CI]", "physiology reading AUC",
           "published score AUC", "CNN AUC", *READING, "read as"],
          trows)
    spread: dict[str, dict[str, float]] = {}
    for what in ("tic", "physiology", "published"):
        spread[what] = {}
        for band in a.bands:
            name = "ring" if band == 0 else f"band{band:g}"
            aucs = [summary[f"{s:g}r/{name}"][what]["auc"] for s in a.sides]
            spread[what][name] = round(max(aucs) - min(aucs), 4)
        print(f"{what} AUC spread over ROI sides " + ", ".join(
            f"{k}: {v:.3f}" for k, v in spread[what].items()))
    print()
    for key in runs:
        if key.startswith(f"{a.manifest_side:g}r/") and "band" in key:
            table(f"per exam, ROI {key} (truth -> reading)",
                  ["exam", "label", *READING, "p_hcc (TIC)", "published", "CNN"],
                  [[o["exam"], o["label"], *[f"{o['truth'].get(k, '?')} -> {o[k]}"
                                            for k in READING], o["p_hcc"], o["score"],
                    o.get("score_network")]
                   for o in runs[key]])
    write(a.out, {"manifest": str(a.manifest), "wall_s": round(time.monotonic() - started, 1),
                  "model_note": "shipped model (trained on simulated data); its TIC "
                  "coefficients were fitted on the ring reading",
                  "summary": summary, "tic_auc_spread": spread, "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
