"""The slot schedule and the sampler that fills it.

A slot takes the frame nearest its time within its tolerance. Frames arrive in time order,
so the nearest frame to a slot is either the last one before it or the first one at or after
it: the sampler needs only those two, which is exactly what the ``ceusgate`` element lets
through. A slot left empty after its tolerance is filled from its neighbour (as the paper
does) and flagged; a slot after the end of the recording stays missing, so a short recording
gives a partial result, never a fake final one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .modelmeta import PAPER_OFFSETS_S, PAPER_TOLERANCE_S

FRAME = "frame"          # the nearest frame, within tolerance
NEIGHBOUR = "neighbour"  # no frame within tolerance: copied from the nearest filled slot
MISSING = "missing"      # the recording ended (or the exam stopped) before this slot


@dataclass(frozen=True)
class Schedule:
    offsets_s: tuple[float, ...] = PAPER_OFFSETS_S
    tolerance_s: tuple[float, ...] = PAPER_TOLERANCE_S

    def __post_init__(self) -> None:
        if len(self.offsets_s) != len(self.tolerance_s):
            raise ValueError("one tolerance per slot")

    def __len__(self) -> int:
        return len(self.offsets_s)

    @property
    def span_s(self) -> float:
        """Seconds from t0 until the clip is complete."""
        return self.offsets_s[-1]

    def times(self, t0: float) -> list[float]:
        return [t0 + o for o in self.offsets_s]

    @classmethod
    def from_meta(cls, meta: Any) -> "Schedule":
        return cls(tuple(meta.offsets_s), tuple(meta.tolerance_s))


@dataclass
class SlotFill:
    index: int
    due_s: float
    source: str
    pts_s: float | None = None
    #: frame time minus slot time (seconds), for FRAME fills
    error_s: float | None = None
    from_slot: int | None = None
    payload: Any = None
    #: CLOCK_MONOTONIC (ns) when the frame left the decoder; None for non-frame fills
    mono_ns: int | None = None

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"slot": self.index, "due_s": round(self.due_s, 4),
                             "source": self.source}
        if self.pts_s is not None:
            d["pts_s"] = round(self.pts_s, 6)
        if self.error_s is not None:
            d["error_ms"] = round(self.error_s * 1000.0, 2)
        if self.from_slot is not None:
            d["from_slot"] = self.from_slot
        return d


@dataclass
class _Frame:
    pts: float
    payload: Any
    mono_ns: int | None


@dataclass
class Sampler:
    """Assigns frames, offered in time order, to the slots of one exam."""

    schedule: Schedule
    t0: float
    fills: list[SlotFill | None] = field(init=False)
    _prev: _Frame | None = field(init=False, default=None)
    _next: int = field(init=False, default=0)
    _waiting_for_neighbour: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.due = self.schedule.times(self.t0)
        self.fills = [None] * len(self.schedule)

    # -- state ---------------------------------------------------------------------------
    @property
    def next_index(self) -> int | None:
        """The first slot not decided yet (None when all are)."""
        return self._next if self._next < len(self.due) else None

    @property
    def done(self) -> bool:
        return self._next >= len(self.due) and not self._waiting_for_neighbour

    def filled(self) -> int:
        return sum(1 for f in self.fills if f is not None and f.source != MISSING)

    def reset_prev(self) -> None:
        """Forget the last frame (after a seek: it is no longer the frame before the next)."""
        self._prev = None

    def restore(self, fills: list[SlotFill]) -> None:
        """Takes decided slots as they were recorded (a journal's rescore): the slots
        given are decided; the next undecided one follows the last given (or all are
        decided when every slot is given)."""
        for f in fills:
            self.fills[f.index] = f
        if len(fills) == len(self.due):
            self._next = len(self.due)
        else:
            self._next = max([f.index for f in fills], default=-1) + 1
        self._waiting_for_neighbour = []

    # -- feeding -------------------------------------------------------------------------
    def offer(self, pts: float, payload: Any, mono_ns: int | None = None) -> list[SlotFill]:
        """A new frame. Returns the slots it decided (in slot order)."""
        if self._prev is not None and pts <= self._prev.pts:
            return []  # duplicate or out-of-order frame: the earlier one stands
        cur = _Frame(pts, payload, mono_ns)
        out: list[SlotFill] = []
        while self._next < len(self.due) and self.due[self._next] <= pts:
            out += self._decide(self._next, self._prev, cur)
            self._next += 1
        self._prev = cur
        return out

    def advance(self, now_s: float) -> list[SlotFill]:
        """Time has passed without frames (live: no signal). Decides every slot whose
        tolerance window closed before ``now_s``."""
        out: list[SlotFill] = []
        while (self._next < len(self.due)
               and self.due[self._next] + self.schedule.tolerance_s[self._next] < now_s):
            out += self._decide(self._next, self._prev, None)
            self._next += 1
        return out

    def cutoff(self, t: float) -> list[SlotFill]:
        """Decides every slot due at or before ``t`` from the frames offered so far (the
        last one is the only candidate left for those not decided yet). Used where the frames
        up to ``t`` are all there will be for them: the arrival window's monitor frames."""
        out: list[SlotFill] = []
        while self._next < len(self.due) and self.due[self._next] <= t:
            out += self._decide(self._next, self._prev, None)
            self._next += 1
        return out

    def close(self) -> list[SlotFill]:
        """The recording ended (or the exam stopped). The last frame may still serve the
        next slot if within tolerance; later slots are missing."""
        out: list[SlotFill] = []
        if self._next < len(self.due) and self._prev is not None:
            i = self._next
            if abs(self._prev.pts - self.due[i]) <= self.schedule.tolerance_s[i]:
                out += self._decide(i, self._prev, None)
                self._next += 1
        while self._next < len(self.due):
            i = self._next
            self.fills[i] = SlotFill(i, self.due[i], MISSING)
            out.append(self.fills[i])
            self._next += 1
        # empty slots that never got a neighbour (no frame at all): missing too
        for i in self._waiting_for_neighbour:
            self.fills[i] = SlotFill(i, self.due[i], MISSING)
            out.append(self.fills[i])
        self._waiting_for_neighbour = []
        return sorted(out, key=lambda f: f.index)

    # -- internals -----------------------------------------------------------------------
    def _decide(self, i: int, before: _Frame | None, after: _Frame | None) -> list[SlotFill]:
        s, tol = self.due[i], self.schedule.tolerance_s[i]
        best: _Frame | None = None
        for cand in (before, after):  # ties go to the earlier frame
            if cand is not None and abs(cand.pts - s) <= tol:
                if best is None or abs(cand.pts - s) < abs(best.pts - s):
                    best = cand
        if best is not None:
            fill = SlotFill(i, s, FRAME, best.pts, best.pts - s, None, best.payload, best.mono_ns)
            self.fills[i] = fill
            out = [fill]
            # earlier empty slots waiting for a neighbour take this one
            for j in self._waiting_for_neighbour:
                self.fills[j] = SlotFill(j, self.due[j], NEIGHBOUR, from_slot=i,
                                         payload=best.payload)
                out.append(self.fills[j])
            self._waiting_for_neighbour = []
            return sorted(out, key=lambda f: f.index)
        # empty: the nearest filled slot before it, else wait for the next one
        for j in range(i - 1, -1, -1):
            f = self.fills[j]
            if f is not None and f.source == FRAME:
                self.fills[i] = SlotFill(i, s, NEIGHBOUR, from_slot=j, payload=f.payload)
                return [self.fills[i]]
        self._waiting_for_neighbour.append(i)
        return []


def nearest_brute_force(pts: Sequence[float], schedule: Schedule, t0: float) -> list[int | None]:
    """Reference for tests and offline scoring: index of the nearest frame per slot within
    tolerance (ties to the earlier frame), None when no frame is within tolerance."""
    out: list[int | None] = []
    for s, tol in zip(schedule.times(t0), schedule.tolerance_s):
        best = None
        for k, p in enumerate(pts):
            d = abs(p - s)
            if d <= tol and (best is None or d < abs(pts[best] - s)):
                best = k
        out.append(best)
    return out
