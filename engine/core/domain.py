"""Is this clip inside the model's domain? The out-of-distribution check that decides whether
the network's label may be shown (numpy only; the embedding itself comes from the model,
``backends.onnxruntime.EmbeddingRunner``).

Method ``knn_embedding`` (the shipped model's, ``analysis.ood`` in its ONNX metadata):

- the model file has a second output, ``embedding``: the channel means of the network's last
  convolutional block (what the classifier head reads, before it is flattened);
- the metadata carries a reference set: the embeddings of training clips, standardised
  (``mean``/``std``), stored as float16-rounded rows;
- a clip's distance is its ``k``-th nearest reference row (Euclidean, standardised units);
  the threshold is a high quantile of the same distance over held-out clips of the renderers
  the model was trained on (``quantile``), so about ``1 - quantile`` of in-domain clips are
  flagged by construction;
- the decision is taken from ``min_slots`` filled slots on (the arterial, portal and first
  late slots): before that the state is ``unknown``.

Beside it, clips can be flagged by the legacy Mahalanobis reference of ``core.analysis``
(``method`` absent): older model files keep working.

The rule that uses it (README "What the score is worth"): out of domain, a final result is
labelled ``indeterminate`` and shows the TIC reading instead of a confident HCC / non-HCC.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

METHOD = "knn_embedding"
#: the domain is decided from this many filled slots on (video phase + first late slot)
MIN_SLOTS = 26
IN, OUT, UNKNOWN = "in", "out", "unknown"
#: the label a final result gets when the clip is outside the model's domain
INDETERMINATE = "indeterminate"


def standardise(emb: np.ndarray, ref: dict[str, Any]) -> np.ndarray:
    return (np.asarray(emb, np.float64) - np.asarray(ref["mean"])) / np.asarray(ref["std"])


def knn_distances(emb: np.ndarray, ref: dict[str, Any], exclude_self: bool = False) -> np.ndarray:
    """Distance of each row of ``emb`` (N, E) to its ``k``-th nearest reference row.
    ``exclude_self``: the rows are the reference itself (its own zero distance skipped)."""
    z = np.atleast_2d(standardise(emb, ref))
    r = np.asarray(ref["reference"], np.float64)
    k = int(ref["k"]) + (1 if exclude_self else 0)
    d2 = (z * z).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * z @ r.T
    d = np.sqrt(np.maximum(d2, 0.0))
    k = min(k, d.shape[1]) - 1
    return np.partition(d, k, axis=1)[:, k]


def fit_knn(train_emb: np.ndarray, heldout_emb: np.ndarray, k: int = 10,
            quantile: float = 0.975, output: str = "embedding", note: str = "") -> dict[str, Any]:
    """The ``analysis.ood`` reference: standardisation, the reference rows and a threshold at
    the held-out clips' ``quantile`` distance."""
    X = np.asarray(train_emb, np.float64)
    if len(X) <= k:
        raise ValueError(f"fit_knn: {len(X)} reference clips, need more than k = {k}")
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd < 1e-9] = 1.0
    ref = {"method": METHOD, "output": output, "k": int(k), "mean": mu.tolist(),
           "std": sd.tolist(),
           "reference": np.round((X - mu) / sd, 3).astype(np.float16).astype(float).tolist(),
           "quantile": quantile, "threshold": 0.0, "min_slots": MIN_SLOTS,
           "calibration": {"n_reference": int(len(X)), "n_heldout": int(len(heldout_emb)),
                           "note": note}}
    d = knn_distances(np.asarray(heldout_emb, np.float64), ref)
    ref["threshold"] = float(np.quantile(d, quantile))
    return ref


def extend_reference(ref: dict[str, Any], more_emb: np.ndarray, note: str) -> dict[str, Any]:
    """The same reference (standardisation and threshold kept) with ``more_emb`` rows added:
    a site that adapted the model is inside its domain afterwards."""
    z = standardise(np.atleast_2d(more_emb), ref)
    out = dict(ref)
    out["reference"] = list(ref["reference"]) + \
        np.round(z, 3).astype(np.float16).astype(float).tolist()
    cal = dict(ref.get("calibration") or {})
    cal["added"] = cal.get("added", []) + [{"n": int(len(z)), "note": note}]
    out["calibration"] = cal
    return out


def decide(distance: float | None, ref: dict[str, Any]) -> dict[str, Any]:
    """The message's ``domain`` object for one distance (None: not decided yet)."""
    thr = float(ref["threshold"])
    if distance is None or not np.isfinite(distance):
        return {"state": UNKNOWN, "distance": None, "threshold": round(thr, 4),
                "method": ref.get("method", "mahalanobis")}
    return {"state": OUT if distance > thr else IN, "distance": round(float(distance), 4),
            "threshold": round(thr, 4), "method": ref.get("method", "mahalanobis")}


def unknown(method: str | None = None) -> dict[str, Any]:
    return {"state": UNKNOWN, "distance": None, "threshold": None, "method": method or "none"}


def uses_embedding(spec: dict[str, Any]) -> bool:
    ood = spec.get("ood") if isinstance(spec, dict) else None
    return isinstance(ood, dict) and ood.get("method") == METHOD
