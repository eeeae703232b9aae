"""``ceustream qa compare RUN_A RUN_B``: two QA runs over the same manifest, paired exam by
exam — what a department does before switching model versions.

- ROC AUC difference: DeLong, DeLong & Clarke-Pearson (1988), the paired test on the two
  AUCs' structural components (placement values): z = (A - B) / sqrt(var A + var B - 2 cov),
  two-sided normal p;
- labels: McNemar on the discordant pairs (A right and B wrong: b; A wrong and B right: c),
  exact two-sided binomial when b + c < 25, else chi-square with continuity correction;
- every exam whose label changed, with both scores.

Only exams scored final in both runs are paired (by file, ROI and times); the rest are
counted and listed.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from ceustream.engine.core import DISCLAIMER
from ceustream.engine.core.errors import InputError

log = logging.getLogger(__name__)

EXACT_BELOW = 25  # McNemar: exact binomial when fewer discordant pairs


# -- statistics --------------------------------------------------------------------------------
def placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components: V10 per positive (share of negatives it outscores,
    ties one half) and V01 per negative (share of positives that outscore it)."""
    psi = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)


def delong(y: list[int], a: list[float], b: list[float]) -> dict[str, Any]:
    """Paired DeLong test of AUC(a) - AUC(b) on the same exams (y: 1 = HCC)."""
    y = np.asarray(y, int)
    sa, sb = np.asarray(a, float), np.asarray(b, float)
    m, n = int((y == 1).sum()), int((y == 0).sum())
    if m < 2 or n < 2:
        raise InputError(f"DeLong needs at least 2 exams of each class in both runs "
                         f"(HCC {m}, non-HCC {n})")
    v10, v01 = [], []
    for s in (sa, sb):
        p10, p01 = placements(s[y == 1], s[y == 0])
        v10.append(p10)
        v01.append(p01)
    auc = np.array([v.mean() for v in v10])
    s10 = np.cov(np.vstack(v10), ddof=1)
    s01 = np.cov(np.vstack(v01), ddof=1)
    cov = s10 / m + s01 / n
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = float(auc[0] - auc[1])
    if var <= 0:
        z, p = None, (1.0 if diff == 0 else None)
    else:
        z = diff / math.sqrt(var)
        p = math.erfc(abs(z) / math.sqrt(2))
    return {"auc_a": float(auc[0]), "auc_b": float(auc[1]), "difference": diff,
            "var_a": float(cov[0, 0]), "var_b": float(cov[1, 1]), "cov": float(cov[0, 1]),
            "se": math.sqrt(var) if var > 0 else 0.0, "z": z, "p": p,
            "n_hcc": m, "n_non_hcc": n}


def mcnemar(b: int, c: int) -> dict[str, Any]:
    """McNemar's test on discordant pairs b (A right, B wrong) and c (A wrong, B right)."""
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "method": "none (no discordant pairs)", "p": 1.0}
    if n < EXACT_BELOW:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
        return {"b": b, "c": c, "method": "exact binomial", "p": min(1.0, 2 * tail)}
    chi2 = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "method": "chi-square, continuity corrected", "chi2": chi2,
            "p": math.erfc(math.sqrt(chi2 / 2))}


# -- runs --------------------------------------------------------------------------------------
def load_run(d: str | Path) -> tuple[dict, dict[str, dict]]:
    """(report.json, {row key: newest record}) of a QA run folder."""
    d = Path(d)
    res = d / "results.jsonl"
    if not d.is_dir() or not res.is_file():
        raise InputError(f"{d}: not a QA run folder (no results.jsonl)")
    try:
        report = json.loads((d / "report.json").read_text()) if (d / "report.json").is_file() \
            else {}
        lines = res.read_text().splitlines()
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{d}: unreadable run ({e})") from None
    recs: dict[str, dict] = {}
    sha = (report.get("model") or {}).get("sha256")
    for line in lines:
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r.get("key") and (sha is None or r.get("model_sha256") in (sha, None)):
            recs[r["key"]] = r
    return report, recs


def predicted(r: dict, threshold: float) -> int:
    """The run's label for an exam: HCC at or above the run's threshold (as its metrics)."""
    return int(r["score"] >= threshold)


def compare(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """The paired comparison of two runs (see the module's docstring)."""
    rep_a, a = load_run(run_a)
    rep_b, b = load_run(run_b)
    ta, tb = rep_a.get("threshold", 0.5), rep_b.get("threshold", 0.5)
    ok = lambda r: r.get("status") == "scored" and r.get("score") is not None  # noqa: E731
    keys = sorted((k for k in a if k in b and ok(a[k]) and ok(b[k])),
                  key=lambda k: a[k].get("row", 0))
    truth_differs = [a[k]["row"] for k in keys if a[k]["label"] != b[k]["label"]]
    if truth_differs:
        raise InputError(f"{run_a} and {run_b} disagree on the truth label of row(s) "
                         f"{', '.join(map(str, truth_differs[:10]))}: not the same manifest")
    if not keys:
        raise InputError(f"{run_a} and {run_b} have no exam scored final in both")
    log.info("compare: %d exams scored in both runs", len(keys))
    y = [a[k]["label"] for k in keys]
    sa, sb = [a[k]["score"] for k in keys], [b[k]["score"] for k in keys]
    la, lb = [predicted(a[k], ta) for k in keys], [predicted(b[k], tb) for k in keys]
    right_a = [p == t for p, t in zip(la, y)]
    right_b = [p == t for p, t in zip(lb, y)]
    disc_b = sum(1 for x, z in zip(right_a, right_b) if x and not z)
    disc_c = sum(1 for x, z in zip(right_a, right_b) if z and not x)
    changed = [{"row": a[k]["row"], "path": a[k]["path"], "exam": a[k].get("exam"),
                "truth": "HCC" if a[k]["label"] else "non-HCC",
                "score_a": a[k]["score"], "score_b": b[k]["score"],
                "label_a": "HCC" if p else "non-HCC", "label_b": "HCC" if q else "non-HCC"}
               for k, p, q in zip(keys, la, lb) if p != q]
    out: dict[str, Any] = {
        "run_a": str(Path(run_a).resolve()), "run_b": str(Path(run_b).resolve()),
        "model_a": rep_a.get("model"), "model_b": rep_b.get("model"),
        "same_manifest": rep_a.get("manifest") == rep_b.get("manifest"),
        "paired": len(keys), "only_in_one_or_not_final": len(set(a) | set(b)) - len(keys),
        "accuracy_a": sum(right_a) / len(keys), "accuracy_b": sum(right_b) / len(keys),
        "mcnemar": mcnemar(disc_b, disc_c), "label_changed": changed,
        "disclaimer": DISCLAIMER}
    if len(set(y)) == 2:
        try:
            out["delong"] = delong(y, sa, sb)
        except InputError as e:
            out["delong"] = {"error": str(e)}
    else:
        out["delong"] = {"error": "the paired exams are all of one class"}
    return out


def markdown(c: dict) -> str:
    d, mc = c.get("delong", {}), c["mcnemar"]
    ma, mb = c.get("model_a") or {}, c.get("model_b") or {}
    lines = ["# ceustream QA comparison", "", f"*{DISCLAIMER}*", "",
             f"- A: {c['run_a']} (model {ma.get('name')} {str(ma.get('sha256', ''))[:12]})",
             f"- B: {c['run_b']} (model {mb.get('name')} {str(mb.get('sha256', ''))[:12]})",
             f"- paired exams (final in both): {c['paired']}; same manifest: "
             f"{c['same_manifest']}", ""]
    if "error" in d:
        lines.append(f"ROC AUC (DeLong): {d['error']}")
    else:
        p = "n/a" if d["p"] is None else f"{d['p']:.4f}"
        lines.append(f"ROC AUC: A {d['auc_a']:.4f}, B {d['auc_b']:.4f}, difference "
                     f"{d['difference']:+.4f} (SE {d['se']:.4f}), DeLong p = {p}")
    lines += [f"Labels: accuracy A {c['accuracy_a']:.3f}, B {c['accuracy_b']:.3f}; McNemar "
              f"({mc['method']}): b = {mc['b']}, c = {mc['c']}, p = {mc['p']:.4f}", "",
              f"## Exams whose label changed ({len(c['label_changed'])})", "",
              "| row | file | truth | A | B |", "| --- | --- | --- | --- | --- |"]
    for r in c["label_changed"]:
        lines.append(f"| {r['row']} | {r['path']} | {r['truth']} | {r['label_a']} "
                     f"({r['score_a']:.3f}) | {r['label_b']} ({r['score_b']:.3f}) |")
    return "\n".join(lines) + "\n"
