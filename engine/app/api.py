"""The Python API's use cases: replay a recorded exam with the defaults, and the typed result
(exported by ``import ceustream``; see the README "Python API").

    import ceustream
    r = ceustream.replay_file("exam.mp4", roi=(300, 200, 64, 64), injection=6.0)
    print(r.headline(), r.disclaimer)

Times are seconds from the recording's first frame. The shipped weights are trained on
simulated data: ``disclaimer`` says so and goes wherever a score is shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ceustream.engine.core import config as config_mod
from ceustream.engine.core.roi import Roi
from ceustream.engine.wire.types import Domain, TicReading, headline, outside_domain

from .replay import ReplayOptions, replay
from .session import ExamSession, Score

log = logging.getLogger(__name__)

__all__ = ["Result", "SlotScore", "replay_file", "load_config", "slot_score"]


def load_config(path: str | Path | None = None) -> dict:
    """The settings: the defaults (``engine/core/defaults.toml``), then ``path`` (or
    $CEUSTREAM_CONFIG), then $CEUSTREAM_* variables. Raises ``UsageError`` naming the key."""
    return config_mod.load(path)


@dataclass(frozen=True)
class SlotScore:
    """The score after one slot, as ``replay_file(on_score=...)`` sees it: P(HCC) of the clip
    as it stands (provisional until ``final``), and the TIC reading of the same clip."""

    exam: str
    slot: int | None
    slots_filled: int
    slots_total: int
    score: float
    label: str | None
    final: bool
    flags: tuple[str, ...]
    features: TicReading | None
    latency_ms: float | None

    def headline(self) -> str:
        return headline(self.score, self.label, self.final, list(self.flags), self.features,
                        None, f"{self.slots_filled}/{self.slots_total} slots")


@dataclass(frozen=True)
class Result:
    """An exam's result (what ``ceustream replay --json`` prints), typed. ``raw`` is the whole
    JSON object (slots, recording, replay statistics, ...)."""

    exam: str
    score: float | None
    label: str | None
    final: bool
    slots_filled: int
    slots_total: int
    t0: float | None
    flags: tuple[str, ...]
    warnings: tuple[str, ...]
    features: TicReading | None
    domain: Domain | None
    model: dict[str, Any]
    backend: dict[str, Any]
    disclaimer: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    #: the network's own P(HCC); ``score`` differs from it outside the model's domain (the
    #: physiology reading's) or for a site-adapted model (``score_basis``)
    score_network: float | None = None
    #: "network", "fusion" or "physiology": what ``score`` stands on
    score_basis: str | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Result":
        return cls(exam=d["exam"], score=d.get("score"), label=d.get("label"),
                   final=bool(d.get("final")), slots_filled=int(d.get("slots_filled") or 0),
                   slots_total=int(d.get("slots_total") or 0), t0=d.get("t0"),
                   flags=tuple(d.get("flags") or ()), warnings=tuple(d.get("warnings") or ()),
                   features=TicReading.from_json(d.get("features")),
                   domain=Domain.from_json(d.get("domain")), model=dict(d.get("model") or {}),
                   backend=dict(d.get("backend") or {}),
                   disclaimer=str(d.get("disclaimer", "")), raw=d,
                   score_network=d.get("score_network"), score_basis=d.get("score_basis"))

    @property
    def outside_domain(self) -> bool:
        return outside_domain(self.label, list(self.flags), self.domain)

    def headline(self) -> str:
        """One line: P(HCC) and the label, or the TIC reading "outside model domain"."""
        return headline(self.score, self.label, self.final, list(self.flags), self.features,
                        self.domain, f"{self.slots_filled}/{self.slots_total} slots",
                        self.score_basis)


def slot_score(s: Score, session: ExamSession) -> SlotScore:
    """The typed view of a session's score event (``replay_file`` and ``Engine`` alike)."""
    return SlotScore(exam=session.exam, slot=s.slot, slots_filled=s.slots_filled,
                     slots_total=session.model.meta.frames, score=s.score, label=s.label,
                     final=s.final, flags=tuple(sorted(session.flags)),
                     features=TicReading.from_json(session.features), latency_ms=s.latency_ms)


def replay_file(path: str | Path, roi: Roi | Sequence[int] | str, *, t0: float | None = None,
                injection: float | None = None, config: dict | str | Path | None = None,
                backend: str = "auto", model: str | Path | None = None,
                exam: str | None = None, journal: bool = False,
                on_score: Callable[[SlotScore], None] | None = None) -> Result:
    """Scores one recorded exam (a video file, or a DICOM cine) through the real pipeline.

    ``roi``: the lesion's box in the video's pixels (``Roi``, ``(x, y, w, h)`` or
    ``"X,Y,W,H"``); exactly one of ``t0`` (contrast arrival) and ``injection`` (arrival is
    then detected), seconds from the first frame. ``config``: a settings dict
    (:func:`load_config`) or a TOML file; the defaults when None. ``journal``: keep the
    sampled frames in the journal as the CLI does (off by default here). ``on_score`` is
    called after every slot. Bad input raises a ``CeusError`` (``UsageError``,
    ``InputError``, ``ModelError``, ``BackendUnavailable``) with a one-line message; a
    recording that ends early gives a result with ``final`` False, not an error."""
    cfg = config if isinstance(config, dict) else load_config(config)
    if isinstance(roi, str):
        roi = Roi.parse(roi)
    elif not isinstance(roi, Roi):
        roi = Roi.parse(",".join(str(int(v)) for v in roi))
    opts = ReplayOptions(roi=roi, t0=t0, injection=injection, backend=backend,
                         model_path=None if model is None else str(model), exam=exam,
                         journal=journal)

    def scored(s: Score, session: ExamSession) -> None:
        if on_score is not None:
            on_score(slot_score(s, session))

    return Result.from_json(replay(path, opts, cfg, on_score=scored))
