"""The supervisor room of a live source: its pipeline generations (a source worker process,
or a pipeline in the engine's process), opened, closed and re-opened with backoff.

It knows nothing of exams, clocks or frames: the source's runner (``live.SourceRunner``)
asks it for a reader, tells it when the reader failed, ended or stalled, and reads its state
(``opening``, ``playing``, ``reconnecting``, ``ended``), reconnects, last error and how the
last worker process ended. The backoff: 0.5 s after a pipeline that delivered frames, then
doubling while attempts fail, at most every ``live.reopen_max_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from ceustream.engine.core.errors import CeusError
from ceustream.engine.core.source import Frame
from ceustream.pipelines.source import redact

log = logging.getLogger(__name__)


class Reader(Protocol):
    """One pipeline generation as the live engine drives it (``pipelines.live.LiveReader``,
    ``pipelines.worker.WorkerReader``)."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def pull(self, timeout_s: float = 0.25) -> Frame | None: ...

    def set_slots(self, times_s: list[float]) -> None: ...

    def set_pass_all(self, on: bool) -> None: ...

    def set_frozen_after(self, frames: int) -> None: ...

    def counters(self) -> tuple[int, int]: ...

    def frames_seen(self) -> int: ...

    def arrival_ns(self) -> int: ...

    def stream_ns(self) -> int | None: ...

    def nominal_fps(self) -> float | None: ...

    def frozen(self) -> bool: ...

    def frame_size(self) -> tuple[int, int] | None: ...


@dataclass
class Backoff:
    """Delays between attempts: ``min_s`` after a pipeline that delivered frames, doubling
    while attempts fail, at most ``max_s``. Pure (no clock)."""

    min_s: float
    max_s: float
    next_s: float = 0.0

    def __post_init__(self) -> None:
        self.next_s = self.min_s

    def delay(self, got_frames: bool) -> float:
        """The wait before the next attempt; the one after it doubles."""
        if got_frames:
            self.next_s = self.min_s
        d = self.next_s
        self.next_s = min(d * 2, self.max_s)
        return d


def stall_reason(waited_s: float, has_clock: bool, since_frame_s: float | None,
                 open_timeout_s: float, reopen_after_s: float) -> str | None:
    """Why a pipeline is given up (None: it is not): no first frame within
    ``open_timeout_s`` of opening (``waited_s``), or none for ``reopen_after_s`` since."""
    if not has_clock:
        return f"no frame within {open_timeout_s:g} s of opening" \
            if waited_s > open_timeout_s else None
    if since_frame_s is not None and since_frame_s > reopen_after_s:
        return f"no frame for {reopen_after_s:g} s"
    return None


class Supervisor:
    """A source's pipeline lifecycle. Its fields are written by the source's thread only and
    read by any (single assignments)."""

    def __init__(self, name: str, uri: str, open_reader: Callable[[int], Reader],
                 settings: dict[str, float], reopen: bool = True):
        self.name = name
        self.uri = uri
        self.open_reader = open_reader
        self.reopen = reopen
        self.settings = settings
        self.reader: Reader | None = None
        self.generation = 0
        self.reconnects = 0
        self.state = "opening"
        self.last_error: str | None = None
        #: how the last source worker process ended (``signal SIGSEGV``, ``exit code 0``,
        #: ``hung (5.0 s silent), killed``)
        self.worker_exit: str | None = None
        self.ended = threading.Event()   # the source is gone for good (a file that ended)
        self.opened_ns = 0
        self._backoff = Backoff(settings["reopen_min_s"], settings["reopen_max_s"])
        self._retry_at = 0.0

    def wait_s(self) -> float | None:
        """Seconds until the next attempt may open the source (<= 0: now); None when it has
        ended for good."""
        if self.ended.is_set():
            return None
        return self._retry_at - time.monotonic()

    def open(self) -> Reader | None:
        """Opens the next generation (its gate passing every frame until the exam clock is
        set); None when it failed (logged once per error; retried with the backoff, or the
        source has ended when it does not re-open)."""
        try:
            r = self.open_reader(self.generation)
            r.set_pass_all(True)
            r.open()
        except CeusError as e:
            text = redact(str(e))
            self.state = "reconnecting"
            if not self.reopen:
                log.error("source %s: cannot open (%s)", self.name, text)
                return None
            delay = self._schedule(False)
            if self.last_error != text:
                log.warning("source %s: cannot open (%s); retrying in %.1f s", self.name,
                            text, delay)
            self.last_error = text
            return None
        log.info("source %s: pipeline %d opened", self.name, self.generation + 1)
        return r

    def install(self, r: Reader) -> None:
        """``r`` (from ``open``) is the source's pipeline now (the caller resets what
        depends on it in the same step)."""
        self.reader = r
        self.generation += 1
        self.state = "opening"
        self.opened_ns = time.monotonic_ns()

    def playing(self) -> None:
        """A frame came through the open pipeline."""
        self.state = "playing"

    def take(self, lost: bool = False) -> Reader | None:
        """Takes the open reader out (to be closed by the caller); ``lost``: it failed,
        ended or stalled (the source is reconnecting, or has ended)."""
        r, self.reader = self.reader, None
        if lost:
            self.state = "reconnecting" if self.reopen else "ended"
        return r

    def closed(self, r: Reader | None, why: str, got_frames: bool) -> bool:
        """The reader ``r`` (taken out) failed, ended or stalled and was closed: records how
        its worker ended and schedules the next attempt. False when the source does not
        re-open (it has ended)."""
        exit_text = getattr(r, "exit", None)  # a source worker: how its process ended
        if exit_text is not None:
            self.worker_exit = exit_text
        text = redact(why)
        if exit_text is not None and exit_text.startswith("hung") and exit_text not in text:
            text = f"{text}: the source worker stopped answering ({exit_text})"
        if not self.reopen:
            log.warning("source %s: %s; the source has ended", self.name, text)
            return False
        delay = self._schedule(got_frames)
        if got_frames or text != self.last_error:  # a failing source is not logged each try
            log.warning("source %s: %s%s; re-opening in %.1f s", self.name, text,
                        f" (worker: {exit_text})" if exit_text and exit_text not in text
                        else "", delay)
        self.last_error = text
        self.reconnects += 1
        return True

    def stalled(self, has_clock: bool, since_frame_s: float | None) -> str | None:
        """Why the open pipeline is given up now (None: it is not). A source worker's
        time counts from when its pipeline started (its own start limit applies before)."""
        opened = self.opened_ns
        ready = getattr(self.reader, "ready_ns", None)
        if ready is not None:
            if not ready:
                return None
            opened = max(opened, ready)
        st = self.settings
        return stall_reason((time.monotonic_ns() - opened) / 1e9, has_clock, since_frame_s,
                            st["open_timeout_s"], st["reopen_after_s"])

    def worker_pid(self) -> int | None:
        return getattr(self.reader, "pid", None)

    def _schedule(self, got_frames: bool) -> float:
        delay = self._backoff.delay(got_frames)
        self._retry_at = time.monotonic() + delay
        return delay
