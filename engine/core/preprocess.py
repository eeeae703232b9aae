"""The model's input from the clip: one function for training and the engine alike.

A clip is 30 ROI images (uint8 luma, the model's size). How they become the network's input
is part of the model's contract (ONNX metadata ``preprocessing``), so the engine applies
exactly what the model was trained with:

- ``scale`` (format 1 models): ``(pixel * norm_scale - norm_mean) / norm_std``. Absolute
  grey levels: a model trained this way keys on the renderer's gain, dynamic range and colour
  map, and ranks exams from another scanner poorly.
- ``liver_rank``: each pixel becomes its rank among the surrounding parenchyma's pixels
  (the ROI's border ring) over the whole exam: 0 = darker than all of the liver's samples,
  1 = brighter than all, 0.5 = the liver's median. CEUS LI-RADS judges a lesion against the
  liver around it (hyperenhancement, washout), and a rank is unchanged by any monotone
  change of brightness: gain, dynamic range, log compression and monotone colour maps drop
  out, while the lesion-versus-liver relation over time stays. ``norm_*`` then centre it.
  Pixels outside the ultrasound image (black in every slot: an ROI over a sector's edge) are
  left out of the reference.

Only the slots filled so far take part (a provisional score); empty slots are filled from
the latest filled slot before them, as the clip buffer always did.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("scale", "liver_rank")


@dataclass(frozen=True)
class Preprocessing:
    kind: str = "scale"
    #: liver_rank: the border ring's width, as a fraction of the ROI's side
    ring: float = 0.1

    @classmethod
    def from_dict(cls, d: dict | None) -> "Preprocessing":
        d = dict(d or {})
        p = cls(kind=str(d.pop("kind", "scale")), ring=float(d.pop("ring", 0.1)))
        if d:
            raise ValueError(f"unknown preprocessing field(s) {', '.join(sorted(d))}")
        p.validate()
        return p

    def to_dict(self) -> dict:
        return {"kind": self.kind, "ring": self.ring}

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"preprocessing kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not 0.02 <= self.ring <= 0.3:
            raise ValueError(f"preprocessing ring {self.ring!r} must be in 0.02..0.3")


def ring_mask(height: int, width: int, ring: float) -> np.ndarray:
    """(H, W) bool: the ROI's border ring, ``ring`` of the side wide (at least one pixel)."""
    by = max(1, int(round(height * ring)))
    bx = max(1, int(round(width * ring)))
    m = np.ones((height, width), bool)
    m[by:height - by, bx:width - bx] = False
    return m


def fill_missing(raw: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Empty slots take the latest filled slot before them (or the first filled one)."""
    if present.all() or not present.any():
        return raw
    out = raw.copy()
    idx = np.flatnonzero(present)
    last = idx[0]
    for i in range(len(raw)):
        if present[i]:
            last = i
        else:
            out[i] = raw[last]
    return out


#: a pixel never brighter than this in any slot is outside the image (the screen's black
#: around a sector, a letterbox), not tissue: it takes no part in the liver's reference
UNLIT = 8


def reference_mask(raw: np.ndarray, present: np.ndarray, ring: float) -> np.ndarray:
    """(H, W) bool: the ring's pixels that are inside the ultrasound image (lit in some filled
    slot); the whole ring when none is (an all-dark start)."""
    sel = raw[present] if present.any() else raw
    m = ring_mask(raw.shape[1], raw.shape[2], ring)
    lit = sel.max(axis=0) > UNLIT
    return m & lit if (m & lit).sum() >= max(8, m.sum() // 10) else m


def liver_rank_lut(raw: np.ndarray, present: np.ndarray, ring: float) -> np.ndarray:
    """(256,) float32: the mid-rank of each grey level among the ring's pixels of the filled
    slots (ties count half), i.e. the liver's own cumulative distribution. Pixels outside the
    ultrasound image (never lit) take no part."""
    sel = raw[present] if present.any() else raw
    m = reference_mask(raw, present, ring)
    counts = np.bincount(sel[:, m].ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return np.linspace(0, 1, 256, dtype=np.float32)
    below = np.cumsum(counts) - counts
    return ((below + 0.5 * counts) / total).astype(np.float32)


def prepare(raw: np.ndarray, present: np.ndarray, spec: Preprocessing, norm_scale: float,
            norm_mean: float, norm_std: float) -> np.ndarray:
    """(D, H, W) uint8 clip + which slots are filled → (D, H, W) float32 model input."""
    clip = fill_missing(raw, present)
    if spec.kind == "liver_rank":
        x = liver_rank_lut(raw, present, spec.ring)[clip]
    else:
        x = clip.astype(np.float32)
    x *= np.float32(norm_scale / norm_std)
    x += np.float32(-norm_mean / norm_std)
    return x
