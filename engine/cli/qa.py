"""``ceustream qa MANIFEST.csv --out DIR``: many recorded exams, metrics and a report."""

from __future__ import annotations

import json

from . import common


def add_parser(sub) -> None:
    p = common.command(sub, "qa", "replay many recorded exams; metrics and a report",
                       codes=(0, 1, 2, 3, 4, 5))
    p.add_argument("manifest", help="CSV with columns path,label,roi and t0 or injection "
                   "(paths relative to the manifest)")
    p.add_argument("--out", required=True, help="folder for results.jsonl, report.md/json, plots; "
                   "an interrupted run resumes there")
    p.add_argument("--threshold", type=common.probability, default=None,
                   help="P(HCC) at or above which an exam is called HCC (default: the model's)")
    common.add_model_options(p)


def run(args) -> int:
    from ceustream.engine.app import qa

    cfg = common.load_config(args)
    report, code = qa.run(args.manifest, args.out, cfg, args.threshold)
    print(json.dumps({k: report[k] for k in ("exams", "scored_final", "partial_or_failed")}
                     | ({"ROC_AUC": report["evaluation"]["metrics"]["ROC_AUC"]}
                        if "evaluation" in report else {})))
    return code
