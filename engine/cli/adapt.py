"""``ceustream adapt MANIFEST --out FILE.onnx [--base MODEL]``: site adaptation from a few
dozen local, labelled exams (``app.adapt``)."""

from __future__ import annotations

import json
import logging
import sys

from . import common

log = logging.getLogger(__name__)

DESCRIPTION = """\
Fit what a few dozen local, labelled exams can support without over-fitting, beside the
unchanged network weights: the TIC model refitted, a fusion of the network's score with the
TIC reading (the adapted model's score), and the out-of-distribution reference extended with
the site's exams (so they are inside the adapted model's domain). Expected performance is
measured by leave-one-out cross-validation with bootstrap 95 % intervals (wide for a few
dozen exams: read them). The MANIFEST is the one `ceustream qa` reads (path,label,roi and t0
or injection). Refused: fewer than 10 usable exams, or a single class. The written ONNX file
says in its metadata what it was adapted on (count, manifest sha256, date, base model) and is
served by --model and the control command reload_model like any model.

The result on stdout is one JSON object (the cross-validation and what was written)."""


def add_parser(sub) -> None:
    p = common.command(sub, "adapt", "adapt a model to a site from its labelled exams "
                       "(leave-one-out cross-validated)", codes=(0, 1, 2, 3),
                       description=DESCRIPTION)
    p.add_argument("manifest", help="the manifest CSV of the site's exams (or its folder)")
    p.add_argument("--out", required=True, help="the adapted model file to write (.onnx)")
    p.add_argument("--base", default=None, help="the model to adapt (default: the configured "
                   "one, else the shipped 3D-CNN)")
    p.add_argument("--config", help="settings file (TOML) over the defaults")


def run(args) -> int:
    from ceustream.engine.app.adapt import adapt

    cfg = common.load_config(args)
    base = args.base or cfg["model"].get("path") or None

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report = adapt(args.manifest, args.out, cfg, base, progress)
    cv = report["cross_validation"]
    for k in ("network", "tic_model", "fusion"):
        ci = cv[k]["ROC_AUC_ci95"]
        log.info("leave-one-out ROC AUC, %-9s %.3f (95 %% CI %s-%s), n = %d", k,
                 cv[k]["ROC_AUC"], ci[0], ci[1], cv["n"])
    print(json.dumps(report))
    return 0
