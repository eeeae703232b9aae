"""Loading the model (its ONNX file and metadata) and a backend for it, once per process."""

from __future__ import annotations

import logging

from ceustream.engine import backends
from ceustream.engine.core import modelmeta

log = logging.getLogger(__name__)


def load_model_and_backend(model_path: str | None, backend: str, cfg: dict):
    """(LoadedModel, backend, one line saying why this backend) — warmed up."""
    path = model_path or cfg["model"]["path"] or str(modelmeta.shipped_model_path())
    model = modelmeta.read(path)
    be, note = backends.create(backend, model, threads=int(cfg["model"]["threads"]))
    be.warmup((1,))
    log.debug("model %s loaded from %s; backend %s (%s)", model.meta.name, path,
              be.describe()["name"], note)
    return model, be, note
