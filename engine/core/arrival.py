"""Contrast arrival (t0) from the ROI's mean brightness after the injection mark.

Before contrast arrives, tissue is suppressed and the ROI is dark and steady; arrival is the
first sustained rise above that pre-contrast baseline. The estimate is the onset of that
rise (where it left the baseline's noise band), not the later threshold crossing, because the
schedule's t0 is "contrast starts to appear in the lesion".

Fallback: when no rise is seen within ``window_s`` of the injection (poor window, probe
off, lesion not enhancing), t0 = injection + ``fallback_delay_s`` (18 s, the middle of the
published 10-25 s injection-to-arrival range) and the result carries ``t0_fallback``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Arrival:
    t0: float
    method: str  # "detected" | "fallback" | "manual" (the operator marked arrival)
    baseline: float | None = None
    threshold: float | None = None
    confirmed_at: float | None = None

    @property
    def flags(self) -> list[str]:
        if self.method == "manual":
            return ["t0_marked"]
        return ["t0_from_injection"] + (["t0_fallback"] if self.method == "fallback" else [])


@dataclass
class ArrivalDetector:
    injection_s: float
    window_s: float = 45.0
    baseline_s: float = 6.0
    k_sigma: float = 4.0
    min_rise: float = 6.0
    sustain_s: float = 1.5
    fallback_delay_s: float = 18.0
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    _base: tuple[float, float] | None = None
    _candidate: int | None = None

    @classmethod
    def from_config(cls, injection_s: float, arrival_cfg: dict) -> "ArrivalDetector":
        keys = ("window_s", "baseline_s", "k_sigma", "min_rise", "sustain_s", "fallback_delay_s")
        return cls(injection_s, **{k: float(arrival_cfg[k]) for k in keys})

    @property
    def window_end(self) -> float:
        return self.injection_s + self.window_s

    def offer(self, t: float, value: float) -> Arrival | None:
        """One ROI mean at stream time ``t``; returns the arrival once it is confirmed."""
        if t < self.injection_s or (self.times and t <= self.times[-1]):
            return None
        self.times.append(t)
        self.values.append(float(value))
        if self._base is None:
            if t < self.injection_s + self.baseline_s:
                return None
            self._base = self._baseline()
        mu, thr = self._base
        sm = self._smoothed(len(self.values) - 1)
        if sm > thr:
            if self._candidate is None:
                self._candidate = len(self.values) - 1
            if t - self.times[self._candidate] >= self.sustain_s:
                return Arrival(self._onset(self._candidate), "detected", mu, thr, t)
        else:
            self._candidate = None
        if t >= self.window_end:
            return self.finish()
        return None

    def finish(self) -> Arrival:
        """The window closed (or the recording ended) without a confirmed rise."""
        if self._candidate is not None and self._base is not None:
            # a rise that was still building when the data ended counts
            mu, thr = self._base
            return Arrival(self._onset(self._candidate), "detected", mu, thr, self.times[-1])
        mu_thr = self._base or (None, None)
        return Arrival(self.injection_s + self.fallback_delay_s, "fallback", mu_thr[0], mu_thr[1])

    # -- internals -----------------------------------------------------------------------
    def _baseline(self) -> tuple[float, float]:
        v = np.asarray(self.values)
        mu = float(np.median(v))
        sigma = max(1.4826 * float(np.median(np.abs(v - mu))), 0.5)
        self._sigma = sigma
        return mu, mu + max(self.k_sigma * sigma, self.min_rise)

    def _smoothed(self, i: int) -> float:
        lo = max(0, i - 2)
        return float(np.median(self.values[lo:i + 1]))

    def _onset(self, cand: int) -> float:
        """Walks back from the threshold crossing to where the curve left the noise band."""
        mu, thr = self._base  # type: ignore[misc]
        band = mu + max(1.5 * self._sigma, (thr - mu) / 4.0)
        i = cand
        while i > 0 and self.values[i - 1] > band:
            i -= 1
        if i == 0:
            return self.times[0]
        # the band crossing, interpolated between the samples around it
        t1, v1, t2, v2 = self.times[i - 1], self.values[i - 1], self.times[i], self.values[i]
        t_band = t2 if v2 == v1 else t1 + (band - v1) / (v2 - v1) * (t2 - t1)
        return float(t_band)
