"""The per-exam clip ring buffer: preallocated once, written slot by slot; the model's input
is prepared from it by ``preprocess.prepare`` (the function training uses too)."""

from __future__ import annotations

import numpy as np

from .modelmeta import ModelMeta
from .preprocess import prepare


class ClipBuffer:
    def __init__(self, meta: ModelMeta):
        self.meta = meta
        n = meta.frames
        self.raw = np.zeros((n, meta.height, meta.width), np.uint8)
        self.present = np.zeros(n, bool)
        self._spec = meta.preprocessing_spec()

    def put(self, index: int, image: np.ndarray) -> None:
        self.raw[index] = image
        self.present[index] = True

    def model_input(self) -> np.ndarray:
        """(1, 1, D, H, W) float32. Slots not yet filled repeat the latest filled slot before
        them (or the first filled slot), so a provisional score sees a plausible clip."""
        m = self.meta
        x = prepare(self.raw, self.present, self._spec, m.norm_scale, m.norm_mean, m.norm_std)
        return x[None, None]

    def filled(self) -> int:
        return int(self.present.sum())

    def reset(self) -> None:
        self.raw[:] = 0
        self.present[:] = False


def normalise(images: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """(D, H, W) uint8 → (1, 1, D, H, W) float32, the same arithmetic as ``ClipBuffer``."""
    present = np.ones(len(images), bool)
    return prepare(images, present, meta.preprocessing_spec(), meta.norm_scale, meta.norm_mean,
                   meta.norm_std)[None, None]
