"""Manifest rows: ``path,label,roi`` and ``t0`` and/or ``injection`` (seconds from the
recording's first frame), paths relative to the manifest; labels HCC / non-HCC (also 1 / 0).
A path is a video file, a DICOM cine or an image folder with ``timestamps.csv``. Used by QA,
training from recordings and the benchmarks.

Every row is checked before any exam runs. ``check_manifest`` keeps the good rows and lists
the bad ones with their reasons (an archive of thousands is not blocked by one typo: QA
scores the rest and reports the bad ones); ``read_manifest`` refuses a manifest with any bad
row (training). A row with both ``t0`` and ``injection`` uses ``t0`` (the arrival) and keeps
the injection as information. An optional ``ref_roi`` column (X,Y,W,H) gives the TIC reading an
operator's parenchyma reference box. A row repeating an earlier one (same file, ROI and times) is a
duplicate: listed, scored once.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError, UsageError
from .roi import Roi

LABELS = {"hcc": 1, "1": 1, "non-hcc": 0, "nonhcc": 0, "non_hcc": 0, "0": 0}
MANIFEST = "manifest.csv"


@dataclass
class Row:
    line: int
    path: Path
    label: int | None
    roi: Roi
    t0: float | None
    injection: float | None
    #: the operator's parenchyma reference box (optional ``ref_roi`` column): the TIC reading
    #: compares the lesion with it instead of the band around the ROI
    ref_roi: Roi | None = None

    @property
    def replay_times(self) -> tuple[float | None, float | None]:
        """(t0, injection) for a replay: t0 when given (the injection is then information
        only), else the injection (t0 detected)."""
        return (self.t0, None) if self.t0 is not None else (None, self.injection)

    @property
    def key(self) -> tuple:
        """What makes two rows the same exam: the file, the ROI and the times."""
        key = (str(self.path), tuple(self.roi.as_list()), self.t0,
               None if self.t0 is not None else self.injection)
        return key if self.ref_roi is None else key + (tuple(self.ref_roi.as_list()),)


@dataclass
class BadRow:
    line: int
    path: str
    reason: str
    #: the earlier row this one repeats (duplicates only)
    duplicate_of: int | None = None

    def describe(self) -> str:
        return f"row {self.line}: {self.reason}"


@dataclass
class Manifest:
    path: Path
    rows: list[Row] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)

    @property
    def duplicates(self) -> list[BadRow]:
        return [b for b in self.bad if b.duplicate_of is not None]

    def summary(self, limit: int = 20) -> str:
        errs = [b.describe() for b in self.bad]
        shown = errs[:limit] + ([f"... and {len(errs) - limit} more"] if len(errs) > limit else [])
        return " | ".join(shown)


def locate(path: str | Path) -> Path:
    """The manifest file: ``path`` itself, or ``path/manifest.csv`` for a folder."""
    p = Path(path)
    if p.is_dir():
        if (p / MANIFEST).is_file():
            return p / MANIFEST
        raise InputError(f"{p}: is a folder; give the manifest CSV (no {MANIFEST} in it)")
    if not p.is_file():
        raise InputError(f"manifest {p}: file not found")
    return p


def seconds_value(text: str) -> float:
    """A time in seconds >= 0 (finite: refuses nan and infinities)."""
    v = float(text)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(text)
    return v


def check_row(n: int, r: dict[str, str], base: Path) -> Row | BadRow:
    """One row, every field checked; a BadRow lists everything wrong with it."""
    why = []
    f = (base / r["path"]).resolve() if r.get("path") else None
    if f is None:
        why.append("path is empty")
    elif not (f.is_file() or (f.is_dir() and (f / "timestamps.csv").is_file())):
        why.append(f"{r['path']} not found" if not f.exists() else
                   f"{r['path']} is a folder without timestamps.csv")
    label = LABELS.get(r.get("label", "").lower())
    if r.get("label", "").lower() == "unknown":
        label = None  # scored, left out of the metrics (an archive's exam without truth)
    elif label is None:
        why.append(f"label {r.get('label')!r} is not HCC, non-HCC or unknown")
    roi = None
    try:
        roi = Roi.parse(r.get("roi", ""))
    except UsageError as e:
        why.append(str(e).replace("--roi", "roi"))
    ref_roi = None
    if r.get("ref_roi"):
        try:
            ref_roi = Roi.parse(r["ref_roi"])
        except UsageError as e:
            why.append(str(e).replace("--roi", "ref_roi"))
    times: dict[str, float | None] = {"t0": None, "injection": None}
    for key in times:
        if r.get(key):
            try:
                times[key] = seconds_value(r[key])
            except ValueError:
                why.append(f"{key} {r[key]!r} is not a number of seconds >= 0")
    if times["t0"] is None and times["injection"] is None and \
            not any(w.startswith(("t0", "injection")) for w in why):
        why.append("needs t0 or injection")
    if why:
        return BadRow(n, r.get("path", ""), "; ".join(why))
    return Row(n, f, label, roi, times["t0"], times["injection"], ref_roi)


def check_manifest(path: str | Path) -> Manifest:
    """Reads and checks every row. Refuses only a manifest that cannot be read or lacks
    columns; bad rows and duplicates are kept in ``Manifest.bad`` with their reasons."""
    p = locate(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"manifest {p}: unreadable ({e})") from None
    reader = csv.DictReader(text.splitlines())
    cols = {(c or "").strip().lower() for c in (reader.fieldnames or [])}
    missing = {"path", "label", "roi"} - cols
    if missing or not ({"t0", "injection"} & cols):
        raise InputError(f"manifest {p}: needs columns path,label,roi and t0 or injection "
                         f"(has: {', '.join(sorted(cols)) or 'none'})")
    m = Manifest(p)
    seen: dict[tuple, Row] = {}
    for n, raw in enumerate(reader, start=2):
        r = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()
             if not isinstance(v, list)}
        if not any(r.values()):
            continue  # a blank line
        got = check_row(n, r, p.parent)
        if isinstance(got, BadRow):
            m.bad.append(got)
            continue
        first = seen.get(got.key)
        if first is not None:
            why = f"duplicate of row {first.line}"
            if first.label != got.label:
                why += " with a different label"
            m.bad.append(BadRow(n, r.get("path", ""), why, duplicate_of=first.line))
            continue
        seen[got.key] = got
        m.rows.append(got)
    if not m.rows and not m.bad:
        raise InputError(f"manifest {p}: no exams listed")
    return m


def read_manifest(path: str | Path) -> list[Row]:
    """The rows of a manifest that must be whole (training): any bad row refuses it, listing
    every bad row in one line; duplicates are refused too."""
    m = check_manifest(path)
    if m.bad:
        raise InputError(f"manifest {m.path}: {len(m.bad)} bad row(s): {m.summary()}")
    return m.rows
