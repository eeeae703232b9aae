"""The live engine: one capture source, exams one after another, driven by control commands
(ZeroMQ REP, the keyboard, or a scanner integration).

An exam's frames are pulled by a worker thread running the same arrival detection and slot
collection as a replay (``collect``), so a recording of the exam replays to the same score.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import Any, Callable

from ceustream.engine.core.errors import UsageError
from ceustream.engine.core.roi import Roi

from .collect import Plan, arm_monitor, collect_slots, detect_arrival
from .journal import Journal, default_dir
from .outputs import attach, status_message
from .session import ExamSession

log = logging.getLogger(__name__)


class LiveEngine:
    def __init__(self, reader, cfg: dict, publisher, loaded: tuple, *, journal: bool = True,
                 on_score=None, on_done: Callable[[dict], None] | None = None):
        self.reader = reader
        self.cfg = cfg
        self.publisher = publisher
        self.model, self.backend, self.note = loaded
        self.journal = journal
        self.on_score = on_score
        self.on_done = on_done
        self.lock = threading.RLock()
        self.session: ExamSession | None = None
        self.worker: threading.Thread | None = None
        self.t0_override: float | None = None
        self.stopping = False
        self.results: list[dict] = []
        self.exam_journal: Journal | None = None

    # -- helpers -------------------------------------------------------------------------
    def _frame_size(self) -> tuple[int, int] | None:
        return self.reader.frame_size()

    def _now(self) -> float:
        st = self.reader.stream_time()
        if st is None:
            raise UsageError("no video from the source yet")
        return st

    def _check_roi(self, roi: Roi) -> None:
        size = self._frame_size()
        if size is not None:
            roi.check_inside(size[0], size[1], "the video frame")

    def _need_session(self) -> ExamSession:
        if self.session is None or self.session.phase in ("complete", "partial", "stopped"):
            raise UsageError("no exam running: send start_exam first")
        return self.session

    # -- commands (any thread) -----------------------------------------------------------
    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req["cmd"]
        with self.lock:
            if cmd == "status":
                return {"status": status_message(self.session) if self.session
                        else {"phase": "idle"}}
            if cmd == "start_exam":
                return self.start_exam(req.get("exam"), req.get("roi"))
            if cmd == "set_roi":
                s = self._need_session()
                if s.t0 is not None or self.worker is not None:
                    raise UsageError("the ROI is fixed once contrast is being watched")
                roi = Roi(*req["roi"])
                self._check_roi(roi)
                s.roi = roi
                s.announce()
                return {"roi": roi.as_list()}
            if cmd == "mark_injection":
                return self.mark_injection(req.get("t"))
            if cmd == "mark_arrival":
                return self.mark_arrival(req.get("t"))
            if cmd == "stop_exam":
                return self.stop_exam()
        raise UsageError(f"unknown command {cmd!r}")

    def start_exam(self, exam: str | None, roi: list[int] | None) -> dict[str, Any]:
        if self.session is not None and self.session.phase not in ("complete", "partial", "stopped"):
            raise UsageError(f"exam {self.session.exam} is running: stop_exam first")
        if roi is None:
            raise UsageError("start_exam needs roi [x, y, w, h] (or run with --roi)")
        r = Roi(*roi)
        self._check_roi(r)
        exam = exam or "x" + secrets.token_hex(6)
        jr = Journal(default_dir(self.cfg), exam) if self.journal else None
        self.session = ExamSession(exam, self.model, self.backend, r, speed=1.0,
                                   frame_size=self._frame_size(), backend_note=self.note,
                                   clock=self.reader.stream_time)
        self.exam_journal = jr
        attach(self.session, self.publisher, jr, self.on_score)
        self.t0_override = None
        self.stopping = False
        self.session.start()
        log.info("exam %s started (ROI %s); waiting for the injection mark", exam, r)
        return {"exam": exam, "phase": self.session.phase}

    def mark_injection(self, t: float | None) -> dict[str, Any]:
        s = self._need_session()
        if s.injection is not None or s.t0 is not None:
            raise UsageError("injection (or arrival) is already marked for this exam")
        t = self._now() if t is None else float(t)
        s.mark_injection(t)
        arm_monitor(self.reader, t, self.cfg)
        self._run_worker(injection=t)
        log.info("exam %s: injection marked at %.2f s; watching for contrast arrival", s.exam, t)
        return {"exam": s.exam, "injection": t}

    def mark_arrival(self, t: float | None) -> dict[str, Any]:
        s = self._need_session()
        if s.t0 is not None:
            raise UsageError(f"t0 is already set ({s.t0:.2f} s)")
        # without a time: the next frame is slot 0
        t = self._now() + 0.02 if t is None else float(t)
        if self.worker is not None:  # detection running: the operator overrides it
            self.t0_override = t
        else:
            s.set_t0(t, None)
            s.flags.add("t0_marked")
            self._run_worker(injection=None)
        log.info("exam %s: contrast arrival marked: t0 = %.2f s", s.exam, t)
        return {"exam": s.exam, "t0": t}

    def stop_exam(self) -> dict[str, Any]:
        s = self._need_session()
        w = self.worker
        if w is not None:
            self.stopping = True
            self.reader.request_stop()
        self.lock.release()
        try:
            if w is not None:
                w.join(30)
        finally:
            self.lock.acquire()
        if self.worker is None and s.phase not in ("complete", "partial", "stopped"):
            self._finish("stopped_early")
        return {"exam": s.exam, "result": self.results[-1] if self.results else None}

    # -- the exam's worker -----------------------------------------------------------------
    def _run_worker(self, injection: float | None) -> None:
        s = self.session
        plan = Plan(seek_mode=False)

        def work() -> None:
            reason = None
            try:
                watch = None
                if injection is not None:
                    watch = detect_arrival(self.reader, s, injection, self.cfg, plan,
                                           lambda: self.t0_override)
                reason = collect_slots(self.reader, s, plan, watch)
            except Exception:  # never lose the exam: finish it, flagged
                log.exception("exam %s: engine error; the exam is closed as partial", s.exam)
                s.warnings.add("engine_error")
                reason = "engine_error"
            with self.lock:
                if self.stopping and reason == "recording_ended_early":
                    reason = "stopped_early"
                elif reason == "recording_ended_early":
                    reason = "source_ended"
                self.worker = None
                self._finish(reason)

        self.worker = threading.Thread(target=work, name=f"exam-{s.exam}", daemon=True)
        self.worker.start()

    def _finish(self, reason: str | None) -> None:
        s = self.session
        self.reader.set_slots([])
        self.reader.stop_monitor()
        self.reader.clear_stop()
        result = s.finish(reason)
        if self.exam_journal is not None:
            self.exam_journal.close()
        self.results.append(result)
        if self.on_done:
            self.on_done(result)

    def busy(self) -> bool:
        return self.worker is not None
