"""Overload is visible, never silent: a slot decided late, or filled from its neighbour,
becomes a warning on its exam (and a count in the metrics) the moment it happens.

``SlotWatch`` subscribes to one exam's events. For every decided slot it looks at how far the
engine was behind its source when the slot was decided (``ExamSession.lag_s``: decoder exit
of the frame being processed → now, set by the live source runner for every frame):

- a slot taken from a frame while the engine was more than ``late_s`` behind: ``slot_late``
  (cleared by the next slot decided on time);
- a slot filled from its neighbour or left missing: ``slot_missed`` (cleared by the live
  exam when a slot is taken from a frame again). With the source delivering frames this
  means the engine dropped the frames the slot needed (the appsink drops the oldest frame
  when the engine is behind, so a backlog never grows); without signal it is the source's
  fault. The metrics say which (``cause``). Slots not yet due when an exam is stopped are
  closed as missing by the stop, not missed.
"""

from __future__ import annotations

import logging
from typing import Any

from ceustream.engine.core.schedule import FRAME

log = logging.getLogger(__name__)

#: the default for ``[engine] slot_late_s``
LATE_S = 0.5


class SlotWatch:
    """A session subscriber raising ``slot_late`` / ``slot_missed`` (see the module)."""

    def __init__(self, late_s: float = LATE_S, telemetry: Any = None):
        self.late_s = float(late_s)
        self.telemetry = telemetry
        self.late = 0
        self.missed = 0

    def __call__(self, ev: Any) -> None:
        if ev.kind != "slot":
            return
        s = ev.session
        fill = ev.data[0]
        src = s.source or ""
        if fill.source == FRAME:
            lag = s.lag_s
            if lag is not None and lag > self.late_s:
                self.late += 1
                log.warning("exam %s: slot %d decided %.2f s behind the source (the engine "
                            "cannot keep up)", s.exam, fill.index + 1, lag)
                if self.telemetry is not None:
                    self.telemetry.slot_late(src)
                s.set_warning("slot_late", True)
            elif "slot_late" in s.warnings:
                s.set_warning("slot_late", False)
            return
        now = s.now_s()
        if now is not None and fill.due_s > now:
            return  # not due yet: closed by the exam's end (stop_exam), not missed
        self.missed += 1
        cause = "no_signal" if "no_signal" in s.warnings else "overload"
        if cause == "overload":
            log.warning("exam %s: slot %d %s although the source sends frames (the engine "
                        "dropped them: it cannot keep up)", s.exam, fill.index + 1,
                        "neighbour-filled" if fill.source != "missing" else "missing")
        if self.telemetry is not None:
            self.telemetry.slot_missed(src, cause=cause)
        s.set_warning("slot_missed", True)
