"""An exam's inputs where the DICOM standard holds them, and a CSV for the rest.

- Injection: Contrast/Bolus Start Time (0018,1042; PS3.3 C.7.6.4) against the cine's
  acquisition start (Acquisition DateTime 0008,002A, else Acquisition Date + Time), on the
  acquisition's date (a start more than 12 h before the acquisition is taken as the day
  after, across midnight). Seconds from the cine's start, which is its first frame.
- ROI: a Grayscale Softcopy Presentation State that references the cine (a radiologist's
  box or outline in the PACS viewer): the bounding box of its first graphic object in PIXEL
  units (POLYLINE, INTERPOLATED, CIRCLE, ELLIPSE); or a Structured Report whose SCOORD
  (an image region, as TID 1410 writes it) is selected from the cine.
- Labels and anything missing: a CSV keyed by ``accession``, ``study_uid`` or ``sop_uid``
  (one of them per row), with ``label`` and optionally ``roi``, ``t0``, ``injection``.

Every reader returns ``(value, None)`` or ``(None, why)``: what is missing is reported per
exam, never guessed.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ceustream.engine.core.errors import InputError
from ceustream.engine.core.manifest import LABELS
from ceustream.engine.core.roi import Roi

log = logging.getLogger(__name__)

KEYS = ("sop_uid", "study_uid", "accession")


def _dt(date: str, time: str) -> datetime | None:
    date, time = (date or "").strip(), (time or "").strip()
    if len(date) != 8 or not date.isdigit() or len(time) < 2:
        return None
    hh, mm, rest = time[:2], time[2:4] or "00", time[4:] or "00"
    try:
        sec = float(rest) if rest else 0.0
        if not (0 <= sec < 61):
            return None
        return datetime(int(date[:4]), int(date[4:6]), int(date[6:]), int(hh), int(mm)) + \
            timedelta(seconds=sec)
    except ValueError:
        return None


def acquisition_start(ds: Any) -> datetime | None:
    adt = str(ds.get("AcquisitionDateTime", "") or "").strip()
    if len(adt) >= 10:
        return _dt(adt[:8], adt[8:].split("+")[0].split("-")[0])
    return _dt(str(ds.get("AcquisitionDate", "") or ""), str(ds.get("AcquisitionTime", "") or ""))


def injection_from_contrast(ds: Any) -> tuple[float | None, str | None]:
    """Seconds from the cine's first frame to the Contrast/Bolus Start Time."""
    start_t = str(ds.get("ContrastBolusStartTime", "") or "").strip()
    if not start_t:
        return None, "no Contrast/Bolus Start Time"
    acq = acquisition_start(ds)
    if acq is None:
        return None, "no acquisition date-time to set the Contrast/Bolus Start Time against"
    inj = _dt(acq.strftime("%Y%m%d"), start_t)
    if inj is None:
        return None, "Contrast/Bolus Start Time is not a time"
    s = (inj - acq).total_seconds()
    if s < -12 * 3600:
        s += 24 * 3600
    if not math.isfinite(s):
        return None, "Contrast/Bolus Start Time is not a time"
    if s < 0:
        return None, f"injection {-s:.1f} s before the cine's first frame"
    return round(s, 6), None


def roi_from_gsps(ds: Any, cine_sop_uid: str, size: tuple[int, int] | None = None
                  ) -> tuple[Roi | None, str | None]:
    """The bounding box of the first PIXEL graphic of a GSPS that references the cine."""
    refs = {str(i.get("ReferencedSOPInstanceUID", ""))
            for s in ds.get("ReferencedSeriesSequence", [])
            for i in s.get("ReferencedImageSequence", [])}
    if cine_sop_uid not in refs:
        return None, "the presentation state does not reference this cine"
    for ann in ds.get("GraphicAnnotationSequence", []):
        local = {str(i.get("ReferencedSOPInstanceUID", ""))
                 for i in ann.get("ReferencedImageSequence", [])}
        if local and cine_sop_uid not in local:
            continue
        for g in ann.get("GraphicObjectSequence", []):
            if str(g.get("GraphicAnnotationUnits", "")) != "PIXEL":
                continue
            data = [float(v) for v in (g.get("GraphicData") or [])]
            if len(data) < 4 or len(data) % 2 or not all(math.isfinite(v) for v in data):
                continue
            return _box(data, str(g.get("GraphicType", "")), size)
    return None, "the presentation state has no graphic in PIXEL units"


def _box(data: list[float], kind: str, size: tuple[int, int] | None
         ) -> tuple[Roi | None, str | None]:
    """The pixel box around a graphic's points (PIXEL/SCOORD coordinates: 0.0\\0.0 is the
    top-left corner of the top-left pixel, Columns\\Rows the bottom-right corner of the last,
    PS3.3 C.10.5.1.2 and C.18.6.1.2: corners, like an ROI's)."""
    xs, ys = data[0::2], data[1::2]
    if kind == "CIRCLE":  # centre, then a point on the circle
        r = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
        xs, ys = [xs[0] - r, xs[0] + r], [ys[0] - r, ys[0] + r]
    x0, y0 = max(math.floor(min(xs)), 0), max(math.floor(min(ys)), 0)
    x1, y1 = math.ceil(max(xs)), math.ceil(max(ys))
    if size is not None and size[0] > 0 and size[1] > 0:
        x1, y1 = min(x1, size[0]), min(y1, size[1])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None, "the drawn region is smaller than 2x2 pixels"
    return Roi(x0, y0, x1 - x0, y1 - y0), None


def roi_from_sr(ds: Any, cine_sop_uid: str, size: tuple[int, int] | None = None
                ) -> tuple[Roi | None, str | None]:
    """The bounding box of the first SCOORD (2D, image) selected from the cine in an SR."""

    def walk(items):
        for it in items or []:
            yield it
            yield from walk(it.get("ContentSequence"))

    for it in walk(ds.get("ContentSequence")):
        if str(it.get("ValueType", "")) != "SCOORD":
            continue
        refs = {str(r.get("ReferencedSOPInstanceUID", ""))
                for c in it.get("ContentSequence", []) if str(c.get("ValueType", "")) == "IMAGE"
                for r in c.get("ReferencedSOPSequence", [])}
        if cine_sop_uid not in refs:
            continue
        data = [float(v) for v in (it.get("GraphicData") or [])]
        if len(data) < 4 or len(data) % 2 or not all(math.isfinite(v) for v in data):
            continue
        return _box(data, str(it.get("GraphicType", "")), size)
    return None, "no SR region references this cine"


@dataclass
class LabelRow:
    line: int
    label: int | None
    roi: str | None
    t0: float | None
    injection: float | None


def read_labels(path: str | Path) -> dict[tuple[str, str], LabelRow]:
    """The labels CSV as ``{(key, value): row}``; a bad row is one ``InputError`` line
    naming it (the file is the user's, and small)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--labels {p}: unreadable ({getattr(e, 'strerror', None) or e})") \
            from None
    rd = csv.DictReader(text.splitlines())
    cols = {(c or "").strip().lower() for c in (rd.fieldnames or [])}
    if not (set(KEYS) & cols):
        raise InputError(f"--labels {p}: needs a column {', '.join(KEYS)} (has: "
                         f"{', '.join(sorted(cols)) or 'none'})")
    out: dict[tuple[str, str], LabelRow] = {}
    for n, raw in enumerate(rd, start=2):
        r = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()
             if not isinstance(v, list)}
        if not any(r.values()):
            continue
        keys = [(k, r[k]) for k in KEYS if r.get(k)]
        if not keys:
            raise InputError(f"--labels {p}: row {n} has no {'/'.join(KEYS)}")
        if any(ord(c) < 32 for _, v in keys for c in v):
            raise InputError(f"--labels {p}: row {n}: control characters in a key")
        lab = r.get("label", "")
        label = None if lab.lower() in ("", "unknown") else LABELS.get(lab.lower(), -1)
        if label == -1:
            raise InputError(f"--labels {p}: row {n}: label {lab[:20]!r} is not HCC, non-HCC "
                             "or unknown")
        times = {}
        for k in ("t0", "injection"):
            v = r.get(k, "")
            if v:
                try:
                    x = float(v)
                    if not (math.isfinite(x) and x >= 0):
                        raise ValueError
                except ValueError:
                    raise InputError(f"--labels {p}: row {n}: {k} {v[:20]!r} is not a number "
                                     "of seconds >= 0") from None
                times[k] = x
        if r.get("roi"):
            try:
                Roi.parse(r["roi"])
            except Exception:
                raise InputError(f"--labels {p}: row {n}: roi {r['roi'][:30]!r} is not "
                                 "X,Y,W,H") from None
        row = LabelRow(n, label, r.get("roi") or None, times.get("t0"), times.get("injection"))
        for k in keys:
            out[k] = row
    return out


def label_for(labels: dict[tuple[str, str], LabelRow], sop_uid: str, study_uid: str,
              accession: str) -> LabelRow | None:
    for k in (("sop_uid", sop_uid), ("study_uid", study_uid), ("accession", accession)):
        if k[1] and k in labels:
            return labels[k]
    return None
