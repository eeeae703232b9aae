"""Image formation: a scanner's CEUS screen at any time, or just the ROI of it.

The same ``Scene.render`` serves the full-screen recording (demo, pipeline tests) and the
fast ROI-only clip (training): every random texture is a slice of a fixed noise atlas at a
case-specific offset plus the pixel's screen position, so a pixel has the same value
whether the whole screen or only the ROI is rendered. A clip made here and the clip the
engine samples from the recording therefore differ only by codec loss.

Model: linear echo power E = speckle_bubbles · C(x, t) + speckle_tissue · tissue · leak +
noise, log-compressed over a 50 dB display range and shown through a gold colour map, as
contrast modes on scanners do. C is the contrast signal (parenchyma / lesion / rim curves
from ``physiology``), tissue is suppressed 22-30 dB before arrival, the field moves with
breathing, and the bubble speckle changes every frame (bubbles flow).
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np

from .physiology import Case

DISPLAY_RANGE_DB = 50.0
DISPLAY_TOP_DB = 12.0     # E at +12 dB maps to white; parenchyma peak (0 dB) to ~76 %
NOISE_FLOOR = 10 ** (-3.75)  # just above the display floor, so grey levels are >= 0
SECTOR_DEPTH_MM = 160.0
SECTOR_HALF_ANGLE = np.deg2rad(37.0)
ATLAS = 2048              # side of the shared noise textures
BANK = 64                 # distinct bubble-speckle offsets per case
SMOOTH_SCALES = (2.0, 4.0, 8.0, 16.0, 32.0)
BUBBLE_GRAIN = 1.0        # speckle grain of the flowing bubbles (px)
TISSUE_GRAIN = 1.2        # speckle grain of tissue and of B-mode (px)


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


@functools.lru_cache(maxsize=None)
def speckle_atlas(grain: float) -> np.ndarray:
    """Fully developed speckle intensity (exponential, mean 1) with a grain of ``grain`` px."""
    import cv2

    rng = np.random.default_rng(int(grain * 1000) + 1)
    k = int(grain * 3) | 1
    re = cv2.GaussianBlur(rng.standard_normal((ATLAS, ATLAS), np.float32), (k, k), grain,
                          borderType=cv2.BORDER_REFLECT)
    im = cv2.GaussianBlur(rng.standard_normal((ATLAS, ATLAS), np.float32), (k, k), grain,
                          borderType=cv2.BORDER_REFLECT)
    p = re * re + im * im
    return (p / p.mean()).astype(np.float32)


@functools.lru_cache(maxsize=None)
def smooth_atlas(sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance smooth noise at scale ``sigma`` px."""
    import cv2

    rng = np.random.default_rng(int(sigma * 100) + 7)
    k = int(sigma * 4) | 1
    n = cv2.GaussianBlur(rng.standard_normal((ATLAS, ATLAS), np.float32), (k, k), sigma,
                         borderType=cv2.BORDER_REFLECT)
    return (n / (n.std() + 1e-6)).astype(np.float32)


def warm_atlases() -> None:
    """Builds every noise atlas now (about 1 s), so no clip pays for it later."""
    for grain in (BUBBLE_GRAIN, TISSUE_GRAIN):
        speckle_atlas(grain)
    for sigma in SMOOTH_SCALES:
        smooth_atlas(sigma)


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


class _Maps:
    """The static maps of one window of the screen (in tissue coordinates). Built with
    OpenCV's vectorised transcendental functions: this runs once per clip and is most of a
    large lesion's clip time."""

    def __init__(self, scene: "Scene", x0: int, y0: int, w: int, h: int):
        import cv2

        c, L = scene.case, scene.layout
        self.x0, self.y0, self.w, self.h = x0, y0, w, h
        xs = np.arange(x0, x0 + w, dtype=np.float32)[None, :]
        ys = np.arange(y0, y0 + h, dtype=np.float32)[:, None]
        cx, cy = scene.center
        r = scene.radius_px
        ca, sa = np.float32(np.cos(c.angle) / r), np.float32(np.sin(c.angle) / r)
        ra = np.float32(1.0 / c.aspect)
        dx, dy = xs - np.float32(cx), ys - np.float32(cy)
        u = dx * ca + dy * sa
        v = (dy * ca - dx * sa) * ra
        rho0, theta = cv2.cartToPolar(u, v)
        ones = np.ones_like(theta)
        _, s3 = cv2.polarToCart(ones, theta * np.float32(3) + np.float32(scene.phase[0]))
        _, s5 = cv2.polarToCart(ones, theta * np.float32(5) + np.float32(scene.phase[1]))
        wobble = 1 + 0.06 * s3 + 0.04 * s5
        rho = rho0 / wobble
        edge = np.float32(max(c.margin_blur / r, 0.02))

        def sigmoid(z):
            return 1.0 / (1.0 + cv2.exp(np.minimum(z, np.float32(60.0))))

        inside = sigmoid((rho - 1.0) / edge)
        if c.rim is not None:
            core = sigmoid((rho - np.float32(1.0 - c.rim_frac)) / edge)
            rim = inside - core
        else:
            core, rim = inside, np.zeros_like(inside)
        het = 1.0 + np.float32(c.heterogeneity) * scene.atlas_slice(scene.het_atlas,
                                                                     scene.het_off, x0, y0, w, h)
        het = np.maximum(het, np.float32(0.05))
        ax, ay = L.apex
        wall = np.float32(ay + 0.1 * L.radius) + 4 * np.sin(xs / np.float32(37.0))
        liver = 1.0 / (1.0 + cv2.exp(np.clip(-(ys - wall) / np.float32(2.0), -60, 60)))
        self.par = (liver * (1 - inside)).astype(np.float32)
        self.core = (core * het).astype(np.float32)
        self.rim = (rim * het).astype(np.float32)
        tissue = 0.6 + 1.4 * (1 - liver)
        tspk = scene.atlas_slice(speckle_atlas(TISSUE_GRAIN), scene.tissue_off, x0, y0, w, h)
        self.tissue = (tspk * tissue * scene.leak).astype(np.float32)


class Scene:
    """One case on one screen layout, at recording time ``t`` (seconds from the start of the
    recording; the injection is at ``injection_s``). Cheap to build: maps are made for the
    windows that are rendered."""

    def __init__(self, case: Case, layout: Layout = Layout(), injection_s: float = 5.0):
        self.case = case
        self.layout = layout
        self.injection_s = injection_s
        rng = np.random.default_rng(case.seed + 7919)
        R = layout.radius
        ax, ay = layout.apex
        depth = case.depth_frac * R
        half_w = depth * np.tan(SECTOR_HALF_ANGLE)
        self.center = (ax + case.lateral_frac * half_w * 0.8, ay + depth)
        self.radius_px = case.size_mm / 2 * layout.px_per_mm
        self.phase = rng.uniform(0, 2 * np.pi, 2)
        self.margin = int(np.ceil(case.breathing_mm * layout.px_per_mm)) + 2
        span = ATLAS - max(layout.width, layout.height) - 4 * self.margin - 8
        if span < 16:
            raise ValueError(f"layout {layout.width}x{layout.height} is too large for the atlas")
        self.het_atlas = smooth_atlas(min(SMOOTH_SCALES, key=lambda s: abs(s - self.radius_px / 4)))
        self.het_off = tuple(rng.integers(0, span, 2))
        self.tissue_off = tuple(rng.integers(0, span, 2))
        self.bank_off = rng.integers(0, span, (BANK, 2))
        self.leak = np.float32(10 ** (case.suppression_db / 10))
        self._maps: _Maps | None = None
        self._screen_maps: tuple | None = None

    # -- geometry --------------------------------------------------------------------------
    def atlas_slice(self, atlas: np.ndarray, off, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        oy, ox = int(off[0]) + y0 + self.margin, int(off[1]) + x0 + self.margin
        return atlas[oy:oy + h, ox:ox + w]

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

    def _window(self, x: int, y: int, w: int, h: int) -> _Maps:
        """Maps for the box plus the breathing margin (tissue coordinates)."""
        M = self.margin
        m = self._maps
        if m is None or not (m.x0 <= x - M and m.y0 <= y - M and x + w + M <= m.x0 + m.w
                             and y + h + M <= m.y0 + m.h):
            self._maps = m = _Maps(self, x - M, y - M, w + 2 * M, h + 2 * M)
        return m

    def _screen(self, x: int, y: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        """Screen-fixed maps of the box: depth gain and the sector mask (255 inside)."""
        if self._screen_maps is None or self._screen_maps[0] != (x, y, w, h):
            L = self.layout
            ax, ay = L.apex
            import cv2

            sy, sx = np.mgrid[y:y + h, x:x + w].astype(np.float32)
            dist, ang = cv2.cartToPolar(sy - np.float32(ay), sx - np.float32(ax))
            ang = np.where(ang > np.pi, ang - np.float32(2 * np.pi), ang)  # from the axis
            sector = (dist <= L.radius) & (np.abs(ang) <= SECTOR_HALF_ANGLE) & (sy >= ay)
            ln10 = np.log(10.0) / 10
            gain = cv2.exp(dist * np.float32(-6.0 * ln10 / L.radius)
                           + np.float32(self.case.gain_db * ln10))
            self._screen_maps = ((x, y, w, h), gain, np.where(sector, 255, 0).astype(np.uint8))
        return self._screen_maps[1], self._screen_maps[2]

    # -- rendering -------------------------------------------------------------------------
    def curves(self, t: float) -> tuple[float, float, float]:
        tau = t - self.injection_s
        c = self.case
        return (float(c.parenchyma(tau)), float(c.lesion_curve(tau)), float(c.rim_curve(tau)))

    def render(self, t: float, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Grey levels (uint8, before the colour map) of ``box`` (x, y, w, h) at time ``t``."""
        import cv2

        x, y, w, h = box if box is not None else (0, 0, self.layout.width, self.layout.height)
        m = self._window(x, y, w, h)
        dx, dy = self.motion(t)
        ys = slice(y - dy - m.y0, y - dy - m.y0 + h)
        xs = slice(x - dx - m.x0, x - dx - m.x0 + w)
        cp, cl, cr = self.curves(t)
        C = cv2.addWeighted(m.par[ys, xs], cp, m.core[ys, xs], cl, 0.0)
        if cr:
            C = cv2.scaleAdd(m.rim[ys, xs], cr, C)
        key = zlib.crc32(np.int64(round(t * 1000)).tobytes() + np.int64(self.case.seed).tobytes())
        spk = self.atlas_slice(speckle_atlas(BUBBLE_GRAIN), self.bank_off[key % BANK], x, y, w, h)
        E = cv2.multiply(C, spk)
        E = cv2.add(E, m.tissue[ys, xs])
        gain, sector = self._screen(x, y, w, h)
        E = cv2.multiply(E, gain)
        E = cv2.add(E, NOISE_FLOOR)
        lnE = cv2.log(E)
        # 10*log10(E) = 4.3429*ln(E); grey = (dB + range - top) * 255 / range, saturated
        a = 10.0 / np.log(10.0) * 255.0 / DISPLAY_RANGE_DB
        b = (DISPLAY_RANGE_DB - DISPLAY_TOP_DB) * 255.0 / DISPLAY_RANGE_DB
        out = cv2.convertScaleAbs(lnE, alpha=a, beta=b)
        return cv2.bitwise_and(out, sector)

    def render_luma(self, t: float, box: tuple[int, int, int, int]) -> np.ndarray:
        """What the engine sees of ``box``: the luma of the colour-mapped grey levels."""
        import cv2

        return cv2.LUT(self.render(t, box), GOLD_LUMA)
