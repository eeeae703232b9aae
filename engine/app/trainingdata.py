"""Training clips taken by the engine itself from a user's recordings (``train --data`` with
a ``manifest.csv``): every recording through the real pipeline, its 30 slots at the model's
size, exactly what the engine would score."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ceustream.engine.core.errors import CeusError, InputError
from ceustream.engine.core.manifest import read_manifest

from .loading import load_model_and_backend
from .replay import ReplayOptions, replay
from .session import Event

log = logging.getLogger(__name__)


def clips_from_recordings(folder: Path, cfg: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rows = read_manifest(folder / "manifest.csv")
    loaded = load_model_and_backend(None, "onnxruntime", cfg)
    meta = loaded[0].meta
    clips, labels, ids = [], [], []
    for k, row in enumerate(rows, 1):
        taken: dict = {}

        def keep(ev: Event) -> None:
            if ev.kind == "finished":
                taken["clip"] = ev.session.clip.raw.copy()

        try:
            r = replay(row.path, ReplayOptions(roi=row.roi, t0=row.t0, injection=row.injection,
                                               journal=False), cfg, loaded=loaded,
                       subscribers=(keep,))
        except CeusError as e:
            raise InputError(f"{folder / 'manifest.csv'} row {row.line}: {e}") from None
        if not r["final"]:
            raise InputError(f"{folder / 'manifest.csv'} row {row.line}: only "
                             f"{r['slots_filled']}/{meta.frames} slots ({', '.join(r['flags'])})")
        clips.append(taken["clip"])
        labels.append(row.label)
        ids.append(row.path.name)
        log.info("[%d/%d] %s: clip taken", k, len(rows), row.path.name)
    return np.stack(clips), np.array(labels), ids
