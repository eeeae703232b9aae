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

    def frame_time(k: int) -> float:  # as written (ns) and read back by the engine
        return round(k / fps * 1e9) / 1e9

    out = []
    for o in offsets:
        due = t0 + o
        k = int(np.floor(due * fps))
        a, b = frame_time(k), frame_time(k + 1)
        if a > due:
            a, b = frame_time(k - 1), a
        out.append(a if abs(a - due) <= abs(b - due) else b)
    return out


def simulate_clip(case: Case, *, size: tuple[int, int] = (64, 64), fps: float = 30.0,
                  injection_s: float = 5.0, layout: Layout = Layout(), offsets=PAPER_OFFSETS_S,
                  shift_s: float = 0.0, flip: bool = False,
                  times: list[float] | None = None) -> np.ndarray:
    """(frames, H, W) uint8: the luma ROI at each slot, resized to ``size``. ``times``
    overrides the frame times (recording time, seconds)."""
    scene = Scene(case, layout, injection_s)
    roi = scene.roi()
    times = times if times is not None else slot_times(scene, offsets, fps, shift_s)
    out = np.empty((len(times), size[0], size[1]), np.uint8)
    for i, t in enumerate(times):
        out[i] = resize(scene.render_luma(t, roi), size[0], size[1])
    if flip:
        out = out[:, :, ::-1].copy()
    return out
