"""One exam as a state machine: its schedule, clip buffer, t0, scores, phase and warnings.

The session is fed decided slots (``SlotFill``) by whatever reads the frames (replay, live
capture, the journal) and does the same thing for each: resize the ROI crop to the model's
size, put it in the clip, score. It does not publish or write anything itself: it emits
events (``started``, ``t0``, ``slot``, ``score``, ``status``, ``finished``) and the outputs
subscribe to them (``app.outputs``: the ZeroMQ publisher, the journal, progress lines).
That is why a replay gives the same score as the live exam, and a rescore from the journal
the same as both.

The score first: ``score`` emits the score event (the message) as soon as the network has
answered; the clip's analysis (the TIC reading, ``analyser``) runs after it and its reading
follows in the next status event (``features``), so it never delays a score. A check that
must travel with the score itself is ``check_domain`` (``core.domain``: synchronous, cheap,
from the network's own embedding).

Honest completion: a clip is FINAL only when at most ``max_copied`` of its slots are
neighbour-filled copies (``engine.max_copied_slots``); with more, every slot decided, the
result is partial and flagged ``slots_copied``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ceustream.engine.core import DISCLAIMER, analysis, domain, physiology, tic
from ceustream.engine.core.arrival import Arrival
from ceustream.engine.core.clip import ClipBuffer
from ceustream.engine.core.modelmeta import LoadedModel
from ceustream.engine.core.roi import Roi, resize, within
from ceustream.engine.core.schedule import FRAME, MISSING, NEIGHBOUR, Sampler, Schedule, SlotFill

log = logging.getLogger(__name__)

VIDEO_PHASE_SLOTS = 25
#: neighbour-filled slots a FINAL clip may hold (``engine.max_copied_slots``)
MAX_COPIED_SLOTS = 2
#: phases after which the exam takes no more frames or marks
ENDED = ("complete", "partial", "stopped")


def model_flags(model: LoadedModel) -> list[str]:
    return {"untrained": ["untrained_model"], "simulated": ["trained_on_simulated_data"],
            "real": []}[model.meta.trained_on]


@dataclass
class Score:
    slot: int | None
    slots_filled: int
    score: float
    label: str | None
    final: bool
    latency_ms: float | None = None
    #: CLOCK_MONOTONIC stamps (ns): decoder exit of the slot's frame, decoder exit of the frame
    #: that decided the slot (the first frame after the slot time: the nearest frame is known
    #: only then), slot in the clip, score computed
    timing: dict[str, int | None] = field(default_factory=dict)
    #: is the clip inside the model's domain (``core.domain``): the message's ``domain``
    domain: dict[str, Any] | None = None
    #: the network's own P(HCC); differs from ``score`` only for a site-adapted model's
    #: fusion (``app.adapt``)
    p_network: float | None = None
    #: what ``score`` rests on: "network", "fusion" (a site-adapted model) or "physiology"
    #: (outside the model's domain: ``core.physiology`` on the TIC reading)
    basis: str = "network"


@dataclass(frozen=True)
class Event:
    """What happened to an exam. ``kind`` is one of ``EVENT_KINDS``; ``data`` depends on it:
    started/status: None; t0: the journal's exam record; slot: (SlotFill, crop or None);
    score: Score; finished: the result dict."""

    kind: str
    session: "ExamSession"
    data: Any = None


EVENT_KINDS = ("started", "t0", "slot", "score", "status", "finished")
Subscriber = Callable[[Event], None]


@dataclass
class ExamSession:
    exam: str
    model: LoadedModel
    backend: Any
    roi: Roi
    speed: float | None = None
    frame_size: tuple[int, int] | None = None
    backend_note: str = ""
    #: the source's current stream time (live: moves with every frame, passed or not)
    clock: Callable[[], float | None] | None = None
    #: the engine's name for the video source (several sources per engine)
    source: str | None = None
    #: reads the clip beside the network after every score: returns {"features": dict | None,
    #: "warnings": {name: bool}} (the TIC reading, out-of-distribution, disagreement)
    analyser: Callable[["ExamSession", "Score"], dict[str, Any]] | None = None
    #: the clip's model input -> the model's embedding (``core.domain``); None: no check, or
    #: built from the model (``domain_runner``)
    embedder: Callable[[np.ndarray], np.ndarray] | None = None
    #: the box the slots' crops cover when larger than the ROI (``roi.region_for``: the ROI and
    #: the parenchyma around it, or the ROI and ``ref_roi``); None: crops are the ROI alone
    region: Roi | None = None
    #: the operator's parenchyma reference box (frame pixels), inside ``region``
    ref_roi: Roi | None = None
    #: neighbour-filled slots a FINAL clip may hold; beyond it the result is partial
    #: (``slots_copied``)
    max_copied: int = MAX_COPIED_SLOTS
    #: for a live source: whether the source's whole picture is frozen now (its gate's
    #: byte-identical frames); two slots with identical crops are ``frozen_frames`` only when
    #: it says so (a still region of a moving picture is not frozen). None: crops decide.
    picture_frozen: Callable[[], bool] | None = None

    t0: float | None = None
    injection: float | None = None
    arrival: Arrival | None = None
    sampler: Sampler | None = None
    flags: set[str] = field(default_factory=set)
    warnings: set[str] = field(default_factory=set)
    phase: str = "waiting"
    position_s: float | None = None
    last_score: Score | None = None
    scores: list[Score] = field(default_factory=list)
    end_reason: str | None = None
    #: (error, stream time) when the recording turned out damaged
    damage: tuple[str, float | None] | None = None
    #: facts shown in status and result (e.g. the clock a time is on); set by the use case
    info: dict[str, Any] = field(default_factory=dict)
    #: the analyser's latest reading of the clip (``features`` in the messages)
    features: dict[str, Any] | None = None
    #: how far the engine is behind its source (seconds), when the use case measures it
    lag_s: float | None = None
    #: the latest domain decision (``core.domain``; the messages' ``domain``)
    domain: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.schedule = Schedule.from_meta(self.model.meta)
        self.clip = ClipBuffer(self.model.meta)
        self.flags.update(model_flags(self.model))
        if self.backend_note.startswith("CPU fallback"):
            self.flags.add("cpu_fallback")
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = []
        self.backend_desc = self.backend.describe()
        self.model_desc = self.model.describe()
        if self.analyser is None:
            self.analyser = read_clip
        ood = self.model.meta.analysis.get("ood") if self.model.meta.analysis else None
        self._ood = ood if domain.uses_embedding(self.model.meta.analysis or {}) else None
        if self._ood is not None and self.embedder is None and not self._side_embedding():
            self.embedder = domain_runner(self.model, self._ood["output"])
        self.domain = domain.unknown(ood.get("method", "mahalanobis") if isinstance(ood, dict)
                                     else None)
        self.around = Around.of(self.roi, self.region, self.ref_roi, self.model.meta)

    # -- events --------------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    def emit(self, kind: str, data: Any = None) -> None:
        """Tells every subscriber; one that fails is logged and never stops the exam."""
        ev = Event(kind, self, data)
        for fn in list(self._subscribers):
            try:
                fn(ev)
            except Exception:
                log.exception("exam %s: a %s subscriber failed", self.exam, kind)

    def start(self) -> None:
        """Announces the exam to the subscribers (heartbeats start, first status)."""
        self.emit("started")
        self.emit("status")

    def announce(self) -> None:
        """Status changed (ROI, warning, phase): subscribers publish it."""
        self.emit("status")

    @property
    def ended(self) -> bool:
        return self.phase in ENDED

    # -- t0 ------------------------------------------------------------------------------
    def mark_injection(self, t: float) -> None:
        with self._lock:
            self.injection = t
            if self.t0 is None:
                self.phase = "pre_arrival"
        self.emit("status")

    def set_t0(self, t0: float, arrival: Arrival | None = None) -> Sampler:
        with self._lock:
            self.t0 = t0
            self.arrival = arrival
            if arrival is not None:
                self.flags.update(arrival.flags)
            self.sampler = Sampler(self.schedule, t0)
            self.phase = "video_phase"
            info = self.journal_info()
        self.emit("t0", info)
        self.emit("status")
        return self.sampler

    # -- slots ---------------------------------------------------------------------------
    def add(self, fills: list[SlotFill], trigger_mono_ns: int | None = None) -> None:
        """Decided slots, in slot order: clip, score (and the events that publish and
        journal them)."""
        for f in fills:
            with self._lock:
                if f.source == MISSING:
                    self.flags.add("slots_missing")
                    crop = None
                else:
                    if f.source == NEIGHBOUR:
                        self.flags.add("slot_neighbour_fill")
                    # the ROI part of the crop becomes the model's slot exactly as a crop of
                    # the ROI alone would; the frame around it is kept beside the clip
                    img = resize(self.around.roi_part(f.payload), self.model.meta.height,
                                 self.model.meta.width)
                    # two slots from two different frames with the same picture: frozen (a
                    # neighbour-filled slot is a copy on purpose, never "frozen")
                    prev = self.sampler.fills[f.index - 1] if self.sampler is not None and \
                        f.index > 0 else None
                    if f.source == FRAME and prev is not None and prev.source == FRAME and \
                            prev.pts_s != f.pts_s and self.clip.present[f.index - 1] and \
                            np.array_equal(img, self.clip.raw[f.index - 1]) and \
                            self._same_picture(prev.payload, f.payload):
                        self.flags.add("frozen_frames")
                    self.clip.put(f.index, img)
                    self.around.put(f.index, f.payload)
                    crop = f.payload if f.source == FRAME else None
            self.emit("slot", (f, crop))
            if f.source == MISSING:
                continue
            mono = f.mono_ns if f.mono_ns is not None else trigger_mono_ns
            self.score(f.index, mono, time.monotonic_ns(), trigger_mono_ns)
            with self._lock:
                if self.sampler and self.sampler.next_index is not None and \
                        self.sampler.next_index >= VIDEO_PHASE_SLOTS:
                    self.phase = "late_phase"

    def score(self, slot: int | None, mono_ns: int | None, filled_ns: int | None = None,
              decided_ns: int | None = None) -> Score:
        """Scores the clip as it stands (provisional until every slot is decided)."""
        x = self.clip.model_input()
        emb = None
        if self._wants_domain() and self._side_embedding():
            # the domain check's embedding from the scoring run itself (one network run)
            probs, emb = self.backend.infer_side(x, self._ood["output"])
            p_net = p = float(probs[0])
        else:
            p_net = p = float(self.backend.infer(x)[0])
        basis = "network"
        fusion = (self.model.meta.analysis or {}).get("fusion")
        if fusion is not None and self.clip.filled() >= analysis.MIN_SLOTS_FOR_WARNINGS:
            p, basis = self.fused(p_net, fusion), "fusion"
        dom = self.check_domain(x, emb)
        reading = None
        if (dom or self.domain or {}).get("state") == domain.OUT:
            # outside its domain the network is not what the score stands on: the TIC
            # reading is (README, "What the score is worth"), so it is read now, before the
            # score leaves, and handed to the analysis below rather than read twice
            reading = self.read_now(slot, p_net)
            p_phys = physiology.probability((reading or {}).get("features"))
            if p_phys is not None:
                p, basis = p_phys, "physiology"
        scored_ns = time.monotonic_ns()
        with self._lock:
            filled = self.clip.filled()
            complete = self.sampler is not None and self.sampler.done and \
                filled == self.model.meta.frames
            copied = self.copied_slots()
            final = complete and copied <= self.max_copied
            if complete and not final:
                self.flags.add("slots_copied")
            label = self.model.meta.label_for(p) if final else None
            if reading is not None:  # the score message shows the reading it stands on
                self.features = reading.get("features")
            if dom is not None:
                self.domain = dom
                self._set_ood(dom["state"] == domain.OUT, final)
            if final and self.domain["state"] == domain.OUT:
                label = domain.INDETERMINATE  # the network's label is not shown out of domain
            if final:
                self.phase = "complete"
            s = Score(slot, filled, p, label, final,
                      timing={"frame_mono_ns": mono_ns, "decided_mono_ns": decided_ns,
                              "filled_mono_ns": filled_ns,
                              "scored_mono_ns": scored_ns}, domain=dict(self.domain),
                      p_network=p_net, basis=basis)
            if mono_ns is not None:
                s.latency_ms = (time.monotonic_ns() - mono_ns) / 1e6
            self.last_score = s
            self.scores.append(s)
        self.emit("score", s)    # the score leaves first (its domain decided with it) ...
        self.analyse(s, reading)  # ... the clip's reading follows, in the status below
        self.emit("status")  # the next slot and its countdown move on with every score
        return s

    def fused(self, p_net: float, fusion: dict) -> float:
        """A site-adapted model's score (``app.adapt``): the fusion of the network's P(HCC)
        and the TIC vector of the clip as it stands."""
        from .adapt import fused_probability

        meta = self.model.meta
        delay = None if self.t0 is None or self.injection is None else self.t0 - self.injection
        vec = tic.tic_vector(self.clip.raw, self.clip.present, meta.offsets_s,
                             meta.preprocessing_spec().ring, delay,
                             view=self.around.view(self.clip.present))
        return fused_probability(p_net, vec, fusion)

    def _wants_domain(self) -> bool:
        """The clip is old enough for the domain check, and this model has its reference."""
        return self._ood is not None and \
            self.clip.filled() >= int(self._ood.get("min_slots", domain.MIN_SLOTS))

    def _side_embedding(self) -> bool:
        """The backend gives the embedding from its scoring run (ONNX Runtime on the FP32
        file: the same numbers the reference was made from); otherwise ``embedder`` runs."""
        fn = getattr(self.backend, "has_side", None)
        try:
            return bool(fn and fn(self._ood["output"]))
        except Exception:
            return False

    def check_domain(self, x: np.ndarray, emb: np.ndarray | None = None) \
            -> dict[str, Any] | None:
        """The domain decision for the model input ``x`` (``core.domain``), from
        ``MIN_SLOTS`` filled slots on; None when this model has no embedding reference or the
        clip is too young to decide. ``emb``: ``x``'s embedding when the scoring run gave it.
        A failing check is logged and decides nothing."""
        if not self._wants_domain() or (emb is None and self.embedder is None):
            return None
        try:
            if emb is None:
                emb = self.embedder(x)
            d = float(domain.knn_distances(emb, self._ood)[0])
        except Exception:
            log.exception("exam %s: the domain check failed", self.exam)
            return None
        return domain.decide(d, self._ood)

    def _set_ood(self, on: bool, final: bool) -> None:
        """``out_of_distribution`` follows the latest decision; a final result keeps it as a
        flag. Called with the lock held."""
        (self.warnings.add if on else self.warnings.discard)("out_of_distribution")
        if on and final:
            self.flags.add("out_of_distribution")

    def copied_slots(self) -> int:
        """Slots filled with a copy of their neighbour's frame (``slot_neighbour_fill``)."""
        if self.sampler is None:
            return 0
        return sum(1 for f in self.sampler.fills if f is not None and f.source == NEIGHBOUR)

    def _same_picture(self, a: Any, b: Any) -> bool:
        """Two slot frames with identical model-size crops are the same picture when their
        full-resolution crops are identical and, for a live source, its gate saw the whole
        picture frozen."""
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and
                a.shape == b.shape and np.array_equal(a, b)):
            return False
        return self.picture_frozen is None or bool(self.picture_frozen())

    def read_now(self, slot: int | None, p_net: float) -> dict[str, Any] | None:
        """The analyser's output for the clip as it stands, read before its score (the score
        of a clip outside the model's domain rests on it); None when it fails (logged)."""
        if self.analyser is None:
            return None
        try:
            return self.analyser(self, Score(slot, self.clip.filled(), p_net, None, False,
                                             p_network=p_net)) or {}
        except Exception:
            log.exception("exam %s: the clip analyser failed", self.exam)
            return None

    def analyse(self, s: Score, out: dict[str, Any] | None = None) -> None:
        """Runs the analyser (if any) on the clip as scored, or takes its output ``out`` when
        the score was read from it already; a failing analyser is logged and leaves the score
        standing without features."""
        if self.analyser is None:
            return
        if out is None:
            out = self.read_now(s.slot, s.p_network if s.p_network is not None else s.score)
            if out is None:
                return
        with self._lock:
            self.features = out.get("features")
            legacy = out.get("domain")
            if legacy is not None and self._ood is None:
                # a model with the older Mahalanobis reference: decided by the analysis
                self.domain = legacy
                if s.final and legacy["state"] == domain.OUT:
                    s.label = domain.INDETERMINATE
                s.domain = dict(legacy)
            for name, on in (out.get("warnings") or {}).items():
                if not on:
                    self.warnings.discard(name)
                    continue
                self.warnings.add(name)
                if s.final:  # the result carries what the final reading said
                    self.flags.add(name)

    def slot_states(self) -> list[str | None]:
        """Per slot: "frame", "neighbour", "missing" or None (pending)."""
        if self.sampler is None:
            return [None] * self.model.meta.frames
        return [None if f is None else f.source for f in self.sampler.fills]

    def frame_times(self) -> list[float | None]:
        if self.sampler is None:
            return [None] * self.model.meta.frames
        return [None if f is None or f.pts_s is None else round(f.pts_s, 6)
                for f in self.sampler.fills]

    # -- the end -------------------------------------------------------------------------
    def finish(self, reason: str | None = None) -> dict[str, Any]:
        """Closes the exam: undecided slots become missing; returns the result."""
        with self._lock:
            rest = self.sampler.close() if self.sampler is not None and \
                not self.sampler.done else []
        if rest:
            self.add(rest)
        with self._lock:
            if reason:
                self.flags.add(reason)
                self.end_reason = reason
            final = bool(self.last_score and self.last_score.final)
            if not final:
                self.phase = "partial" if reason != "stopped_early" else "stopped"
        if not final and self.t0 is not None and self.clip.filled() > 0:
            # the partial result's score, flagged and never labelled
            self.score(None, None)
        result = self.result()
        self.emit("status")
        self.emit("finished", result)
        return result

    def result(self) -> dict[str, Any]:
        with self._lock:
            s = self.last_score
            fills = self.sampler.fills if self.sampler else []
            return {
                "exam": self.exam,
                "score": None if s is None else round(s.score, 6),
                "score_network": None if s is None or s.p_network is None
                else round(s.p_network, 6),
                "score_basis": None if s is None else s.basis,
                "label": None if s is None else s.label,
                "final": bool(s and s.final),
                "slots_filled": self.clip.filled(),
                "slots_total": self.model.meta.frames,
                "t0": None if self.t0 is None else round(self.t0, 4),
                "injection": self.injection,
                "arrival": None if self.arrival is None else {
                    "method": self.arrival.method,
                    "baseline": _r(self.arrival.baseline), "threshold": _r(self.arrival.threshold)},
                "flags": sorted(self.flags),
                "warnings": sorted(self.warnings),
                "backend": self.backend_desc,
                "model": self.model_desc,
                "threshold": self.model.meta.threshold,
                "roi": self.roi.as_list(),
                "features": self.features,
                "domain": dict(self.domain) if self.domain else None,
                **self.info,
                "slots": [f.describe() for f in fills if f is not None],
                "disclaimer": DISCLAIMER,
            }

    def set_warning(self, name: str, on: bool) -> None:
        """A bedside warning (no_signal, frozen_frame, roi_lost, ...); announced when it
        changes."""
        with self._lock:
            if on == (name in self.warnings):
                return
            (self.warnings.add if on else self.warnings.discard)(name)
        log.info("exam %s: warning %s %s", self.exam, name, "raised" if on else "cleared")
        self.emit("status")

    # -- what the messages say -----------------------------------------------------------
    def now_s(self) -> float | None:
        """The exam's current stream time: the source's clock when it has one, else the
        newest frame the exam took."""
        t = self.clock() if self.clock is not None else None
        return self.position_s if t is None else t

    def score_fields(self, s: Score) -> dict[str, Any]:
        """Keyword arguments of ``wire.messages.score`` for one score."""
        with self._lock:
            return dict(
                exam=self.exam, slot=s.slot, slots_filled=s.slots_filled,
                slots_total=self.model.meta.frames, score=s.score, label=s.label, final=s.final,
                flags=sorted(self.flags), model=self.model_desc, backend=self.backend_desc,
                latency_ms=None, frame_mono_ns=s.timing.get("frame_mono_ns"), t0_s=self.t0,
                frame_times_s=self.frame_times(), slot_states=self.slot_states(),
                threshold=self.model.meta.threshold, timing=dict(s.timing),
                features=self.features, source=self.source,
                domain=dict(s.domain) if s.domain else None, score_basis=s.basis)

    def status_fields(self) -> dict[str, Any]:
        """Keyword arguments of ``wire.messages.status``."""
        with self._lock:
            nxt = due = due_in = None
            if self.sampler is not None and self.sampler.next_index is not None:
                nxt = self.sampler.next_index
                due = round(self.sampler.due[nxt], 4)
                now = self.now_s()
                if now is not None:
                    due_in = round(due - now, 3)
            s = self.last_score
            return dict(
                exam=self.exam, phase=self.phase, slots_filled=self.clip.filled(),
                slots_total=self.model.meta.frames, next_slot=nxt, next_slot_due_s=due,
                next_slot_in_s=due_in, speed=self.speed or 0.0, t0_s=self.t0,
                injection_s=self.injection, warnings=sorted(self.warnings),
                roi=self.roi.as_list(),
                frame_size=list(self.frame_size) if self.frame_size else None,
                model=self.model_desc, backend=self.backend_desc, slot_states=self.slot_states(),
                score=None if s is None else s.score, final=bool(s and s.final),
                label=None if s is None else s.label, flags=sorted(self.flags),
                features=self.features, source=self.source, stream_time_s=self.now_s(),
                lag_s=self.lag_s, domain=dict(self.domain) if self.domain else None,
                score_basis=None if s is None else s.basis)

    def journal_info(self) -> dict[str, Any]:
        extra = {} if self.region is None else {"region": self.region.as_list()}
        if self.ref_roi is not None:
            extra["ref_roi"] = self.ref_roi.as_list()
        return {"exam": self.exam, "roi": self.roi.as_list(), **extra, "t0": self.t0,
                "injection": self.injection, "model": self.model_desc,
                "backend": self.backend_desc, "frame_size": self.frame_size,
                "offsets_s": list(self.schedule.offsets_s), "started_wall": time.time()}


def read_clip(session: ExamSession, s: Score) -> dict[str, Any]:
    """The default analyser: the TIC reading, the TIC model, disagreement and OOD
    (``core.analysis``), with what the model's metadata carries for them."""
    meta = session.model.meta
    delay = None
    if session.t0 is not None and session.injection is not None:
        delay = session.t0 - session.injection
    return analysis.analyse(session.clip.raw, session.clip.present, meta.offsets_s,
                            meta.analysis, s.score, meta.threshold, delay,
                            meta.preprocessing_spec().ring,
                            session.around.view(session.clip.present))


class Around:
    """The frame around the ROI, slot by slot, at the clip's scale (the ROI resized to the
    model's size, the frame around it by the same factors): the TIC reading's parenchyma
    reference outside the lesion box (``tic.View``). Crops of the ROI alone (no region, an
    older journal) keep nothing: the reading falls back to the ROI's ring."""

    def __init__(self, roi: Roi, region: Roi | None, ref: Roi | None, frames: int,
                 height: int, width: int):
        self.roi, self.region, self.ref = roi, region, ref
        self.pixels: np.ndarray | None = None
        self.present = np.zeros(frames, bool)
        if region is None or (region.w, region.h) == (roi.w, roi.h):
            self.region = None
            return
        fy, fx = height / roi.h, width / roi.w
        self.size = (max(1, int(round(region.h * fy))), max(1, int(round(region.w * fx))))
        self.box = (int(round((roi.y - region.y) * fy)), int(round((roi.x - region.x) * fx)),
                    height, width)
        self.frames = frames
        self.ref_mask = None
        if ref is not None:
            self.ref_mask = np.zeros(self.size, bool)
            y0, x0 = int(round((ref.y - region.y) * fy)), int(round((ref.x - region.x) * fx))
            self.ref_mask[y0:y0 + max(1, int(round(ref.h * fy))),
                          x0:x0 + max(1, int(round(ref.w * fx)))] = True

    @classmethod
    def of(cls, roi: Roi, region: Roi | None, ref: Roi | None, meta) -> "Around":
        return cls(roi, region, ref, meta.frames, meta.height, meta.width)

    def covers(self, crop: np.ndarray) -> bool:
        return self.region is not None and crop.shape[:2] == (self.region.h, self.region.w)

    def roi_part(self, crop: np.ndarray) -> np.ndarray:
        """The ROI's pixels of a slot's crop (the crop itself when it is the ROI alone)."""
        if not self.covers(crop):
            return crop
        return crop[within(self.region, self.roi)]

    def put(self, index: int, crop: np.ndarray) -> None:
        if not self.covers(crop):
            return
        if self.pixels is None:
            self.pixels = np.zeros((self.frames,) + self.size, np.uint8)
        self.pixels[index] = resize(crop, *self.size)
        self.present[index] = True

    def view(self, present: np.ndarray) -> "tic.View | None":
        """The reading's view when every filled slot of the clip (``present``) has its frame
        around (else None: the ROI's ring)."""
        if self.pixels is None or not np.array_equal(self.present, present):
            return None
        return tic.View(self.pixels, self.box, self.ref_mask)


_RUNNERS: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {}
_RUNNERS_LOCK = threading.Lock()


def domain_runner(model: LoadedModel, output: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """One embedding runner per model file and output, shared by its exams; None (and a
    logged error) when the model cannot give the embedding: the exam then runs without a
    domain check, which its ``domain.state`` says (``unknown``)."""
    from ceustream.engine.backends.onnxruntime import EmbeddingRunner
    from ceustream.engine.core.errors import ModelError

    key = (model.sha256, output)
    with _RUNNERS_LOCK:
        if key not in _RUNNERS:
            try:
                _RUNNERS[key] = EmbeddingRunner(model, output)
            except ModelError as e:
                log.error("%s: no domain check for this model", e)
                return None
        return _RUNNERS[key]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
