"""``ceustream qa MANIFEST.csv --out DIR``: many recorded exams, metrics and a report;
``ceustream qa compare RUN_A RUN_B``: two runs of one manifest, paired."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ceustream.engine.core.errors import InputError, UsageError

from . import common

log = logging.getLogger(__name__)

DESCRIPTION = """\
Replay every exam of a manifest (CSV: path,label,roi and t0 and/or injection, in seconds from
each recording's first frame; paths relative to the manifest: video files, DICOM cines or
image folders with timestamps.csv). Every row is checked first: bad rows and duplicates are
listed in results.jsonl and the report, and the rest run. Results are appended to
DIR/results.jsonl as they finish (an interrupted run resumes there), then DIR/report.html (one
self-contained file), report.json, report.md, roc.png and confusion.png. Exit 4 when any row
was bad, failed or ended partial (the others are still scored and reported).

  ceustream qa compare RUN_A RUN_B [--out DIR]
compares two runs over the same manifest: DeLong test of the ROC AUC difference, McNemar test
of the labels, the exams whose label changed."""


def add_parser(sub) -> None:
    p = common.command(sub, "qa", "replay many recorded exams; metrics and a report "
                       "(or: qa compare RUN_A RUN_B)", codes=(0, 1, 2, 3, 4, 5),
                       description=DESCRIPTION)
    p.add_argument("manifest", help="the manifest CSV (or a folder holding manifest.csv); or "
                   "the word 'compare' followed by two run folders")
    p.add_argument("runs", nargs="*", metavar="RUN", help="(qa compare only) the two run "
                   "folders to compare")
    p.add_argument("--out", help="folder for results.jsonl, report.html/json/md and plots; an "
                   "interrupted run resumes there (compare: where compare.json/md go)")
    p.add_argument("--threshold", type=common.probability, default=None,
                   help="P(HCC) at or above which an exam is called HCC (default: the model's)")
    p.add_argument("--jobs", type=common.count, default=None,
                   help="worker processes, each with its own loaded model (default: all "
                   "cores; 1 = in this process); with --ray, the number of actors (default: "
                   "the cluster's CPUs)")
    p.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="spread the exams over a Ray cluster (actors holding the model, one "
                   "exam per task): its address (e.g. 10.0.0.5:6379, auto), or 'local' for a "
                   "private one; needs the ray extra (pip install 'ceustream[ray]')")
    common.add_model_options(p)


def run(args) -> int:
    if args.manifest == "compare" and not Path("compare").exists():
        return run_compare(args)
    if args.runs:
        raise UsageError(f"qa: unexpected argument(s) {' '.join(args.runs)} (one manifest; "
                         "or: qa compare RUN_A RUN_B)")
    if not args.out:
        raise UsageError("qa: the following arguments are required: --out")
    from ceustream.engine.app import qa

    cfg = common.load_config(args)
    report, code = qa.run(args.manifest, args.out, cfg, args.threshold, jobs=args.jobs,
                          ray_address=args.ray)
    keys = ("exams", "scored_final", "partial_or_failed", "bad_rows", "duplicates")
    summary = {k: report[k] for k in keys}
    if "evaluation" in report:
        summary["ROC_AUC"] = report["evaluation"]["metrics"]["ROC_AUC"]
    summary["report"] = str(Path(args.out) / "report.html")
    print(json.dumps(summary))
    if code:
        why = [f"{report['bad_rows']} bad row(s)"] if report["bad_rows"] else []
        if report["partial_or_failed"]:
            why.append(f"{report['partial_or_failed']} exam(s) partial or failed")
        log.warning("not every row gave a final score: %s (listed in %s)", ", ".join(why),
                    Path(args.out) / "report.html")
    return code


def run_compare(args) -> int:
    from ceustream.engine.app import compare

    if len(args.runs) != 2:
        raise UsageError("qa compare: give two run folders (RUN_A RUN_B)")
    if args.ray or args.jobs or args.threshold is not None:
        raise UsageError("qa compare: --ray, --jobs and --threshold do not apply")
    c = compare.compare(*args.runs)
    if args.out:
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "compare.json").write_text(json.dumps(c, indent=1))
            (out / "compare.md").write_text(compare.markdown(c))
        except OSError as e:
            raise InputError(f"--out {out}: cannot write ({e.strerror or e})") from None
    print(compare.markdown(c), end="")
    d = c.get("delong", {})
    print(json.dumps({"paired": c["paired"], "auc_a": d.get("auc_a"), "auc_b": d.get("auc_b"),
                      "delong_p": d.get("p"), "mcnemar_p": c["mcnemar"]["p"],
                      "label_changed": len(c["label_changed"])}))
    return 0
