"""The time-intensity-curve (TIC) reading of a clip: what a sonographer reads off CEUS, beside
the network's score.

Everything is measured against the liver around the lesion, in the same rank units as the
``liver_rank`` preprocessing (0 = darker than every parenchyma sample of the exam, 1 = brighter
than every one, 0.5 = the parenchyma's median), so gain, dynamic range and colour map do not
move it. From the 30 slots:

- the parenchyma curve: by default the ROI's border ring, slot by slot; when the frame around
  the ROI is known (``View``), the parenchyma OUTSIDE the lesion box, as CEUS quantification
  software takes it: a band around the ROI (less the lesion where it spills out of a tight box)
  or a reference box the operator gave (``reference``: ring | band | ref_roi). Of the band
  only what is parenchyma-like counts: pixels that enhance at some point (the screen, its
  text and scales never change), away from the image's edge, at the lesion's depth when
  enough is there, and the 60 % whose course is nearest the band's median course;
- the lesion: the pixels whose course differs most from the parenchyma's over the exam (a
  blurred deviation map, thresholded half-way between the ring's level and the interior's
  top, largest connected part with what it encloses); an iso-enhancing lesion, which differs nowhere, falls back to
  the ROI's central disk. Its curve, its rim (outer band) and core curves;
- APHE: the lesion above the parenchyma in the arterial phase (up to 30 s after t0); rim APHE
  read from the SPATIAL pattern: the radial profile of (pixel - parenchyma) from the lesion's
  centre, averaged over the arterial peak frames; rim when the edge band (0.5-1.0 of the
  lesion's radius) enhances and the core (< 0.4 radius) holds at most ``RIM_CORE_RATIO`` of
  the edge's enhancement (an enhancing periphery around a darker centre). A filled disc reads
  the other way round: blur makes its edge the darker part;
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

import warnings
from dataclasses import dataclass, field

import numpy as np

from .preprocess import UNLIT, fill_missing, reference_mask, ring_mask

#: thresholds in rank units (fractions of the liver's own brightness distribution)
APHE_MIN = 0.12        # lesion above parenchyma in the arterial phase
RIM_MIN = 0.15         # rim band above the core at the arterial peak
RIM_CORE_RATIO = 0.65  # rim: the core enhances at most this fraction of the edge band
CORE_RHO = 0.4         # the core: within this fraction of the lesion's radius
EDGE_RHO = (0.5, 1.0)  # the edge band: these fractions of the radius (its brightest ring)
PROFILE_STEP = 0.1     # radial profile rings, in lesion radii, out to PROFILE_MAX
PROFILE_MAX = 1.5
MIN_RADIUS_PX = 4.0    # a lesion smaller than this (model pixels) has no readable pattern
#: the reference outside the ROI needs this many lit pixels (a band: and a tenth of the
#: ROI's), else the ROI's ring stands in
MIN_REF_PX = 32
#: how far beyond the ROI box the lesion is searched when the frame around it is known (x side)
SPILL = 0.25
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
    reference: str = "ring"            # ring | band | ref_roi: where the parenchyma was read
    profile: list[float] | None = None  # arterial radial profile (rank units, PROFILE_STEP)
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
                lit: np.ndarray, anchor: np.ndarray | None = None,
                box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, bool, float]:
    """(mask, found, contrast) from the rank clip ``x`` (D, H, W) float32: the parenchyma's
    reference ``ring`` (the lit part of the ``border`` band) and the pixels inside the image
    (``lit``); the lesion is searched outside ``border``. ``anchor``: the lesion is the
    largest part that touches it (the ROI's centre, when the search covers the frame around
    the ROI); ``box`` (y, x, h, w): the ROI, whose central disk stands in when none is found."""
    import cv2

    sel = x[present] if present.any() else x
    p = sel[:, ring].mean(axis=1)
    dev = np.abs(sel - p[:, None, None]).mean(axis=0).astype(np.float32)
    h, w = dev.shape
    by, bx, bh, bw = box if box is not None else (0, 0, h, w)
    sigma = max(1.0, min(bh, bw) / 24)
    if anchor is None:
        dev = cv2.GaussianBlur(dev, (0, 0), sigma)
    else:  # the frame around the ROI holds the screen's black: blur the image's pixels only
        wts = cv2.GaussianBlur(lit.astype(np.float32), (0, 0), sigma)
        dev = cv2.GaussianBlur(dev * lit, (0, 0), sigma) / np.maximum(wts, 1e-3)
    interior = ~border & lit
    if interior.sum() < 0.05 * bh * bw:
        interior = ~border
    inbox = np.zeros_like(interior)
    inbox[by:by + bh, bx:bx + bw] = True
    # the lesion's level from inside the ROI (the frame around it may hold what is not liver)
    top = interior & inbox if (interior & inbox).any() else interior
    q_hi = float(np.percentile(dev[top], 95))
    q_ring = float(np.median(dev[ring])) if ring.any() else 0.0
    contrast = q_hi - q_ring
    found = False
    mask = np.zeros_like(interior)
    if contrast >= 0.05:
        cand = (interior & (dev >= 0.5 * (q_hi + q_ring))).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=8)
        if n > 1:
            area = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
            if anchor is not None:
                # the parts at the ROI's centre, and those around it (a rim apart from its
                # core at this threshold encloses the centre)
                keep = np.zeros(n, bool)
                keep[np.unique(labels[anchor & (labels > 0)])] = True
                for k in np.flatnonzero(~keep[1:] & (area >= 0.005 * bh * bw)) + 1:
                    keep[k] = bool((fill_holes(labels == k) & anchor).any())
                keep[0] = False
                if keep.any():
                    mask = fill_holes(keep[labels])
                    found = mask.sum() >= 0.02 * bh * bw
            elif area.max() > 0:
                k = 1 + int(np.argmax(area))
                mask = fill_holes(labels == k)  # a rim-enhancing lesion: the ring and its core
                found = mask.sum() >= 0.02 * bh * bw
    if not found:  # iso-enhancing or no distinct lesion: the ROI's central disk
        yy, xx = np.mgrid[0:h, 0:w]
        mask = ((yy - by - (bh - 1) / 2) ** 2 / (0.3 * bh) ** 2 +
                (xx - bx - (bw - 1) / 2) ** 2 / (0.3 * bw) ** 2) <= 1
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


@dataclass(frozen=True)
class View:
    """The frame around the ROI at the clip's scale, for a reference outside the lesion box.
    ``pixels`` (D, H, W) uint8: the ROI with the frame around it, slot by slot, resized by the
    same factors as the ROI; ``box`` (y, x, h, w): where the ROI sits in it; ``ref`` (H, W)
    bool: an operator's reference box, or None for the band (all of it outside the ROI)."""

    pixels: np.ndarray
    box: tuple[int, int, int, int]
    ref: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return "band" if self.ref is None else "ref_roi"


def rank_lut(raw: np.ndarray, present: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(256,) float32: the mid-rank of each grey level among ``mask``'s pixels of the filled
    slots (``preprocess.liver_rank_lut`` for any reference region)."""
    sel = raw[present] if present.any() else raw
    counts = np.bincount(sel[:, mask].ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return np.linspace(0, 1, 256, dtype=np.float32)
    below = np.cumsum(counts) - counts
    return ((below + 0.5 * counts) / total).astype(np.float32)


def ring_index(shape: tuple[int, int], centre: tuple[float, float], radius: float,
               valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(flat pixel indices, their ring, rings): the ``valid`` pixels of an (H, W) image out
    to ``PROFILE_MAX`` lesion radii around ``centre`` (y, x), each with its ring,
    ``PROFILE_STEP`` radii wide (the same for every frame of a clip: found once)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    rho = np.hypot(yy - centre[0], xx - centre[1]) / max(radius, 1e-6)
    k = np.floor(rho / PROFILE_STEP).astype(np.int64)
    nb = int(round(PROFILE_MAX / PROFILE_STEP))
    sel = (valid & (k < nb)).ravel()
    idx = np.flatnonzero(sel)
    return idx, k.ravel()[idx], nb


def radial_profile(d: np.ndarray, rings: tuple[np.ndarray, np.ndarray, int]) -> np.ndarray:
    """Mean of the image ``d`` (H, W) over the rings of ``ring_index``; NaN where a ring has
    no valid pixel."""
    idx, k, nb = rings
    sums = np.bincount(k, weights=d.ravel()[idx].astype(np.float64), minlength=nb)[:nb]
    cnt = np.bincount(k, minlength=nb)[:nb]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)


def rim_pattern(x: np.ndarray, par: np.ndarray, mask: np.ndarray, frames: np.ndarray,
                lit: np.ndarray) -> tuple[float, float, np.ndarray] | None:
    """(edge, core, profile) of a lesion at the arterial peak frames: the radial profile of
    pixel - parenchyma (rank units) from the lesion's centre, averaged over the ``frames``
    where the lesion enhances most (at least half its arterial maximum); ``edge`` its
    brightest ring in ``EDGE_RHO``, ``core`` its mean within ``CORE_RHO``. None when the
    lesion is too small to have a pattern."""
    area = float(mask.sum())
    radius = float(np.sqrt(area / np.pi))
    if radius < MIN_RADIUS_PX or frames.size == 0:
        return None
    yy, xx = np.nonzero(mask)
    centre = (float(yy.mean()), float(xx.mean()))
    rings = ring_index(x.shape[1:], centre, radius, lit)
    profs = np.array([radial_profile(x[t] - par[t], rings) for t in frames])
    inner = int(round(1.0 / PROFILE_STEP))
    with warnings.catch_warnings():  # a ring no frame has (beyond the image) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        enh = np.nanmax(profs[:, :inner], axis=1)
        if not np.isfinite(enh).any():
            return None
        peak = enh >= 0.5 * np.nanmax(enh)
        prof = np.nanmean(profs[peak], axis=0)
    lo, hi = (int(round(v / PROFILE_STEP)) for v in EDGE_RHO)
    core_n = int(round(CORE_RHO / PROFILE_STEP))
    edge_ring = prof[lo:hi]
    core_ring = prof[:core_n]
    if not np.isfinite(edge_ring).any() or not np.isfinite(core_ring).any():
        return None
    # the core's mean over its pixels (rings weighted by their area, ~ their mid radius)
    wts = (np.arange(core_n) + 0.5)[np.isfinite(core_ring)]
    core = float(np.sum(core_ring[np.isfinite(core_ring)] * wts) / wts.sum())
    return float(np.nanmax(edge_ring)), core, prof


def reference_of(raw: np.ndarray, present: np.ndarray, ring: float,
                 view: View | None) -> tuple:
    """(pixels, reference mask, search border, lit, anchor, box, kind): where the reading
    looks for the lesion and where it reads the parenchyma. Without a view, or when the view's
    reference has too few pixels inside the image: the ROI's ring (``reference_mask``)."""
    import cv2

    if view is not None:
        px = view.pixels
        sel = px[present] if present.any() else px
        lit = sel.max(axis=0) > UNLIT
        by, bx, bh, bw = view.box
        inside = np.zeros(px.shape[1:], bool)
        inside[by:by + bh, bx:bx + bw] = True
        # parenchyma enhances: what never changes (the screen around the image, its text and
        # scales) is no reference, however grey
        swing = sel.max(axis=0).astype(np.int16) - sel.min(axis=0)
        lit = lit & (swing >= max(UNLIT, 0.1 * float(np.percentile(swing[inside], 99))))
        # nor is the image's own edge (partial pixels where the sector meets the black)
        k = 2 * max(1, int(round(min(bh, bw) / 24))) + 1
        lit = cv2.erode(lit.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        if view.ref is None:  # the band, and the ROI's own ring (a loose ROI's liver)
            edge = np.zeros_like(inside)
            edge[by:by + bh, bx:bx + bw] = ring_mask(bh, bw, ring)
            # at the lesion's depth (echo and contrast fade with depth), when enough is there
            level = np.zeros_like(inside)
            level[by:by + bh] = True
            ref = (~inside | edge) & lit
            if (ref & level & ~inside).sum() >= max(MIN_REF_PX, 0.1 * bh * bw):
                ref &= level
            # the lesion may spill out of a tight box: searched a quarter side beyond it
            gy, gx = int(round(SPILL * bh)), int(round(SPILL * bw))
            search = np.zeros_like(inside)
            search[max(0, by - gy):by + bh + gy, max(0, bx - gx):bx + bw + gx] = True
        else:
            ref, search = view.ref & ~inside & lit, inside
        # the band must hold a tenth of the ROI's area; the operator's box is taken as drawn
        need = MIN_REF_PX if view.ref is not None else max(MIN_REF_PX, 0.1 * bh * bw)
        if (ref & ~inside).sum() >= need:
            yy, xx = np.mgrid[0:px.shape[1], 0:px.shape[2]]
            anchor = np.hypot((yy - by - (bh - 1) / 2) / bh,
                              (xx - bx - (bw - 1) / 2) / bw) <= 0.25
            return px, ref, ~search, lit, anchor, view.box, view.kind
    sel = raw[present] if present.any() else raw
    lit = sel.max(axis=0) > UNLIT
    h, w = raw.shape[1:]
    return raw, reference_mask(raw, present, ring), ring_mask(h, w, ring), lit, None, \
        (0, 0, h, w), "ring"


#: the share of the frame around the ROI kept as parenchyma: the pixels whose course is
#: nearest the band's median course (screen text and scales, vessels, the dark near field,
#: another organ or panel drop out)
TYPICAL_SHARE = 0.6


def typical(x: np.ndarray, present: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The part of the reference region ``ref`` whose course over the filled slots (rank
    clip ``x``, smoothed over a few pixels against speckle) lies nearest the region's median
    course: ``TYPICAL_SHARE`` of its pixels."""
    import cv2

    sel = x[present] if present.any() else x
    h, w = ref.shape
    sigma = max(1.0, min(h, w) / 48)
    sm = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in sel])
    courses = sm[:, ref]
    med = np.median(courses, axis=1)
    dev = np.abs(courses - med[:, None]).mean(axis=0)
    cut = np.quantile(dev, TYPICAL_SHARE)
    out = np.zeros_like(ref)
    out[ref] = dev <= cut
    return out


def read(raw: np.ndarray, present: np.ndarray, offsets_s: tuple[float, ...], ring: float = 0.1,
         arrival_delay_s: float | None = None, view: View | None = None) -> Reading:
    """The TIC reading of a clip (D, H, W uint8) with ``present`` slots filled. ``arrival_delay_s``:
    seconds from the injection to t0 when known (the 60 s LI-RADS cut is from the injection).
    ``view``: the frame around the ROI, for a reference outside it (else the ROI's ring)."""
    import cv2

    offsets = np.asarray(offsets_s, np.float64)
    present = np.asarray(present, bool)
    n = len(offsets)
    px, rmask, border, lit, anchor, box, kind = reference_of(raw, present, ring, view)
    filled = fill_missing(px, present)
    if kind != "ring":
        rmask = typical(rank_lut(px, present, rmask)[filled], present, rmask)
    x = rank_lut(px, present, rmask)[filled]
    mask, found, contrast = lesion_mask(x, present, rmask, border, lit, anchor, box)
    if kind == "band" and found:  # a tight box: the lesion spills into the band
        k = max(1, int(round(0.15 * np.sqrt(mask.sum() / np.pi))))
        grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)) > 0
        if (rmask & ~grown).sum() >= MIN_REF_PX:
            rmask = rmask & ~grown
            x = rank_lut(px, present, rmask)[filled]
    rim_band, core = bands(mask)
    par = x[:, rmask].mean(axis=1)
    les = x[:, mask].mean(axis=1)
    rim = x[:, rim_band].mean(axis=1)

    def curve(v: np.ndarray) -> list[float | None]:
        return [_r(v[i]) if present[i] else None for i in range(n)]

    by, bx, bh, bw = box
    rd = Reading([float(o) for o in offsets], curve(les), curve(par), curve(rim),
                 lesion_fraction=round(float(mask.sum()) / float(bh * bw), 4),
                 lesion_found=bool(found), contrast=round(float(contrast), 4), reference=kind)
    d = les - par
    art = np.flatnonzero((offsets <= ARTERIAL_END_S) & present)
    if art.size and offsets[art[-1]] >= ARTERIAL_END_S - 2.0:  # the arterial phase is in
        peak = int(art[np.argmax(d[art])])
        rd.aphe_magnitude = round(float(d[peak]), 4)
        # no pattern to read on the stand-in disk of a lesion not found
        pattern = rim_pattern(x, par, mask, art, lit) if found else None
        edge = core_d = None
        if pattern is not None:
            edge, core_d, prof = pattern
            rd.rim_index = round(edge - core_d, 4)
            rd.profile = [None if not np.isfinite(v) else _r(v) for v in prof]
        if d[peak] < APHE_MIN and (edge is None or edge < APHE_MIN):
            rd.aphe = "none"
        elif edge is not None and edge >= APHE_MIN and edge - core_d >= RIM_MIN and \
                core_d <= RIM_CORE_RATIO * edge:
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
               arrival_delay_s: float | None = None, reading: Reading | None = None,
               view: View | None = None) -> np.ndarray:
    """The numbers the TIC model reads (``VECTOR``), from a complete clip. ``rim_index`` is
    the spatial one (edge band minus core at the arterial peak frames, ``rim_pattern``)."""
    rd = reading or read(raw, present, offsets_s, ring, arrival_delay_s, view)
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
