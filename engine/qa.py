"""``ceustream qa MANIFEST.csv --out DIR``: many recorded exams through the same replay path as
a single one, results written as they come (an interrupted run keeps what it did), then the
paper's metrics with bootstrap CIs, ROC and confusion plots, and a Markdown report.

Manifest columns: ``path,label,roi`` and one of ``t0`` / ``injection`` (seconds). Paths are
relative to the manifest. Labels: HCC or non-HCC (also 1/0). Every row is checked before
any exam runs; a bad manifest is refused with the offending rows listed.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import CeusError, InputError, UsageError
from .roi import Roi

LABELS = {"hcc": 1, "1": 1, "non-hcc": 0, "nonhcc": 0, "non_hcc": 0, "0": 0}


@dataclass
class Row:
    line: int
    path: Path
    label: int
    roi: Roi
    t0: float | None
    injection: float | None


def read_manifest(path: str | Path) -> list[Row]:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"manifest {p}: file not found")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"manifest {p}: unreadable ({e})") from None
    reader = csv.DictReader(text.splitlines())
    cols = {c.strip().lower() for c in (reader.fieldnames or [])}
    missing = {"path", "label", "roi"} - cols
    if missing or not ({"t0", "injection"} & cols):
        raise InputError(f"manifest {p}: needs columns path,label,roi and t0 or injection "
                         f"(has: {', '.join(sorted(cols)) or 'none'})")
    rows, errors = [], []
    for n, raw in enumerate(reader, start=2):
        r = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        why = []
        f = (p.parent / r["path"]).resolve() if r.get("path") else None
        if f is None:
            why.append("path is empty")
        elif not f.is_file():
            why.append(f"{r['path']} not found")
        label = LABELS.get(r.get("label", "").lower())
        if label is None:
            why.append(f"label {r.get('label')!r} is not HCC or non-HCC")
        roi = None
        try:
            roi = Roi.parse(r.get("roi", ""))
        except UsageError as e:
            why.append(str(e).replace("--roi", "roi"))
        t0 = inj = None
        for key in ("t0", "injection"):
            if r.get(key):
                try:
                    v = float(r[key])
                    if not 0 <= v < float("inf"):  # also refuses nan
                        raise ValueError
                except ValueError:
                    why.append(f"{key} {r[key]!r} is not a number of seconds >= 0")
                    continue
                if key == "t0":
                    t0 = v
                else:
                    inj = v
        if t0 is None and inj is None and not any("t0" in w or "injection" in w for w in why):
            why.append("needs t0 or injection")
        if t0 is not None and inj is not None:
            why.append("give t0 or injection, not both")
        if why:
            errors.append(f"row {n}: {'; '.join(why)}")
        else:
            rows.append(Row(n, f, label, roi, t0, inj))
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise InputError(f"manifest {p}: {len(errors)} bad row(s): " + " | ".join(shown))
    if not rows:
        raise InputError(f"manifest {p}: no exams listed")
    return rows


def run(args) -> int:
    from ceustream.models import metrics

    from .cli import _cfg
    from .replay import ReplayOptions, load_model_and_backend, replay

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise UsageError(f"--threshold {args.threshold:g}: a probability between 0 and 1")
    cfg = _cfg(args)
    rows = read_manifest(args.manifest)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model_and_backend(None, cfg["model"]["backend"], cfg)
    model = loaded[0]
    threshold = args.threshold if args.threshold is not None else model.meta.threshold
    results_path = out / "results.jsonl"
    done = {}
    if results_path.exists():  # resume: exams already scored are kept
        for line in results_path.read_text().splitlines():
            try:
                r = json.loads(line)
                done[r["row"]] = r
            except (json.JSONDecodeError, KeyError):
                continue
    t_start = time.monotonic()
    with open(results_path, "a") as fh:
        for k, row in enumerate(rows, 1):
            if row.line in done and done[row.line].get("model_sha256") == loaded[0].sha256:
                continue
            t = time.monotonic()
            rec = {"row": row.line, "path": row.path.name, "label": row.label,
                   "model_sha256": loaded[0].sha256}
            try:
                r = replay(row.path, ReplayOptions(roi=row.roi, t0=row.t0, injection=row.injection,
                                                   journal=False), cfg, loaded=loaded)
                rec.update(exam=r["exam"], score=r["score"], final=r["final"], t0=r["t0"],
                           flags=r["flags"], slots_filled=r["slots_filled"],
                           wall_s=r["replay"]["wall_s"])
                state = (f"P(HCC) {r['score']:.3f}" if r["score"] is not None else "no score") + \
                    ("" if r["final"] else " (partial)")
            except CeusError as e:
                rec.update(error=str(e), score=None, final=False)
                state = f"error: {e}"
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[row.line] = rec
            print(f"[{k}/{len(rows)}] {row.path.name}: {state} ({time.monotonic() - t:.1f} s)",
                  file=sys.stderr, flush=True)
    recs = [done[r.line] for r in rows]
    scored = [r for r in recs if r.get("score") is not None and r.get("final")]
    report = {"manifest": str(Path(args.manifest).resolve()), "exams": len(recs),
              "scored_final": len(scored), "partial_or_failed": len(recs) - len(scored),
              "model": loaded[0].describe(), "threshold": threshold,
              "wall_s": round(time.monotonic() - t_start, 1)}
    if scored and len({r["label"] for r in scored}) == 2:
        y = [r["label"] for r in scored]
        s = [r["score"] for r in scored]
        ev = metrics.evaluate(y, s, threshold)
        report["evaluation"] = ev
        metrics.plot_roc({model.meta.name: (y, s)}, out / "roc.png", "QA replay: ROC")
        metrics.plot_confusion(metrics.Confusion(**ev["confusion"]), out / "confusion.png",
                               f"QA replay at threshold {threshold:g}")
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(_markdown(report, recs))
    print(f"report: {out / 'report.md'}", file=sys.stderr)
    print(json.dumps({k: report[k] for k in ("exams", "scored_final", "partial_or_failed")}
                     | ({"ROC_AUC": report["evaluation"]["metrics"]["ROC_AUC"]}
                        if "evaluation" in report else {})))
    return 0 if len(scored) == len(recs) else 4


def _markdown(report: dict, recs: list[dict]) -> str:
    from . import DISCLAIMER

    lines = ["# ceustream QA report", "", f"*{DISCLAIMER}*", "",
             f"- exams: {report['exams']}, scored (final): {report['scored_final']}, "
             f"partial or failed: {report['partial_or_failed']}",
             f"- model: {report['model']['name']} ({report['model']['sha256'][:12]}, trained on "
             f"{report['model']['trained_on']} data), threshold {report['threshold']:g}", ""]
    ev = report.get("evaluation")
    if ev:
        lines += ["| metric | value | 95% CI (bootstrap) |", "| --- | --- | --- |"]
        for k, v in ev["metrics"].items():
            lo, hi = ev["ci95"][k]
            ci = "n/a" if lo is None else f"{lo:.3f} - {hi:.3f}"
            lines.append(f"| {k} | {v:.3f} | {ci} |")
        c = ev["confusion"]
        lines += ["", f"Confusion (HCC positive): TP {c['tp']}, FN {c['fn']}, TN {c['tn']}, "
                  f"FP {c['fp']}", "", "![ROC](roc.png) ![confusion](confusion.png)", ""]
    else:
        lines += ["Metrics need final scores for both classes.", ""]
    lines += ["| row | file | label | P(HCC) | final | flags |", "| --- | --- | --- | --- | --- | --- |"]
    for r in recs:
        sc = "error: " + r["error"] if r.get("error") else (
            "n/a" if r.get("score") is None else f"{r['score']:.3f}")
        lines.append(f"| {r['row']} | {r['path']} | {'HCC' if r['label'] else 'non-HCC'} | {sc} "
                     f"| {r.get('final')} | {', '.join(r.get('flags', []))} |")
    return "\n".join(lines) + "\n"
