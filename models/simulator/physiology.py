"""Time-intensity curves and lesion patterns for simulated liver CEUS exams.

Numbers come from ``shared/reference/ceus.md`` (CEUS LI-RADS v2017, Li 2014, Kang 2022,
Wang 2026, Wong 2009); where the literature gives ranges without distributions the priors
are marked there. Times are seconds after injection unless said otherwise.

Each tissue's contrast signal is a first-pass bolus (lognormal, as fitted to liver CEUS by
Strouthos 2010) plus a slow portal-venous/late component. A lesion's late level relative to
the parenchyma (``late_ratio``) sets its washout degree in dB (10·log10): ~0 dB no washout,
-1..-4 dB mild, -6..-15 dB marked ("punched out"). Its washout onset is where its curve
falls below the parenchyma's, computed, not assumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

HCC = 1
NON_HCC = 0


def lognormal_bolus(tau: np.ndarray | float, arrival: float, ttp_after: float,
                    sigma: float) -> np.ndarray:
    """Peak-normalised lognormal bolus: 0 before ``arrival``, peak 1 at arrival + ttp_after."""
    x = np.asarray(tau, dtype=np.float64) - arrival
    out = np.zeros_like(x)
    m = x > 1e-6
    mu = np.log(ttp_after) + sigma ** 2  # the mode of the lognormal is exp(mu - sigma^2)
    lx = np.log(x[m])
    mode = ttp_after
    peak = np.exp(-((np.log(mode) - mu) ** 2) / (2 * sigma ** 2)) / mode
    out[m] = np.exp(-((lx - mu) ** 2) / (2 * sigma ** 2)) / x[m] / peak
    return out


def portal_component(tau: np.ndarray | float, arrival: float, ttp: float,
                     decay_s: float) -> np.ndarray:
    """Slow parenchymal enhancement: smooth rise from arrival to ttp, then a long decay
    (still visible 4-6 min after injection)."""
    x = np.asarray(tau, dtype=np.float64)
    u = np.clip((x - arrival) / max(ttp - arrival, 1e-3), 0.0, 1.0)
    rise = u * u * (3 - 2 * u)
    return rise * np.exp(-np.maximum(x - ttp, 0.0) / decay_s)


@dataclass
class Tissue:
    """Parameters of one curve: a bolus of amplitude ``bolus`` plus ``late_ratio`` times the
    parenchyma's slow component."""

    arrival: float
    ttp_after: float
    sigma: float
    bolus: float
    late_ratio: float

    def curve(self, tau, parenchyma_slow) -> np.ndarray:
        return self.bolus * lognormal_bolus(tau, self.arrival, self.ttp_after, self.sigma) + \
            self.late_ratio * parenchyma_slow


@dataclass
class Case:
    """One simulated patient's lesion and exam. Everything the renderer needs."""

    seed: int
    label: int                    # 1 = HCC, 0 = non-HCC
    subtype: str                  # hcc | icc | chcc-icc | other
    pattern: str                  # nonrim | rim | heterogeneous | hypo
    washout: str                  # late_mild | early_mild | marked | none
    # timing (seconds after injection)
    parenchyma_arrival: float
    parenchyma_ttp: float
    parenchyma_decay: float
    lesion: Tissue
    rim: Tissue | None            # rim pattern: the rim's curve (lesion = the core)
    # geometry (fractions of the sector / millimetres)
    size_mm: float
    depth_frac: float             # 0 = apex, 1 = sector radius
    lateral_frac: float           # -1..1 of the half-width at that depth
    aspect: float
    angle: float
    rim_frac: float               # rim thickness as a fraction of the radius
    heterogeneity: float          # 0..1, strength of the lesion's texture
    # image formation
    gain_db: float
    suppression_db: float
    breathing_mm: float
    breathing_period_s: float
    out_of_plane: float           # 0..1 frame-to-frame decorrelation of the lesion texture
    # B-mode cues (2D baselines)
    echogenicity_db: float
    halo: float
    posterior_enhancement: float
    mosaic: float
    duct_dilatation: bool
    margin_blur: float
    extra: dict = field(default_factory=dict)

    @property
    def lesion_arrival(self) -> float:
        """t0 relative to the injection: contrast starts to appear in the lesion, i.e. its
        own bolus (the rim's, for rim lesions) first comes within 30 dB of its peak. The paper's
        first frame is where "the tumour's echo starts to appear"; on a log-compressed display
        with a 50 dB range that is about 30 dB below the peak, not the bolus's mathematical
        onset (seconds earlier and invisible)."""
        tau = np.arange(0.0, 90.0, 0.05)
        cur = self.rim_curve(tau) if self.rim is not None else self.lesion_curve(tau)
        # the lesion's own bolus, without the parenchyma's slow part it shares
        own = cur - (self.rim or self.lesion).late_ratio * self.parenchyma_slow(tau)
        level = 0.001 * own.max()
        idx = np.nonzero(own >= level)[0]
        if not idx.size:
            return float(self.lesion.arrival)
        i = int(idx[0])
        if i == 0 or own[i] == own[i - 1]:
            return float(tau[i])
        # interpolated between grid points, so t0 is not tied to a frame grid
        return float(tau[i - 1] + (level - own[i - 1]) / (own[i] - own[i - 1]) * (tau[i] - tau[i - 1]))

    def parenchyma_slow(self, tau) -> np.ndarray:
        return portal_component(tau, self.parenchyma_arrival, self.parenchyma_ttp,
                                self.parenchyma_decay)

    def parenchyma(self, tau) -> np.ndarray:
        slow = self.parenchyma_slow(tau)
        art = 0.25 * lognormal_bolus(tau, self.parenchyma_arrival, 10.0, 0.5)
        return art + slow

    def lesion_curve(self, tau) -> np.ndarray:
        return self.lesion.curve(tau, self.parenchyma_slow(tau))

    def rim_curve(self, tau) -> np.ndarray:
        if self.rim is None:
            return self.lesion_curve(tau)
        return self.rim.curve(tau, self.parenchyma_slow(tau))

    def washout_onset(self) -> float | None:
        """Seconds after injection when the lesion (its rim for rim lesions) drops below the
        parenchyma after its arterial phase, or None within 6 minutes."""
        tau = np.arange(0.0, 360.0, 0.5)
        les = self.rim_curve(tau) if self.rim is not None else self.lesion_curve(tau)
        par = self.parenchyma(tau)
        peak = int(np.argmax(les))
        below = np.nonzero((les[peak:] < par[peak:] * 0.89) & (par[peak:] > 0.05))[0]
        return float(tau[peak + below[0]]) if below.size else None

    def describe(self) -> dict:
        d = asdict(self)
        d["lesion_arrival"] = self.lesion_arrival
        d["washout_onset"] = self.washout_onset()
        return d


def _u(rng, a, b) -> float:
    return float(rng.uniform(a, b))


def _choice(rng, options: dict[str, float]) -> str:
    keys = list(options)
    p = np.array([options[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


# Class mixtures (ceus.md section 1, "[prior] class mixtures"): HCC mostly non-rim APHE and
# late mild washout, with the real exceptions; non-HCC mostly rim or heterogeneous APHE with
# early/marked washout, with HCC-like exceptions (combined HCC-ICC).
HCC_PATTERN = {"nonrim": 0.87, "rim": 0.05, "hypo": 0.08}
HCC_WASHOUT = {"late_mild": 0.58, "early_mild": 0.17, "marked": 0.07, "none": 0.18}
NON_HCC_SUBTYPE = {"icc": 0.70, "chcc-icc": 0.25, "other": 0.05}
ICC_PATTERN = {"rim": 0.45, "heterogeneous": 0.45, "hypo": 0.10}
ICC_WASHOUT = {"early_mild": 0.15, "marked": 0.72, "late_mild": 0.10, "none": 0.03}
CHCC_HCC_LIKE = 0.6


def _washout_tissue(rng, kind: str, arrival: float, bolus: float) -> Tissue:
    """The lesion's curve for a washout kind; the bolus shape sets when it washes out."""
    if kind == "late_mild":
        return Tissue(arrival, _u(rng, 12, 20), _u(rng, 0.55, 0.8), bolus, _u(rng, 0.42, 0.8))
    if kind == "early_mild":
        return Tissue(arrival, _u(rng, 8, 13), _u(rng, 0.35, 0.5), bolus, _u(rng, 0.4, 0.75))
    if kind == "marked":
        return Tissue(arrival, _u(rng, 7, 12), _u(rng, 0.3, 0.45), bolus, _u(rng, 0.03, 0.25))
    # none: iso in the late phase
    return Tissue(arrival, _u(rng, 12, 22), _u(rng, 0.6, 0.9), bolus, _u(rng, 0.92, 1.1))


def sample_case(seed: int, label: int | None = None, hcc_fraction: float = 100 / 116) -> Case:
    """A random case; deterministic in ``seed``. ``label`` forces the class."""
    rng = np.random.default_rng(seed)
    if label is None:
        label = HCC if rng.random() < hcc_fraction else NON_HCC
    par_arr = _u(rng, 15, 22)
    par_ttp = par_arr + _u(rng, 18, 30)  # TTP 35-50 s
    decay = _u(rng, 250, 500)
    les_arr = par_arr - _u(rng, 1.0, 5.0)  # lesions fill before the liver (12-20 s)
    les_arr = max(les_arr, 10.0)
    peak_db = _u(rng, 3, 10)
    bolus = 10 ** (peak_db / 10)
    rim = None
    hetero = _u(rng, 0.05, 0.3)
    rim_frac = _u(rng, 0.15, 0.3)

    if label == HCC:
        subtype = "hcc"
        pattern = _choice(rng, HCC_PATTERN)
        washout = _choice(rng, HCC_WASHOUT)
        lesion = _washout_tissue(rng, washout, les_arr, bolus)
        if pattern == "rim":
            rim = _washout_tissue(rng, washout, les_arr, bolus)
            lesion = Tissue(les_arr + 2, 14, 0.7, bolus * 0.35, rim.late_ratio)
        elif pattern == "hypo":
            lesion.bolus *= 0.3
        hetero = _u(rng, 0.05, 0.35)  # mosaic
    else:
        subtype = _choice(rng, NON_HCC_SUBTYPE)
        hcc_like = subtype == "chcc-icc" and rng.random() < CHCC_HCC_LIKE
        if hcc_like:
            pattern = "nonrim"
            washout = _choice(rng, {"late_mild": 0.7, "early_mild": 0.2, "none": 0.1})
            lesion = _washout_tissue(rng, washout, les_arr, bolus)
            # subtle cues remain: lower late level and more texture than most HCC
            lesion.late_ratio *= _u(rng, 0.75, 1.0)
            hetero = _u(rng, 0.2, 0.5)
        else:
            pattern = _choice(rng, ICC_PATTERN)
            washout = _choice(rng, ICC_WASHOUT)
            if pattern == "rim":
                rim = _washout_tissue(rng, washout, les_arr, bolus)
                lesion = Tissue(les_arr + 3, 16, 0.7, bolus * _u(rng, 0.05, 0.3),
                                _u(rng, 0.03, 0.3))
            else:
                lesion = _washout_tissue(rng, washout, les_arr, bolus)
                if pattern == "hypo":
                    lesion.bolus *= 0.3
                hetero = _u(rng, 0.35, 0.8)

    size = float(np.clip(rng.lognormal(np.log(33 if label == HCC else 45), 0.4), 15, 90))
    return Case(
        seed=seed, label=label, subtype=subtype, pattern=pattern, washout=washout,
        parenchyma_arrival=par_arr, parenchyma_ttp=par_ttp, parenchyma_decay=decay,
        lesion=lesion, rim=rim, size_mm=size, depth_frac=_u(rng, 0.38, 0.68),
        lateral_frac=_u(rng, -0.45, 0.45), aspect=_u(rng, 0.75, 1.0), angle=_u(rng, 0, np.pi),
        rim_frac=rim_frac, heterogeneity=hetero, gain_db=_u(rng, -3, 3),
        suppression_db=_u(rng, -30, -22), breathing_mm=_u(rng, 0, 4),
        breathing_period_s=_u(rng, 3, 6), out_of_plane=_u(rng, 0.05, 0.3),
        echogenicity_db=(_u(rng, -2, 4) if label == HCC else _u(rng, -5, 2)),
        halo=(_u(rng, 0.2, 0.9) if label == HCC else _u(rng, 0.0, 0.5)),
        posterior_enhancement=_u(rng, 0, 0.6),
        mosaic=(_u(rng, 0.2, 0.9) if label == HCC else _u(rng, 0.0, 0.5)),
        duct_dilatation=bool(rng.random() < (0.08 if label == HCC else 0.35)),
        margin_blur=(_u(rng, 0.5, 1.5) if label == HCC else _u(rng, 1.0, 3.0)),
    )
