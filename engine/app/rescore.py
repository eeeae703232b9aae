"""Scoring a journaled exam again from its stored ROI crops (any model, any backend): the
same slots, the same session, so the same score as the run that journaled it. One run at a
time (the newest unless one is named): runs of an exam never mix. A run that was interrupted
(no result on disk) is flagged ``interrupted``; with slots missing it is partial, never a
final built from another run's slots."""

from __future__ import annotations

from pathlib import Path

from ceustream.engine.core.errors import InputError
from ceustream.engine.core.roi import Roi
from ceustream.engine.core.schedule import FRAME, NEIGHBOUR, SlotFill

from . import journal as jr
from .loading import load_model_and_backend
from .session import ExamSession


def rescore(root: Path, exam: str, cfg: dict, run: str | None = None) -> dict:
    info, records, crops = jr.load(root, exam, run)
    model, be, note = load_model_and_backend(cfg["model"]["path"] or None,
                                             cfg["model"]["backend"], cfg)
    if info.get("t0") is None:
        raise InputError(f"journal: exam {exam} never reached t0; nothing to score")
    if list(model.meta.offsets_s) != list(info.get("offsets_s", model.meta.offsets_s)):
        raise InputError(f"journal: exam {exam} was sampled on another schedule than "
                         f"{model.meta.name}'s")
    s = ExamSession(exam, model, be, Roi(*info["roi"]), backend_note=note,
                    max_copied=int(cfg["engine"]["max_copied_slots"]))
    sampler = s.set_t0(info["t0"])
    fills = []
    for i in sorted(records):
        r = records[i]
        if r["source"] == FRAME and i in crops:
            fills.append(SlotFill(i, r["due_s"], FRAME, r.get("pts_s"), payload=crops[i]))
        elif r["source"] == NEIGHBOUR and r.get("from_slot") in crops:
            fills.append(SlotFill(i, r["due_s"], NEIGHBOUR, from_slot=r["from_slot"],
                                  payload=crops[r["from_slot"]]))
    sampler.restore(fills)
    s.add(fills)
    if info.get("interrupted"):
        s.flags.add("interrupted")
    res = s.finish(None if len(fills) == len(sampler.due) else "slots_missing")
    res["rescored"] = True
    res["journal_run"] = info.get("run")
    return res
