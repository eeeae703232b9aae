"""B-mode ROI images (112 x 112) for the paper's 2D baselines, with the B-mode cues of
ceus.md section 3: echogenicity (weak: it varies in both classes), a hypoechoic halo and
mosaic texture (more often HCC), ill-defined margins and upstream duct dilatation (more often
ICC), posterior enhancement (either)."""

from __future__ import annotations

import numpy as np

from .physiology import Case
from .scene import TISSUE_GRAIN, smooth_atlas, speckle_atlas


# B-mode cues are weak in the literature (2D networks reach AUC 0.6-0.75 for HCC vs other
# malignancy): each cue here is part class, mostly patient-to-patient variation.
CUE_WEIGHT = 0.6


def _weak(rng, value: float, lo: float, hi: float) -> float:
    return CUE_WEIGHT * value + (1 - CUE_WEIGHT) * float(rng.uniform(lo, hi))


def bmode_image(case: Case, size: int = 112) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(case.seed + 31337)
    echo = _weak(rng, case.echogenicity_db, -5.0, 4.0)
    halo_s = _weak(rng, case.halo, 0.0, 0.9)
    mosaic_s = _weak(rng, case.mosaic, 0.0, 0.9)
    margin = _weak(rng, case.margin_blur, 0.5, 3.0)
    ducts = case.duct_dilatation if rng.random() < 0.5 else bool(rng.random() < 0.2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2.0
    r = size * rng.uniform(0.28, 0.36)
    ca, sa = np.cos(case.angle), np.sin(case.angle)
    u = ((xx - c) * ca + (yy - c) * sa) / r
    v = (-(xx - c) * sa + (yy - c) * ca) / (r * case.aspect)
    rho = np.sqrt(u * u + v * v)
    blur = margin / r * 2
    inside = 1 / (1 + np.exp(np.minimum((rho - 1) / max(blur, 0.02), 60)))
    off = rng.integers(0, 1800, 4)
    spk = speckle_atlas(TISSUE_GRAIN)[off[0]:off[0] + size, off[1]:off[1] + size]
    mosaic = smooth_atlas(4.0)[off[2]:off[2] + size, off[3]:off[3] + size]
    db = np.zeros((size, size), np.float32)
    db += inside * (echo + 3.0 * mosaic_s * mosaic)
    halo = np.exp(-((rho - 1.05) / 0.08) ** 2) * halo_s * -8.0
    db += halo
    below = (yy > c) & (np.abs(xx - c) < r * 0.8)
    db += below * (1 - inside) * case.posterior_enhancement * 4.0 * np.clip((yy - c - r) / r, 0, 1)
    if ducts:
        for k in range(2):
            x0 = c + rng.uniform(-r, r)
            cv2.line(db, (int(x0), 0), (int(x0 + rng.uniform(-10, 10)), int(c - r * 0.9)),
                     -12.0, 2)
    E = spk * (10 ** (db / 10)) + 0.01
    g = (10 * np.log10(E) + 45.0) * (255 / 60.0)
    g = np.clip(g, 0, 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)
