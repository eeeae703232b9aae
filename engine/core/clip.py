"""The per-exam clip ring buffer: preallocated once, written slot by slot, read as the
model's input without copying the whole clip per slot."""

from __future__ import annotations

import numpy as np

from .modelmeta import ModelMeta


class ClipBuffer:
    def __init__(self, meta: ModelMeta):
        self.meta = meta
        n = meta.frames
        self.raw = np.zeros((n, meta.height, meta.width), np.uint8)
        self.present = np.zeros(n, bool)
        self._input = np.zeros(meta.input_shape(1), np.float32)
        self._scale = np.float32(meta.norm_scale / meta.norm_std)
        self._offset = np.float32(-meta.norm_mean / meta.norm_std)

    def put(self, index: int, image: np.ndarray) -> None:
        self.raw[index] = image
        self.present[index] = True
        np.multiply(image, self._scale, out=self._input[0, 0, index], casting="unsafe")
        self._input[0, 0, index] += self._offset

    def model_input(self) -> np.ndarray:
        """(1, 1, D, H, W) float32. Slots not yet filled repeat the latest filled slot before
        them (or the first filled slot), so a provisional score sees a plausible clip."""
        if self.present.all():
            return self._input
        idx = np.flatnonzero(self.present)
        if idx.size == 0:
            return self._input
        out = self._input.copy()
        last = idx[0]
        for i in range(self.meta.frames):
            if self.present[i]:
                last = i
            else:
                out[0, 0, i] = self._input[0, 0, last]
        return out

    def filled(self) -> int:
        return int(self.present.sum())

    def reset(self) -> None:
        self.raw[:] = 0
        self.present[:] = False
        self._input[:] = 0


def normalise(images: np.ndarray, meta: ModelMeta) -> np.ndarray:
    """(D, H, W) uint8 → (1, 1, D, H, W) float32, the same arithmetic as ``ClipBuffer``."""
    x = images.astype(np.float32) * np.float32(meta.norm_scale / meta.norm_std)
    x += np.float32(-meta.norm_mean / meta.norm_std)
    return x[None, None]
