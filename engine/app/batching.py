"""One scorer shared by every exam of an engine: clips that arrive together are scored in
one backend call.

Many exam threads call ``infer(x)`` at once. The scorer looks like a backend (``infer``,
``describe``, ``warmup``, ``close``, ``name``, ``precision``), so ``ExamSession`` holds it
where it would hold the backend and needs no change.

How a batch forms (leader/follower, "group commit"):

- A caller that finds the backend idle becomes the leader and runs at once: **batch 1 when
  alone, no added wait**.
- Callers that arrive while a batch runs queue up; when it ends, the first of them leads
  the next batch and takes every queued clip (up to ``max_batch``) in one call.
- The leader waits up to ``window_s`` for more clips only when other exams are scoring
  (another thread called ``infer`` within the last ``busy_horizon_s``), and stops waiting as
  soon as every such thread has queued a clip or the batch is full.

Each caller gets its own rows back. A batch's result rows equal the single-clip results to
the last bit on ONNX Runtime CPU (tested in ``tests/test_batching.py``); TensorRT FP16 may
choose other kernels per batch size, so rows agree within the FP16 tolerance documented in
the README ("Many scanners"), |Δp| <= 2e-3.

A failing backend call fails every caller of that batch with the same error (each in its
own thread); a clip of the wrong shape is refused before it is queued and never touches
another exam's batch.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ceustream.engine.backends.plancache import PROFILE

log = logging.getLogger(__name__)

#: the TensorRT optimisation profile's maximum; ONNX Runtime's batch dimension is dynamic,
#: so there it bounds one call's memory (32 clips of 1x30x64x64 float32: 15.7 MB)
DEFAULT_MAX_BATCH = PROFILE[2]
DEFAULT_WINDOW_S = 0.002

#: (clips in the batch, seconds in the backend, seconds each caller waited for its batch)
BatchObserver = Callable[[int, float, list[float]], None]


@dataclass
class _Request:
    x: np.ndarray
    queued: float
    done: threading.Event = field(default_factory=threading.Event)
    result: np.ndarray | None = None
    error: BaseException | None = None
    #: a side output asked for with the score (``infer_side``), and its rows
    side: str | None = None
    side_result: np.ndarray | None = None


@dataclass
class BatchStats:
    """Counts since the scorer was made (for tests, metrics and benchmarks): backend calls,
    clips scored, the largest batch and how many batches of each size (in clips)."""

    calls: int = 0
    clips: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    def add(self, n: int) -> None:
        self.calls += 1
        self.clips += n
        self.largest = max(self.largest, n)
        self.sizes[n] = self.sizes.get(n, 0) + 1


class BatchingScorer:
    """A backend wrapper that stacks concurrent ``infer`` calls into one backend call."""

    def __init__(self, backend: Any, window_s: float = DEFAULT_WINDOW_S,
                 max_batch: int | None = None, busy_horizon_s: float = 1.0,
                 input_shape: tuple[int, ...] | None = None):
        if not (window_s >= 0 and np.isfinite(window_s)):
            raise ValueError(f"batch window must be a finite number >= 0, got {window_s}")
        self.backend = backend
        self.window_s = float(window_s)
        self.max_batch = int(max_batch or getattr(backend, "max_batch", 0) or DEFAULT_MAX_BATCH)
        if self.max_batch < 1:
            raise ValueError(f"max batch must be >= 1, got {self.max_batch}")
        self.busy_horizon_s = busy_horizon_s
        #: one clip's shape without the batch dimension; None = taken from the model, if known
        self.item_shape = tuple(input_shape[1:]) if input_shape else _item_shape(backend)
        self.stats = BatchStats()
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Request] = []
        self._busy = False
        self._callers: dict[int, float] = {}
        self._observers: list[BatchObserver] = []
        self._closed = False

    # -- the backend's face --------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def precision(self) -> str:
        return self.backend.precision

    @property
    def model(self) -> Any:
        return getattr(self.backend, "model", None)

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def warmup(self, batch_sizes: tuple[int, ...] = (1,)) -> None:
        """Warms the backend directly (before any exam uses the scorer)."""
        self.backend.warmup(batch_sizes)

    def close(self) -> None:
        """Refuses new clips and closes the backend once the batch in progress is done."""
        with self._cond:
            self._closed = True
            while self._busy or self._pending:
                self._cond.wait(0.1)
        self.backend.close()

    def observe(self, fn: BatchObserver) -> None:
        """Calls ``fn(batch size, seconds in the backend, per-caller queue waits)`` after every
        backend call (metrics); an observer that fails is logged, never fatal."""
        self._observers.append(fn)

    # -- scoring -------------------------------------------------------------------------
    def has_side(self, output: str) -> bool:
        """Whether the backend gives ``output`` with the score (``infer_side``)."""
        fn = getattr(self.backend, "has_side", None)
        return bool(fn and fn(output))

    def infer_side(self, x: np.ndarray, output: str) -> tuple[np.ndarray, np.ndarray]:
        """``infer`` and the backend's side output ``output`` for these rows (``has_side``):
        batched like ``infer``; a batch with any such request asks the backend for it."""
        req = self._submit(x, output)
        return req.result, req.side_result

    def infer(self, x: np.ndarray) -> np.ndarray:
        """(N, C, D, H, W) → (N,) P(positive), as the backend would answer, possibly computed
        in one call together with other exams' clips."""
        return self._submit(x, None).result

    def _submit(self, x: np.ndarray, side: str | None) -> _Request:
        x = self._check(x)
        req = _Request(x, time.monotonic(), side=side)
        with self._cond:
            if self._closed:
                raise RuntimeError("the scorer is closed (the model was replaced)")
            self._callers[threading.get_ident()] = req.queued
            self._pending.append(req)
            self._cond.notify_all()  # a leader waiting out its window counts this clip
        while True:
            with self._cond:
                while self._busy and not req.done.is_set():
                    self._cond.wait()
                if req.done.is_set():
                    self._answer(req)
                    return req
                batch = self._lead()
            self._run(batch)  # may be a batch without this clip when more than max are queued

    def _check(self, x: Any) -> np.ndarray:
        """Refuses a clip that could not be stacked with the others (shape, dtype, values)."""
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[0] < 1:
            raise ValueError(f"a clip batch needs at least one row, got shape {x.shape}")
        if self.item_shape is not None and tuple(x.shape[1:]) != self.item_shape:
            raise ValueError(f"clip shape {tuple(x.shape[1:])} does not match the model's "
                             f"{self.item_shape}")
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        return x

    def _lead(self) -> list[_Request]:
        """Under the lock: this caller leads the next batch. Waits up to the window while
        other exams are scoring and have not queued yet; returns the batch taken."""
        self._busy = True
        if self.window_s > 0:
            expected = min(self._active_callers(), self.max_batch)
            deadline = time.monotonic() + self.window_s
            while self._rows() < expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        batch, rows = [], 0
        while self._pending:
            n = self._pending[0].x.shape[0]
            if batch and rows + n > self.max_batch:
                break
            batch.append(self._pending.pop(0))
            rows += n
        return batch

    def _active_callers(self) -> int:
        """Threads that called ``infer`` within the busy horizon (stale ones forgotten)."""
        cut = time.monotonic() - self.busy_horizon_s
        for k in [k for k, t in self._callers.items() if t < cut]:
            del self._callers[k]
        return len(self._callers)

    def _rows(self) -> int:
        return sum(r.x.shape[0] for r in self._pending)

    def _run(self, batch: list[_Request]) -> None:
        """Outside the lock: one backend call for the whole batch; rows go back to their
        callers; then the next leader may start."""
        started = time.monotonic()
        rows = sum(r.x.shape[0] for r in batch)
        try:
            xs = batch[0].x if len(batch) == 1 else np.concatenate([r.x for r in batch])
            side = next((r.side for r in batch if r.side is not None), None)
            extra = None
            if side is not None:
                out, extra = self.backend.infer_side(xs, side)
                extra = np.asarray(extra)
            else:
                out = self.backend.infer(xs)
            out = np.asarray(out)
            if out.shape[:1] != (xs.shape[0],) or \
                    (extra is not None and extra.shape[:1] != (xs.shape[0],)):
                raise RuntimeError(f"the backend answered {out.shape[:1]} rows for "
                                   f"{xs.shape[0]} clips")
            i = 0
            for r in batch:
                n = r.x.shape[0]
                r.result = out[i:i + n].copy()
                if r.side is not None and r.side == side and extra is not None:
                    r.side_result = extra[i:i + n].copy()
                i += n
        except BaseException as e:  # every caller of this batch sees the failure
            for r in batch:
                r.error = e
        spent = time.monotonic() - started
        with self._cond:
            self.stats.add(rows)
            self._busy = False
            for r in batch:
                r.done.set()
            self._cond.notify_all()
        waits = [started - r.queued for r in batch]
        for fn in list(self._observers):
            try:
                fn(rows, spent, waits)
            except Exception:
                log.exception("a batch observer failed")

    @staticmethod
    def _answer(req: _Request) -> np.ndarray:
        if req.error is not None:
            raise req.error
        assert req.result is not None
        return req.result


def _item_shape(backend: Any) -> tuple[int, ...] | None:
    model = getattr(backend, "model", None)
    meta = getattr(model, "meta", None)
    if meta is None:
        return None
    return tuple(meta.input_shape(1)[1:])
