"""A physiology-first P(HCC): the TIC reading's CEUS LI-RADS features weighed by how often
the literature sees them in HCC and in other primary liver cancers.

The score a model that is outside its domain can still stand on (README, "What the score is
worth on a renderer it never saw"): the network there is near chance, the reading of the
curves is not. Naive Bayes over three features the reading gives (``core.tic.read``):

- ``aphe``: rim | nonrim | none (arterial-phase hyperenhancement and its pattern)
- ``washout``: early (< 60 s after the injection) | late | none
- ``washout_degree``: mild | marked, counted only where there is washout (``none`` follows
  from ``washout == "none"`` and is not counted twice)

The likelihoods are fixed from the published frequencies collected in the project's reference
(``shared/reference/ceus.md``: HCC non-rim APHE 85-90 %; ICC rim APHE 30-50 %, heterogeneous
hyperenhancement 40-60 %; HCC washout late-mild 55-65 %, early 15-25 %, marked 5-10 %, none
15-30 %; ICC early washout 75-90 %, marked 60-80 %), the middle of each range, never fitted
to any renderer's exams: no data of this project or of a site chose them. A feature the
reading has not decided (``None``: the clip is too young, no lesion found) adds nothing.

>>> round(probability({"aphe": "nonrim", "washout": "late", "washout_degree": "mild"}), 4)
0.952
>>> probability({"aphe": None, "washout": None, "washout_degree": None}) is None
True
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

log = logging.getLogger(__name__)

#: feature -> reading -> (P(reading | HCC), P(reading | non-HCC)); each column sums to 1
LIKELIHOODS: dict[str, dict[str, tuple[float, float]]] = {
    "aphe": {"nonrim": (0.87, 0.55), "rim": (0.10, 0.40), "none": (0.03, 0.05)},
    "washout": {"late": (0.55, 0.15), "early": (0.20, 0.80), "none": (0.25, 0.05)},
    # given washout: HCC marked 8 of its 75 % with washout, ICC marked 70 of its 95 %
    "washout_degree": {"mild": (0.89, 0.26), "marked": (0.11, 0.74)},
}

#: what the literature says about the odds before any reading (the engine's cohorts: half HCC)
PRIOR = 0.5

METHOD = "physiology_naive_bayes_v1"


def log_likelihood_ratio(reading: Mapping[str, Any]) -> tuple[float, list[str]]:
    """(sum of log(P(x|HCC) / P(x|non-HCC)) over the decided features, their names)."""
    total, used = 0.0, []
    for name, table in LIKELIHOODS.items():
        value = reading.get(name)
        if value not in table:
            continue
        if name == "washout_degree" and reading.get("washout") in (None, "none"):
            continue
        p_hcc, p_other = table[value]
        total += math.log(p_hcc / p_other)
        used.append(name)
    return total, used


def probability(reading: Mapping[str, Any] | None, prior: float = PRIOR) -> float | None:
    """P(HCC) from the reading's features; None when the reading decided none of them."""
    if not reading:
        return None
    llr, used = log_likelihood_ratio(reading)
    if not used:
        return None
    z = math.log(prior / (1.0 - prior)) + llr
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
