"""The slot schedule and the sampler that fills it.

A slot takes the frame nearest its time within its tolerance. Frames arrive in time order,
so the nearest frame to a slot is either the last one before it or the first one at or after
it: the sampler needs only those two, which is exactly what the ``ceusgate`` element lets
through. A slot left empty after its tolerance is filled from its neighbour (as the paper
does) and flagged; a slot after the end of the recording stays missing, so a short recording
gives a partial result, never a fake final one.

Times are exact: the public API takes and gives float seconds, but every comparison is made
on integer nanoseconds (GStreamer's own unit: a frame's float seconds map back to its
nanoseconds exactly, and a due time is t0 + offset added in nanoseconds), so the documented
tie rule (a frame equally far before and after a slot: the EARLIER one) holds whatever the
frame rate; with float arithmetic 14 of 30 slots of a 12.5 fps file went to the later frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from .modelmeta import PAPER_OFFSETS_S, PAPER_TOLERANCE_S

NS_PER_S = 1_000_000_000

FRAME = "frame"          # the nearest frame, within tolerance
NEIGHBOUR = "neighbour"  # no frame within tolerance: copied from the nearest filled slot
MISSING = "missing"      # the recording ended (or the exam stopped) before this slot


def to_ns(seconds: float) -> int:
    """Float seconds to the nearest integer nanosecond (exact for any time GStreamer gave as
    ``ns / 1e9``: below 10^6 s the float's error is far under half a nanosecond)."""
    return int(round(seconds * 1e9))


def to_s(nanoseconds: int) -> float:
    return nanoseconds / 1e9


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

    @property
    def offsets_ns(self) -> tuple[int, ...]:
        return tuple(to_ns(o) for o in self.offsets_s)

    @property
    def tolerance_ns(self) -> tuple[int, ...]:
        return tuple(to_ns(t) for t in self.tolerance_s)

    def times_ns(self, t0: float) -> list[int]:
        """Due times in integer nanoseconds: t0 + offset, added exactly."""
        t0_ns = to_ns(t0)
        return [t0_ns + o for o in self.offsets_ns]

    def times(self, t0: float) -> list[float]:
        return [to_s(t) for t in self.times_ns(t0)]

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
    #: the due and frame times in integer nanoseconds (exact; None when not known)
    due_ns: int | None = None
    pts_ns: int | None = None

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
    pts_ns: int
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
        #: due times, exact (integer ns) and as float seconds (the public view)
        self.due_ns = self.schedule.times_ns(self.t0)
        self.due = [to_s(d) for d in self.due_ns]
        self._tol_ns = self.schedule.tolerance_ns
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
        pts_ns = to_ns(pts)
        if self._prev is not None and pts_ns <= self._prev.pts_ns:
            return []  # duplicate or out-of-order frame: the earlier one stands
        cur = _Frame(pts, pts_ns, payload, mono_ns)
        out: list[SlotFill] = []
        while self._next < len(self.due) and self.due_ns[self._next] <= pts_ns:
            out += self._decide(self._next, self._prev, cur)
            self._next += 1
        self._prev = cur
        return out

    def advance(self, now_s: float) -> list[SlotFill]:
        """Time has passed without frames (live: no signal). Decides every slot whose
        tolerance window closed before ``now_s``."""
        out: list[SlotFill] = []
        now_ns = to_ns(now_s)
        while (self._next < len(self.due)
               and self.due_ns[self._next] + self._tol_ns[self._next] < now_ns):
            out += self._decide(self._next, self._prev, None)
            self._next += 1
        return out

    def cutoff(self, t: float) -> list[SlotFill]:
        """Decides every slot due at or before ``t`` from the frames offered so far (the
        last one is the only candidate left for those not decided yet). Used where the frames
        up to ``t`` are all there will be for them: the arrival window's monitor frames."""
        out: list[SlotFill] = []
        t_ns = to_ns(t)
        while self._next < len(self.due) and self.due_ns[self._next] <= t_ns:
            out += self._decide(self._next, self._prev, None)
            self._next += 1
        return out

    def close(self) -> list[SlotFill]:
        """The recording ended (or the exam stopped). The last frame may still serve the
        next slot if within tolerance; later slots are missing."""
        out: list[SlotFill] = []
        if self._next < len(self.due) and self._prev is not None:
            i = self._next
            if abs(self._prev.pts_ns - self.due_ns[i]) <= self._tol_ns[i]:
                out += self._decide(i, self._prev, None)
                self._next += 1
        while self._next < len(self.due):
            i = self._next
            self.fills[i] = SlotFill(i, self.due[i], MISSING, due_ns=self.due_ns[i])
            out.append(self.fills[i])
            self._next += 1
        # empty slots that never got a neighbour (no frame at all): missing too
        for i in self._waiting_for_neighbour:
            self.fills[i] = SlotFill(i, self.due[i], MISSING, due_ns=self.due_ns[i])
            out.append(self.fills[i])
        self._waiting_for_neighbour = []
        return sorted(out, key=lambda f: f.index)

    # -- internals -----------------------------------------------------------------------
    def _decide(self, i: int, before: _Frame | None, after: _Frame | None) -> list[SlotFill]:
        s, s_ns, tol = self.due[i], self.due_ns[i], self._tol_ns[i]
        best: _Frame | None = None
        for cand in (before, after):  # ties go to the earlier frame (strict < below)
            if cand is not None and abs(cand.pts_ns - s_ns) <= tol:
                if best is None or abs(cand.pts_ns - s_ns) < abs(best.pts_ns - s_ns):
                    best = cand
        if best is not None:
            fill = SlotFill(i, s, FRAME, best.pts, to_s(best.pts_ns - s_ns), None, best.payload,
                            best.mono_ns, s_ns, best.pts_ns)
            self.fills[i] = fill
            out = [fill]
            # earlier empty slots waiting for a neighbour take this one
            for j in self._waiting_for_neighbour:
                self.fills[j] = SlotFill(j, self.due[j], NEIGHBOUR, from_slot=i,
                                         payload=best.payload, due_ns=self.due_ns[j])
                out.append(self.fills[j])
            self._waiting_for_neighbour = []
            return sorted(out, key=lambda f: f.index)
        # empty: the nearest filled slot before it, else wait for the next one
        for j in range(i - 1, -1, -1):
            f = self.fills[j]
            if f is not None and f.source == FRAME:
                self.fills[i] = SlotFill(i, s, NEIGHBOUR, from_slot=j, payload=f.payload,
                                         due_ns=s_ns)
                return [self.fills[i]]
        self._waiting_for_neighbour.append(i)
        return []


def nearest_brute_force(pts: Sequence[float], schedule: Schedule, t0: float) -> list[int | None]:
    """Reference for offline scoring: index of the nearest frame per slot within tolerance
    (ties to the earlier frame), None when no frame is within tolerance. Integer nanoseconds,
    like the sampler (the tests check both against their own rational arithmetic)."""
    out: list[int | None] = []
    p_ns = [to_ns(p) for p in pts]
    for s, tol in zip(schedule.times_ns(t0), schedule.tolerance_ns):
        best = None
        for k, p in enumerate(p_ns):
            d = abs(p - s)
            if d <= tol and (best is None or d < abs(p_ns[best] - s)):
                best = k
        out.append(best)
    return out
