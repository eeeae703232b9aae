"""QA from and back to a PACS: a query becomes the manifest, the cines are retrieved into a
bounded cache and scored by the same QA run as local files, and each scored exam gets a TID
1500 SR and a Secondary Capture (TIC plot + slot filmstrip) stored into its study.

The exam's inputs come from DICOM where the standard holds them (``dicomnet.inputs``):
injection from Contrast/Bolus Start Time, ROI from a GSPS that references the cine; the
labels CSV (``--labels``, keyed by accession, Study or SOP Instance UID) gives labels and
fills what DICOM lacks. What is missing is listed per exam in ``pacs.json`` and the log
(named by the opaque exam id), never guessed.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ceustream.engine.core.errors import CeusError, InputError
from ceustream.engine.dicomnet import GSPS, ROI_CLASSES
from ceustream.engine.dicomnet.archive import Cache, InstanceRef, Query, open_archive
from ceustream.engine.dicomnet.inputs import (injection_from_contrast, label_for, read_labels,
                                              roi_from_gsps, roi_from_sr)
from ceustream.engine.dicomnet.peer import Peer

log = logging.getLogger(__name__)

MANIFEST = "pacs_manifest.csv"
PACS_JSON = "pacs.json"


@dataclass
class PacsOptions:
    query: Query
    labels: str | None = None
    cache_dir: Path | None = None
    cache_bytes: int = 4 << 30
    store_back: bool = True


@dataclass
class PacsExam:
    ref: InstanceRef = field(repr=False)
    exam: str
    path: Path
    label: int | None = None
    roi: str | None = None
    t0: float | None = None
    injection: float | None = None
    sources: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    stored: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"exam": self.exam, "file": self.path.name, "label": self.label,
                "roi": self.roi, "t0": self.t0, "injection": self.injection,
                "from": self.sources, "missing": self.missing, "stored": self.stored}


def _header(path: Path):
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as e:
        raise InputError(f"{path.name}: retrieved file is not readable DICOM "
                         f"({type(e).__name__})") from None


def default_cache_dir() -> Path:
    """Retrieved cines hold patient data: kept in the user's cache, not in the run folder
    that a report is shared from."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ceustream" / "pacs"


def exam_id(path: Path) -> str:
    """The exam id the replay gives the cine (from its pixel data, never its header)."""
    from ceustream.pipelines import dicom as dcm

    return dcm.content_id(path)


def roi_drawn(objects: list[Any], sop_uid: str, size: tuple[int, int]):
    """(ROI, "GSPS" | "SR") from the first presentation state or SR region on the cine."""
    for ds in objects:
        if str(ds.get("SOPClassUID", "")) == GSPS:
            roi, _ = roi_from_gsps(ds, sop_uid, size)
            src = "GSPS"
        else:
            roi, _ = roi_from_sr(ds, sop_uid, size)
            src = "SR"
        if roi is not None:
            return roi, src
    return None, None


def gather(archive, opts: PacsOptions, cache: Cache) -> list[PacsExam]:
    """Query, retrieve, and read each exam's inputs."""
    refs = archive.query(opts.query)
    log.info("%s: %d Ultrasound Multi-frame cine(s) found", archive.peer.describe(), len(refs))
    labels = read_labels(opts.labels) if opts.labels else {}
    gsps: dict[str, list[Any]] = {}
    exams = []
    for ref in refs:
        path = archive.retrieve(ref, cache)
        cache.pinned.add(path)
        ds = _header(path)
        e = PacsExam(ref, exam_id(path), path)
        inj, why_inj = injection_from_contrast(ds)
        if inj is not None:
            e.injection, e.sources["injection"] = inj, "Contrast/Bolus Start Time"
        if ref.study_uid not in gsps:
            gsps[ref.study_uid] = []
            for cls in ROI_CLASSES:
                for pr in archive.related(ref.study_uid, cls):
                    try:
                        gsps[ref.study_uid].append(_header(archive.retrieve(pr, cache)))
                    except InputError as err:
                        log.warning("exam %s: a presentation state or SR could not be read "
                                    "(%s)", e.exam, str(err).split(": ", 1)[-1])
        size = (int(ds.get("Columns", 0) or 0), int(ds.get("Rows", 0) or 0))
        roi, src = roi_drawn(gsps[ref.study_uid], ref.sop_uid, size)
        why_roi = "no presentation state (GSPS) or SR region references the cine"
        if roi is not None:
            e.roi, e.sources["roi"] = ",".join(map(str, roi.as_list())), src
        row = label_for(labels, ref.sop_uid, ref.study_uid, ref.accession)
        if row is not None:
            e.label = row.label
            e.sources["label"] = "labels CSV" if row.label is not None else "none"
            if row.roi and e.roi is None:
                e.roi, e.sources["roi"] = row.roi, "labels CSV"
            if row.t0 is not None:
                e.t0, e.sources["t0"] = row.t0, "labels CSV"
            if row.injection is not None and e.injection is None:
                e.injection, e.sources["injection"] = row.injection, "labels CSV"
        if e.roi is None:
            e.missing.append(f"roi ({why_roi}; no labels CSV row gives one)")
        if e.t0 is None and e.injection is None:
            e.missing.append(f"injection time ({why_inj}; no labels CSV row gives t0 or "
                             "injection)")
        if e.label is None:
            e.missing.append("label (not in the labels CSV): scored, not in the metrics")
        for m in e.missing:
            log.warning("exam %s: missing %s", e.exam, m)
        exams.append(e)
    return exams


def fetch_one(peer: Peer, query: Query, cache_dir: Path | None = None,
              cache_bytes: int = 4 << 30) -> Path:
    """The one cine a query names, retrieved into the cache (``replay`` from a PACS)."""
    cache = Cache(cache_dir or default_cache_dir(), cache_bytes)
    archive = open_archive(peer)
    try:
        refs = archive.query(query)
        if len(refs) != 1:
            raise InputError(f"{peer.describe()}: the query matches {len(refs)} Ultrasound "
                             "Multi-frame cines; replay needs exactly one (give --sop-uid)")
        return archive.retrieve(refs[0], cache)
    finally:
        archive.close()


def write_manifest(exams: list[PacsExam], out: Path) -> Path:
    """The manifest QA reads: cache paths, labels (``unknown`` when missing), ROI, times."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "label", "roi", "t0", "injection"])
    for e in exams:
        lab = "unknown" if e.label is None else ("HCC" if e.label else "non-HCC")
        w.writerow([str(e.path), lab, e.roi or "", "" if e.t0 is None else e.t0,
                    "" if e.injection is None else e.injection])
    out.mkdir(parents=True, exist_ok=True)
    p = out / MANIFEST
    try:
        p.write_text(buf.getvalue())
    except OSError as e:
        raise InputError(f"--out {out}: cannot write {MANIFEST} ({e.strerror or e})") from None
    return p


def frame_numbers(path: Path, times_s: list[float | None]) -> list[int | None]:
    """1-based frame numbers of the multi-frame whose times (first-frame clock) are
    ``times_s``, from the cine's own timing tags."""
    from ceustream.pipelines import dicom as dcm

    ds = dcm.read(path, pixels=False)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    ns, _ = dcm.frame_times_ns(ds, n, path)
    rel = np.asarray(ns, dtype=np.int64) - ns[0]
    out: list[int | None] = []
    for t in times_s:
        if t is None:
            out.append(None)
            continue
        k = int(np.argmin(np.abs(rel - int(round(t * 1e9)))))
        out.append(k + 1)
    return out


def summary_image(rec: dict, strip_path: Path | None, disclaimer: str) -> np.ndarray:
    """The Secondary Capture's picture: the TIC (axes, key) over the slot filmstrip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import tic_series

    t, series = tic_series(rec)
    fig = plt.figure(figsize=(10, 6), dpi=100)
    ax = fig.add_axes([0.08, 0.45, 0.88, 0.45])
    for name, vals in series.items():
        pts = [(x, v) for x, v in zip(t, vals) if v is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=name)
    ax.set_xlabel("time from t0 (s)")
    ax.set_ylabel("intensity (grey level)")
    if series:
        ax.legend(loc="upper right")
    score = rec.get("score")
    lab = rec.get("predicted") or "provisional"
    ax.set_title(f"P(HCC) {score:.3f}  label {lab}" if score is not None else "no score",
                 fontsize=11)
    fig.text(0.01, 0.96, disclaimer, fontsize=9, color="#a00000")
    if strip_path is not None and strip_path.is_file():
        import cv2

        img = cv2.imread(str(strip_path), cv2.IMREAD_COLOR)
        if img is not None:
            ax2 = fig.add_axes([0.02, 0.02, 0.96, 0.33])
            ax2.imshow(img[..., ::-1])
            ax2.set_axis_off()
            ax2.set_title("the 30 scored slots (ROI)", fontsize=9)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return rgb


def store_results(archive, exams: list[PacsExam], recs: list[dict], model, threshold: float,
                  out: Path) -> None:
    """An SR and an SC per scored exam, into its study; failures listed, not fatal."""
    import importlib.metadata as md

    from ceustream.engine.core import DISCLAIMER
    from ceustream.engine.dicomnet.results import Result, write_sc, write_sr

    try:
        version = md.version("ceustream")
    except md.PackageNotFoundError:
        version = "unknown"
    by_file = {e.path.name: e for e in exams}
    for rec in recs:
        e = by_file.get(rec.get("path", ""))
        if e is None or rec.get("status") not in ("scored", "partial"):
            continue
        try:
            times = rec.get("slot_times_s") or []
            res = Result(score=rec.get("score"), label=rec.get("predicted"),
                         final=bool(rec.get("final")), threshold=float(threshold),
                         t0_s=rec.get("t0"), slot_offsets_s=list(rec.get("offsets_s") or []),
                         slot_frames=frame_numbers(e.path, times), slot_times_s=times,
                         flags=list(rec.get("flags") or []), model_name=model.meta.name,
                         model_sha256=model.sha256, backend=str(rec.get("backend") or "?"),
                         software_version=f"ceustream {version}", tic=rec.get("features"),
                         domain=rec.get("domain"), score_basis=rec.get("score_basis"))
            cine = _header(e.path)
            strip = out / rec["filmstrip"] if rec.get("filmstrip") else None
            sr = write_sr(cine, res)
            sc = write_sc(cine, summary_image(rec, strip, DISCLAIMER), res)
            archive.store([sr, sc])
            e.stored = {"sr": str(sr.SOPInstanceUID), "sc": str(sc.SOPInstanceUID)}
            log.info("exam %s: SR and Secondary Capture stored into its study", e.exam)
        except CeusError as err:
            e.stored = {"error": str(err)}
            log.warning("exam %s: results not stored (%s)", e.exam, err)
        except Exception as err:  # a writer's validation error: this exam only
            e.stored = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
            log.warning("exam %s: results not written (%s)", e.exam, e.stored["error"])


def describe_query(q: Query) -> str:
    """What was asked of the PACS, as a report may show it: dates, and how many accession
    numbers or UIDs (never the numbers themselves)."""
    parts = [f"modality {q.modality}", "SOP class Ultrasound Multi-frame"]
    if q.study_date:
        parts.insert(0, f"study date {q.study_date}")
    for n, what in ((len(q.accessions), "accession number(s)"),
                    (len(q.study_uids), "Study Instance UID(s)"),
                    (len(q.series_uids), "Series Instance UID(s)"),
                    (len(q.sop_uids), "SOP Instance UID(s)")):
        if n:
            parts.append(f"{n} {what}")
    return ", ".join(parts)


def pacs_section(peer: Peer, opts: PacsOptions, exams: list[PacsExam]) -> dict:
    """The report's and ``pacs.json``'s account of the round trip."""
    return {"peer": peer.describe(), "query": describe_query(opts.query),
            "retrieved": len(exams), "exams": [e.describe() for e in exams],
            "store_back": opts.store_back,
            "stored": sum(1 for e in exams if "sr" in e.stored),
            "store_failed": sum(1 for e in exams if "error" in e.stored)}


def run(peer: Peer, opts: PacsOptions, out: str | Path, cfg: dict, threshold: float | None,
        jobs: int | None = None) -> tuple[dict, int]:
    """The whole round trip; returns QA's (report, exit code), with a ``pacs`` section (in
    report.json/html too: the results are stored back before the report is written)."""
    from . import qa

    out = Path(out)
    cache_dir = opts.cache_dir or default_cache_dir()
    cache = Cache(cache_dir, opts.cache_bytes)
    archive = open_archive(peer)
    exams: list[PacsExam] = []

    def store_and_describe(report: dict, recs: list[dict]) -> None:
        if opts.store_back:
            model = qa.model_only(cfg)
            store_results(archive, exams, [r for r in recs if r.get("path")], model,
                          report["threshold"], out)
        report["pacs"] = pacs_section(peer, opts, exams)

    try:
        exams[:] = gather(archive, opts, cache)
        if not exams:
            raise InputError(f"{peer.describe()}: no Ultrasound Multi-frame cine matches the "
                             "query")
        manifest = write_manifest(exams, out)
        report, code = qa.run(manifest, out, cfg, threshold, jobs=jobs,
                              before_report=store_and_describe)
    finally:
        archive.close()
        cache.pinned.clear()
    pacs = report["pacs"]
    try:
        (out / PACS_JSON).write_text(json.dumps(pacs, indent=1))
    except OSError as e:
        raise InputError(f"--out {out}: cannot write {PACS_JSON} ({e.strerror or e})") from None
    if pacs["store_failed"]:
        code = code or 4
    return report, code
