"""Opening a live source's reader: the function a ``live.SourceRunner`` calls on every
(re-)open, for ``ceustream run`` and the Python API's ``Engine`` alike."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


def record_path(record: str | None, generation: int, name: str | None = None) -> Path | None:
    """The recording of pipeline ``generation`` (0: the file given; then FILE.1.mkv, ...);
    with several sources each has its own (FILE-NAME.mkv, FILE-NAME.1.mkv, ...)."""
    if not record:
        return None
    p = Path(record)
    if name:
        p = p.with_name(f"{p.stem}-{name}{p.suffix or '.mkv'}")
    return p if generation == 0 else p.with_name(f"{p.stem}.{generation}{p.suffix or '.mkv'}")


def reader_factory(source: str, branch: str | None, record: str | None,
                   name: str | None = None, workers: bool = True,
                   nice: int = 0) -> Callable[[int], Any]:
    """A function opening the live reader for ``source`` (called again on every re-open); a
    ``sim://`` source is the simulator's frame generator, which starts its exam again.
    ``workers`` (``live.workers``): each pipeline runs in a source worker process
    (``pipelines.worker``), else in the engine's own process."""
    from ceustream.pipelines.live import LiveReader
    from ceustream.pipelines.worker import WorkerReader

    sim = None
    if source.startswith("sim://"):
        from ceustream.models.simulator.scanner import SimScanner

        sim = SimScanner(source)
        log.info("simulated scanner: %s", json.dumps(sim.truth))

    def open_reader(generation: int):
        rec = record_path(record, generation, name)
        if workers:
            return WorkerReader(source, branch, record=rec, name=name or "main", nice=nice,
                                entry="ceustream.engine.app.sourceworker" if sim is not None
                                else "ceustream.pipelines.worker")
        return LiveReader(source, branch, generator=sim, record=rec)

    return open_reader
