"""One exam: its schedule, clip buffer, scoring, messages and journal.

The session is fed decided slots (``SlotFill``) by whatever reads the frames (replay, live
capture, the journal) and does the same thing for each: resize the ROI crop to the model's
size, put it in the clip, score, publish, journal. That is why a replay gives the same score
as the live exam, and a rescore from the journal the same as both.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import DISCLAIMER, messages
from .arrival import Arrival
from .clip import ClipBuffer
from .journal import Journal
from .modelmeta import LoadedModel
from .roi import Roi, resize
from .schedule import FRAME, MISSING, NEIGHBOUR, Sampler, Schedule, SlotFill

VIDEO_PHASE_SLOTS = 25


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


@dataclass
class ExamSession:
    exam: str
    model: LoadedModel
    backend: Any
    roi: Roi
    publisher: Any = None
    journal: Journal | None = None
    speed: float | None = None
    frame_size: tuple[int, int] | None = None
    backend_note: str = ""
    on_score: Callable[[Score, "ExamSession"], None] | None = None

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

    def __post_init__(self) -> None:
        self.schedule = Schedule.from_meta(self.model.meta)
        self.clip = ClipBuffer(self.model.meta)
        self.flags.update(model_flags(self.model))
        if self.backend_note.startswith("CPU fallback"):
            self.flags.add("cpu_fallback")
        self._lock = threading.RLock()
        self._backend_desc = self.backend.describe()
        self._model_desc = self.model.describe()
        if self.publisher is not None:
            self.publisher.watch(self.exam, self.status)

    # -- t0 ------------------------------------------------------------------------------
    def mark_injection(self, t: float) -> None:
        with self._lock:
            self.injection = t
            if self.t0 is None:
                self.phase = "pre_arrival"
        self._publish_status()

    def set_t0(self, t0: float, arrival: Arrival | None = None) -> Sampler:
        with self._lock:
            self.t0 = t0
            self.arrival = arrival
            if arrival is not None:
                self.flags.update(arrival.flags)
            self.sampler = Sampler(self.schedule, t0)
            self.phase = "video_phase"
            if self.journal:
                self.journal.exam(self._journal_info())
        self._publish_status()
        return self.sampler

    # -- slots ---------------------------------------------------------------------------
    def add(self, fills: list[SlotFill], trigger_mono_ns: int | None = None) -> None:
        """Decided slots, in slot order: clip, score, publish, journal."""
        for f in fills:
            with self._lock:
                if f.source == MISSING:
                    self.flags.add("slots_missing")
                    if self.journal:
                        self.journal.slot(f.index, f.describe(), None)
                    continue
                if f.source == NEIGHBOUR:
                    self.flags.add("slot_neighbour_fill")
                img = resize(f.payload, self.model.meta.height, self.model.meta.width)
                if f.index > 0 and self.clip.present[f.index - 1] and f.source == FRAME and \
                        np.array_equal(img, self.clip.raw[f.index - 1]):
                    self.flags.add("frozen_frames")
                self.clip.put(f.index, img)
                if self.journal:
                    self.journal.slot(f.index, f.describe(), f.payload if f.source == FRAME else None)
                mono = f.mono_ns if f.mono_ns is not None else trigger_mono_ns
            self._score(f.index, mono, time.monotonic_ns())
            with self._lock:
                if self.sampler and self.sampler.next_index is not None and \
                        self.sampler.next_index >= VIDEO_PHASE_SLOTS:
                    self.phase = "late_phase"

    def _score(self, slot: int | None, mono_ns: int | None, filled_ns: int | None = None) -> Score:
        x = self.clip.model_input()
        p = float(self.backend.infer(x)[0])
        scored_ns = time.monotonic_ns()
        with self._lock:
            filled = self.clip.filled()
            final = self.sampler is not None and self.sampler.done and \
                filled == self.model.meta.frames
            label = None
            if final:
                meta = self.model.meta
                label = meta.positive if p >= meta.threshold else \
                    [c for c in meta.classes if c != meta.positive][0]
                self.phase = "complete"
            s = Score(slot, filled, p, label, final)
            self.last_score = s
            self.scores.append(s)
            msg = messages.score(
                self.exam, slot=slot, slots_filled=filled, slots_total=self.model.meta.frames,
                score=p, label=label, final=final, flags=sorted(self.flags), model=self._model_desc,
                backend=self._backend_desc, latency_ms=None, frame_mono_ns=mono_ns, t0_s=self.t0,
                frame_times_s=self.frame_times(), slot_states=self.slot_states(),
                threshold=self.model.meta.threshold)
            # per-stage timing (CLOCK_MONOTONIC, this machine): decoder exit, slot in the clip,
            # score computed; the publisher adds the moment it sent the message
            msg["timing"] = {"frame_mono_ns": mono_ns, "filled_mono_ns": filled_ns,
                             "scored_mono_ns": scored_ns}
        if mono_ns is not None:
            s.latency_ms = (time.monotonic_ns() - mono_ns) / 1e6
        if self.publisher is not None:
            self.publisher.publish("score", msg)
            self._publish_status()  # the next slot and its countdown move on with every score
        if self.on_score:
            self.on_score(s, self)
        return s

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
            if self.sampler is not None and not self.sampler.done:
                rest = self.sampler.close()
            else:
                rest = []
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
            s = self._score(None, None)
            s.label = None
        result = self.result()
        if self.publisher is not None:
            self._publish_status()
            self.publisher.unwatch(self.exam)
        if self.journal:
            self.journal.result(result)
        return result

    def result(self) -> dict[str, Any]:
        with self._lock:
            s = self.last_score
            fills = self.sampler.fills if self.sampler else []
            return {
                "exam": self.exam,
                "score": None if s is None else round(s.score, 6),
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
                "backend": self._backend_desc,
                "model": self._model_desc,
                "threshold": self.model.meta.threshold,
                "roi": self.roi.as_list(),
                "slots": [f.describe() for f in fills if f is not None],
                "disclaimer": DISCLAIMER,
            }

    def set_warning(self, name: str, on: bool) -> None:
        """A bedside warning (no_signal, frozen, roi_lost); published when it changes."""
        with self._lock:
            if on == (name in self.warnings):
                return
            (self.warnings.add if on else self.warnings.discard)(name)
        self._publish_status()

    # -- status --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            nxt = due = due_in = None
            if self.sampler is not None and self.sampler.next_index is not None:
                nxt = self.sampler.next_index
                due = round(self.sampler.due[nxt], 4)
                if self.position_s is not None:
                    due_in = round(due - self.position_s, 3)
            return messages.status(
                self.exam, phase=self.phase, slots_filled=self.clip.filled(),
                slots_total=self.model.meta.frames, next_slot=nxt, next_slot_due_s=due,
                next_slot_in_s=due_in, speed=self.speed or 0.0, t0_s=self.t0,
                injection_s=self.injection, warnings=sorted(self.warnings),
                roi=self.roi.as_list(), frame_size=list(self.frame_size) if self.frame_size else None,
                model=self._model_desc, backend=self._backend_desc, slot_states=self.slot_states(),
                score=None if self.last_score is None else self.last_score.score,
                final=bool(self.last_score and self.last_score.final),
                label=None if self.last_score is None else self.last_score.label,
                flags=sorted(self.flags))

    def _publish_status(self) -> None:
        if self.publisher is not None:
            self.publisher.publish("status", self.status())

    def _journal_info(self) -> dict[str, Any]:
        return {"exam": self.exam, "roi": self.roi.as_list(), "t0": self.t0,
                "injection": self.injection, "model": self._model_desc,
                "backend": self._backend_desc, "frame_size": self.frame_size,
                "offsets_s": list(self.schedule.offsets_s), "started_wall": time.time()}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
