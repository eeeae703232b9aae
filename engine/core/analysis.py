"""The clip's second reading, after every score: the TIC reading (``tic``), its own P(HCC),
whether the network and the TIC reading disagree, and whether the clip lies outside what the
model was trained on. What it needs from the model travels in the ONNX metadata
(``ModelMeta.analysis``):

- ``tic``: the TIC model (``tic.fit_logistic``'s output);
- ``ood``: the out-of-distribution reference — the mean and inverse covariance of
  ``ood_vector`` over the training clips and a distance threshold calibrated on held-out
  clips of the same distribution (its 99th percentile): a clip farther than that is flagged
  ``out_of_distribution``.

Warnings are decided once enough of the clip is in to mean something (the video phase and
the first late slot); before that they stay off.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import tic
from .preprocess import fill_missing, liver_rank_lut, reference_mask

#: below this many filled slots no warning is decided (the arterial and portal phases)
MIN_SLOTS_FOR_WARNINGS = 26
#: the TIC model must be at least this far from 0.5 for a disagreement to count
DISAGREE_MARGIN = 0.15
OOD_VECTOR = ("black_fraction", "saturated_fraction", "ring_range", "ring_level", "texture",
              "lesion_fraction", "contrast", "aphe_magnitude", "d_late_min")


def ood_vector(raw: np.ndarray, present: np.ndarray, reading: tic.Reading,
               ring: float = 0.1) -> np.ndarray:
    """Numbers that describe how a clip looks (``OOD_VECTOR``): how much of it is black or
    saturated, how the liver's grey level moves and where it sits, the speckle's texture in
    rank units, and what the TIC reading found."""
    sel = raw[present] if present.any() else raw
    rmask = reference_mask(raw, present, ring)
    ring_means = sel[:, rmask].mean(axis=1) / 255.0
    x = liver_rank_lut(raw, present, ring)[fill_missing(raw, present)][present] \
        if present.any() else np.zeros((1,) + raw.shape[1:], np.float32)
    texture = float(np.abs(np.diff(x, axis=2)).mean()) if x.shape[2] > 1 else 0.0
    d = np.array([np.nan if a is None or b is None else (a - b) / 100
                  for a, b in zip(reading.lesion, reading.parenchyma)])
    late = d[np.asarray(reading.times_s) >= 120.0]
    return np.array([
        float((sel <= 3).mean()), float((sel >= 252).mean()),
        float(ring_means.max() - ring_means.min()), float(np.median(ring_means)), texture,
        reading.lesion_fraction, reading.contrast, reading.aphe_magnitude or 0.0,
        float(np.nanmin(late)) if np.isfinite(late).any() else 0.0], np.float64)


def fit_ood(train_vectors: np.ndarray, heldout_vectors: np.ndarray, quantile: float = 0.99,
            shrink: float = 0.1) -> dict:
    """The OOD reference: mean, a shrunk inverse covariance, and the held-out clips'
    ``quantile`` distance as the threshold."""
    X = np.asarray(train_vectors, np.float64)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd < 1e-9] = 1.0
    Z = (X - mu) / sd
    cov = np.cov(Z, rowvar=False)
    cov = (1 - shrink) * cov + shrink * np.eye(len(mu))
    inv = np.linalg.inv(cov)
    ref = {"features": list(OOD_VECTOR), "mean": mu.tolist(), "std": sd.tolist(),
           "inv_cov": inv.tolist(), "threshold": 0.0, "quantile": quantile}
    dist = np.array([ood_distance(v, ref) for v in heldout_vectors])
    ref["threshold"] = float(np.quantile(dist, quantile))
    return ref


def ood_distance(vec: np.ndarray, ref: dict) -> float:
    """Mahalanobis distance of one clip's ``ood_vector`` from the training clips."""
    z = (np.asarray(vec, np.float64) - np.asarray(ref["mean"])) / np.asarray(ref["std"])
    return float(np.sqrt(max(0.0, z @ np.asarray(ref["inv_cov"]) @ z)))


def analyse(raw: np.ndarray, present: np.ndarray, offsets_s, spec: dict[str, Any],
            p_net: float, threshold: float, arrival_delay_s: float | None = None,
            ring: float = 0.1) -> dict[str, Any]:
    """{"features": the message's ``features`` object, "warnings": {name: on}} for one score."""
    rd = tic.read(raw, present, offsets_s, ring, arrival_delay_s)
    n = int(np.asarray(present).sum())
    p_tic = None
    if "tic" in spec and n >= MIN_SLOTS_FOR_WARNINGS:
        p_tic = tic.tic_probability(tic.tic_vector(raw, present, offsets_s, ring, reading=rd),
                                    spec["tic"])
    features = {"times_s": rd.times_s, "lesion": rd.lesion, "parenchyma": rd.parenchyma,
                "rim": rd.rim, "units": tic.UNITS, "aphe": rd.aphe, "washout": rd.washout,
                "washout_onset_s": rd.washout_onset_s, "washout_degree": rd.washout_degree,
                "category": rd.category, "summary": rd.summary(),
                "p_hcc": None if p_tic is None else round(p_tic, 4)}
    warnings: dict[str, bool] = {}
    dom = None
    if n >= MIN_SLOTS_FOR_WARNINGS:
        warnings["model_tic_disagree"] = p_tic is not None and \
            abs(p_tic - 0.5) >= DISAGREE_MARGIN and (p_tic >= 0.5) != (p_net >= threshold)
        if "ood" in spec and not spec["ood"].get("method"):
            # the older Mahalanobis reference (models without an embedding output); the
            # shipped model's check runs with the score (``core.domain``)
            dist = ood_distance(ood_vector(raw, present, rd, ring), spec["ood"])
            warnings["out_of_distribution"] = dist > float(spec["ood"]["threshold"])
            dom = {"state": "out" if warnings["out_of_distribution"] else "in",
                   "distance": round(dist, 4), "threshold": round(float(spec["ood"]["threshold"]), 4),
                   "method": "mahalanobis"}
    out = {"features": features, "warnings": warnings}
    if dom is not None:
        out["domain"] = dom
    return out
