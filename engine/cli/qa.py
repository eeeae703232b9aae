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
    add_pacs_options(p)
    common.add_model_options(p)


def add_pacs_options(p) -> None:
    g = p.add_argument_group(
        "from and back to a PACS (MANIFEST given as dicomweb+http(s)://HOST:PORT/ROOT or "
        "dimse[+tls]://AET@HOST:PORT, retrieving by C-GET, or by C-MOVE to our AE title with "
        "dimse://AET@HOST:PORT?retrieve=move&move-port=N; CA in CEUSTREAM_PACS_CA; "
        "credentials from CEUSTREAM_PACS_CREDENTIALS (a file: user:password or Bearer TOKEN) "
        "or CEUSTREAM_PACS_USER/CEUSTREAM_PACS_PASSWORD, never the command line)")
    g.add_argument("--study-date", help="YYYYMMDD or YYYYMMDD-YYYYMMDD (either end open)")
    g.add_argument("--accession", action="append", default=[],
                   help="an accession number (repeat or comma-separate)")
    g.add_argument("--study-uid", action="append", default=[],
                   help="a Study Instance UID (repeat or comma-separate)")
    g.add_argument("--series-uid", action="append", default=[],
                   help="a Series Instance UID (repeat or comma-separate)")
    g.add_argument("--labels", help="CSV keyed by accession, study_uid or sop_uid: label "
                   "(HCC/non-HCC/unknown) and optionally roi, t0, injection, for what DICOM "
                   "does not hold")
    g.add_argument("--our-aet", default="CEUSTREAM", help="our AE title (default CEUSTREAM)")
    g.add_argument("--cache-dir", help="where retrieved cines are kept (they hold "
                   "patient data; default $XDG_CACHE_HOME/ceustream/pacs)")
    g.add_argument("--cache-gb", type=float, default=4.0,
                   help="bound of the cache in GB (default 4)")
    g.add_argument("--no-store", action="store_true",
                   help="do not store the SR and Secondary Capture back into the studies")


def _listed(values: list[str]) -> tuple[str, ...]:
    return tuple(v.strip() for x in values for v in x.split(",") if v.strip())


def run_pacs(args) -> int:
    import math

    from ceustream.engine.app import pacs
    from ceustream.engine.dicomnet import archive, peer

    if not (math.isfinite(args.cache_gb) and 0.01 <= args.cache_gb <= 100000):
        raise UsageError("--cache-gb: a number of GB between 0.01 and 100000")
    pr = peer.parse(args.manifest, args.our_aet)
    q = archive.Query(study_date=args.study_date, accessions=_listed(args.accession),
                      study_uids=_listed(args.study_uid), series_uids=_listed(args.series_uid))
    opts = pacs.PacsOptions(q, labels=args.labels,
                            cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                            cache_bytes=int(args.cache_gb * 1e9), store_back=not args.no_store)
    cfg = common.load_config(args)
    report, code = pacs.run(pr, opts, args.out, cfg, args.threshold, jobs=args.jobs)
    keys = ("exams", "scored_final", "partial_or_failed", "bad_rows", "duplicates")
    summary = {k: report[k] for k in keys}
    summary["stored"] = report["pacs"]["stored"]
    summary["missing"] = sum(1 for e in report["pacs"]["exams"] if e["missing"])
    if "evaluation" in report:
        summary["ROC_AUC"] = report["evaluation"]["metrics"]["ROC_AUC"]
    summary["report"] = str(Path(args.out) / "report.html")
    print(json.dumps(summary))
    return code


def run(args) -> int:
    if args.manifest == "compare" and not Path("compare").exists():
        return run_compare(args)
    from ceustream.engine.dicomnet.peer import is_pacs_address

    if is_pacs_address(args.manifest):
        if args.runs:
            raise UsageError(f"qa: unexpected argument(s) {' '.join(args.runs)}")
        if not args.out:
            raise UsageError("qa: the following arguments are required: --out")
        if args.ray:
            raise UsageError("qa: --ray does not apply to a PACS address")
        return run_pacs(args)
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
