"""The operator's ROI and the per-slot preprocessing (crop, luma, resize, normalise).

One function turns a decoded luma frame into the model's slot image, used live, in replay,
offline and by the simulator, so the same frame always gives the same input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError, UsageError

MIN_ROI = 8


@dataclass(frozen=True)
class Roi:
    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> "Roi":
        parts = [p.strip() for p in str(text).split(",")]
        if len(parts) != 4:
            raise UsageError(f"--roi '{text}': expected X,Y,W,H (four integers)")
        try:
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise UsageError(f"--roi '{text}': X,Y,W,H must be integers") from None
        if w <= 0 or h <= 0:
            raise UsageError(f"--roi '{text}': the ROI is empty (width and height must be > 0)")
        if x < 0 or y < 0:
            raise UsageError(f"--roi '{text}': X and Y must be >= 0")
        return cls(x, y, w, h)

    def check_inside(self, width: int, height: int, what: str = "the frame") -> None:
        if self.w < MIN_ROI or self.h < MIN_ROI:
            raise InputError(f"ROI {self}: too small (at least {MIN_ROI}x{MIN_ROI} pixels)")
        if self.x + self.w > width or self.y + self.h > height:
            raise InputError(f"ROI {self} lies outside {what} ({width}x{height})")

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


def crop(luma: np.ndarray, roi: Roi) -> np.ndarray:
    """The ROI of a luma frame, as a contiguous copy (the frame buffer is not kept)."""
    return np.ascontiguousarray(luma[roi.y:roi.y + roi.h, roi.x:roi.x + roi.w])


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area resize to the model's size (uint8 in, uint8 out)."""
    import cv2

    if img.shape == (height, width):
        return img.copy()
    interp = cv2.INTER_AREA if img.shape[0] >= height and img.shape[1] >= width else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB uint8 image (colour-mapped CEUS to one channel)."""
    f = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return np.clip(f + 0.5, 0, 255).astype(np.uint8)


#: the automatic reference band around the ROI, as a fraction of the ROI's side
BAND = 0.5


def region_for(roi: Roi, width: int, height: int, ref: Roi | None = None,
               band: float = BAND) -> Roi:
    """The box a reader crops for an exam: the ROI with a band of ``band`` x its side around
    it (the parenchyma the TIC reading takes as its reference), or the ROI and the operator's
    reference box ``ref`` together; clamped to the ``width`` x ``height`` frame. ``band`` 0:
    the ROI alone."""
    if ref is not None:
        x0, y0 = min(roi.x, ref.x), min(roi.y, ref.y)
        x1, y1 = max(roi.x + roi.w, ref.x + ref.w), max(roi.y + roi.h, ref.y + ref.h)
    else:
        bx, by = int(round(band * roi.w)), int(round(band * roi.h))
        x0, y0, x1, y1 = roi.x - bx, roi.y - by, roi.x + roi.w + bx, roi.y + roi.h + by
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, x1), min(height, y1)
    return Roi(x0, y0, x1 - x0, y1 - y0)


def within(region: Roi, box: Roi) -> tuple[slice, slice]:
    """(rows, columns) of ``box`` inside a crop of ``region`` (``box`` lies inside it)."""
    return (slice(box.y - region.y, box.y - region.y + box.h),
            slice(box.x - region.x, box.x - region.x + box.w))
