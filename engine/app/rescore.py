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
    roi, region, ref = boxes_of(info, exam)
    for i, c in crops.items():
        want = (region or roi)
        if c.shape[:2] != (want.h, want.w):
            raise InputError(f"journal: exam {exam} slot {i}: a {c.shape[1]}x{c.shape[0]} crop, "
                             f"not the {want.w}x{want.h} its exam record names")
    s = ExamSession(exam, model, be, roi, backend_note=note, region=region, ref_roi=ref,
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


def boxes_of(info: dict, exam: str) -> tuple[Roi, Roi | None, Roi | None]:
    """(ROI, region, reference box) of a journaled exam: the crops cover the region (the ROI
    and the parenchyma around it) when the record has one (journals before it: the ROI)."""
    out = []
    for key in ("roi", "region", "ref_roi"):
        v = info.get(key)
        if v is None and key != "roi":
            out.append(None)
            continue
        if not (isinstance(v, list) and len(v) == 4 and
                all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in v)
                and v[2] > 0 and v[3] > 0):
            raise InputError(f"journal: exam {exam}: {key} {v!r} is not X,Y,W,H")
        out.append(Roi(*v))
    return out[0], out[1], out[2]
