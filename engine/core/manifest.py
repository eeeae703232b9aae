"""Manifest rows: ``path,label,roi`` and ``t0`` or ``injection`` (seconds), paths relative to
the manifest; labels HCC / non-HCC (also 1 / 0). Used by QA, training from recordings and
the benchmarks. Every row is checked before any exam runs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, UsageError
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
