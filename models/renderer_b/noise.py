"""Counter-based noise: every random value in a frame is a pure function of a key and
integer coordinates, never of the order in which pixels are computed.

Why: renderer B renders either a whole screen or only the ROI, and both must give the
same bytes. A stateful generator would tie the values to the array being filled; a hash
of (key, x, y, node) does not. The lattice ("value") noise here is built only from
integer hashing, table look-ups and IEEE +, -, *, /, sqrt, so a pixel's value does not
depend on which SIMD path NumPy takes for the array around it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist

import numpy as np

log = logging.getLogger(__name__)

#: bits of the hash used to index the Gaussian quantile table
GAUSS_BITS = 12

_M1 = np.uint32(0x85EBCA6B)
_M2 = np.uint32(0xC2B2AE35)
_PX = np.uint32(0x9E3779B1)
_PY = np.uint32(0x7FEB352D)
_PN = np.uint32(0x846CA68B)


def fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser: avalanches every input bit (uint32 in and out)."""
    h = h ^ (h >> np.uint32(16))
    h = h * _M1
    h = h ^ (h >> np.uint32(13))
    h = h * _M2
    return h ^ (h >> np.uint32(16))


def as_u32(values) -> np.ndarray:
    """Integers (possibly negative) wrapped to uint32, as an array."""
    return np.asarray(values, dtype=np.int64).astype(np.uint32)


def hash_grid(key: int, ix: np.ndarray, iy: np.ndarray, node: int = 0) -> np.ndarray:
    """uint32 hash of every (y, x) of the grid ``iy x ix`` (1-D integer coordinates) for
    one key and one node (a frame or time-lattice index): shape (len(iy), len(ix))."""
    k = np.uint32((int(key) ^ (int(node) * int(_PN))) & 0xFFFFFFFF)
    hx = fmix32(as_u32(ix) * _PX ^ k)
    hy = as_u32(iy) * _PY
    return fmix32(hx[None, :] ^ hy[:, None])


@lru_cache(maxsize=1)
def gauss_table() -> np.ndarray:
    """Standard-normal quantiles at the centres of 2**GAUSS_BITS equal-probability bins."""
    n = 1 << GAUSS_BITS
    nd = NormalDist()
    return np.array([nd.inv_cdf((i + 0.5) / n) for i in range(n)], dtype=np.float32)


def gaussian_grid(key: int, ix: np.ndarray, iy: np.ndarray, node: int = 0) -> np.ndarray:
    """Standard-normal float32 values on a grid, by table look-up of the hash."""
    return gauss_table()[hash_grid(key, ix, iy, node) >> np.uint32(32 - GAUSS_BITS)]


def uniform_grid(key: int, ix: np.ndarray, iy: np.ndarray, node: int = 0) -> np.ndarray:
    """Uniform [0, 1) float32 values on a grid (24 bits of the hash, exact in float32)."""
    h = hash_grid(key, ix, iy, node) >> np.uint32(8)
    return h.astype(np.float32) * np.float32(1.0 / (1 << 24))


@dataclass(frozen=True)
class Axis:
    """Where the pixels of one axis fall on a lattice of spacing ``spacing`` pixels.

    ``cell`` is each pixel's lattice cell (int64, absolute); ``wa`` and ``wb`` weigh the
    cell's two nodes: smoothstep weights times the factor that brings an interpolated
    unit-variance lattice back to unit variance (interpolation averages, so shrinks it).
    """

    cell: np.ndarray
    wa: np.ndarray
    wb: np.ndarray
    first: int
    count: int

    @classmethod
    def of(cls, coords: np.ndarray, spacing: float) -> "Axis":
        """Lattice cells and weights of integer pixel coordinates ``coords`` (1-D)."""
        f = np.asarray(coords, dtype=np.float64) / float(spacing)
        cell = np.floor(f).astype(np.int64)
        frac = f - cell
        w = frac * frac * (3.0 - 2.0 * frac)
        norm = 1.0 / np.sqrt((1.0 - w) ** 2 + w * w)
        first = int(cell.min())
        return cls(cell, ((1.0 - w) * norm).astype(np.float32), (w * norm).astype(np.float32),
                   first, int(cell.max()) - first + 2)

    @property
    def nodes(self) -> np.ndarray:
        """Absolute lattice indices that the pixels of this axis need."""
        return np.arange(self.first, self.first + self.count, dtype=np.int64)


def interpolate(lattice: np.ndarray, ax: Axis, ay: Axis) -> np.ndarray:
    """Smooth (smoothstep-bilinear), variance-preserving upsampling of ``lattice``
    (ay.count, ax.count) to the pixels of ``ay`` x ``ax``: x first (at lattice-row
    resolution, cheap), then y. An i.i.d. unit-variance lattice gives a unit-variance
    field."""
    c = ax.cell - ax.first
    rows = lattice[:, c] * ax.wa
    rows += lattice[:, c + 1] * ax.wb
    r = ay.cell - ay.first
    out = rows[r] * ay.wa[:, None]
    out += rows[r + 1] * ay.wb[:, None]
    return out


def smooth_field(key: int, xs: np.ndarray, ys: np.ndarray, spacing: float, node: int = 0) -> np.ndarray:
    """A static unit-variance, spatially smooth Gaussian-like field at pixel coordinates
    ``ys x xs`` with correlation length about ``spacing`` pixels."""
    ax, ay = Axis.of(xs, spacing), Axis.of(ys, spacing)
    lat = gaussian_grid(key, ax.nodes, ay.nodes, node)
    return interpolate(lat, ax, ay)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, the cubic 3x^2 - 2x^3 between (no transcendental functions)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
