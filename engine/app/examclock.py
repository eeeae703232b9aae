"""A live source's exam clock, pure: the stream times of its pipelines in, exam times out,
monotone by construction.

The exam clock is seconds since the first frame the engine received from the source, held in
whole microseconds. Each pipeline (a connection) has its own stream time, which may start
anywhere; exam = stream + ``offset_us``. The first pipeline's first frame is exam time 0; a
later pipeline's first frame is placed at the newest frame's exam time plus the wall-clock
time that passed in between (``rebase``). Within a pipeline a frame whose exam time is not
after the newest one's is skipped (a repeat, or a damaged stream's stray frame), except that
``TIMELINE_CONFIRM`` frames in a row more than ``JUMP_BACK_US`` back, each after the one
before, are a new timeline (a sender that restarted its clock): the clock is rebased there.
Every accepted frame is strictly after the one before; ``now_us`` never goes back.

No GStreamer, no threads: the runner (``live.SourceRunner``) feeds it under its lock, and the
property tests drive it through reconnects, timeline jumps and stalls.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

#: frames in a row with times far (> ``JUMP_BACK_US``) before the newest frame's that make a
#: new timeline (a sender that restarted its clock); fewer are skipped as damaged
TIMELINE_CONFIRM = 3
JUMP_BACK_US = 500_000


class ExamClock:
    """One source's exam clock across its pipelines (see the module's docstring)."""

    def __init__(self) -> None:
        #: exam = stream + offset_us for the open pipeline; None until its first frame
        self.offset_us: int | None = None
        #: stream time (µs) of the source's very first frame
        self.first_stream_us: int | None = None
        self.last_us: int | None = None        # exam time of the newest frame accepted
        self.last_mono_ns: int | None = None   # and when it left the decoder
        #: the newest frame at the gate, passed or not: (exam µs, CLOCK_MONOTONIC ns)
        self.seen: tuple[int, int] | None = None
        self._back: list[int] = []
        self._hi: int | None = None

    def new_pipeline(self) -> None:
        """A new connection: its stream time starts anywhere; placed at its first frame."""
        self.offset_us = None
        self._back = []

    def place(self, raw_us: int, mono_ns: int) -> tuple[int | None, str | None]:
        """A frame at stream time ``raw_us`` (µs) that left the decoder at ``mono_ns``:
        its exam time (None: skipped) and what it changed: ``"first"`` (the clock starts),
        ``"resumed"`` (a new pipeline's first frame), ``"timeline"`` (a confirmed jump back),
        or None."""
        event = None
        if self.offset_us is None:
            if self.last_us is None:
                self.offset_us = -raw_us
                self.first_stream_us = raw_us
                event = "first"
            else:
                self._rebase(raw_us, mono_ns)
                event = "resumed"
        us = raw_us + self.offset_us
        if self.last_us is not None and us <= self.last_us:
            if self.last_us - us > JUMP_BACK_US and self._new_timeline(raw_us):
                self._rebase(raw_us, mono_ns)
                us = raw_us + self.offset_us
                event = "timeline"
            else:
                return None, event
        self._back = []
        self.last_us, self.last_mono_ns = us, mono_ns
        return us, event

    def _new_timeline(self, raw_us: int) -> bool:
        if self._back and raw_us <= self._back[-1]:
            self._back = []
        self._back.append(raw_us)
        if len(self._back) < TIMELINE_CONFIRM:
            return False
        self._back = []
        log.debug("a new sender timeline from stream time %d us: the exam clock runs on", raw_us)
        return True

    def _rebase(self, raw_us: int, mono_ns: int) -> None:
        """Places ``raw_us`` at the newest frame's exam time plus the wall time since (at
        least 1 µs later)."""
        gap_us = max(1, (mono_ns - (self.last_mono_ns or mono_ns)) // 1000)
        self.offset_us = (self.last_us or 0) + gap_us - raw_us

    def exam_us(self, raw_us: int) -> int | None:
        """A stream time of the open pipeline on the exam clock (None before its first
        frame)."""
        return None if self.offset_us is None else raw_us + self.offset_us

    def observe_gate(self, raw_us: int, arrival_ns: int) -> None:
        """The newest frame at the gate (passed or not): the clock runs on from it while no
        frame comes."""
        us = self.exam_us(raw_us)
        if us is not None and (self.seen is None or us > self.seen[0]):
            self.seen = (us, arrival_ns)

    def now_us(self, mono_now_ns: int, silent: bool, gate_raw_us: int | None) -> int | None:
        """The exam clock now. ``silent``: no frame for a while (no signal): the newest frame
        seen plus the wall time since; else the newest frame at the gate (``gate_raw_us``,
        its stream time), never before the newest accepted. Never less than an earlier
        answer."""
        us = self._read(mono_now_ns, silent, gate_raw_us)
        if us is not None and (self._hi is None or us > self._hi):
            self._hi = us
        return self._hi

    def _read(self, mono_now_ns: int, silent: bool, gate_raw_us: int | None) -> int | None:
        newest = self.last_us
        if silent and newest is not None:
            base_us, base_ns = newest, self.last_mono_ns or 0
            if self.seen is not None and self.seen[0] > base_us:
                base_us, base_ns = self.seen
            return base_us + max(0, mono_now_ns - base_ns) // 1000
        if gate_raw_us is not None and self.offset_us is not None:
            return max(gate_raw_us + self.offset_us, newest or 0)
        return newest
