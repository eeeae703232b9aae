"""Augmentations: how recordings of the same exam differ between scanners, presets and
hospitals, applied to a clip (uint8, D x H x W, the model's size) during training.

Each one stands for a real difference between acquisitions:

- ``gain``, ``dynamic_range``, ``colour_map``: a monotone change of the grey levels (the
  operator's gain, the preset's log compression, a colour map's luma), with clipping at 0
  and 255 as a display does;
- ``blur``: a scanner's spatial filter, a lower-resolution screen grab;
- ``codec``: block-DCT loss (JPEG at quality 30-90, as MJPEG or a lossy archive);
- ``noise``: a noisier probe or preset (speckle-like multiplicative noise);
- ``flip``: the probe held the other way;
- ``roi`` (ROI margin and placement), ``frame_rate`` and ``t0_error`` change which pixels and
  frames make the clip, so the renderers apply them when they render (see ``Variation``);

``AUGMENTATIONS`` names them all; ``sample(rng, enabled)`` draws one set of parameters, so
an ablation can leave any one out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the clip-level augmentations (applied here) and the render-time ones (``Variation``)
CLIP_LEVEL = ("gain", "dynamic_range", "colour_map", "blur", "codec", "noise", "flip")
RENDER_LEVEL = ("roi", "frame_rate", "t0_error")
AUGMENTATIONS = CLIP_LEVEL + RENDER_LEVEL


@dataclass(frozen=True)
class ClipAugment:
    gain: float = 0.0           # grey-level offset (-40..40)
    contrast: float = 1.0       # dynamic range: slope around the mid grey (0.6..1.6)
    gamma: float = 1.0          # colour map luma: a power curve (0.6..1.6)
    blur_px: float = 0.0        # Gaussian sigma at the model's size (0..1.0)
    jpeg_quality: int = 0       # 0 = none
    noise: float = 0.0          # multiplicative noise sigma (0..0.25)
    flip: bool = False
    seed: int = 0

    @classmethod
    def sample(cls, rng: np.random.Generator, enabled: tuple[str, ...] = CLIP_LEVEL) -> "ClipAugment":
        on = set(enabled)
        return cls(
            gain=float(rng.uniform(-40, 40)) if "gain" in on else 0.0,
            contrast=float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))) if "dynamic_range" in on else 1.0,
            gamma=float(np.exp(rng.uniform(np.log(0.6), np.log(1.6)))) if "colour_map" in on else 1.0,
            blur_px=float(rng.uniform(0.0, 1.0)) if "blur" in on and rng.random() < 0.7 else 0.0,
            jpeg_quality=int(rng.integers(30, 91)) if "codec" in on and rng.random() < 0.5 else 0,
            noise=float(rng.uniform(0.0, 0.25)) if "noise" in on and rng.random() < 0.5 else 0.0,
            flip=bool(rng.random() < 0.5) if "flip" in on else False,
            seed=int(rng.integers(0, 2**31)))

    def lut(self) -> np.ndarray:
        """(256,) uint8: gamma (colour map), then slope (dynamic range), then offset (gain)."""
        v = np.arange(256, dtype=np.float64) / 255.0
        v = v ** self.gamma * 255.0
        v = (v - 128.0) * self.contrast + 128.0 + self.gain
        return np.clip(np.round(v), 0, 255).astype(np.uint8)

    def apply(self, clip: np.ndarray) -> np.ndarray:
        import cv2

        out = cv2.LUT(clip, self.lut()) if (self.gain, self.contrast, self.gamma) != (0.0, 1.0, 1.0) \
            else clip.copy()
        if self.noise > 0:
            rng = np.random.default_rng(self.seed)
            f = rng.normal(1.0, self.noise, out.shape).clip(0.2, 3.0)
            out = np.clip(out * f, 0, 255).astype(np.uint8)
        for i in range(len(out)):
            img = out[i]
            if self.blur_px > 0.05:
                img = cv2.GaussianBlur(img, (0, 0), self.blur_px)
            if self.jpeg_quality:
                _, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
                img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
            out[i] = img
        if self.flip:
            out = out[:, :, ::-1].copy()
        return out


@dataclass(frozen=True)
class Variation:
    """The render-time differences: the operator's ROI (lesion / ROI size 0.3-0.9, the lesion
    off-centre), the recording's frame rate (which frame is nearest each slot) and the t0
    error of arrival detection."""

    roi_ratio: float | None = None     # None: the renderer's own ROI
    roi_shift: tuple[float, float] = (0.0, 0.0)  # lesion off-centre, fractions of the free margin
    fps: float | None = None           # None: the renderer's own rate
    t0_error_s: float = 0.0

    @classmethod
    def sample(cls, rng: np.random.Generator, enabled: tuple[str, ...] = RENDER_LEVEL) -> "Variation":
        on = set(enabled)
        return cls(
            roi_ratio=float(rng.uniform(0.3, 0.9)) if "roi" in on else None,
            roi_shift=(float(rng.uniform(-0.8, 0.8)), float(rng.uniform(-0.8, 0.8)))
            if "roi" in on else (0.0, 0.0),
            fps=float(rng.choice([4.0, 6.0, 8.0, 10.0, 12.5, 15.0, 25.0, 30.0]))
            if "frame_rate" in on else None,
            t0_error_s=float(rng.uniform(-1.5, 1.5)) if "t0_error" in on else 0.0)
