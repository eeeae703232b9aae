"""Renderer B's frames and clips: the recording's frame grid, the paper's schedule,
rendering of any screen rectangle (the whole CEUS view or just the ROI), full screens
and the 30-slot training clip.

Any rectangle renders to the same bytes as the same pixels of the full screen: the
tissue maps are pure functions of tissue coordinates, the noise is counter-based, and
depth tables have one length per exam (see noise.py and image.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from .exam import Exam
from .image import (LEVELS, DepthTables, Speckle, colour_lut, depth_tables, luma_lut, sparkles,
                    tissue_maps, to_levels)
from .screen import draw_static, draw_timer

log = logging.getLogger(__name__)

#: the paper's schedule (section 1.1.6): seconds after t0
SLOT_OFFSETS_S = tuple(float(s) for s in range(0, 50, 2)) + (60.0, 90.0, 120.0, 150.0, 180.0)
#: curves whose maps carry contrast
CURVES = ("parenchyma", "core", "rim", "portal_vein", "hepatic_vein")
#: a parenchymal bubble load at which half of the cells that may sparkle do
SPARKLE_HALF = 0.3


def frame_time(exam: Exam, k: int) -> float:
    """Timestamp of frame ``k`` (seconds from the first frame): k / fps."""
    return k / exam.fps


def nearest_frame(exam: Exam, t_s: float) -> int:
    """Index of the frame whose timestamp is nearest ``t_s`` (ties to the earlier frame),
    within the recording."""
    k = math.ceil(t_s * exam.fps - 0.5)
    lo, hi = k - 1, k + 1  # guard the float product: check the neighbours exactly
    best = min(range(lo, hi + 1), key=lambda j: (abs(frame_time(exam, j) - t_s), j))
    return int(min(max(best, 0), exam.frame_count - 1))


def slot_times(exam: Exam, t0_error_s: float = 0.0) -> list[float]:
    """The 30 slot times (seconds from the first frame) for t0 = exam.t0_s + error."""
    t0 = exam.t0_s + t0_error_s
    return [t0 + s for s in SLOT_OFFSETS_S]


def slot_frames(exam: Exam, t0_error_s: float = 0.0) -> list[int]:
    """The frame the engine takes for each slot: the nearest on the k / fps grid."""
    return [nearest_frame(exam, t) for t in slot_times(exam, t0_error_s)]


@lru_cache(maxsize=16)
def exam_tables(exam: Exam) -> tuple[DepthTables, np.ndarray, np.ndarray, np.ndarray]:
    """Per-exam tables: depth tables (one fixed length per exam), the CEUS colour table,
    its BT.601 luma and the B-mode grey table."""
    panel = exam.layout.ceus
    n = int(math.ceil(panel.r1 + panel.h + 8))
    rgb = colour_lut(exam.display.colormap, exam.display.gamma)
    return (depth_tables(exam.display, exam.layout.px_per_mm, n), rgb, luma_lut(rgb),
            colour_lut("grey", 1.0))


@dataclass
class Region:
    """A screen rectangle of one view, with its tissue maps cached over the tissue it
    can show at the given times (the rectangle grown by the motion at those times)."""

    x: int
    y: int
    w: int
    h: int
    tx0: int
    ty0: int
    maps: dict
    screen: dict
    speckle: Speckle
    active: tuple[str, ...]


def region(exam: Exam, x: int, y: int, w: int, h: int, times, view: str = "ceus") -> Region:
    """Prepare rendering of the screen rectangle (x, y, w, h) of ``view`` ('ceus' or
    'bmode') at ``times``. Tissue coordinates are the CEUS view's screen coordinates at
    rest; the B-mode view shows the same tissue, moved left."""
    panel = exam.layout.ceus if view == "ceus" else exam.layout.bmode
    ox = exam.layout.ceus.x - panel.x
    dx, dy = exam.motion.shift(np.asarray(times, dtype=np.float64))
    tx0 = x + ox - int(dx.max())
    ty0 = y - int(dy.max())
    txs = np.arange(tx0, x + ox + w - int(dx.min()))
    tys = np.arange(ty0, y + h - int(dy.min()))
    maps = tissue_maps(exam.lesion, exam.vessels, exam.tissue, exam.display, txs, tys)
    tables = exam_tables(exam)[0]
    depth = panel.depth(np.arange(x, x + w), np.arange(y, y + h))
    idx = np.clip(np.floor(depth), 0, len(tables.liver) - 1).astype(np.int64)
    screen = {name: np.ascontiguousarray(getattr(tables, name)[idx]) for name in
              ("ceus_offset", "ceus_shadow", "leak_base", "leak_load", "liver", "wall_echo",
               "bmode_offset")}
    d = exam.display
    spk = Speckle(d.keys[0:3], d.grain_x_px, d.grain_y_px, d.components, d.static_corr, d.corr_frames,
                  txs, tys)
    active = tuple(name for name in CURVES if maps[name].any())  # adding v * 0 changes nothing
    return Region(x + ox, y, w, h, tx0, ty0, maps, screen, spk, active)


def tissue_view(reg: Region, name: str, dx: int, dy: int) -> np.ndarray:
    """The part of a cached tissue map seen by the rectangle when tissue is moved by
    (dx, dy)."""
    r0, c0 = reg.y - dy - reg.ty0, reg.x - dx - reg.tx0
    return reg.maps[name][r0:r0 + reg.h, c0:c0 + reg.w]


def tissue_signal(reg: Region, dx: int, dy: int) -> np.ndarray:
    """Linear tissue backscatter (speckled): the liver's echo below the wall, the wall
    layers above it."""
    t = tissue_view(reg, "echo", dx, dy) * reg.screen["liver"]
    t += reg.screen["wall_echo"]
    t *= tissue_view(reg, "tissue_speckle", dx, dy)
    return t


def ceus_levels(exam: Exam, reg: Region, t_s: float) -> np.ndarray:
    """Display levels (int16) of the CEUS view over a region at time ``t_s``."""
    d = exam.display
    frame = int(round(t_s * exam.fps))
    sx, sy = exam.motion.shift(t_s)
    dx, dy = int(sx), int(sy)
    curves = exam.physiology.curves(t_s - exam.injection_s)
    conc = np.zeros((reg.h, reg.w), dtype=np.float32)
    for name in reg.active:
        v = float(curves[name])
        if v > 0.0:
            conc += np.float32(v) * tissue_view(reg, name, dx, dy)
    conc *= reg.screen["liver"]
    txs = np.arange(reg.x - dx, reg.x - dx + reg.w)
    tys = np.arange(reg.y - dy, reg.y - dy + reg.h)
    spk = reg.speckle.at(txs, tys, frame)
    if d.sparkle_rate > 0.0 and any(float(v) > 0.0 for v in curves.values()):
        u = sparkles(d.keys[3], txs, tys, frame, d.sparkle_px)
        hit = u * (conc + np.float32(SPARKLE_HALF)) < np.float32(d.sparkle_rate) * conc
        spk[hit] *= np.float32(d.sparkle_gain)
    intensity = conc + np.float32(10.0 ** (d.noise_floor_db / 10.0))
    intensity *= spk
    load = float(curves["parenchyma"])
    leak = reg.screen["leak_base"] + np.float32(load) * reg.screen["leak_load"]
    leak *= tissue_signal(reg, dx, dy)
    intensity += leak
    offset = reg.screen["ceus_offset"] - np.float32(load) * reg.screen["ceus_shadow"]
    return to_levels(intensity, offset, d.dynamic_range_db)


def bmode_levels(exam: Exam, reg: Region, t_s: float) -> np.ndarray:
    """Display levels (int16) of the B-mode view over a region at time ``t_s``."""
    sx, sy = exam.motion.shift(t_s)
    intensity = tissue_signal(reg, int(sx), int(sy))
    return to_levels(intensity, reg.screen["bmode_offset"], exam.display.bmode_dynamic_range_db)


def with_background(lut: np.ndarray, background) -> np.ndarray:
    """A colour table with one extra row, the screen background, for pixels outside an
    image area (image-area bounding boxes hold no overlays, so this is exact)."""
    return np.concatenate([lut, np.array([background], dtype=np.uint8)], axis=0)


class Screen:
    """Full-screen renderer of one exam: the static screen (background, overlays) once,
    then the views and the timer per frame. ``times`` bounds the motion it caches for."""

    def __init__(self, exam: Exam, times) -> None:
        self.exam = exam
        lay = exam.layout
        _, self.rgb, _, self.grey = exam_tables(exam)
        self.base = np.empty((lay.height, lay.width, 3), dtype=np.uint8)
        self.base[:] = np.array(lay.background, dtype=np.uint8)
        draw_static(self.base, lay, self.rgb)
        self.rgb_ext = with_background(self.rgb, lay.background)
        self.grey_ext = with_background(self.grey, lay.background)
        self.ceus, self.ceus_outside = self.view(lay.ceus, times, "ceus")
        self.bmode = self.bmode_outside = None
        if lay.bmode is not None:
            self.bmode, self.bmode_outside = self.view(lay.bmode, times, "bmode")

    def view(self, panel, times, name: str) -> tuple[Region, np.ndarray]:
        """The region of a view's bounding box (clipped to the screen) and the mask of
        its pixels outside the image area."""
        lay = self.exam.layout
        w, h = min(panel.w, lay.width - panel.x), min(panel.h, lay.height - panel.y)
        reg = region(self.exam, panel.x, panel.y, w, h, times, name)
        return reg, ~panel.mask(np.arange(panel.x, panel.x + w), np.arange(panel.y, panel.y + h))

    def frame(self, t_s: float) -> np.ndarray:
        """The RGB uint8 screen (H, W, 3) at ``t_s`` seconds from the first frame."""
        exam, lay = self.exam, self.exam.layout
        out = self.base.copy()
        c = lay.ceus
        lev = ceus_levels(exam, self.ceus, t_s)
        lev[self.ceus_outside] = LEVELS  # the extra row: background
        out[c.y:c.y + self.ceus.h, c.x:c.x + self.ceus.w] = self.rgb_ext[lev]
        if self.bmode is not None:
            b = lay.bmode
            lev = bmode_levels(exam, self.bmode, t_s)
            lev[self.bmode_outside] = LEVELS
            out[b.y:b.y + self.bmode.h, b.x:b.x + self.bmode.w] = self.grey_ext[lev]
        draw_timer(out, lay, t_s, exam.injection_s)
        return out


def render_frame(exam: Exam, t_s: float) -> np.ndarray:
    """The full scanner screen, RGB uint8 (H, W, 3), at ``t_s`` seconds from the first
    frame (before the injection and the lesion's arrival the contrast view is dark)."""
    if not math.isfinite(t_s):
        raise ValueError(f"t_s must be finite, not {t_s!r}")
    return Screen(exam, [t_s]).frame(t_s)


def resize_slot(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The engine's resize to the model's (width, height): area averaging, or bilinear
    when the ROI is smaller than the model input."""
    w, h = size
    if img.shape == (h, w):
        return img.copy()
    interp = cv2.INTER_AREA if img.shape[0] >= h and img.shape[1] >= w else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def render_clip(exam: Exam, t0_error_s: float = 0.0, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """The 30-slot training clip, uint8 (30, height, width) for ``size`` = (width,
    height): for each slot at t0 + offset (t0 = exam.t0_s + t0_error_s) the recording's
    nearest frame, its ROI in BT.601 luma, resized as the engine does. Only the ROI is
    rendered; it equals the crop of render_frame at that frame's time."""
    if not math.isfinite(t0_error_s):
        raise ValueError(f"t0_error_s must be finite, not {t0_error_s!r}")
    times = [frame_time(exam, k) for k in slot_frames(exam, t0_error_s)]
    x, y, w, h = exam.roi
    reg = region(exam, x, y, w, h, times, "ceus")
    luma = exam_tables(exam)[2]
    out = np.empty((len(times), size[1], size[0]), dtype=np.uint8)
    for i, t in enumerate(times):
        out[i] = resize_slot(luma[ceus_levels(exam, reg, t)], size)
    return out
