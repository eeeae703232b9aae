"""Typed views of what ceustream publishes (score and status messages, v1) and of the pieces
its results share: the TIC reading (``features``) and the model-domain check (``domain``).

Each view keeps the whole message in ``raw``: fields added within v1 are there even before a
view names them. Every field a view reads may be missing in an older message (``domain``
came later): a view then holds None, never a guess.

How to show a score (see :meth:`ScoreMessage.headline`): a final label of ``"indeterminate"``
or a model outside its domain (``out_of_distribution`` in the flags, ``domain.state ==
"out"``) means the network's score is not to be shown as the reading; the TIC reading is what
still holds, with the words "outside model domain". There ``score`` is the physiology
reading's P(HCC) (``score_basis == "physiology"``: the TIC reading's LI-RADS features weighed
by published frequencies), not the network's. The shipped weights are trained on
simulated data: ``disclaimer`` says so and goes wherever a score is shown.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

OUT_OF_DOMAIN = "out_of_distribution"
INDETERMINATE = "indeterminate"

__all__ = ["Domain", "TicReading", "ScoreMessage", "StatusMessage", "Message", "parse",
           "headline", "outside_domain",
           "OUT_OF_DOMAIN", "INDETERMINATE"]


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) \
        and math.isfinite(v) else None


@dataclass(frozen=True)
class Domain:
    """Whether the clip looks like what the model was trained on.

    ``state``: "in", "out" or "unknown"; ``distance`` and ``threshold``: the measure and the
    limit it is held to (None when not measured); ``method``: how it was measured."""

    state: str
    distance: float | None
    threshold: float | None
    method: str

    @classmethod
    def from_json(cls, d: Any) -> "Domain | None":
        """The ``domain`` object of a message or result; None when absent (older messages)
        or not an object."""
        if not isinstance(d, dict):
            return None
        state = d.get("state")
        return cls(state=state if state in ("in", "out", "unknown") else "unknown",
                   distance=_number(d.get("distance")), threshold=_number(d.get("threshold")),
                   method=str(d.get("method") or ""))


@dataclass(frozen=True)
class TicReading:
    """The time-intensity-curve reading of the clip, beside the network's score (schema
    ``features``): APHE and washout from the lesion's and the liver's curves, a CEUS
    LI-RADS-like ``category`` (not a diagnosis), a one-line ``summary`` and the reading's own
    ``p_hcc``. ``raw`` holds the whole object (the curves: ``times_s``, ``lesion``, ...)."""

    category: str | None
    summary: str
    p_hcc: float | None
    aphe: str | None
    washout: str | None
    washout_degree: str | None
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, d: Any) -> "TicReading | None":
        if not isinstance(d, dict):
            return None
        return cls(category=d.get("category"), summary=str(d.get("summary") or ""),
                   p_hcc=_number(d.get("p_hcc")), aphe=d.get("aphe"), washout=d.get("washout"),
                   washout_degree=d.get("washout_degree"), raw=d)


def outside_domain(label: Any, flags: list, domain: Domain | None) -> bool:
    """The network's score is not the reading: a final label of "indeterminate", the
    out_of_distribution flag, or a domain check that says "out"."""
    return label == INDETERMINATE or OUT_OF_DOMAIN in flags or \
        (domain is not None and domain.state == "out")


def headline(score: float | None, label: str | None, final: bool, flags: list,
             features: TicReading | None, domain: Domain | None, slots: str,
             basis: str | None = None) -> str:
    """One line to show, as the project's contract says: the TIC reading when the model is
    outside its domain (with the physiology reading's P(HCC) when the score is it), else
    P(HCC) with its label (or "provisional")."""
    if outside_domain(label, flags, domain):
        tic = "no TIC reading" if features is None else \
            f"TIC: {features.category or 'no category'} ({features.summary})" + (
                "" if features.p_hcc is None else f", TIC P(HCC) {features.p_hcc:.3f}")
        if basis == "physiology" and score is not None:
            tic += f", physiology P(HCC) {score:.3f}"
        return f"outside model domain: {tic}; {slots}"
    if score is None:
        return f"no score yet; {slots}"
    state = label if final and label else "provisional"
    return f"P(HCC) {score:.3f} {state}; {slots}"


@dataclass(frozen=True)
class ScoreMessage:
    """A score (topic ``score.<exam>``): P(HCC) after a slot, provisional until ``final``."""

    topic: str
    exam: str
    seq: int
    slot: int | None
    slots_filled: int
    slots_total: int
    score: float
    label: str | None
    final: bool
    flags: tuple[str, ...]
    features: TicReading | None
    domain: Domain | None
    disclaimer: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    #: CLOCK_MONOTONIC when the subscriber received it (ns)
    received_mono_ns: int = 0
    kind: str = "score"
    #: what ``score`` stands on: "network", "fusion" or "physiology" (None: an older engine)
    score_basis: str | None = None

    @property
    def outside_domain(self) -> bool:
        """The model is outside its domain: show the TIC reading, not the network's score."""
        return outside_domain(self.label, list(self.flags), self.domain)

    def headline(self) -> str:
        return headline(self.score, self.label, self.final, list(self.flags), self.features,
                        self.domain, f"{self.slots_filled}/{self.slots_total} slots",
                        self.score_basis)


@dataclass(frozen=True)
class StatusMessage:
    """An exam's status (topic ``status.<exam>``): its phase, the next slot, the warnings;
    also sent as a heartbeat."""

    topic: str
    exam: str
    seq: int
    phase: str
    slots_filled: int
    slots_total: int
    next_slot_due_s: float | None
    warnings: tuple[str, ...]
    heartbeat: bool
    raw: dict[str, Any] = field(repr=False, compare=False)
    received_mono_ns: int = 0
    kind: str = "status"


Message = ScoreMessage | StatusMessage


def parse(topic: str, msg: dict[str, Any], received_mono_ns: int = 0) -> Message:
    """A decoded v1 message (``messages.decode``) → its typed view; ValueError when it is
    neither a score nor a status."""
    kind = msg.get("type")
    if kind == "score":
        return ScoreMessage(
            topic=topic, exam=msg["exam"], seq=msg["seq"], slot=msg.get("slot"),
            slots_filled=msg["slots_filled"], slots_total=msg["slots_total"],
            score=float(msg["score"]), label=msg.get("label"), final=bool(msg["final"]),
            flags=tuple(msg.get("flags") or ()), features=TicReading.from_json(msg.get("features")),
            domain=Domain.from_json(msg.get("domain")), disclaimer=str(msg.get("disclaimer", "")),
            raw=msg, received_mono_ns=received_mono_ns,
            score_basis=msg.get("score_basis") if msg.get("score_basis") in
            ("network", "fusion", "physiology") else None)
    if kind == "status":
        return StatusMessage(
            topic=topic, exam=msg["exam"], seq=msg["seq"], phase=msg["phase"],
            slots_filled=msg["slots_filled"], slots_total=msg["slots_total"],
            next_slot_due_s=_number(msg.get("next_slot_due_s")),
            warnings=tuple(msg.get("warnings") or ()), heartbeat=bool(msg.get("heartbeat")),
            raw=msg, received_mono_ns=received_mono_ns)
    raise ValueError(f"message type {kind!r} is neither score nor status")
