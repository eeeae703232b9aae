"""One recorded exam through the real pipeline: the replay command, the demo and QA."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ceustream.engine.core.errors import InputError, UsageError
from ceustream.engine.core.roi import BAND, Roi, region_for
from ceustream.engine.core.source import SeekMismatch

from .collect import Plan, arm_monitor, collect_slots, detect_arrival
from .journal import Journal, default_dir
from .loading import load_model_and_backend
from .outputs import attach
from .session import Event, ExamSession, Score

log = logging.getLogger(__name__)


@dataclass
class ReplayOptions:
    roi: Roi
    t0: float | None = None
    injection: float | None = None
    speed: float | None = None  # None = as fast as possible
    backend: str = "auto"
    model_path: str | None = None
    exam: str | None = None
    seek: str = "auto"  # auto | always | never
    journal: bool = True
    branch: str | None = None  # an extra GStreamer branch fed the same decoded video (overlay)
    #: the TIC reading's parenchyma reference: the operator's box (frame pixels), else a band
    #: of ``band`` x the ROI's side around the ROI (0: the ROI's own border ring)
    ref_roi: Roi | None = None
    band: float = BAND


def exam_id_for(path: Path) -> str:
    """An opaque, stable id from the recording's content (not its name, which may hold a
    patient's; for DICOM the pixel data only, never the header)."""
    from ceustream.pipelines.filesource import content_id, discover

    return content_id(discover(path))


def check_times(opts: "ReplayOptions") -> None:
    """The options' times: exactly one of t0 / injection, finite, >= 0 (seconds from the
    recording's first frame)."""
    if opts.t0 is not None and opts.injection is not None:
        raise UsageError("give either --t0 or --injection, not both")
    if opts.t0 is None and opts.injection is None:
        raise UsageError("give --t0 S (contrast arrival) or --injection S (injection time)")
    for name, v in (("--t0", opts.t0), ("--injection", opts.injection)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise UsageError(f"{name} {v}: must be a number of seconds >= 0")


def replay(path: str | Path, opts: ReplayOptions, cfg: dict | None = None, publisher=None,
           on_score: Callable[[Score, ExamSession], None] | None = None,
           loaded: tuple | None = None,
           subscribers: tuple[Callable[[Event], None], ...] = ()) -> dict[str, Any]:
    """One recorded exam through the real pipeline; returns the result (the ``--json``
    object). ``loaded``: (model, backend, note) already loaded (QA, benchmarks).

    Times in ``opts`` and in the result are seconds from the recording's FIRST FRAME
    (``clock: "first_frame"``); ``first_frame_s`` in the result is where that frame sits on
    the recording's own (stream) clock, to which the reader converts. ``cfg``: the settings
    (``config.load()``: the defaults, $CEUSTREAM_CONFIG and the environment) when None."""
    from ceustream.pipelines.filesource import content_id, discover, open_reader

    if cfg is None:
        from ceustream.engine.core import config

        cfg = config.load()

    check_times(opts)
    if opts.speed is not None and not opts.speed > 0:
        raise UsageError(f"--speed {opts.speed}: must be > 0 or 'max'")
    p = Path(path)
    started = time.monotonic()
    info = discover(p)
    opts.roi.check_inside(info.width, info.height, f"the frame of {p.name}")
    if opts.ref_roi is not None:
        opts.ref_roi.check_inside(info.width, info.height, f"the frame of {p.name} (--ref-roi)")
    if not (math.isfinite(opts.band) and 0.0 <= opts.band <= 2.0):
        raise UsageError(f"reference band {opts.band}: must be 0..2 (x the ROI's side)")
    region = region_for(opts.roi, info.width, info.height, opts.ref_roi, opts.band) \
        if opts.ref_roi is not None or opts.band > 0 else None
    for name, v in (("--t0", opts.t0), ("--injection", opts.injection)):
        if v is not None and info.duration_s is not None and v >= info.duration_s:
            raise InputError(f"{name} {v:g} s is after the end of {p.name} "
                             f"({info.duration_s:.1f} s)")
    if opts.branch and info.kind != "video":
        raise UsageError(f"{p.name}: an overlay branch needs a video file, not {info.kind}")
    model, be, note = loaded or load_model_and_backend(opts.model_path, opts.backend, cfg)
    if loaded is None:
        d = be.describe()
        log.info("model %s (%s, trained on %s data); backend %s %s on %s (%s)", model.meta.name,
                 model.sha256[:12], model.meta.trained_on, d["name"], d["precision"],
                 d["device"], note)
    exam = opts.exam or content_id(info)
    seek_mode = {"always": True, "never": False}.get(
        opts.seek, opts.speed is None and info.seekable)
    if seek_mode and not info.seekable:
        raise InputError(f"{p}: the file is not seekable; use --seek never")
    if seek_mode and opts.speed is not None:
        raise UsageError("seeking replays run at --speed max only")
    if opts.branch and seek_mode:
        raise UsageError("an overlay branch needs a streaming replay (--seek never)")
    r = cfg["replay"]
    plan = Plan(seek_mode, float(r["seek_lead_s"]), float(r["seek_min_gap_s"]), info.duration_s)
    journal = Journal(default_dir(cfg), exam) if opts.journal else None
    session = ExamSession(exam, model, be, opts.roi, speed=opts.speed,
                          frame_size=(info.width, info.height), backend_note=note,
                          region=region, ref_roi=opts.ref_roi,
                          max_copied=int(cfg["engine"]["max_copied_slots"]))
    attach(session, publisher, journal, on_score)
    for fn in subscribers:
        session.subscribe(fn)
    session.start()
    reader = open_reader(info, seek_mode=seek_mode, speed=opts.speed, branch=opts.branch,
                         crop=tuple((region or opts.roi).as_list()))
    reason = None
    try:
        watch = None
        if opts.injection is not None:
            session.mark_injection(opts.injection)
            if not seek_mode:
                arm_monitor(reader, opts.injection, cfg)
        else:
            session.set_t0(float(opts.t0), None)
            if not seek_mode:  # listed before the first frame, so no slot can go by
                reader.set_slots(session.sampler.due)
        reader.start()
        first = getattr(reader, "first_frame_s", None)
        session.info.update(clock="first_frame", first_frame_s=None if first is None
                            else round(first, 9))
        if opts.injection is not None:
            try:
                watch = detect_arrival(reader, session, opts.injection, cfg, plan)
            except SeekMismatch as e:
                # the seek to the injection landed elsewhere: detect again, decoding through
                session.flags.add("seek_fallback")
                log.warning("exam %s: %s; decoding the recording through instead of seeking",
                            exam, e)
                plan = Plan(False, plan.seek_lead_s, plan.seek_min_gap_s, plan.duration_s)
                session.mark_injection(opts.injection)
                reader.stream_through(why=str(e), start=False)
                arm_monitor(reader, opts.injection, cfg)
                reader.start()
                watch = detect_arrival(reader, session, opts.injection, cfg, plan)
            t0 = watch.arrival.t0
            if info.duration_s is not None and t0 >= info.duration_s:
                raise InputError(f"{p.name}: contrast arrival ({t0:.1f} s) is after the end of "
                                 f"the recording ({info.duration_s:.1f} s)")
        else:
            t0 = float(opts.t0)
        if info.duration_s is not None and t0 + session.schedule.span_s > info.duration_s + 1e-6:
            session.warnings.add("recording_shorter_than_clip")
            log.warning("%s ends at %.1f s, before the clip completes (t0 + %g s = %.1f s): "
                        "the result will be partial", p.name, info.duration_s,
                        session.schedule.span_s, t0 + session.schedule.span_s)
        reason = collect_slots(reader, session, plan, watch, armed=opts.injection is None)
        if opts.branch and reason is None:
            reader.run_to_end()
    finally:
        reader.close()
    result = session.finish(reason)
    wall = time.monotonic() - started
    damage = session.damage
    result["recording"] = {"kind": info.kind, "duration_s": info.duration_s,
                           "width": info.width, "height": info.height, "fps": info.fps,
                           "codec": info.codec, "container": info.container,
                           "frames": info.frames}
    exam_span = None
    if session.t0 is not None:
        last = max([f.due_s for f in (session.sampler.fills if session.sampler else []) if f],
                   default=session.t0)
        exam_span = last - min(session.t0, opts.injection if opts.injection is not None else session.t0)
    fallback = getattr(reader, "fallback", None)
    result["replay"] = {
        "mode": "seek" if seek_mode else "stream", "speed": opts.speed or "max",
        "seek_fallback": fallback,
        "wall_s": round(wall, 3), "frames_passed": reader.stats.passed,
        "frames_dropped": reader.stats.dropped, "seeks": reader.stats.seeks,
        "decoder_warnings": reader.stats.warnings[:5],
        "exam_s_per_wall_s": round(exam_span / wall, 2) if exam_span and wall > 0 else None}
    if damage:
        result["damage"] = {"error": damage[0], "at_s": damage[1]}
    if reader.stats.warnings:
        result["flags"] = sorted(set(result["flags"]) | {"decoder_warnings"})
    if journal:
        journal.result(result)
        journal.close()
        if journal.error:
            result["flags"] = sorted(set(result["flags"]) | {"journal_error"})
    return result
