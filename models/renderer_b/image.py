"""Renderer B's image formation: tissue maps (lesion shape, rim, heterogeneity, vessels,
echogenicity), speckle, bubble sparkles, tissue leakage, depth gain and shadowing, log
compression and colour maps; plus the sampled display and motion settings.

Every per-pixel operation is integer hashing, a table look-up or IEEE +, -, *, /, sqrt,
so any rectangle of a frame is bit-identical whether computed alone or as part of the
whole screen. Transcendental functions only touch scalars and 1-D tables.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .noise import Axis, gaussian_grid, interpolate, smooth_field, smoothstep, uniform_grid

log = logging.getLogger(__name__)

#: display levels between black and full scale (the colour tables have this many rows)
LEVELS = 1024
#: mantissa bits of the log table used for log compression
LOG_BITS = 12
#: node index used for the frozen (static) part of the speckle
STATIC_NODE = 0x7FFFFFF1

COLORMAPS = {
    "grey": ((0.0, (0, 0, 0)), (1.0, (255, 255, 255))),
    "gold": ((0.0, (0, 0, 0)), (0.35, (92, 50, 6)), (0.7, (214, 150, 52)), (1.0, (255, 242, 196))),
    "hot": ((0.0, (0, 0, 0)), (0.4, (196, 24, 0)), (0.75, (255, 196, 0)), (1.0, (255, 255, 232))),
    "tint": ((0.0, (0, 0, 0)), (0.5, (78, 108, 150)), (1.0, (226, 240, 255))),
    "sepia": ((0.0, (0, 0, 0)), (0.5, (132, 96, 70)), (1.0, (252, 228, 204))),
}
COLORMAP_P = {"grey": 0.3, "gold": 0.3, "hot": 0.15, "tint": 0.15, "sepia": 0.1}


def colour_lut(name: str, gamma: float) -> np.ndarray:
    """RGB uint8 table (LEVELS, 3): display level -> colour, with a display gamma."""
    pts = COLORMAPS[name]
    x = (np.arange(LEVELS) / (LEVELS - 1.0)) ** gamma
    pos = [p for p, _ in pts]
    rgb = [np.interp(x, pos, [c[i] for _, c in pts]) for i in range(3)]
    return np.clip(np.rint(np.stack(rgb, axis=1)), 0, 255).astype(np.uint8)


def luma_lut(rgb_lut: np.ndarray) -> np.ndarray:
    """BT.601 full-range luma of every row of a colour table, rounded half up:
    Y = 0.299 R + 0.587 G + 0.114 B, what a GRAY8 decode of that colour gives."""
    r, g, b = (rgb_lut[:, i].astype(np.float64) for i in range(3))
    return np.clip(np.floor(0.299 * r + 0.587 * g + 0.114 * b + 0.5), 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def log2_mantissa_table() -> np.ndarray:
    """log2 of mantissas in [0.5, 1), 2**LOG_BITS bins (for exact-path log compression)."""
    n = 1 << LOG_BITS
    return np.log2(0.5 + (np.arange(n) + 0.5) / (2.0 * n)).astype(np.float32)


def log2_image(intensity: np.ndarray) -> np.ndarray:
    """log2 of a positive float32 image via frexp and a table (error < 2e-4)."""
    m, e = np.frexp(intensity)
    idx = ((m - np.float32(0.5)) * np.float32(2 << LOG_BITS)).astype(np.int32)
    np.clip(idx, 0, (1 << LOG_BITS) - 1, out=idx)
    out = log2_mantissa_table()[idx]
    out += e
    return out


@dataclass(frozen=True)
class Display:
    """Acquisition and display settings of one exam (all sampled)."""

    colormap: str
    gamma: float
    dynamic_range_db: float
    gain_db: float
    tgc_db_per_cm: float
    near_gain_db: float
    near_cm: float
    wall_cm: float
    grain_x_px: float
    grain_y_px: float
    components: int
    static_corr: float
    corr_frames: float
    sparkle_rate: float
    sparkle_gain: float
    sparkle_px: float
    leakage_db: float
    leakage_db_per_cm: float
    leakage_load: float
    noise_floor_db: float
    shadow_db_per_cm: float
    bmode_dynamic_range_db: float
    bmode_gain_db: float
    tissue_grain_x_px: float
    tissue_grain_y_px: float
    keys: tuple[int, ...]


def sample_display(rng: np.random.Generator, px_per_mm: float) -> Display:
    """Display/acquisition settings: colour map and gamma, log compression with a
    40-65 dB range, gain placing the liver's peak at 45-78 % of it, depth gain
    -0.6..+1 dB/cm, speckle grain 0.5-1.4 mm laterally (Nakagami m 0.5/1/1.5), frame-to-
    frame correlation, sparkles, tissue leakage -32..-18 dB growing with depth and
    bubble load (non-linear propagation), shadowing up to 1.2 dB/cm."""
    names = list(COLORMAP_P)
    cmap = names[rng.choice(len(names), p=list(COLORMAP_P.values()))]
    dr = rng.uniform(40.0, 65.0)
    peak_level = rng.uniform(0.45, 0.78)
    floor_level = rng.uniform(0.05, 0.3)
    lateral = rng.uniform(0.5, 1.4) * px_per_mm
    axial = lateral * rng.uniform(0.45, 0.8)
    tissue_lateral = rng.uniform(0.4, 1.0) * px_per_mm
    bdr = rng.uniform(50.0, 70.0)
    return Display(
        colormap=cmap, gamma=rng.uniform(0.75, 1.35), dynamic_range_db=dr,
        gain_db=dr * (peak_level - 1.0), tgc_db_per_cm=rng.uniform(-0.6, 1.0),
        near_gain_db=rng.uniform(-8.0, 0.0), near_cm=rng.uniform(1.0, 3.0),
        wall_cm=rng.uniform(1.2, 2.6),
        grain_x_px=max(lateral, 1.05), grain_y_px=max(axial, 1.05),
        components=int(rng.choice([1, 2, 3], p=[0.15, 0.7, 0.15])),
        static_corr=rng.uniform(0.1, 0.7), corr_frames=rng.uniform(0.7, 3.0),
        sparkle_rate=rng.uniform(0.0, 0.03), sparkle_gain=rng.uniform(3.0, 12.0),
        sparkle_px=rng.uniform(1.0, 2.2),
        leakage_db=rng.uniform(-32.0, -18.0), leakage_db_per_cm=rng.uniform(0.0, 1.2),
        leakage_load=rng.uniform(0.0, 2.0),
        noise_floor_db=dr * (floor_level - 1.0) - dr * (peak_level - 1.0),
        shadow_db_per_cm=rng.uniform(0.0, 1.2),
        bmode_dynamic_range_db=bdr, bmode_gain_db=bdr * (rng.uniform(0.5, 0.7) - 1.0),
        tissue_grain_x_px=max(tissue_lateral, 1.05),
        tissue_grain_y_px=max(tissue_lateral * rng.uniform(0.4, 0.7), 1.05),
        keys=tuple(int(k) for k in rng.integers(0, 2 ** 32, size=12)),
    )


@dataclass(frozen=True)
class Motion:
    """In-plane tissue motion: breathing along one direction, slow probe drift, wander."""

    breath_px: float
    breath_period_s: float
    breath_phase: float
    breath_shape: float
    dir_x: float
    dir_y: float
    drift_x_px_s: float
    drift_y_px_s: float
    wander_px: float
    wander_period_s: float
    wander_phase: float

    def shift(self, t) -> tuple[np.ndarray, np.ndarray]:
        """Integer tissue displacement (dx, dy) in pixels at times ``t`` (s from start)."""
        t = np.asarray(t, dtype=np.float64)
        b = (0.5 - 0.5 * np.cos(2.0 * np.pi * (t / self.breath_period_s + self.breath_phase)))
        b = self.breath_px * (b ** self.breath_shape - 0.5)
        w = self.wander_px * np.sin(2.0 * np.pi * (t / self.wander_period_s + self.wander_phase))
        dx = b * self.dir_x + self.drift_x_px_s * t + w * self.dir_y
        dy = b * self.dir_y + self.drift_y_px_s * t - w * self.dir_x
        return np.rint(dx).astype(np.int64), np.rint(dy).astype(np.int64)


def sample_motion(rng: np.random.Generator, px_per_mm: float) -> Motion:
    """Breathing 0-8 mm in-plane (free-breathing liver motion is ~12 mm cranio-caudal,
    ceus.md section 3; the paper excluded strongly shaking exams), period 3-6 s, mostly
    along the screen's vertical; probe drift up to ~5 mm over the exam; slow wander."""
    angle = rng.normal(np.pi / 2, 0.5)
    drift = rng.uniform(0.0, 5.0) * px_per_mm / 200.0
    drift_angle = rng.uniform(0.0, 2 * np.pi)
    still = rng.random() < 0.15
    return Motion(
        breath_px=0.0 if still else rng.uniform(0.5, 8.0) * px_per_mm,
        breath_period_s=rng.uniform(3.0, 6.0), breath_phase=rng.random(),
        breath_shape=rng.uniform(1.0, 2.0), dir_x=float(np.cos(angle)), dir_y=float(np.sin(angle)),
        drift_x_px_s=drift * float(np.cos(drift_angle)), drift_y_px_s=drift * float(np.sin(drift_angle)),
        wander_px=rng.uniform(0.0, 2.0) * px_per_mm, wander_period_s=rng.uniform(20.0, 70.0),
        wander_phase=rng.random(),
    )


@dataclass(frozen=True)
class LesionShape:
    """Lesion geometry in tissue pixel coordinates, and its internal texture."""

    cx: float
    cy: float
    radius_px: float
    aspect: float
    cos_a: float
    sin_a: float
    harmonics: tuple[tuple[float, float, float], ...]
    warp: float
    warp_px: float
    edge_px: float
    rim_frac: float
    het_amp: float
    het_px: float
    necrosis: float
    echo: float
    halo_frac: float
    key: int

    @property
    def extent_px(self) -> float:
        """Largest distance from the centre to the lesion's edge (pixels)."""
        stretch = max(math.sqrt(self.aspect), 1.0 / math.sqrt(self.aspect))
        lobes = 1.0 + sum(abs(a) for a, _, _ in self.harmonics) + 2.0 * self.warp
        return self.radius_px * stretch * lobes + self.edge_px

    def distance(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Normalised distance to the centre (1 on the edge) on the grid ``ys x xs``:
        ellipse, lobulation by cos(k theta) harmonics (via complex powers, no trig),
        irregular edges by a smooth noise warp."""
        sa = math.sqrt(self.aspect)
        dx = (np.asarray(xs, np.float64) - self.cx)[None, :]
        dy = (np.asarray(ys, np.float64) - self.cy)[:, None]
        a = (dx * self.cos_a + dy * self.sin_a) / (self.radius_px * sa)
        b = (dy * self.cos_a - dx * self.sin_a) * (sa / self.radius_px)
        rho = np.sqrt(a * a + b * b)
        safe = np.maximum(rho, 1e-9)
        c1, s1 = a / safe, b / safe
        ck, sk = c1, s1
        radius = np.ones_like(rho)
        for k, (amp, cphi, sphi) in enumerate(self.harmonics, start=2):
            ck, sk = ck * c1 - sk * s1, sk * c1 + ck * s1
            radius += amp * (ck * cphi - sk * sphi)
        d = rho / radius
        if self.warp > 0:
            d += self.warp * smooth_field(self.key, xs, ys, self.warp_px).astype(np.float64)
        return d

    def maps(self, xs: np.ndarray, ys: np.ndarray) -> dict[str, np.ndarray]:
        """Lesion weight, rim weight, perfusion heterogeneity and halo (float32 grids)."""
        d = self.distance(xs, ys)
        soft = self.edge_px / self.radius_px
        weight = 1.0 - smoothstep((d - 1.0) / soft + 0.5)
        rim = np.zeros_like(d)
        if self.rim_frac > 0:
            rim = smoothstep((d - (1.0 - self.rim_frac)) / max(soft, 0.25 * self.rim_frac) + 0.5)
        het = 1.0 + self.het_amp * smooth_field(self.key ^ 0x5A5A5A5A, xs, ys, self.het_px).astype(np.float64)
        if self.necrosis > 0:
            het *= 1.0 - self.necrosis * (1.0 - smoothstep((d - 0.45) / 0.2 + 0.5))
        het = np.clip(het, 0.05, 2.0)
        halo = np.zeros_like(d)
        if self.halo_frac > 0:
            halo = (1.0 - smoothstep((d - 1.0 - self.halo_frac) / soft + 0.5)) - weight
        f32 = np.float32
        return {"lesion": weight.astype(f32), "rim": rim.astype(f32), "het": het.astype(f32),
                "halo": np.clip(halo, 0, 1).astype(f32)}


@dataclass(frozen=True)
class Vessel:
    """A vessel as a quadratic Bezier curve (tissue pixels) with a lumen radius."""

    kind: str  # "portal" or "hepatic"
    points: tuple[tuple[float, float], ...]
    radius_px: float

    def polyline(self) -> np.ndarray:
        """16 segments along the curve: (17, 2) points."""
        (x0, y0), (x1, y1), (x2, y2) = self.points
        t = np.linspace(0.0, 1.0, 17)[:, None]
        p0, p1, p2 = np.array([x0, y0]), np.array([x1, y1]), np.array([x2, y2])
        return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t * t * p2

    def distance(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Distance (pixels) from each pixel of ``ys x xs`` to the curve; segments whose
        box lies farther than radius + 5 pixels from the grid are skipped: lumen and wall
        weights are exactly 0 beyond radius + 3.5, so skipping cannot change them."""
        px = np.asarray(xs, np.float64)[None, :]
        py = np.asarray(ys, np.float64)[:, None]
        best = np.full((py.shape[0], px.shape[1]), np.inf)
        reach = self.radius_px + 5.0
        pts = self.polyline()
        for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
            if (min(ax, bx) - reach > xs[-1] or max(ax, bx) + reach < xs[0]
                    or min(ay, by) - reach > ys[-1] or max(ay, by) + reach < ys[0]):
                continue
            ex, ey = bx - ax, by - ay
            t = np.clip(((px - ax) * ex + (py - ay) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
            qx, qy = px - ax - t * ex, py - ay - t * ey
            np.minimum(best, qx * qx + qy * qy, out=best)
        return np.sqrt(best)


def vessel_maps(vessels: tuple[Vessel, ...], xs: np.ndarray, ys: np.ndarray) -> dict[str, np.ndarray]:
    """Lumen weights of portal and hepatic veins and the echogenic portal walls."""
    shape = (len(ys), len(xs))
    out = {"portal": np.zeros(shape), "hepatic": np.zeros(shape), "wall": np.zeros(shape)}
    for v in vessels:
        d = v.distance(xs, ys)
        lumen = 1.0 - smoothstep((d - v.radius_px) / 2.0 + 0.5)
        out[v.kind] = np.maximum(out[v.kind], lumen)
        if v.kind == "portal":
            out["wall"] = np.maximum(out["wall"], smoothstep(1.0 - np.abs(d - v.radius_px - 1.0) / 2.5))
    return {k: v.astype(np.float32) for k, v in out.items()}


@dataclass(frozen=True)
class Tissue:
    """What the liver looks like apart from the lesion: textures and echogenicity."""

    texture_amp: float
    texture_px: float
    echo_texture_amp: float
    lesion_echo_het: float
    halo_echo: float
    key: int


def sample_tissue(rng: np.random.Generator, px_per_mm: float) -> Tissue:
    """Parenchymal perfusion texture (cirrhotic nodularity, 3-8 mm) and echo texture."""
    return Tissue(rng.uniform(0.05, 0.22), rng.uniform(3.0, 8.0) * px_per_mm,
                  rng.uniform(0.1, 0.35), rng.uniform(0.1, 0.4), rng.uniform(0.25, 0.5),
                  int(rng.integers(0, 2 ** 32)))


def tissue_maps(lesion: LesionShape, vessels: tuple[Vessel, ...], tissue: Tissue,
                display: Display, xs: np.ndarray, ys: np.ndarray) -> dict[str, np.ndarray]:
    """Static maps in tissue coordinates: the contrast weight of every curve
    ('parenchyma', 'core', 'rim', 'portal_vein', 'hepatic_vein'), the echogenicity
    'echo' and the frozen tissue speckle 'tissue_speckle'."""
    les = lesion.maps(xs, ys)
    ves = vessel_maps(vessels, xs, ys)
    tex = smooth_field(tissue.key, xs, ys, tissue.texture_px)
    ptex = np.clip(1.0 + tissue.texture_amp * tex, 0.3, 2.0)
    outside = (1.0 - les["lesion"])
    vessel = np.maximum(ves["portal"], ves["hepatic"])
    maps = {
        "parenchyma": outside * (1.0 - vessel) * ptex,
        "core": les["lesion"] * (1.0 - les["rim"]) * les["het"],
        "rim": les["lesion"] * les["rim"] * les["het"],
        "portal_vein": outside * ves["portal"],
        "hepatic_vein": outside * ves["hepatic"],
    }
    etex = smooth_field(tissue.key ^ 0x33CC33CC, xs, ys, 0.7 * tissue.texture_px)
    liver_echo = np.clip(1.0 + tissue.echo_texture_amp * etex, 0.3, 2.5)
    lesion_echo = lesion.echo * np.clip(1.0 + tissue.lesion_echo_het * (les["het"] - 1.0) * 2.0, 0.2, 3.0)
    echo = outside * liver_echo * (1.0 - les["halo"] * (1.0 - tissue.halo_echo)) + les["lesion"] * lesion_echo
    echo = echo * (1.0 - 0.96 * vessel * outside) + 1.6 * ves["wall"] * outside
    maps["echo"] = echo
    maps["tissue_speckle"] = Speckle(display.keys[8:11], display.tissue_grain_x_px,
                                     display.tissue_grain_y_px, 2, 1.0, 1.0, xs, ys).at(xs, ys, 0)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in maps.items()}


class Speckle:
    """Speckle intensity (mean 1) over a tissue rectangle, at any frame: the sum of
    ``components`` squared smooth Gaussian fields (Nakagami m = components / 2) with
    lattice spacing ``grain`` pixels. Each field is a frozen part (a share
    ``static_corr`` of the variance) plus a part drifting through i.i.d. lattices
    spaced ``corr_frames`` frames apart. The frozen lattices are drawn once for the
    whole rectangle ``txs x tys`` and sliced per frame."""

    def __init__(self, keys, grain_x: float, grain_y: float, components: int, static_corr: float,
                 corr_frames: float, txs: np.ndarray, tys: np.ndarray) -> None:
        self.keys = tuple(keys[:components])
        self.grain = (grain_x, grain_y)
        self.static_corr, self.corr_frames = static_corr, corr_frames
        ax, ay = Axis.of(txs, grain_x), Axis.of(tys, grain_y)
        self.origin = (ax.first, ay.first)
        self.frozen = [gaussian_grid(k, ax.nodes, ay.nodes, STATIC_NODE) for k in self.keys]

    def at(self, xs: np.ndarray, ys: np.ndarray, frame: int) -> np.ndarray:
        """Intensity on the grid ``ys x xs`` (tissue coordinates inside the rectangle)."""
        ax, ay = Axis.of(xs, self.grain[0]), Axis.of(ys, self.grain[1])
        r0, c0 = ay.first - self.origin[1], ax.first - self.origin[0]
        u = frame / self.corr_frames
        node = math.floor(u)
        w = u - node
        w = w * w * (3.0 - 2.0 * w)
        tn = 1.0 / math.sqrt((1.0 - w) ** 2 + w * w)
        cs, cd = math.sqrt(self.static_corr), math.sqrt(1.0 - self.static_corr)
        total = None
        for key, frozen in zip(self.keys, self.frozen):
            lat = frozen[r0:r0 + ay.count, c0:c0 + ax.count]
            if cd > 0:
                lat = np.float32(cs) * lat
                ga = gaussian_grid(key ^ 0xA5A5A5A5, ax.nodes, ay.nodes, node)
                gb = gaussian_grid(key ^ 0xA5A5A5A5, ax.nodes, ay.nodes, node + 1)
                lat += np.float32(cd * tn * (1.0 - w)) * ga + np.float32(cd * tn * w) * gb
            g = interpolate(lat, ax, ay)
            g *= g
            total = g if total is None else total + g
        if len(self.keys) > 1:
            total *= np.float32(1.0 / len(self.keys))
        return total


def sparkles(key: int, xs: np.ndarray, ys: np.ndarray, frame: int, spacing: float) -> np.ndarray:
    """Uniform [0, 1) values, constant over cells of ``spacing`` pixels, fresh per frame;
    a cell sparkles when its value is below the local bubble-dependent rate."""
    cx = np.floor(np.asarray(xs, np.float64) / spacing).astype(np.int64)
    cy = np.floor(np.asarray(ys, np.float64) / spacing).astype(np.int64)
    nx = np.arange(cx.min(), cx.max() + 1)
    ny = np.arange(cy.min(), cy.max() + 1)
    lat = uniform_grid(key, nx, ny, frame)
    return np.take(np.take(lat, cy - ny[0], axis=0), cx - nx[0], axis=1)


@dataclass(frozen=True)
class DepthTables:
    """Per-pixel-of-depth tables (index = whole pixels below the skin line)."""

    ceus_offset: np.ndarray     # display level offset: gain + TGC
    ceus_shadow: np.ndarray     # level lost per unit bubble load (shadowing)
    leak_base: np.ndarray       # tissue leakage (linear), at zero bubble load
    leak_load: np.ndarray       # extra leakage per unit bubble load (non-linear propagation)
    liver: np.ndarray           # 0 in the abdominal wall, 1 in the liver
    wall_echo: np.ndarray       # echogenicity of the wall layers and the liver capsule
    bmode_offset: np.ndarray    # B-mode display level offset


def depth_tables(display: Display, px_per_mm: float, n: int) -> DepthTables:
    """The depth-dependent gains, leakage, shadowing and wall layers for ``n`` pixels."""
    d_cm = (np.arange(n) + 0.5) / (10.0 * px_per_mm)
    k = (LEVELS - 1) / display.dynamic_range_db
    near = display.near_gain_db * (1.0 - smoothstep(d_cm / display.near_cm))
    tgc = display.gain_db + display.tgc_db_per_cm * d_cm + near
    in_liver = np.maximum(d_cm - display.wall_cm, 0.0)
    leak = 10.0 ** ((display.leakage_db + display.leakage_db_per_cm * d_cm) / 10.0)
    liver = smoothstep((d_cm - display.wall_cm) * 10.0 * px_per_mm / 4.0 + 0.5)
    layers = 0.5 + 0.45 * np.cos(2 * np.pi * d_cm / (display.wall_cm * 0.45)) ** 2
    capsule = np.exp(-(((d_cm - display.wall_cm) * 10.0) / 0.6) ** 2)
    wall_echo = (1.0 - liver) * layers + 2.0 * capsule
    bk = (LEVELS - 1) / display.bmode_dynamic_range_db
    btgc = display.bmode_gain_db + 0.5 * display.tgc_db_per_cm * d_cm + 0.5 * near
    f32 = np.float32
    return DepthTables(
        ceus_offset=((tgc + display.dynamic_range_db) * k).astype(f32),
        ceus_shadow=(display.shadow_db_per_cm * in_liver * k).astype(f32),
        leak_base=leak.astype(f32),
        leak_load=(leak * display.leakage_load * in_liver / 5.0).astype(f32),
        liver=liver.astype(f32), wall_echo=wall_echo.astype(f32),
        bmode_offset=((btgc + display.bmode_dynamic_range_db) * bk).astype(f32),
    )


def to_levels(intensity: np.ndarray, offset: np.ndarray, dynamic_range_db: float) -> np.ndarray:
    """Log compression: display level index (int16, 0..LEVELS-1) of a linear intensity
    image, given the per-pixel level offset (gain, TGC, shadowing)."""
    np.maximum(intensity, np.float32(1e-12), out=intensity)
    lev = log2_image(intensity)
    lev *= np.float32(10.0 * math.log10(2.0) * (LEVELS - 1) / dynamic_range_db)
    lev += offset
    np.clip(lev, 0.0, LEVELS - 1.0, out=lev)
    return lev.astype(np.int16)
