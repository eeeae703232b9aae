"""The QA run's report, written beside ``results.jsonl``:

- ``report.json``: counts, the bad rows, errors, the metrics with bootstrap CIs, the model;
- ``report.html``: ONE self-contained file (plots embedded as base64 PNG, filmstrips as
  base64 JPEG, TIC
  curves as inline SVG, a few lines of inline JS to sort the per-exam table by any column),
  with the disclaimer at the top; no network, no external file;
- ``report.md``, ``roc.png``, ``confusion.png``: the same for a terminal or a wiki.

No patient identifier is in any of them: rows are named by manifest row, file name and the
content-derived exam id; DICOM headers are never read beyond the engine's tags.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ceustream.engine.core import DISCLAIMER

log = logging.getLogger(__name__)

TILE = 28
PER_ROW = 15


def prepare_plotting() -> None:
    """Imports matplotlib's text stack (Agg) now. Its ``ft2font`` module answers importlib's
    ``__path__`` probe with a C++ exception; thrown before GStreamer is loaded, the C++
    runtime's unwinder is bound to libgcc's for the whole process, never to the libunwind
    that libgstreamer brings (``train --data`` aborted that way: ``terminate called after
    throwing an instance of 'pybind11::attribute_error'``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def state_text(rec: dict) -> str:
    st = rec.get("status")
    if st in ("error", "bad_row", "duplicate"):
        return f"{st.replace('_', ' ')}: {rec.get('error')}"
    sc = "no score" if rec.get("score") is None else f"P(HCC) {rec['score']:.3f}"
    return sc + ("" if rec.get("final") else " (partial)")


# -- pictures ----------------------------------------------------------------------------------
def filmstrip_jpeg(clip: np.ndarray, present: np.ndarray) -> bytes:
    """The 30-slot clip as a strip of thumbnails (2 rows of 15; missing slots crossed out),
    JPEG: speckle does not compress losslessly, and a report of thousands must stay small."""
    import cv2

    n = len(clip)
    rows = (n + PER_ROW - 1) // PER_ROW
    img = np.full((rows * (TILE + 2), PER_ROW * (TILE + 2), 3), 40, np.uint8)
    for k in range(n):
        y, x = (k // PER_ROW) * (TILE + 2) + 1, (k % PER_ROW) * (TILE + 2) + 1
        if present[k]:
            t = cv2.resize(clip[k], (TILE, TILE), interpolation=cv2.INTER_AREA)
            img[y:y + TILE, x:x + TILE] = t[..., None]
        else:
            cv2.line(img, (x, y), (x + TILE - 1, y + TILE - 1), (40, 40, 200), 1)
            cv2.line(img, (x + TILE - 1, y), (x, y + TILE - 1), (40, 40, 200), 1)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return buf.tobytes() if ok else b""


def save_filmstrip(out: Any, rec: dict, clip: np.ndarray, present: np.ndarray) -> str:
    """Writes the row's filmstrip under ``filmstrips/``; returns its path relative to the
    run folder (named by row and the opaque exam id)."""
    name = f"filmstrips/row{rec['row']:05d}_{rec.get('exam') or 'exam'}.jpg"
    out.write_bytes(name, filmstrip_jpeg(clip, present))
    return name


def tic_series(rec: dict) -> tuple[list[float], dict[str, list]]:
    """(times, {name: values}) for the row's time-intensity curve: the analyser's TIC when
    the result has ``features`` (lesion, parenchyma), else the clip's ROI mean per slot."""
    f = rec.get("features") or {}
    if isinstance(f, dict) and f.get("times_s") and f.get("lesion"):
        series = {k: f[k] for k in ("lesion", "parenchyma") if isinstance(f.get(k), list)}
        return list(f["times_s"]), series
    if rec.get("clip_mean") and rec.get("offsets_s"):
        return list(rec["offsets_s"]), {"ROI mean": rec["clip_mean"]}
    return [], {}


def tic_svg(rec: dict, w: int = 240, h: int = 110) -> str:
    """An inline SVG of the TIC with its axes (time from t0 in s, grey level, their ranges
    written at the ends) and a key naming each curve in its colour (empty when there is no
    curve)."""
    t, series = tic_series(rec)
    pts_all = [v for vs in series.values() for v in vs if v is not None]
    if not t or not pts_all:
        return ""
    t0, t1 = min(t), max(t)
    lo, hi = min(pts_all), max(pts_all)
    hi = hi if hi > lo else lo + 1
    colours = {"lesion": "#d04020", "parenchyma": "#2060c0", "ROI mean": "#d04020"}
    left, right, top, bottom = 34, 6, 18, 22  # plot area inside the axes' labels and key
    pw, ph = w - left - right, h - top - bottom

    def xy(ti: float, v: float) -> tuple[float, float]:
        return (left + (ti - t0) / max(t1 - t0, 1e-9) * pw,
                top + ph - (v - lo) / (hi - lo) * ph)

    parts = [f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" '
             'stroke="#555"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#555"/>',
             f'<text x="{left}" y="{h - 8}" font-size="9">{t0:g}</text>',
             f'<text x="{left + pw}" y="{h - 8}" font-size="9" text-anchor="end">{t1:g}</text>',
             f'<text x="{left + pw / 2}" y="{h - 1}" font-size="9" text-anchor="middle">'
             "time from t0 (s)</text>",
             f'<text x="{left - 3}" y="{top + 8}" font-size="9" text-anchor="end">{hi:.0f}</text>',
             f'<text x="{left - 3}" y="{top + ph}" font-size="9" text-anchor="end">{lo:.0f}</text>',
             f'<text x="3" y="{top + ph / 2}" font-size="9" transform="rotate(-90 8 '
             f'{top + ph / 2})" text-anchor="middle">grey</text>']
    kx = left
    for name, vs in series.items():
        c = colours.get(name, "#444")
        pts = [xy(ti, v) for ti, v in zip(t, vs) if v is not None]
        if len(pts) >= 2:
            pl = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.4" points="{pl}">'
                         f"<title>{html.escape(name)}</title></polyline>")
        parts.append(f'<rect x="{kx}" y="4" width="10" height="3" fill="{c}"/>'
                     f'<text x="{kx + 13}" y="10" font-size="9" class="key">'
                     f"{html.escape(name)}</text>")
        kx += 16 + 6 * len(name)
    legend = " / ".join(series)
    return (f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
            f'aria-label="TIC: {html.escape(legend)}">{"".join(parts)}</svg>')


# -- the report --------------------------------------------------------------------------------
def build(m: Any, recs: list[dict], model: Any, threshold: float, wall_s: float,
          jobs: int = 1, ray: str | None = None) -> dict[str, Any]:
    """The report's numbers (``report.json``)."""
    from ceustream.models import metrics

    exams = [r for r in recs if r.get("status") not in ("bad_row", "duplicate")]
    scored = [r for r in exams if r.get("status") == "scored" and r.get("score") is not None]
    bad = [r for r in recs if r.get("status") in ("bad_row", "duplicate")]
    conflicts = [r for r in bad if r["status"] == "bad_row" or "different label" in r["error"]]
    report: dict[str, Any] = {
        "manifest": str(Path(m.path).resolve()), "rows": len(recs), "exams": len(m.rows),
        "scored_final": len(scored), "partial_or_failed": len(m.rows) - len(scored),
        "bad_rows": len(conflicts), "duplicates": len([r for r in bad
                                                       if r["status"] == "duplicate"]),
        "bad": [{"row": r["row"], "path": r["path"], "status": r["status"],
                 "reason": r["error"]} for r in bad],
        "errors": [{"row": r["row"], "path": r["path"], "error": r.get("error")}
                   for r in exams if r.get("status") == "error"],
        "partial": [{"row": r["row"], "path": r["path"], "flags": r.get("flags", []),
                     "slots_filled": r.get("slots_filled")}
                    for r in exams if r.get("status") == "partial"],
        "seek_fallback": [r["row"] for r in exams if r.get("seek_fallback")],
        "model": model.describe(), "threshold": threshold, "wall_s": wall_s,
        "workers": {"jobs": jobs, "ray": ray},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "disclaimer": DISCLAIMER}
    report["out_of_domain"] = [r["row"] for r in scored if out_of_domain(r)]
    labelled = [r for r in scored if r.get("label") is not None]
    if labelled and len({r["label"] for r in labelled}) == 2:
        y = [r["label"] for r in labelled]
        s = [r["score"] for r in labelled]
        report["evaluation"] = metrics.evaluate(y, s, threshold)
        tic = [r for r in scored if (r.get("features") or {}).get("p_hcc") is not None]
        if len({r["label"] for r in tic}) == 2:
            # what still holds out of the model's domain: the TIC model, evaluated alike
            report["evaluation_tic"] = metrics.evaluate(
                [r["label"] for r in tic], [r["features"]["p_hcc"] for r in tic], 0.5)
    return report


def out_of_domain(rec: dict) -> bool:
    return (rec.get("domain") or {}).get("state") == "out"


def write_all(out: Any, report: dict, recs: list[dict]) -> None:
    """report.json, the plots, report.md and report.html into the run folder."""
    from ceustream.models import metrics

    images: dict[str, str] = {}
    ev = report.get("evaluation")
    if ev:
        scored = [r for r in recs if r.get("status") == "scored" and r.get("score") is not None
                  and r.get("label") is not None]
        y, s = [r["label"] for r in scored], [r["score"] for r in scored]
        name = report["model"]["name"]
        try:
            metrics.plot_roc({name: (y, s)}, out.dir / "roc.png", "QA replay: ROC")
            metrics.plot_confusion(metrics.Confusion(**ev["confusion"]), out.dir / "confusion.png",
                                   f"QA replay at threshold {report['threshold']:g}")
        except OSError as e:
            raise out.fail(out.dir / "roc.png", e) from None
        for k in ("roc", "confusion"):
            images[k] = base64.b64encode((out.dir / f"{k}.png").read_bytes()).decode()
    out.write_text("report.json", json.dumps(report, indent=1))
    out.write_text("report.md", markdown(report, recs))
    out.write_text("report.html", page(report, recs, images, out.dir))
    log.info("report: %s", out.dir / "report.html")


def markdown(report: dict, recs: list[dict]) -> str:
    lines = ["# ceustream QA report", "", f"*{DISCLAIMER}*", "",
             f"- exams: {report['exams']}, scored (final): {report['scored_final']}, "
             f"partial or failed: {report['partial_or_failed']}, bad rows: "
             f"{report['bad_rows']}, duplicates: {report['duplicates']}",
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
        sc = state_text(r) if r.get("error") else (
            "n/a" if r.get("score") is None else f"{r['score']:.3f}")
        lab = "" if r.get("label") is None else ("HCC" if r["label"] else "non-HCC")
        lines.append(f"| {r['row']} | {r['path']} | {lab} | {sc} "
                     f"| {r.get('final')} | {', '.join(r.get('flags', []))} |")
    return "\n".join(lines) + "\n"


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 8px}
.disclaimer{background:#fff3cd;border:1px solid #e0c060;padding:8px 12px;font-weight:600}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 6px;vertical-align:middle;text-align:left}
th{background:#f0f0f0;cursor:pointer;user-select:none;white-space:nowrap}
th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
tr.bad td{background:#fde8e8} tr.partial td{background:#fff6e0}
p.warn{background:#fff3cd;border:1px solid #e0b000;padding:6px}
.small{font-size:11px;color:#666} img.strip{image-rendering:pixelated;max-width:300px;height:auto}
td{overflow-wrap:anywhere;max-width:320px}
.wide{overflow-x:auto;max-width:100%}
.plots img{max-width:420px;margin-right:12px}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
 t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
  var asc=!th.classList.contains('sorted-asc');
  t.querySelectorAll('th').forEach(function(h){h.classList.remove('sorted-asc','sorted-desc')});
  th.classList.add(asc?'sorted-asc':'sorted-desc');
  var rows=Array.from(t.tBodies[0].rows);
  rows.sort(function(a,b){var x=a.cells[i].dataset.sort,y=b.cells[i].dataset.sort;
   var nx=parseFloat(x),ny=parseFloat(y);
   var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:String(x).localeCompare(String(y));
   return asc?c:-c;});
  rows.forEach(function(r){t.tBodies[0].appendChild(r)});});});});
"""


def _ci(ev: dict, k: str) -> str:
    lo, hi = ev["ci95"][k]
    return "n/a" if lo is None else f"{lo:.3f} - {hi:.3f}"


def _cell(text: Any, sort: Any = None, raw: bool = False) -> str:
    body = str(text) if raw else html.escape("" if text is None else str(text))
    key = "" if sort is None else html.escape(str(sort))
    return f'<td data-sort="{key}">{body}</td>'


def pacs_html(pacs: dict) -> str:
    """What was queried from the PACS, retrieved and stored back (``pacs.json``'s content)."""
    e = html.escape
    stored = (f"{pacs['stored']} exam(s) got an SR and a Secondary Capture in their study"
              + (f", {pacs['store_failed']} failed" if pacs.get("store_failed") else "")
              if pacs.get("store_back", True) else "not stored back (--no-store)")
    rows = []
    for x in pacs.get("exams", []):
        src = "; ".join(f"{k} from {v}" for k, v in sorted((x.get("from") or {}).items()))
        st = x.get("stored") or {}
        st_txt = (f"SR {st['sr']}, SC {st['sc']}" if "sr" in st else
                  f"failed: {st['error']}" if "error" in st else "")
        miss = "; ".join(x.get("missing") or [])
        rows.append(f"<tr class='{'partial' if miss else ''}'>" + _cell(x.get("exam", ""))
                    + _cell(x.get("file", "")) + _cell(src) + _cell(miss or "none")
                    + _cell(st_txt) + "</tr>")
    return (f"<h2>PACS</h2><p>Queried <code>{e(str(pacs.get('peer', '')))}</code> for "
            f"{e(str(pacs.get('query', '')))}: {pacs.get('retrieved', len(rows))} cine(s) "
            f"retrieved; {e(stored)}.</p><table class='sortable'><thead><tr><th>exam</th>"
            "<th>file (cache)</th><th>inputs from</th><th>missing</th><th>stored back</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def page(report: dict, recs: list[dict], images: dict[str, str], run_dir: Path) -> str:
    """The self-contained HTML report."""
    e = html.escape
    m = report["model"]
    head = (f"<h1>ceustream QA report</h1><p class='disclaimer'>{e(DISCLAIMER)}</p>"
            f"<p>Manifest <code>{e(Path(report['manifest']).name)}</code>, {report['exams']} "
            f"exam(s): {report['scored_final']} scored (final), {report['partial_or_failed']} "
            f"partial or failed; {report['bad_rows']} bad row(s), {report['duplicates']} "
            f"duplicate(s). Model {e(m['name'])} ({e(m['sha256'][:12])}, trained on "
            f"{e(m['trained_on'])} data), threshold {report['threshold']:g}. "
            f"Created {e(report['created'])}, {report['wall_s']} s.</p>")
    parts = [head]
    ood = report.get("out_of_domain") or []
    if ood:
        tic = report.get("evaluation_tic")
        tic_txt = "" if not tic else (
            f" The TIC model's ROC AUC on the same exams: {tic['metrics']['ROC_AUC']:.3f} "
            f"({_ci(tic, 'ROC_AUC')}).")
        parts.append(f"<p class='warn'><b>{len(ood)} of {report['scored_final']} scored exams are "
                     "outside the model's domain</b> (out-of-distribution check): their label "
                     "is <i>indeterminate</i>, the network's score there is not to be "
                     "trusted, and their P(HCC) is the physiology reading's (the TIC "
                     "reading's LI-RADS features weighed by published frequencies; "
                     "<code>score_basis</code> in the results). The metrics below use the "
                     f"published P(HCC) of every exam.{tic_txt}</p>")
    ev = report.get("evaluation")
    if ev:
        rows = "".join(f"<tr><td>{e(k)}</td><td>{v:.3f}</td><td>{_ci(ev, k)}</td></tr>"
                       for k, v in ev["metrics"].items())
        c = ev["confusion"]
        parts.append("<h2>Metrics</h2><table><tr><th>metric</th><th>value</th>"
                     f"<th>95% CI (bootstrap)</th></tr>{rows}</table>"
                     f"<p>Confusion (HCC positive): TP {c['tp']}, FN {c['fn']}, TN {c['tn']}, "
                     f"FP {c['fp']}</p><div class='plots'>"
                     + "".join(f"<img alt='{k}' src='data:image/png;base64,{v}'>"
                               for k, v in images.items()) + "</div>")
    else:
        parts.append("<h2>Metrics</h2><p>Metrics need final scores for both classes.</p>")
    if report.get("pacs"):
        parts.append(pacs_html(report["pacs"]))
    if report["bad"]:
        parts.append("<h2>Rows not scored</h2><table class='sortable'><thead><tr><th>row</th>"
                     "<th>file</th><th>why</th></tr></thead><tbody>" + "".join(
                         f"<tr class='bad'>{_cell(b['row'], b['row'])}{_cell(b['path'], b['path'])}"
                         f"{_cell(b['reason'], b['reason'])}</tr>" for b in report["bad"])
                     + "</tbody></table>")
    hdr = ["row", "file", "exam", "truth", "P(HCC)", "label", "final", "t0 s", "slots",
           "flags", "clip (30 slots)", "TIC"]
    body = []
    for r in recs:
        cls = "bad" if r.get("status") in ("error", "bad_row", "duplicate") else \
            ("partial" if r.get("status") == "partial" else "")
        truth = "" if r.get("label") is None else ("HCC" if r["label"] else "non-HCC")
        score = r.get("score")
        label = "" if score is None or not r.get("final") else \
            ("indeterminate" if out_of_domain(r) else
             "HCC" if score >= report["threshold"] else "non-HCC")
        strip = ""
        if r.get("filmstrip") and (run_dir / r["filmstrip"]).is_file():
            b64 = base64.b64encode((run_dir / r["filmstrip"]).read_bytes()).decode()
            strip = f"<img class='strip' alt='clip' src='data:image/jpeg;base64,{b64}'>"
        flags = ", ".join(r.get("flags", []))
        if r.get("error"):
            flags = (flags + "; " if flags else "") + state_text(r)
        body.append(
            f"<tr class='{cls}'>" + _cell(r["row"], r["row"]) + _cell(r.get("path"), r.get("path"))
            + _cell(r.get("exam", ""), r.get("exam", "")) + _cell(truth, truth)
            + _cell("" if score is None else f"{score:.3f}", -1 if score is None else score)
            + _cell(label, label)
            + _cell(r.get("final"), int(bool(r.get("final"))))
            + _cell("" if r.get("t0") is None else f"{r['t0']:.2f}",
                    -1 if r.get("t0") is None else r["t0"])
            + _cell(r.get("slots_filled", ""), r.get("slots_filled", -1))
            + _cell(flags, flags) + _cell(strip, "", raw=True)
            + _cell(tic_svg(r), "", raw=True) + "</tr>")
    parts.append("<h2>Exams</h2><p class='small'>Click a column header to sort. Times are "
                 "seconds from each recording's first frame. The TIC is the analyser's "
                 "(lesion / parenchyma) when the result carries features, else the clip's "
                 "ROI mean per slot.</p><div class='wide'><table class='sortable'><thead><tr>"
                 + "".join(f"<th>{e(h)}</th>" for h in hdr) + "</tr></thead><tbody>"
                 + "".join(body) + "</tbody></table></div>")
    parts.append(f"<p class='disclaimer'>{e(DISCLAIMER)}</p>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>ceustream QA report</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}<script>{JS}</script>"
            "</body></html>\n")
