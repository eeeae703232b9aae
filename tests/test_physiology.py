"""The physiology reading's P(HCC) (``core.physiology``): naive Bayes over the TIC reading's
CEUS LI-RADS features with likelihoods from the literature. Expected values by hand."""

import math

import pytest

from ceustream.engine.core import physiology


def test_each_feature_table_is_a_distribution_per_class():
    for name, table in physiology.LIKELIHOODS.items():
        assert sum(h for h, _ in table.values()) == pytest.approx(1.0), name
        assert sum(o for _, o in table.values()) == pytest.approx(1.0), name


@pytest.mark.parametrize("reading, odds", [
    # LR-5: non-rim APHE, late mild washout: (.87/.55)(.55/.15)(.89/.26) = 19.85...
    ({"aphe": "nonrim", "washout": "late", "washout_degree": "mild"},
     (0.87 / 0.55) * (0.55 / 0.15) * (0.89 / 0.26)),
    # LR-M on every count: rim, early, marked: (.10/.40)(.20/.80)(.11/.74)
    ({"aphe": "rim", "washout": "early", "washout_degree": "marked"},
     (0.10 / 0.40) * (0.20 / 0.80) * (0.11 / 0.74)),
    # no washout: the degree "none" follows from it and is not counted twice
    ({"aphe": "nonrim", "washout": "none", "washout_degree": "none"},
     (0.87 / 0.55) * (0.25 / 0.05)),
    # the clip is young: only the arterial phase is read
    ({"aphe": "rim", "washout": None, "washout_degree": None}, 0.10 / 0.40),
])
def test_probability_is_the_posterior_of_the_published_likelihoods(reading, odds):
    assert physiology.probability(reading) == pytest.approx(odds / (1 + odds), abs=1e-12)


def test_a_reading_that_decided_nothing_gives_no_probability():
    assert physiology.probability(None) is None
    assert physiology.probability({}) is None
    assert physiology.probability({"aphe": None, "washout": None}) is None
    # words the table does not know are not read as anything
    assert physiology.probability({"aphe": "hyper", "washout": "soon"}) is None


def test_the_prior_moves_the_odds():
    r = {"aphe": "nonrim"}
    p = physiology.probability(r, prior=0.2)
    assert p == pytest.approx(1 / (1 + 4 * 0.55 / 0.87))
    assert math.isclose(physiology.log_likelihood_ratio(r)[0], math.log(0.87 / 0.55))
