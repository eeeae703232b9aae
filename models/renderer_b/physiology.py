"""Time-intensity curves (TICs) of renderer B and their sampling from the literature.

Model (ceus.md section 2): every bolus passage is a gamma variate, written with its
arrival time, its rise time (arrival to peak) and its shape alpha so that the peak is 1:
    g(t) = (x e^(1-x))^alpha,  x = (t - arrival) / rise,  t > arrival.
The parenchyma is dual-input: a small hepatic-arterial gamma variate plus a portal
gamma variate, a recirculation pass and a blood-pool equilibrium tail
(1 - e^(-t/fill)) e^(-t/clear) that holds the portal/late plateau for minutes.
A lesion is its own arterial gamma variate plus a share of the blood pool it follows
(``sustain`` times the parenchyma curve), the whole multiplied by a washout factor
10^(-depth(t)/10), depth(t) = D (1 - e^(-(t - start)/tau)) after ``start``.

All times are seconds after the injection; intensities are linear (bubble
concentration times backscatter), scaled so that the parenchyma peaks at 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

log = logging.getLogger(__name__)

#: time grid used to find peaks and washout crossings (s after injection)
GRID_S = np.arange(0.0, 420.0, 0.25)
#: how far below the parenchyma (dB) a lesion must fall for washout to be visible
VISIBLE_WASHOUT_DB = 0.5
#: share of its peak at which a lesion's enhancement counts as appeared (t0)
APPEARANCE = 0.02

WASHOUTS = ("none", "late-mild", "early-mild", "late-marked", "early-marked")
PATTERNS = ("non-rim APHE", "rim APHE", "heterogeneous", "iso", "hypo")


@dataclass(frozen=True)
class GammaPass:
    """One bolus passage (gamma variate normalised to a peak of 1 at arrival + rise)."""

    arrival_s: float
    rise_s: float
    alpha: float

    def __call__(self, t) -> np.ndarray:
        """The passage's intensity at times ``t`` (0 before arrival)."""
        x = (np.asarray(t, dtype=np.float64) - self.arrival_s) / self.rise_s
        xp = np.maximum(x, 1e-9)
        return np.where(x > 0, (xp * np.exp(1.0 - xp)) ** self.alpha, 0.0)


@dataclass(frozen=True)
class BloodPool:
    """The blood-pool equilibrium after mixing: fills in ``fill_s``, clears in ``clear_s``."""

    start_s: float
    fill_s: float
    clear_s: float

    def __call__(self, t) -> np.ndarray:
        """The tail's intensity at times ``t`` (0 before start)."""
        tau = np.maximum(np.asarray(t, dtype=np.float64) - self.start_s, 0.0)
        return (1.0 - np.exp(-tau / self.fill_s)) * np.exp(-tau / self.clear_s)


@dataclass(frozen=True)
class Parenchyma:
    """Liver parenchyma: arterial share plus portal pass, recirculation and pool tail."""

    arterial: GammaPass
    arterial_fraction: float
    portal: GammaPass
    recirculation: GammaPass
    recirculation_gain: float
    pool: BloodPool
    pool_gain: float
    scale: float = 1.0

    def __call__(self, t) -> np.ndarray:
        """Parenchymal intensity at times ``t`` (peaks at 1 once ``scale`` is set)."""
        portal = (self.portal(t) + self.recirculation_gain * self.recirculation(t)
                  + self.pool_gain * self.pool(t))
        wa = self.arterial_fraction
        return self.scale * (wa * self.arterial(t) + (1.0 - wa) * portal)


@dataclass(frozen=True)
class Washout:
    """Fading of a lesion below its blood-pool share: D dB, starting at ``start_s``."""

    start_s: float
    depth_db: float
    tau_s: float

    def factor(self, t) -> np.ndarray:
        """Linear multiplier (<= 1) at times ``t``."""
        tau = np.maximum(np.asarray(t, dtype=np.float64) - self.start_s, 0.0)
        depth = self.depth_db * (1.0 - np.exp(-tau / self.tau_s))
        return 10.0 ** (-depth / 10.0)


@dataclass(frozen=True)
class LesionPart:
    """One enhancing compartment of the lesion (whole lesion, or its rim, or its core)."""

    first_pass: GammaPass
    gain: float
    sustain: float

    def __call__(self, t, parenchyma: np.ndarray, washout: np.ndarray) -> np.ndarray:
        """Intensity at ``t`` given the parenchyma curve and washout factor at ``t``."""
        return (self.gain * self.first_pass(t) + self.sustain * parenchyma) * washout


@dataclass(frozen=True)
class Physiology:
    """All curves of one exam: parenchyma, lesion core and rim, portal and hepatic veins."""

    parenchyma: Parenchyma
    core: LesionPart
    rim: LesionPart
    washout: Washout
    portal_vein: GammaPass
    portal_vein_gain: float
    hepatic_vein_delay_s: float
    hepatic_vein_gain: float

    def curves(self, t) -> dict[str, np.ndarray]:
        """Intensities at times ``t`` (s after injection) for every tissue class."""
        p = self.parenchyma(t)
        w = self.washout.factor(t)
        pv = self.portal_vein_gain * (self.portal_vein(t) + 0.6 * self.parenchyma.pool(t))
        hv = self.hepatic_vein_gain * self.parenchyma(np.asarray(t) - self.hepatic_vein_delay_s)
        return {"parenchyma": p, "core": self.core(t, p, w), "rim": self.rim(t, p, w),
                "portal_vein": pv, "hepatic_vein": hv}

    def lesion_peak_s(self) -> float:
        """Time of the lesion's arterial peak (s after injection)."""
        return self.core.first_pass.arrival_s + self.core.first_pass.rise_s

    def lesion_arrival_s(self) -> float:
        """Time the bolus front reaches the lesion (s after injection)."""
        return min(self.core.first_pass.arrival_s, self.rim.first_pass.arrival_s)

    def appearance_s(self, fraction: float = APPEARANCE) -> float:
        """t0 of the paper's schedule, "the moment contrast starts to appear in the
        lesion": when its brightest part first reaches ``fraction`` of its arterial-phase
        peak (s after injection, 0.05 s steps)."""
        t = np.arange(0.0, 120.0, 0.05)
        c = self.curves(t)
        part = max((c["core"], c["rim"]), key=lambda v: float(v.max()))
        return float(t[np.argmax(part >= fraction * part.max())])


def ratio_db(lesion: np.ndarray, parenchyma: np.ndarray) -> np.ndarray:
    """Lesion level relative to parenchyma in dB (>0 hyper-, <0 hypo-enhancing)."""
    return 10.0 * np.log10(np.maximum(lesion, 1e-9) / np.maximum(parenchyma, 1e-9))


def visible_washout_s(phys: Physiology, part: str) -> float | None:
    """First time after the lesion's peak at which the ``part`` curve ('core' or 'rim')
    lies VISIBLE_WASHOUT_DB below the parenchyma; None if never on the grid."""
    c = phys.curves(GRID_S)
    r = ratio_db(c[part], c["parenchyma"])
    after = GRID_S >= phys.lesion_peak_s()
    hit = np.nonzero(after & (r <= -VISIBLE_WASHOUT_DB))[0]
    return float(GRID_S[hit[0]]) if hit.size else None


def sample_parenchyma(rng: np.random.Generator, lesion_arrival_s: float) -> Parenchyma:
    """Liver TIC: arrival 15-22 s, portal-dominated peak 35-50 s, slow late decay
    (still visible at 4-6 min), arterial fraction 15-35 % (cirrhosis raises it)."""
    arrival = rng.uniform(max(15.0, lesion_arrival_s + 0.5), max(22.0, lesion_arrival_s + 2.0))
    ttp = rng.uniform(35.0, 50.0)
    portal_start = arrival + rng.uniform(2.0, 6.0)
    arterial = GammaPass(lesion_arrival_s + rng.uniform(0.5, 2.5), rng.uniform(6.0, 10.0),
                         rng.uniform(2.0, 4.0))
    alpha, rec_delay, rec_width, rec_alpha = (rng.uniform(1.6, 3.0), rng.uniform(6.0, 14.0),
                                              rng.uniform(1.5, 2.2), rng.uniform(1.5, 2.5))
    fill, clear = rng.uniform(8.0, 18.0), rng.uniform(250.0, 650.0)
    fa, rg, pg = rng.uniform(0.15, 0.35), rng.uniform(0.15, 0.35), rng.uniform(0.55, 0.8)

    def build(rise: float) -> Parenchyma:
        portal = GammaPass(portal_start, rise, alpha)
        recirc = GammaPass(portal_start + rise + rec_delay, rise * rec_width, rec_alpha)
        pool = BloodPool(portal_start + 0.5 * rise, fill, clear)
        return Parenchyma(arterial, fa, portal, recirc, rg, pool, pg)

    lo, hi = 2.0, 40.0  # the peak moves later as the portal rise lengthens
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        if GRID_S[np.argmax(build(mid)(GRID_S))] < ttp:
            lo = mid
        else:
            hi = mid
    p = build(lo)
    peak = float(np.max(p(GRID_S)))
    return replace(p, scale=1.0 / peak)


def lesion_timing(rng: np.random.Generator, subtype: str, washout: str) -> GammaPass:
    """Lesion first pass: arrival 12-20 s (HCC) or 12-22 s (others), TTP 25-40 s (HCC),
    25-35 s (ICC), with at least 6 s of rise. Early washers get a sharper bolus (larger
    alpha): their first pass must be over before 60 s."""
    hi_arrival = 20.0 if subtype == "hcc" else 22.0
    hi_ttp = {"hcc": 40.0, "icc": 35.0}.get(subtype, 38.0)
    arrival = rng.uniform(12.0, hi_arrival)
    ttp = max(rng.uniform(25.0, hi_ttp), arrival + 6.0)
    alpha = rng.uniform(3.5, 5.5) if washout.startswith("early") else rng.uniform(2.0, 4.5)
    return GammaPass(arrival, ttp - arrival, alpha)


def enhancing_part(first: GammaPass, peak_db: float, sustain: float, par: Parenchyma) -> LesionPart:
    """A part whose peak is ``peak_db`` above the parenchyma's peak (which is 1)."""
    tpk = first.arrival_s + first.rise_s
    gain = max(10.0 ** (peak_db / 10.0) - sustain * float(par(tpk)), 0.05)
    return LesionPart(first, gain, sustain)


def sample_parts(rng: np.random.Generator, subtype: str, pattern: str, first: GammaPass,
                 par: Parenchyma) -> tuple[LesionPart, LesionPart]:
    """(core, rim) curves for an enhancement pattern (ceus.md section 2 [prior] table):
    non-rim APHE +3..+10 dB (HCC) / +2..+7 dB (others); rim +2..+8 dB with a core
    at -8..-1 dB; iso -0.4..+0.8 dB; hypo -6..-2 dB."""
    tpk = first.arrival_s + first.rise_s
    p_at_peak = float(par(tpk))
    if pattern in ("non-rim APHE", "heterogeneous"):
        lo, hi = (3.0, 10.0) if subtype == "hcc" else (2.0, 7.0)
        core = enhancing_part(first, rng.uniform(lo, hi), 1.0, par)
        return core, core
    if pattern == "rim APHE":
        rim = enhancing_part(first, rng.uniform(2.0, 8.0), 1.0, par)
        h = 10.0 ** (rng.uniform(-8.0, -1.0) / 10.0)
        core_first = GammaPass(first.arrival_s + rng.uniform(1.0, 4.0), first.rise_s * 1.3, first.alpha)
        core = LesionPart(core_first, h * p_at_peak * rng.uniform(0.0, 0.4), h)
        return core, rim
    if pattern == "iso":
        r = 10.0 ** (rng.uniform(-0.4, 0.8) / 10.0)
        core = LesionPart(first, p_at_peak * max(r - 1.0, 0.0) + 1e-3, min(r, 1.0))
        return core, core
    h = 10.0 ** (rng.uniform(-6.0, -2.0) / 10.0)  # hypo
    core = LesionPart(first, h * p_at_peak * rng.uniform(0.0, 0.3) + 1e-3, h)
    return core, core


def washout_target(rng: np.random.Generator, category: str, peak_s: float) -> tuple[float, float, float]:
    """(visible onset s, final depth dB, time constant s) for a washout category.
    Onsets: late >= 60 s, mean ~95 s (HCC 90.9 +- 31.3 s, Li 2014); early < 60 s;
    'none' starts after 4 min, beyond the schedule (late HCC washout at ~5 min,
    Vezeridis). Depths: mild 1.5-4.5 dB, marked 8-16 dB ("punched out" by 2 min)."""
    if category == "none":
        return rng.uniform(240.0, 400.0), rng.uniform(1.5, 4.0), rng.uniform(30.0, 80.0)
    if category == "late-mild":
        onset = float(np.clip(rng.normal(95.0, 30.0), 62.0, 190.0))
        return onset, rng.uniform(1.5, 4.5), rng.uniform(15.0, 45.0)
    if category == "late-marked":
        return rng.uniform(62.0, 85.0), rng.uniform(8.0, 15.0), rng.uniform(5.0, 12.0)
    early_lo = min(max(peak_s + 6.0, 28.0), 52.0)
    if category == "early-mild":
        return rng.uniform(early_lo, 57.0), rng.uniform(2.0, 4.5), rng.uniform(5.0, 15.0)
    if category == "early-marked":
        return rng.uniform(early_lo, 57.0), rng.uniform(8.0, 16.0), rng.uniform(5.0, 12.0)
    raise ValueError(f"unknown washout category {category!r}")


def fit_washout_start(phys: Physiology, onset_s: float, part: str) -> Physiology:
    """The same physiology with the washout start chosen (by bisection) so that the
    lesion falls visibly below the liver at ``onset_s``; the earliest possible start
    (the lesion's peak) when the first-pass tail keeps it bright longer than that."""
    lo, hi = phys.lesion_peak_s(), onset_s

    def with_start(s: float) -> Physiology:
        return replace(phys, washout=replace(phys.washout, start_s=s))

    for _ in range(20):
        mid = 0.5 * (lo + hi)
        seen = visible_washout_s(with_start(mid), part)
        if seen is not None and seen <= onset_s:
            lo = mid
        else:
            hi = mid
    return with_start(lo)


def onset_matches(washout: str, seen: float | None) -> bool:
    """Whether a visible onset agrees with its category (early < 60 s <= late)."""
    if washout == "none":
        return seen is None
    if seen is None:
        return False
    return seen < 60.0 if washout.startswith("early") else seen >= 60.0


def sample_physiology(rng: np.random.Generator, subtype: str, pattern: str,
                      washout: str) -> tuple[Physiology, float | None]:
    """All curves of an exam, and the visible washout onset (s after injection; None when
    the lesion stays at or above the liver inside the schedule). Draws again (up to 20
    times) when a long first-pass tail hides an early washout past 60 s."""
    for attempt in range(20):
        phys, seen = draw_physiology(rng, subtype, pattern, washout)
        if onset_matches(washout, seen):
            return phys, seen
    log.warning("%s/%s/%s: onset %s does not match its category after %d draws",
                subtype, pattern, washout, seen, attempt + 1)
    return phys, seen


def draw_physiology(rng: np.random.Generator, subtype: str, pattern: str,
                    washout: str) -> tuple[Physiology, float | None]:
    """One draw of the curves and their visible washout onset (see sample_physiology)."""
    first = lesion_timing(rng, subtype, washout)
    par = sample_parenchyma(rng, first.arrival_s)
    core, rim = sample_parts(rng, subtype, pattern, first, par)
    onset, depth, tau = washout_target(rng, washout, first.arrival_s + first.rise_s)
    pv_arrival = par.portal.arrival_s - rng.uniform(1.0, 3.0)
    phys = Physiology(par, core, rim, Washout(onset, depth, tau),
                      GammaPass(pv_arrival, max(par.portal.rise_s * 0.7, 5.0), rng.uniform(2.0, 3.5)),
                      rng.uniform(1.3, 2.5), rng.uniform(4.0, 10.0), rng.uniform(1.0, 1.8))
    part = "rim" if pattern == "rim APHE" else "core"
    if washout != "none" and pattern in ("non-rim APHE", "heterogeneous", "rim APHE", "iso"):
        phys = fit_washout_start(phys, onset, part)
    if pattern == "hypo":  # hypo from the start: washout is its further fading
        seen = None if washout == "none" else onset
    else:
        seen = visible_washout_s(phys, part)
        if washout == "none" and seen is not None and seen > 230.0:
            seen = None
    log.debug("physiology %s/%s/%s: onset target %.1f s, seen %s", subtype, pattern, washout, onset, seen)
    return phys, seen
