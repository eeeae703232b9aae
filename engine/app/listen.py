"""``ceustream listen``: scored on arrival. A C-STORE SCP (``dicomnet.listener``), and with
``stow_port`` a STOW-RS endpoint (``dicomnet.stow``), receive the cines a scanner or the PACS
routes here; each CEUS cine is scored by the same replay as a
file (one at a time, in arrival order, on a worker thread so the SCP keeps answering), and
its SR and Secondary Capture are stored back (``--store-to``, a PACS address) into its
study. One JSON line per exam on stdout; nothing of the patient in it or in the log.

The exam's inputs as in QA from a PACS: injection from Contrast/Bolus Start Time, ROI from a
GSPS or SR region received before the cine (or ``--roi``), or a labels CSV; an exam missing one is
reported (``status: missing``) and its file kept in the spool.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Any

from ceustream.engine.core.errors import CeusError
from ceustream.engine.dicomnet import ROI_CLASSES, US_MULTIFRAME
from ceustream.engine.dicomnet.archive import InstanceRef, open_archive
from ceustream.engine.dicomnet.inputs import injection_from_contrast, label_for, read_labels
from ceustream.engine.dicomnet.listener import Listener
from ceustream.engine.dicomnet.peer import Peer

from .pacs import PacsExam, exam_id, roi_drawn, store_results
from .loading import load_model_and_backend
from .qa import score_task

log = logging.getLogger(__name__)


@dataclass
class ListenOptions:
    our_aet: str
    host: str
    port: int
    spool: Path
    allowed: list[str] | None = None
    min_free_bytes: int = 1 << 30
    store_to: Peer | None = None
    roi: str | None = None
    labels: str | None = None
    max_exams: int | None = None
    tls: tuple[str, str, str | None] | None = None
    stow_port: int | None = None
    stow_credentials: Any = None  # peer.Credentials a STOW-RS request must carry


class Scorer:
    def __init__(self, opts: ListenOptions, cfg: dict,
                 emit: Callable[[dict], None] = lambda line: None):
        self.opts = opts
        self.cfg = cfg
        #: receives each exam's result line (the CLI prints it on stdout)
        self.emit = emit
        self.loaded = load_model_and_backend(cfg["model"]["path"] or None,
                                             cfg["model"]["backend"], cfg)
        self.labels = read_labels(opts.labels) if opts.labels else {}
        self.gsps: list[Any] = []
        self.todo: queue.Queue[Path | None] = queue.Queue()
        self.done = 0
        self.stop = threading.Event()

    def arrived(self, path: Path, sop_class: str) -> None:
        """Called by the SCP for each stored instance (on its thread)."""
        import pydicom

        if sop_class in ROI_CLASSES:
            try:
                self.gsps.append(pydicom.dcmread(str(path), stop_before_pixels=True))
            except Exception:
                log.warning("a presentation state received could not be read")
            return
        if sop_class == US_MULTIFRAME:
            self.todo.put(path)

    def exam_of(self, path: Path) -> PacsExam:
        import pydicom

        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        ref = InstanceRef(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                          str(ds.SOPInstanceUID), US_MULTIFRAME,
                          str(ds.get("AccessionNumber", "") or ""))
        e = PacsExam(ref, exam_id(path), path)
        inj, why_inj = injection_from_contrast(ds)
        if inj is not None:
            e.injection, e.sources["injection"] = inj, "Contrast/Bolus Start Time"
        size = (int(ds.get("Columns", 0) or 0), int(ds.get("Rows", 0) or 0))
        roi, src = roi_drawn(self.gsps, ref.sop_uid, size)
        if roi is not None:
            e.roi, e.sources["roi"] = ",".join(map(str, roi.as_list())), src
        row = label_for(self.labels, ref.sop_uid, ref.study_uid, ref.accession)
        if row is not None:
            e.label = row.label
            e.roi = e.roi or row.roi
            e.t0 = row.t0
            e.injection = e.injection if e.injection is not None else row.injection
        if e.roi is None and self.opts.roi:
            e.roi, e.sources["roi"] = self.opts.roi, "--roi"
        if e.roi is None:
            e.missing.append("roi (no GSPS or SR region received for the cine, no labels CSV "
                             "row, no --roi)")
        if e.t0 is None and e.injection is None:
            e.missing.append(f"injection time ({why_inj})")
        return e

    def score(self, path: Path) -> dict[str, Any]:
        from ceustream.engine.core.roi import Roi

        from . import report as rp

        e = self.exam_of(path)
        line: dict[str, Any] = {"exam": e.exam}
        if e.missing:
            for m in e.missing:
                log.warning("exam %s: missing %s", e.exam, m)
            return dict(line, status="missing", missing=e.missing)
        roi = Roi.parse(e.roi)
        task = {"row": self.done + 1, "key": e.exam, "path": str(path), "label": e.label,
                "roi": roi.as_list(), "t0": e.t0,
                "injection": None if e.t0 is not None else e.injection}
        res = score_task(task, self.cfg, self.loaded)
        rec = res["record"]
        line.update(status=rec["status"], score=rec.get("score"), label=rec.get("predicted"),
                    final=rec.get("final"), flags=rec.get("flags"))
        if rec.get("error"):
            line["error"] = rec["error"]
        if self.opts.store_to is not None and rec["status"] in ("scored", "partial"):
            strip = None
            if res.get("clip") is not None:
                strip = path.with_suffix(".strip.jpg")
                strip.write_bytes(rp.filmstrip_jpeg(res["clip"], res["present"]))
                rec["filmstrip"] = strip.name
            rec["clip_mean"] = []
            archive = open_archive(self.opts.store_to)
            try:
                store_results(archive, [e], [rec], self.loaded[0], self.loaded[0].meta.threshold,
                              path.parent)
            finally:
                archive.close()
            line["stored"] = "sr" in e.stored
            if "error" in e.stored:
                line["store_error"] = e.stored["error"]
        return line

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                path = self.todo.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                line = self.score(path)
            except CeusError as err:
                line = {"status": "error", "error": str(err)}
            except Exception as err:  # one exam's bug must not stop the listener
                line = {"status": "error",
                        "error": f"internal error: {type(err).__name__}"}
                log.exception("scoring a received cine failed")
            self.emit(line)
            self.done += 1
            if self.opts.max_exams and self.done >= self.opts.max_exams:
                self.stop.set()


def run(opts: ListenOptions, cfg: dict,
        emit: Callable[[dict], None] = lambda line: None) -> int:
    """Listens until stopped; ``emit`` gets the listening line and one line per exam."""
    scorer = Scorer(opts, cfg, emit)
    lst = Listener(opts.our_aet, opts.host, opts.port, opts.spool, scorer.arrived,
                   allowed=opts.allowed, min_free_bytes=opts.min_free_bytes, tls=opts.tls)
    lst.start()
    stow = None
    if opts.stow_port is not None:
        from ceustream.engine.dicomnet.stow import StowServer

        stow = StowServer(opts.host, opts.stow_port, opts.spool, scorer.arrived,
                          min_free_bytes=opts.min_free_bytes,
                          credentials=opts.stow_credentials)
        try:
            stow.start()
        except CeusError:
            lst.stop()
            raise
    line = {"listening": f"{opts.host}:{lst.port}", "aet": opts.our_aet}
    if stow is not None:
        line["stow"] = f"http://{opts.host}:{stow.port}/studies"
    emit(line)
    worker = threading.Thread(target=scorer.run, name="listen-scorer", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    except KeyboardInterrupt:
        log.info("stopping")
    finally:
        scorer.stop.set()
        lst.stop()
        if stow is not None:
            stow.stop()
        worker.join(30)
    sys.stdout.flush()
    time.sleep(0)
    return 0
