"""The model's input straight from the simulator: the ROI at the schedule's frames, resized
exactly as the engine resizes it, without writing a video (training at speed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ceustream.engine.core.modelmeta import PAPER_OFFSETS_S
from ceustream.engine.core.roi import resize

from .physiology import Case
from .scene import Layout, Scene


@dataclass(frozen=True)
class Acquisition:
    """How a recording of the exam differs from the simulator's own pixels. A scanner's
    spatial smoothing and a video codec soften the bubble speckle (H.264 at q23 takes its
    standard deviation from ~34 to ~28 grey levels, like a Gaussian blur of ~0.6 px), and t0
    found by detection is up to ~1 s off the truth. A model trained only on pristine clips
    keyed on speckle sharpness: through H.264 and the engine its scores fell by 0.08 on
    average (up to 0.25); trained on varied acquisitions, by 0.014 (measured on 30 recordings,
    models/weights/MODEL_CARD.md)."""

    blur_px: float = 0.0       # Gaussian sigma at the recording's resolution
    jpeg_quality: int = 0      # 0: none; else block-DCT loss at this quality
    t0_error_s: float = 0.0    # detected minus true contrast arrival

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Acquisition":
        return cls(blur_px=float(rng.uniform(0.0, 1.2)),
                   jpeg_quality=int(rng.integers(30, 91)) if rng.random() < 0.5 else 0,
                   t0_error_s=float(rng.uniform(-1.0, 1.0)))

    def apply(self, img: np.ndarray) -> np.ndarray:
        import cv2

        if self.blur_px > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), self.blur_px)
        if self.jpeg_quality:
            _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        return img


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


def varied_roi(scene: Scene, ratio: float, shift: tuple[float, float]) -> tuple[int, int, int, int]:
    """An operator's ROI of another habit: the lesion's diameter ``ratio`` of the box's side,
    the lesion moved off-centre by ``shift`` (fractions of the free margin, -1..1), the box
    kept inside the sector's bounding box."""
    cx, cy = scene.center
    diam = 2 * scene.radius_px
    side = max(8.0, diam / float(np.clip(ratio, 0.1, 1.0)))
    free = (side - diam) / 2
    bx0, by0, bw, bh = scene.layout.sector_box
    side = min(side, bw, bh)
    x = cx - side / 2 - shift[0] * free
    y = cy - side / 2 - shift[1] * free
    x = float(np.clip(x, bx0, bx0 + bw - side))
    y = float(np.clip(y, by0, by0 + bh - side))
    return int(x), int(y), int(side), int(side)


def simulate_clip(case: Case, *, size: tuple[int, int] = (64, 64), fps: float = 30.0,
                  injection_s: float = 5.0, layout: Layout = Layout(), offsets=PAPER_OFFSETS_S,
                  shift_s: float = 0.0, flip: bool = False,
                  times: list[float] | None = None,
                  acquisition: Acquisition | None = None, variation=None) -> np.ndarray:
    """(frames, H, W) uint8: the luma ROI at each slot, resized to ``size``. ``times``
    overrides the frame times (recording time, seconds); ``acquisition`` degrades the ROI as
    a recording would (default: the simulator's own pixels); ``variation``
    (``models.augment.Variation``) draws another operator's ROI, frame rate and t0 error."""
    scene = Scene(case, layout, injection_s)
    roi = scene.roi()
    if variation is not None:
        if variation.roi_ratio is not None:
            roi = varied_roi(scene, variation.roi_ratio, variation.roi_shift)
        fps = variation.fps or fps
        shift_s += variation.t0_error_s
    if times is None:
        err = acquisition.t0_error_s if acquisition else 0.0
        times = slot_times(scene, offsets, fps, shift_s + err)
    out = np.empty((len(times), size[0], size[1]), np.uint8)
    for i, t in enumerate(times):
        img = scene.render_luma(t, roi)
        if acquisition is not None:
            img = acquisition.apply(img)
        out[i] = resize(img, size[0], size[1])
    if flip:
        out = out[:, :, ::-1].copy()
    return out
