"""Image formation: a scanner's CEUS screen at any time, or just the ROI of it.

The same ``Scene.render`` serves the full-screen recording (demo, pipeline tests) and the
fast ROI-only clip (training), so a clip made here and the clip the engine samples from the
recording differ only by codec loss.

Model: linear echo power E = speckle_bubbles · C(x, t) + speckle_tissue · tissue · leak +
noise, log-compressed over a 50 dB display range and shown through a gold colour map, as
contrast modes on scanners do. C is the contrast signal (parenchyma / lesion / rim curves
from ``physiology``), tissue is suppressed 22-30 dB before arrival, the whole field moves
with breathing, and the bubble speckle changes every frame (bubbles flow).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .physiology import Case

DISPLAY_RANGE_DB = 50.0
DISPLAY_TOP_DB = 12.0     # E at +12 dB maps to white; parenchyma peak (0 dB) to ~76 %
NOISE_FLOOR = 10 ** (-3.75)  # just above the display floor, so grey levels are >= 0
SECTOR_DEPTH_MM = 160.0
SECTOR_HALF_ANGLE = np.deg2rad(37.0)
BANK = 24                 # pre-computed bubble speckle fields
JITTER = 16               # random offset range into a speckle field


def gold_lut() -> np.ndarray:
    """256 x 3 uint8: the warm 'contrast' colour map (luma is monotonic in the grey level)."""
    g = np.arange(256, dtype=np.float64) / 255.0
    r = np.clip(g * 1.05, 0, 1)
    gg = np.clip(g ** 1.1 * 0.9, 0, 1)
    b = np.clip(g ** 1.6 * 0.6, 0, 1)
    return (np.stack([r, gg, b], 1) * 255 + 0.5).astype(np.uint8)


GOLD = gold_lut()
#: BT.601 luma of each gold level (what a decoder's Y plane holds, full range)
GOLD_LUMA = np.clip(GOLD @ np.array([0.299, 0.587, 0.114]) + 0.5, 0, 255).astype(np.uint8)


def _speckle_field(rng: np.random.Generator, h: int, w: int, grain: float) -> np.ndarray:
    import cv2

    re = rng.standard_normal((h, w)).astype(np.float32)
    im = rng.standard_normal((h, w)).astype(np.float32)
    k = int(grain * 3) | 1
    re = cv2.GaussianBlur(re, (k, k), grain)
    im = cv2.GaussianBlur(im, (k, k), grain)
    p = re * re + im * im
    return (p / p.mean()).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    import cv2

    n = rng.standard_normal((h, w)).astype(np.float32)
    k = int(sigma * 4) | 1
    n = cv2.GaussianBlur(n, (k, k), sigma)
    return n / (n.std() + 1e-6)


@dataclass(frozen=True)
class Layout:
    width: int = 640
    height: int = 480

    @property
    def apex(self) -> tuple[float, float]:
        return self.width / 2.0, self.height * 0.07

    @property
    def radius(self) -> float:
        return self.height * 0.9

    @property
    def px_per_mm(self) -> float:
        return self.radius / SECTOR_DEPTH_MM

    @property
    def sector_box(self) -> tuple[int, int, int, int]:
        ax, ay = self.apex
        half = self.radius * np.sin(SECTOR_HALF_ANGLE)
        x0 = int(max(ax - half, 0))
        x1 = int(min(ax + half + 1, self.width))
        y0 = int(ay)
        y1 = int(min(ay + self.radius + 1, self.height))
        return x0, y0, x1 - x0, y1 - y0


class Scene:
    """One case on one screen layout, at recording time ``t`` (seconds from the start of the
    recording; the injection is at ``injection_s``)."""

    def __init__(self, case: Case, layout: Layout = Layout(), injection_s: float = 5.0):
        self.case = case
        self.layout = layout
        self.injection_s = injection_s
        rng = np.random.default_rng(case.seed + 7919)
        W, H = layout.width, layout.height
        self.margin = M = int(np.ceil(case.breathing_mm * layout.px_per_mm)) + 4
        ch, cw = H + 2 * M, W + 2 * M
        yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
        xx -= M
        yy -= M
        ax, ay = layout.apex
        R = layout.radius
        # lesion geometry (at rest)
        depth = case.depth_frac * R
        half_w = depth * np.tan(SECTOR_HALF_ANGLE)
        cx = ax + case.lateral_frac * half_w * 0.8
        cy = ay + depth
        r = case.size_mm / 2 * layout.px_per_mm
        self.center = (cx, cy)
        self.radius_px = r
        ca, sa = np.cos(case.angle), np.sin(case.angle)
        u = ((xx - cx) * ca + (yy - cy) * sa) / r
        v = (-(xx - cx) * sa + (yy - cy) * ca) / (r * case.aspect)
        theta = np.arctan2(v, u)
        wobble = 1 + 0.06 * np.sin(3 * theta + rng.uniform(0, 6.28)) + \
            0.04 * np.sin(5 * theta + rng.uniform(0, 6.28))
        rho = np.sqrt(u * u + v * v) / wobble
        edge = max(case.margin_blur / r, 0.02)
        inside = 1.0 / (1.0 + np.exp(np.minimum((rho - 1.0) / edge, 60.0)))
        if self.case.rim is not None:
            inner = 1.0 / (1.0 + np.exp(np.minimum((rho - (1.0 - case.rim_frac)) / edge, 60.0)))
            self.rim = (inside - inner).astype(np.float32)
            self.core = inner.astype(np.float32)
        else:
            self.rim = np.zeros_like(inside, np.float32)
            self.core = inside.astype(np.float32)
        het = 1.0 + case.heterogeneity * _smooth_noise(rng, ch, cw, max(r / 4, 2.0))
        self.het = np.clip(het, 0.05, None).astype(np.float32)
        self.lesion_any = (self.rim + self.core).astype(np.float32)
        # liver: everything in the sector below a thin abdominal wall
        wall = ay + 0.1 * R + 4 * np.sin(xx / 37.0)
        self.liver = (1.0 / (1.0 + np.exp(-(yy - wall) / 2.0))).astype(np.float32)
        self.par_weight = (self.liver * (1 - self.lesion_any)).astype(np.float32)
        self.tissue = (0.6 + 1.4 * (1 - self.liver)).astype(np.float32)
        self.tissue_speckle = _speckle_field(rng, ch, cw, 1.2)
        self.leak = np.float32(10 ** (case.suppression_db / 10))
        # maps that move together, pre-multiplied: C = par*cp + core*cl + rim*cr
        self._core_het = (self.core * self.het).astype(np.float32)
        self._rim_het = (self.rim * self.het).astype(np.float32)
        self._tissue_term = (self.tissue_speckle * self.tissue * self.leak).astype(np.float32)
        bank_rng = np.random.default_rng(case.seed + 104729)
        self.bank = [_speckle_field(bank_rng, ch + JITTER, cw + JITTER, 1.0) for _ in range(BANK)]
        # screen-fixed maps: sector mask and depth gain
        sy, sx = np.mgrid[0:H, 0:W].astype(np.float32)
        dist = np.hypot(sx - ax, sy - ay)
        ang = np.arctan2(sx - ax, sy - ay)
        self.sector = (dist <= R) & (np.abs(ang) <= SECTOR_HALF_ANGLE) & (sy >= ay)
        self.depth_gain = (10 ** ((-6.0 * dist / R + case.gain_db) / 10)).astype(np.float32)
        self._sector_u8 = np.where(self.sector, 255, 0).astype(np.uint8)

    # -- geometry --------------------------------------------------------------------------
    def roi(self, margin: float = 0.3) -> tuple[int, int, int, int]:
        """The operator's box: the lesion at rest plus a margin, inside the sector's box."""
        cx, cy = self.center
        half = self.radius_px * (1 + margin) + self.case.breathing_mm * self.layout.px_per_mm
        x0, y0, w, h = self.layout.sector_box
        x = int(max(cx - half, x0))
        y = int(max(cy - half, y0))
        x2 = int(min(cx + half, x0 + w))
        y2 = int(min(cy + half, y0 + h))
        return x, y, x2 - x, y2 - y

    def motion(self, t: float) -> tuple[int, int]:
        """Breathing: mostly cranio-caudal, which is vertical-ish in the sector."""
        c = self.case
        amp = c.breathing_mm * self.layout.px_per_mm
        ph = 2 * np.pi * t / c.breathing_period_s + (c.seed % 17)
        return int(round(amp * 0.3 * np.sin(ph + 1.0))), int(round(amp * np.sin(ph)))

    # -- rendering -------------------------------------------------------------------------
    def curves(self, t: float) -> tuple[float, float, float]:
        tau = t - self.injection_s
        c = self.case
        return (float(c.parenchyma(tau)), float(c.lesion_curve(tau)), float(c.rim_curve(tau)))

    def render(self, t: float, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Grey levels (uint8, before the colour map) of ``box`` (x, y, w, h) at time ``t``."""
        x, y, w, h = box if box is not None else (0, 0, self.layout.width, self.layout.height)
        M = self.margin
        dx, dy = self.motion(t)
        ys, xs = slice(y + M - dy, y + M - dy + h), slice(x + M - dx, x + M - dx + w)
        import cv2

        cp, cl, cr = self.curves(t)
        C = cv2.addWeighted(self.par_weight[ys, xs], cp, self._core_het[ys, xs], cl, 0.0)
        if cr:
            C = cv2.scaleAdd(self._rim_het[ys, xs], cr, C)
        key = zlib.crc32(np.int64(round(t * 1000)).tobytes() + np.int64(self.case.seed).tobytes())
        spk = self.bank[key % BANK]
        ox, oy = (key >> 8) % JITTER, (key >> 16) % JITTER
        E = cv2.multiply(C, spk[y + M + oy:y + M + oy + h, x + M + ox:x + M + ox + w])
        E = cv2.add(E, self._tissue_term[ys, xs])
        E = cv2.multiply(E, self.depth_gain[y:y + h, x:x + w])
        E = cv2.add(E, NOISE_FLOOR)
        lnE = cv2.log(E)
        # 10*log10(E) = 4.3429*ln(E); grey = (dB + range - top) * 255 / range, saturated
        a = 10.0 / np.log(10.0) * 255.0 / DISPLAY_RANGE_DB
        b = (DISPLAY_RANGE_DB - DISPLAY_TOP_DB) * 255.0 / DISPLAY_RANGE_DB
        out = cv2.convertScaleAbs(lnE, alpha=a, beta=b)
        return cv2.bitwise_and(out, self._sector_u8[y:y + h, x:x + w])

    def render_luma(self, t: float, box: tuple[int, int, int, int]) -> np.ndarray:
        """What the engine sees of ``box``: the luma of the colour-mapped grey levels."""
        return GOLD_LUMA[self.render(t, box)]
