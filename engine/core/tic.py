"""The time-intensity-curve (TIC) reading of a clip: what a sonographer reads off CEUS, beside
the network's score.

Everything is measured against the liver around the lesion, in the same rank units as the
``liver_rank`` preprocessing (0 = darker than every parenchyma sample of the exam, 1 = brighter
than every one, 0.5 = the parenchyma's median), so gain, dynamic range and colour map do not
move it. From the 30 slots:

- the parenchyma curve: the ROI's border ring, slot by slot;
- the lesion: the pixels whose course differs most from the parenchyma's over the exam (a
  blurred deviation map, thresholded half-way between the ring's level and the interior's
  top, largest connected part with what it encloses); an iso-enhancing lesion, which differs nowhere, falls back to
  the ROI's central disk. Its curve, its rim (outer band) and core curves;
- APHE: the lesion above the parenchyma in the arterial phase (up to 30 s after t0); rim APHE
  when the band leads the core by a margin and the core does not enhance;
- washout: the first time after the arterial peak from which the lesion stays below the
  parenchyma; early when it starts before 60 s after the injection (CEUS LI-RADS); marked when
  the lesion ends far below the liver ("punched out") by 120-180 s, i.e. far below the liver
  of that moment or as dark as the liver's darkest samples (before it enhanced);
- a CEUS LI-RADS-like category (LR-5-like: non-rim APHE with late mild washout; LR-M-like: rim
  APHE, early or marked washout; ...), from the curves alone: not a diagnosis.

``tic_vector`` turns a reading into numbers for the TIC model (a logistic regression whose
coefficients travel in the ONNX metadata, ``analysis.tic``), so the reading is also a model
of its own, evaluated like the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .preprocess import UNLIT, fill_missing, liver_rank_lut, reference_mask, ring_mask

#: thresholds in rank units (fractions of the liver's own brightness distribution)
APHE_MIN = 0.12        # lesion above parenchyma in the arterial phase
RIM_MIN = 0.15         # rim band above the core at the arterial peak
WASHOUT_MIN = 0.06     # lesion below parenchyma
MARKED_MIN = 0.35      # lesion far below parenchyma late: "punched out" ...
MARKED_RANK = 0.15     # ... or as dark as the liver's darkest samples (before it enhanced)
ARTERIAL_END_S = 30.0  # arterial phase: up to this long after t0
EARLY_WASHOUT_S = 60.0  # CEUS LI-RADS: washout before 60 s after the injection is early
#: injection → arrival when the injection time is unknown (middle of the published 10-25 s)
DEFAULT_ARRIVAL_DELAY_S = 18.0
UNITS = "liver percentile"


@dataclass
class Reading:
    times_s: list[float]
    lesion: list[float | None]
    parenchyma: list[float | None]
    rim: list[float | None]
    aphe: str | None = None            # nonrim | rim | none | None (not decided yet)
    aphe_magnitude: float | None = None
    rim_index: float | None = None
    washout: str | None = None         # none | early | late | None
    washout_onset_s: float | None = None  # after the injection
    washout_degree: str | None = None  # none | mild | marked | None
    category: str | None = None
    lesion_fraction: float = 0.0
    lesion_found: bool = False
    contrast: float = 0.0              # how distinct the lesion's course is from the liver's
    extra: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the overlay, e.g. 'APHE ✓ (non-rim) · washout late, mild · LR-5-like'."""
        if self.aphe is None:
            return "TIC: waiting for the arterial phase"
        a = {"nonrim": "APHE ✓ (non-rim)", "rim": "APHE ✓ (rim)", "none": "APHE ✗"}[self.aphe]
        if self.washout is None:
            w = "washout: pending"
        elif self.washout == "none":
            w = "no washout"
        else:
            w = f"washout {self.washout}, {self.washout_degree}"
        return " · ".join(x for x in (a, w, self.category) if x)


def _r(v: float) -> float:
    return round(float(v) * 100.0, 1)


def lesion_mask(x: np.ndarray, present: np.ndarray, ring: np.ndarray, border: np.ndarray,
                lit: np.ndarray) -> tuple[np.ndarray, bool, float]:
    """(mask, found, contrast) from the rank clip ``x`` (D, H, W) float32: the parenchyma's
    reference ``ring`` (the lit part of the ``border`` band) and the pixels inside the image
    (``lit``); the lesion is searched inside the border band."""
    import cv2

    sel = x[present] if present.any() else x
    p = sel[:, ring].mean(axis=1)
    dev = np.abs(sel - p[:, None, None]).mean(axis=0).astype(np.float32)
    h, w = dev.shape
    dev = cv2.GaussianBlur(dev, (0, 0), max(1.0, min(h, w) / 24))
    interior = ~border & lit
    if interior.sum() < 0.05 * h * w:
        interior = ~border
    q_hi = float(np.percentile(dev[interior], 95))
    q_ring = float(np.median(dev[ring])) if ring.any() else 0.0
    contrast = q_hi - q_ring
    found = False
    mask = np.zeros_like(interior)
    if contrast >= 0.05:
        cand = (interior & (dev >= 0.5 * (q_hi + q_ring))).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
        if n > 1:
            k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            mask = fill_holes(labels == k)  # a rim-enhancing lesion: the ring and its core
            found = mask.sum() >= 0.02 * h * w
    if not found:  # iso-enhancing or no distinct lesion: the central disk
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((yy - (h - 1) / 2) ** 2 / (0.3 * h) ** 2 + (xx - (w - 1) / 2) ** 2 / (0.3 * w) ** 2) <= 1
    return mask, found, contrast


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The region with everything it encloses (its outer contour, filled)."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out > 0


def bands(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rim band, core) of a lesion mask: the outer third of its equivalent radius."""
    import cv2

    r = np.sqrt(mask.sum() / np.pi)
    k = max(1, int(round(r / 3)))
    core = cv2.erode(mask.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)) > 0
    if core.sum() < 4:
        return mask, mask
    return mask & ~core, core


def read(raw: np.ndarray, present: np.ndarray, offsets_s: tuple[float, ...], ring: float = 0.1,
         arrival_delay_s: float | None = None) -> Reading:
    """The TIC reading of a clip (D, H, W uint8) with ``present`` slots filled. ``arrival_delay_s``:
    seconds from the injection to t0 when known (the 60 s LI-RADS cut is from the injection)."""
    offsets = np.asarray(offsets_s, np.float64)
    present = np.asarray(present, bool)
    n = len(offsets)
    rmask = reference_mask(raw, present, ring)
    sel = raw[present] if present.any() else raw
    lit = sel.max(axis=0) > UNLIT
    x = liver_rank_lut(raw, present, ring)[fill_missing(raw, present)]
    border = ring_mask(raw.shape[1], raw.shape[2], ring)
    mask, found, contrast = lesion_mask(x, present, rmask, border, lit)
    rim_band, core = bands(mask)
    par = x[:, rmask].mean(axis=1)
    les = x[:, mask].mean(axis=1)
    rim = x[:, rim_band].mean(axis=1)
    cor = x[:, core].mean(axis=1)

    def curve(v: np.ndarray) -> list[float | None]:
        return [_r(v[i]) if present[i] else None for i in range(n)]

    rd = Reading([float(o) for o in offsets], curve(les), curve(par), curve(rim),
                 lesion_fraction=round(float(mask.mean()), 4), lesion_found=bool(found),
                 contrast=round(float(contrast), 4))
    d = les - par
    art = np.flatnonzero((offsets <= ARTERIAL_END_S) & present)
    if art.size and offsets[art[-1]] >= ARTERIAL_END_S - 2.0:  # the arterial phase is in
        peak = int(art[np.argmax(d[art])])
        rd.aphe_magnitude = round(float(d[peak]), 4)
        rd.rim_index = round(float(rim[peak] - cor[peak]), 4)
        if d[peak] < APHE_MIN and rim[peak] - par[peak] < APHE_MIN:
            rd.aphe = "none"
        elif rd.rim_index >= RIM_MIN and cor[peak] - par[peak] < APHE_MIN / 2:
            rd.aphe = "rim"
        else:
            rd.aphe = "nonrim"
        delay = DEFAULT_ARRIVAL_DELAY_S if arrival_delay_s is None else arrival_delay_s
        after = [i for i in range(peak + 1, n) if present[i]]
        onset = None
        for j, i in enumerate(after):
            rest = d[after[j:]]
            if d[i] <= -WASHOUT_MIN and np.mean(rest <= -WASHOUT_MIN) >= 0.75:
                onset = float(offsets[i])
                break
        complete = bool(present.all())
        if onset is not None:
            rd.washout_onset_s = round(onset + delay, 1)
            rd.washout = "early" if onset + delay < EARLY_WASHOUT_S else "late"
            late = [i for i in range(n) if present[i] and offsets[i] >= 120.0] or after
            punched = float(np.min(d[late])) <= -MARKED_MIN or \
                float(np.min(les[late])) <= MARKED_RANK
            rd.washout_degree = "marked" if punched else "mild"
        elif complete:
            rd.washout, rd.washout_degree = "none", "none"
        rd.category = category(rd, complete)
    return rd


def category(rd: Reading, complete: bool) -> str | None:
    """A CEUS LI-RADS-like category from the curves (size and growth are not in a clip)."""
    if rd.aphe == "rim" or rd.washout == "early" or rd.washout_degree == "marked":
        return "LR-M-like"
    if not complete and rd.washout is None:
        return None
    if rd.aphe == "nonrim":
        return "LR-5-like" if rd.washout == "late" else "LR-4-like"
    return "LR-4-like" if rd.washout == "late" else "LR-3-like"


#: the TIC model's inputs, in order (``tic_vector``)
VECTOR = ("aphe_magnitude", "rim_index", "d_30", "d_60", "d_90", "d_120", "d_150", "d_180",
          "d_late_min", "washout_onset", "lesion_fraction", "contrast")


def tic_vector(raw: np.ndarray, present: np.ndarray, offsets_s, ring: float = 0.1,
               arrival_delay_s: float | None = None, reading: Reading | None = None) -> np.ndarray:
    """The numbers the TIC model reads (``VECTOR``), from a complete clip."""
    rd = reading or read(raw, present, offsets_s, ring, arrival_delay_s)
    off = np.asarray(offsets_s)
    les = np.array([np.nan if v is None else v / 100 for v in rd.lesion])
    par = np.array([np.nan if v is None else v / 100 for v in rd.parenchyma])
    d = les - par

    def at(t: float) -> float:
        i = int(np.argmin(np.abs(off - t)))
        return 0.0 if np.isnan(d[i]) else float(d[i])

    late = d[off >= 120.0]
    onset = rd.washout_onset_s if rd.washout_onset_s is not None else 240.0
    return np.array([rd.aphe_magnitude or 0.0, rd.rim_index or 0.0, at(30), at(60), at(90),
                     at(120), at(150), at(180),
                     float(np.nanmin(late)) if np.isfinite(late).any() else 0.0,
                     min(onset, 240.0) / 100.0, rd.lesion_fraction, rd.contrast], np.float64)


def tic_probability(vec: np.ndarray, model: dict) -> float:
    """P(HCC) from the TIC model stored in the metadata (``fit_logistic``'s output)."""
    mu = np.asarray(model["mean"], np.float64)
    sd = np.asarray(model["std"], np.float64)
    w = np.asarray(model["coef"], np.float64)
    z = float(((vec - mu) / sd) @ w + float(model["intercept"]))
    return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> dict:
    """A ridge logistic regression by Newton's method (NumPy only): the TIC model."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd < 1e-9] = 1.0
    Z = np.hstack([(X - mu) / sd, np.ones((len(X), 1))])
    w = np.zeros(Z.shape[1])
    reg = np.full(Z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(Z @ w, -50, 50)))
        g = Z.T @ (p - y) + reg * w
        H = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(reg + 1e-9)
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {"features": list(VECTOR), "mean": mu.tolist(), "std": sd.tolist(),
            "coef": w[:-1].tolist(), "intercept": float(w[-1])}
