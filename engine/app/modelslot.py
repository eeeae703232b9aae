"""The engine's model: one slot holding (model, scorer), replaced by ``reload`` between
exams, never under one.

An exam takes a *lease* on the slot when it starts (``lease()``) and keeps that model and
backend until it ends, whatever is reloaded meanwhile: a score is never computed half by
one model and half by another. ``reload(path)`` reads the new ONNX file's metadata, loads it
in the configured backend, warms it up and checks that it answers a probability; only then
is it swapped in, for exams that start after it. A bad file is refused with one line (the
file and what is wrong with it) and the old model stays. A replaced model's backend is
closed when its last exam releases it.

Every generation has its own ``BatchingScorer``, so a batch never mixes two models.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ceustream.engine import backends
from ceustream.engine.core import modelmeta
from ceustream.engine.core.errors import BackendUnavailable, CeusError, ModelError
from ceustream.engine.core.modelmeta import LoadedModel

from .batching import BatchingScorer

log = logging.getLogger(__name__)

#: builds (backend, note) for a model: ``backends.create`` with the engine's choice
BackendFactory = Callable[[LoadedModel], tuple[Any, str]]


@dataclass
class Generation:
    """One loaded model and its scorer; ``users`` exams hold it."""

    number: int
    model: LoadedModel
    scorer: BatchingScorer
    note: str
    users: int = 0
    retired: bool = False
    closed: bool = False

    def describe(self) -> dict[str, Any]:
        return {"generation": self.number, **self.model.describe(),
                "path": str(self.model.path), "backend": self.scorer.describe(),
                "exams": self.users}


@dataclass
class Lease:
    """What one exam scores with, from its start to its end. ``backend`` is the shared
    batching scorer (it looks like a backend, so ``ExamSession`` takes it as one)."""

    slot: "ModelSlot"
    generation: Generation
    released: bool = field(default=False)

    @property
    def model(self) -> LoadedModel:
        return self.generation.model

    @property
    def backend(self) -> BatchingScorer:
        return self.generation.scorer

    @property
    def note(self) -> str:
        return self.generation.note

    def release(self) -> None:
        """The exam ended; idempotent."""
        if not self.released:
            self.released = True
            self.slot._release(self.generation)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def scorer_for(backend: Any, cfg: dict) -> BatchingScorer:
    """The batching scorer the config asks for (``[engine] batch_window_ms``, ``max_batch``)."""
    e = cfg["engine"]
    return BatchingScorer(backend, window_s=float(e["batch_window_ms"]) / 1000.0,
                          max_batch=int(e["max_batch"]))


def backend_factory(name: str, cfg: dict) -> BackendFactory:
    """``backends.create`` with the engine's backend choice and thread count."""
    threads = int(cfg["model"]["threads"])
    return lambda model: backends.create(name, model, threads=threads)


def check_model_file(path: Any, max_bytes: int) -> None:
    """Refuses (``ModelError``, one line) anything but a regular file of at most ``max_bytes``
    (``engine.max_model_mb``), before a byte of it is read: a device (``/dev/zero``), a FIFO,
    a folder or a huge file never reaches the ONNX reader."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelError(f"reload_model: model {path}: file not found") from None
    except OSError as e:
        raise ModelError(f"reload_model: model {path}: {e.strerror or 'cannot be read'}") \
            from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"reload_model: model {path}: not a regular file")
    if st.st_size > max_bytes:
        raise ModelError(f"reload_model: model {path}: {st.st_size / 1e6:.1f} MB, more than "
                         f"engine.max_model_mb ({max_bytes / 1e6:g} MB)")


class ModelSlot:
    """The engine's current model; see the module's docstring."""

    def __init__(self, model: LoadedModel, backend: Any, note: str, cfg: dict,
                 factory: BackendFactory | None = None):
        self.cfg = cfg
        self.factory = factory
        self._lock = threading.Lock()
        self._reloading = threading.Lock()
        self._current = Generation(1, model, scorer_for(backend, cfg), note)
        self.reloads = 0
        self.refused = 0
        self._observers: list[Callable[[BatchingScorer], None]] = []

    @classmethod
    def open(cls, model: LoadedModel, backend_name: str, cfg: dict, backend: Any = None,
             note: str = "") -> "ModelSlot":
        """A slot for an already loaded (and warmed up) model; ``reload`` will build new
        backends of the same kind (``backend_name``, e.g. ``auto``)."""
        factory = backend_factory(backend_name, cfg)
        if backend is None:
            backend, note = factory(model)
            backend.warmup((1,))
        return cls(model, backend, note, cfg, factory)

    # -- exams ---------------------------------------------------------------------------
    def lease(self) -> Lease:
        """The model and scorer for an exam that starts now; release it when it ends."""
        with self._lock:
            g = self._current
            g.users += 1
        return Lease(self, g)

    def _release(self, g: Generation) -> None:
        with self._lock:
            g.users -= 1
            close = g.retired and g.users == 0
        if close:
            self._close(g)

    @property
    def current(self) -> Generation:
        return self._current

    def on_new_scorer(self, fn: Callable[[BatchingScorer], None]) -> None:
        """Calls ``fn(scorer)`` now and for every model swapped in (metrics observe batches)."""
        self._observers.append(fn)
        fn(self._current.scorer)

    # -- reload --------------------------------------------------------------------------
    def reload(self, path: Any) -> dict[str, Any]:
        """Validates, loads and warms up the model at ``path``, then serves it to exams that
        start from now on. Raises ``ModelError`` / ``BackendUnavailable`` (one line) and
        keeps the old model when the file cannot be served."""
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise ModelError("reload_model: 'path' must name an ONNX file")
        try:
            check_model_file(path, int(float(self.cfg["engine"]["max_model_mb"]) * 1e6))
        except ModelError:
            self.refused += 1
            raise
        if not self._reloading.acquire(blocking=False):
            raise ModelError("reload_model: another reload is in progress")
        try:
            try:
                model, backend, note = self._load(Path(path))
            except CeusError:
                self.refused += 1
                raise
            with self._lock:
                old = self._current
                new = Generation(old.number + 1, model, scorer_for(backend, self.cfg), note)
                self._current = new
                old.retired = True
                close_old = old.users == 0
            self.reloads += 1
            for fn in list(self._observers):
                try:
                    fn(new.scorer)
                except Exception:
                    log.exception("a new-scorer observer failed")
            if close_old:
                self._close(old)
            log.info("model %s (%s) now serves new exams; %s kept for %d running exam(s)",
                     model.meta.name, model.sha256[:12], old.model.meta.name, old.users)
            return {"model": new.describe(), "replaced": old.model.describe(),
                    "running_exams_keep_old": old.users}
        finally:
            self._reloading.release()

    def _load(self, path: Path) -> tuple[LoadedModel, Any, str]:
        """The checks, in the order a bad file fails them: metadata, backend load, warm-up,
        a probability in [0, 1] for a blank clip."""
        if self.factory is None:
            raise ModelError("reload_model: this engine was started without a backend "
                             "factory; it cannot load another model")
        model = modelmeta.read(path)  # ModelError: missing, not ONNX, no/bad metadata
        try:
            backend, note = self.factory(model)
        except CeusError:
            raise
        except Exception as e:  # a backend's own exception type: still one line
            raise ModelError(f"model {path}: the backend cannot load it ({_line(e)})") from None
        try:
            backend.warmup((1,))
            p = np.asarray(backend.infer(np.zeros(model.meta.input_shape(1), np.float32)))
            if p.shape != (1,) or not np.all(np.isfinite(p)) or not 0.0 <= float(p[0]) <= 1.0:
                raise ValueError(f"a blank clip scored {p.tolist()}, not one probability")
        except Exception as e:
            _quiet_close(backend)
            if isinstance(e, (ModelError, BackendUnavailable)):
                raise
            raise ModelError(f"model {path}: it loads but does not score ({_line(e)})") from None
        return model, backend, note

    # -- the end -------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {**self._current.describe(), "reloads": self.reloads,
                    "reloads_refused": self.refused}

    def close(self) -> None:
        """Closes the current model's backend (the engine is stopping)."""
        with self._lock:
            g = self._current
            g.retired = True
        self._close(g)

    def _close(self, g: Generation) -> None:
        """Closes a generation's scorer and backend, once."""
        with self._lock:
            if g.closed:
                return
            g.closed = True
        log.debug("closing model generation %d (%s)", g.number, g.model.meta.name)
        _quiet_close(g.scorer)


def _quiet_close(backend: Any) -> None:
    try:
        backend.close()
    except Exception:
        log.exception("closing a backend failed")


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
