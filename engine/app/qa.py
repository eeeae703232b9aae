"""``ceustream qa MANIFEST.csv --out DIR``: many recorded exams through the same replay path as
a single one, results written as they come (an interrupted run keeps what it did), then the
paper's metrics with bootstrap CIs, ROC and confusion plots, and a Markdown report.

Manifest columns: ``path,label,roi`` and one of ``t0`` / ``injection`` (seconds). Paths are
relative to the manifest. Labels: HCC or non-HCC (also 1/0). Every row is checked before
any exam runs; a bad manifest is refused with the offending rows listed.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ceustream.engine.core import DISCLAIMER
from ceustream.engine.core.errors import CeusError
from ceustream.engine.core.manifest import read_manifest

from .loading import load_model_and_backend
from .replay import ReplayOptions, replay

log = logging.getLogger(__name__)


def run(manifest: str | Path, out: str | Path, cfg: dict,
        threshold: float | None = None) -> tuple[dict, int]:
    """Scores every exam of ``manifest`` into ``out``; returns (report, exit code)."""
    from ceustream.models import metrics

    rows = read_manifest(manifest)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model_and_backend(None, cfg["model"]["backend"], cfg)
    model = loaded[0]
    threshold = threshold if threshold is not None else model.meta.threshold
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
            log.info("[%d/%d] %s: %s (%.1f s)", k, len(rows), row.path.name, state,
                     time.monotonic() - t)
    recs = [done[r.line] for r in rows]
    scored = [r for r in recs if r.get("score") is not None and r.get("final")]
    report = {"manifest": str(Path(manifest).resolve()), "exams": len(recs),
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
    log.info("report: %s", out / "report.md")
    return report, 0 if len(scored) == len(recs) else 4


def _markdown(report: dict, recs: list[dict]) -> str:
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
