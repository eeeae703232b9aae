"""Training clips taken by the engine itself from a user's recordings (``train --data`` with
a ``manifest.csv``): every recording (video, DICOM cine or image folder) through the real
pipeline, its 30 slots at the model's size, exactly what the engine would score.

The recordings are read in worker processes (``qa.run_processes``), never in the process
that trains: GStreamer brings libunwind into a process, and the C++ exception matplotlib's
``ft2font`` throws (and catches) on importlib's ``__path__`` probe could then no longer be
unwound: ``train --data`` aborted (exit 134, ``terminate called after throwing an instance
of 'pybind11::attribute_error'``) between ``report.json`` and ``model.onnx``. The training
process now holds only torch, onnx and matplotlib; the workers hold GStreamer.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ceustream.engine.core.errors import InputError
from ceustream.engine.core.manifest import MANIFEST, read_manifest

log = logging.getLogger(__name__)


def clips_from_recordings(folder: Path, cfg: dict, jobs: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(clips N x 30 x H x W uint8, labels, ids) from ``folder/manifest.csv``; every row must
    give a final clip (a bad row or a partial recording refuses the data, listing them)."""
    from .qa import default_jobs, run_processes, task_of

    manifest = folder / MANIFEST
    rows = read_manifest(manifest)
    cfg = dict(cfg, model=dict(cfg["model"], backend="onnxruntime"))
    tasks = [task_of(r) for r in rows]
    n = max(1, min(jobs or default_jobs(), len(tasks)))
    log.info("taking %d clip(s) through the engine on %d worker process(es)", len(tasks), n)
    got: dict[int, dict] = {}
    for k, res in enumerate(run_processes(tasks, cfg, n), 1):
        rec = res["record"]
        got[rec["row"]] = res
        state = "clip taken" if rec.get("final") else (rec.get("error") or
                                                        f"only {rec.get('slots_filled')} slots")
        log.info("[%d/%d] row %d %s: %s", k, len(tasks), rec["row"], rec["path"], state)
    errors = []
    for r in rows:
        rec = got[r.line]["record"]
        if rec.get("status") == "error":
            errors.append(f"row {r.line}: {rec['error']}")
        elif not rec.get("final"):
            errors.append(f"row {r.line}: only {rec.get('slots_filled')} slots "
                          f"({', '.join(rec.get('flags', []))})")
    if errors:
        shown = errors[:10] + ([f"... and {len(errors) - 10} more"] if len(errors) > 10 else [])
        raise InputError(f"{manifest}: {len(errors)} recording(s) give no full clip: "
                         + " | ".join(shown))
    clips = np.stack([got[r.line]["clip"] for r in rows])
    return clips, np.array([r.label for r in rows]), [r.path.name for r in rows]
