"""The model's input straight from the simulator: the ROI at the schedule's frames, resized
exactly as the engine resizes it, without writing a video (training at speed)."""

from __future__ import annotations

import numpy as np

from ceustream.engine.modelmeta import PAPER_OFFSETS_S
from ceustream.engine.roi import resize

from .physiology import Case
from .scene import Layout, Scene


def slot_times(scene: Scene, offsets=PAPER_OFFSETS_S, fps: float = 30.0,
               shift_s: float = 0.0) -> list[float]:
    """Recording times of the frames the engine would pick: the frame nearest each slot on
    the recording's frame grid (ties to the earlier frame, as the sampler does)."""
    t0 = scene.injection_s + scene.case.lesion_arrival + shift_s
    out = []
    for o in offsets:
        k = (t0 + o) * fps
        kf = np.floor(k)
        out.append(float((kf if k - kf <= 0.5 else kf + 1) / fps))
    return out


def simulate_clip(case: Case, *, size: tuple[int, int] = (64, 64), fps: float = 30.0,
                  injection_s: float = 5.0, layout: Layout = Layout(), offsets=PAPER_OFFSETS_S,
                  shift_s: float = 0.0, flip: bool = False) -> np.ndarray:
    """(frames, H, W) uint8: the luma ROI at each slot, resized to ``size``."""
    scene = Scene(case, layout, injection_s)
    roi = scene.roi()
    out = np.empty((len(offsets), size[0], size[1]), np.uint8)
    for i, t in enumerate(slot_times(scene, offsets, fps, shift_s)):
        out[i] = resize(scene.render_luma(t, roi), size[0], size[1])
    if flip:
        out = out[:, :, ::-1].copy()
    return out
